export { SHAMIR_MAX_SECRET_BYTES, SHAMIR_MAX_SHARES, combineShares, parseShare, splitSecret } from './shamir.js';
export type { ShareInfo } from './shamir.js';
