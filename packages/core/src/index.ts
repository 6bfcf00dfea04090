export * from './errors/index.js';
export * from './crypto/index.js';
export * from './canonical/index.js';
export * from './merkle/index.js';
export * from './api/index.js';
export * from './shamir/index.js';
export * from './tsa/index.js';
export * from './audit/index.js';
