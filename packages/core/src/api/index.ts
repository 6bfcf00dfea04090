export * from './kms.js';
export * from './auth.js';
export * from './problem.js';
export * from './audit.js';
export * from './sys.js';
export * from './approvals.js';
export * from './pki.js';
export * from './identity.js';
