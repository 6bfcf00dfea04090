export {
  FieldEncryptor,
  DEK_CONTEXT_PURPOSE,
  type FieldEncryptorOptions,
  type FieldKms,
  type KekConfig,
  type FieldBinding,
  type ReencryptProgress,
  type ReencryptResult,
} from './field-encryptor.js';
export { DekCache, DEFAULT_LIMITS as DEK_CACHE_DEFAULTS, GCM_RANDOM_IV_LIMIT, type DekCacheLimits, type CachedKey } from './dek-cache.js';
export {
  COMPACT_PREFIX,
  FIELD_ALGORITHM,
  dekName,
  envelopeToCompact,
  envelopeToJson,
  parseEnvelope,
  type EnvelopeForm,
  type FieldEnvelope,
  type SealedField,
} from './envelope.js';
export {
  FIELD_CLASSIFICATIONS,
  compileSchema,
  parsePath,
  type ClassificationSchema,
  type FieldClassification,
  type EncryptedClassification,
  type FieldRule,
} from './schema.js';
