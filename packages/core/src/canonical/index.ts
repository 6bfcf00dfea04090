export { CanonicalError, canonicalBytes, canonicalJson } from './json.js';
