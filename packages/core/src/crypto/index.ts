export {
  AeadError,
  KEY_BYTES,
  MAX_GCM_IV_BYTES,
  NONCE_BYTES,
  TAG_BYTES,
  aeadOpen,
  aeadOpenRaw,
  aeadSeal,
  aeadSealRaw,
} from './aead.js';
export type { AeadAlgorithm, AeadRawOptions, AeadSealed, RawAeadAlgorithm } from './aead.js';
export { constantTimeEqual, hkdfSha256, hmacSha256, randomBytes, randomId, sha256 } from './random.js';
export type { BytesLike } from './random.js';
export { TRANSFER_FORMAT, unwrapTransfer, wrapForTransfer } from './key-transfer.js';
