/**
 * KMS API schemas: the one source for route validation, the OpenAPI document and the SDK's types.
 * Shapes follow the seed's Key Management Service API (KeyMetadata, EncryptedData), extended where noted.
 */
import { Type, type Static } from '@sinclair/typebox';

export const KEY_TYPES = ['DEK', 'KEK', 'signing', 'TLS', 'hmac'] as const;
export const ALGORITHMS = ['AES-256-GCM', 'CHACHA20-POLY1305', 'ECDSA-P256', 'ECDSA-P384', 'ED25519', 'RSA-4096', 'HMAC-SHA256'] as const;
export const USAGES = ['encrypt', 'decrypt', 'sign', 'verify'] as const;
export const CLASSIFICATIONS = ['internal', 'confidential', 'restricted'] as const;
export const KEY_STATUSES = ['active', 'rotating', 'deprecated', 'disabled', 'pending_destruction', 'destroyed'] as const;
export const VERSION_STATUSES = ['active', 'deprecated', 'pending_destruction', 'destroyed'] as const;

export type KeyType = (typeof KEY_TYPES)[number];
export type Algorithm = (typeof ALGORITHMS)[number];
export type Usage = (typeof USAGES)[number];
export type Classification = (typeof CLASSIFICATIONS)[number];
export type KeyStatus = (typeof KEY_STATUSES)[number];

/** A string enum as plain JSON Schema (`enum`), typed as the union of its values. */
export const enumOf = <T extends string>(values: readonly T[], description?: string) =>
  Type.Unsafe<T>({ type: 'string', enum: [...values], ...(description ? { description } : {}) });

/** Standard base64 (RFC 4648 §4) with padding; at most 10 MiB of text by the body limit. */
export const Base64 = Type.String({ format: 'base64', contentEncoding: 'base64', description: 'standard base64 with padding' });

const BASE64_CHARS = /^[A-Za-z0-9+/]*={0,2}$/;
/** The `base64` format: standard alphabet, padded. Linear in the input, safe on 10 MiB strings. */
export function isBase64(s: string): boolean {
  return s.length % 4 === 0 && BASE64_CHARS.test(s);
}
export const KeyId = Type.String({ pattern: '^key_[a-z0-9]{26}$', description: 'key identifier' });
export const Context = Type.Record(Type.String(), Type.Unknown(), {
  description: 'encryption context, bound to the ciphertext as AAD in canonical JSON (RFC 8785); must be given again to decrypt',
});

export const CreateKeyRequest = Type.Object(
  {
    key_type: enumOf(KEY_TYPES),
    algorithm: enumOf(ALGORITHMS),
    usage: Type.Optional(Type.Array(enumOf(USAGES), { minItems: 1, uniqueItems: true, description: 'defaults to every usage the algorithm allows' })),
    classification: Type.Optional(enumOf(CLASSIFICATIONS, 'defaults to internal')),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9._:/-]*$' })),
    rotation_period_days: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650, description: 'overrides the default: the stricter of the classification period and the key type policy' })),
    exportable: Type.Optional(Type.Boolean({ description: 'may be exported wrapped for another party (POST /v1/keys/{id}/export); false by default, and never changed later' })),
  },
  { additionalProperties: false },
);
export type CreateKeyRequest = Static<typeof CreateKeyRequest>;

/** Bring your own key: the material wrapped with the server's wrapping key (GET /v1/keys/import/wrapping-key). */
export const ImportKeyRequest = Type.Object({ ...CreateKeyRequest.properties, wrapped_key: Type.String({ format: 'base64', contentEncoding: 'base64', description: 'RSA_AES_KEY_WRAP_SHA_256: RSA-OAEP-SHA256(one-time AES-256 key) || AES-KWP(material); raw key bytes, or PKCS#8 DER for asymmetric keys' }) }, { additionalProperties: false });
export type ImportKeyRequest = Static<typeof ImportKeyRequest>;

export const WrappingKey = Type.Object({ public_key_pem: Type.String(), algorithm: Type.Literal('RSA-4096'), format: Type.Literal('RSA_AES_KEY_WRAP_SHA_256') });
export type WrappingKey = Static<typeof WrappingKey>;

export const ExportKeyRequest = Type.Object(
  { public_key_pem: Type.String({ minLength: 1, maxLength: 8192, description: "the receiver's RSA public key (3072 bits or more), PEM" }), version: Type.Optional(Type.Integer({ minimum: 1 })) },
  { additionalProperties: false },
);
export type ExportKeyRequest = Static<typeof ExportKeyRequest>;

export const ExportedKey = Type.Object({ key_id: Type.String(), version: Type.Integer(), algorithm: enumOf(ALGORITHMS), format: Type.Literal('RSA_AES_KEY_WRAP_SHA_256'), wrapped_key: Type.String({ contentEncoding: 'base64' }) });
export type ExportedKey = Static<typeof ExportedKey>;

export const UpdateKeyRequest = Type.Object(
  {
    min_decryption_version: Type.Optional(Type.Integer({ minimum: 1 })),
    rotation_period_days: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650 })),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateKeyRequest = Static<typeof UpdateKeyRequest>;

export const KeyMetadata = Type.Object({
  key_id: KeyId,
  name: Type.Union([Type.String(), Type.Null()]),
  key_type: enumOf(KEY_TYPES),
  algorithm: enumOf(ALGORITHMS),
  usage: Type.Array(enumOf(USAGES)),
  classification: enumOf(CLASSIFICATIONS),
  version: Type.Integer({ description: 'current (newest) version; new encryptions use it' }),
  min_decryption_version: Type.Integer(),
  status: enumOf(KEY_STATUSES),
  created_at: Type.String({ format: 'date-time' }),
  rotated_at: Type.String({ format: 'date-time', description: 'when the current version was created' }),
  expires_at: Type.String({ format: 'date-time', description: 'when the current version is due for rotation' }),
  rotation_period_days: Type.Integer(),
  destroy_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  origin: Type.Union([Type.Literal('generated'), Type.Literal('imported')], { description: 'imported: version 1 came from outside (later versions are generated here)' }),
  exportable: Type.Boolean(),
  rotation: Type.Optional(
    Type.Object(
      {
        state: Type.Union([Type.Literal('idle'), Type.Literal('awaiting_approval'), Type.Literal('overlap')]),
        approval_id: Type.Union([Type.String(), Type.Null()], { description: 'the pending approval request, if any' }),
        overlap_until: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'when the previous version becomes decrypt-only' }),
        policy: Type.Object({ approval: Type.Boolean(), overlap_days: Type.Integer() }),
      },
      { description: 'the rotation lifecycle (GET /v1/keys/{id} only)' },
    ),
  ),
  rewrap: Type.Optional(
    Type.Object(
      {
        to_version: Type.Integer({ description: 'the KEK version everything is being moved to' }),
        pending: Type.Integer({ description: 'key versions still wrapped under an older version' }),
        total: Type.Integer({ description: 'key versions wrapped under this KEK' }),
      },
      { description: 'system KEKs: progress of the background rewrap after a rotation' },
    ),
  ),
  versions: Type.Optional(
    Type.Array(
      Type.Object({
        version: Type.Integer(),
        status: enumOf(VERSION_STATUSES),
        created_at: Type.String({ format: 'date-time' }),
        deactivate_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'end of the overlap after a rotation' }),
        destroy_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
        encryptions_reserved: Type.Integer({ description: 'nonce invocations reserved for this version (upper bound of encryptions)' }),
        protects: Type.Object(
          {
            wrapped_keys: Type.Integer({ description: 'key versions wrapped under this version (KEKs)' }),
            ciphertexts: Type.Integer({ description: 'ciphertexts made under this version minus those rewrapped away since' }),
          },
          { description: 'what this version may still protect: the retirement gate' },
        ),
      }),
    ),
  ),
});
export type KeyMetadata = Static<typeof KeyMetadata>;

export const ListKeysQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
    cursor: Type.Optional(Type.String({ maxLength: 64 })),
    key_type: Type.Optional(enumOf(KEY_TYPES)),
    classification: Type.Optional(enumOf(CLASSIFICATIONS)),
    status: Type.Optional(enumOf(KEY_STATUSES)),
    name: Type.Optional(Type.String({ maxLength: 128 })),
  },
  { additionalProperties: false },
);
export type ListKeysQuery = Static<typeof ListKeysQuery>;

export const KeyList = Type.Object({ keys: Type.Array(KeyMetadata), next_cursor: Type.Union([Type.String(), Type.Null()]) });
export type KeyList = Static<typeof KeyList>;

export const EncryptRequest = Type.Object({ plaintext: Base64, context: Type.Optional(Context) }, { additionalProperties: false });
export type EncryptRequest = Static<typeof EncryptRequest>;

export const EncryptedData = Type.Object(
  {
    ciphertext: Base64,
    iv: Base64,
    tag: Base64,
    key_id: KeyId,
    key_version: Type.Integer({ minimum: 1 }),
    algorithm: Type.String(),
  },
  { additionalProperties: false },
);
export type EncryptedData = Static<typeof EncryptedData>;

export const DecryptRequest = Type.Object(
  { ...EncryptedData.properties, context: Type.Optional(Context) },
  { additionalProperties: false },
);
export type DecryptRequest = Static<typeof DecryptRequest>;
export const PlaintextResponse = Type.Object({ plaintext: Base64 });
export type PlaintextResponse = Static<typeof PlaintextResponse>;

export const DataKeyRequest = Type.Object({ context: Type.Optional(Context), bytes: Type.Optional(Type.Integer({ minimum: 16, maximum: 64, default: 32 })) }, { additionalProperties: false });
export type DataKeyRequest = Static<typeof DataKeyRequest>;
export const DataKeyResponse = Type.Object({ plaintext: Base64, ciphertext: EncryptedData });
export type DataKeyResponse = Static<typeof DataKeyResponse>;

export const SignRequest = Type.Object({ message: Base64 }, { additionalProperties: false });
export type SignRequest = Static<typeof SignRequest>;
export const SignResponse = Type.Object({
  signature: Base64,
  key_id: KeyId,
  key_version: Type.Integer(),
  algorithm: Type.String({ description: 'ECDSA: DER signature over SHA-256 (P-256) or SHA-384 (P-384); ED25519: pure; RSA-4096: RSASSA-PSS with SHA-256, salt 32' }),
});
export type SignResponse = Static<typeof SignResponse>;
export const VerifyRequest = Type.Object({ message: Base64, signature: Base64, key_version: Type.Optional(Type.Integer({ minimum: 1 })) }, { additionalProperties: false });
export type VerifyRequest = Static<typeof VerifyRequest>;
export const VerifyResponse = Type.Object({ valid: Type.Boolean(), key_version: Type.Integer() });
export type VerifyResponse = Static<typeof VerifyResponse>;

export const HmacRequest = Type.Object({ data: Base64 }, { additionalProperties: false });
export type HmacRequest = Static<typeof HmacRequest>;
export const HmacResponse = Type.Object({ mac: Base64, key_id: KeyId, key_version: Type.Integer() });
export type HmacResponse = Static<typeof HmacResponse>;
export const HmacVerifyRequest = Type.Object({ data: Base64, mac: Base64, key_version: Type.Optional(Type.Integer({ minimum: 1 })) }, { additionalProperties: false });
export type HmacVerifyRequest = Static<typeof HmacVerifyRequest>;

export const PublicKeyResponse = Type.Object({ key_id: KeyId, key_version: Type.Integer(), algorithm: Type.String(), public_key_pem: Type.String() });
export type PublicKeyResponse = Static<typeof PublicKeyResponse>;

export const RewrapRequest = DecryptRequest;
export type RewrapRequest = Static<typeof RewrapRequest>;

export const MAX_BATCH = 1000;
const batchItemError = Type.Object({ code: Type.String(), status: Type.Integer(), detail: Type.String() });
export const BatchEncryptRequest = Type.Object({ items: Type.Array(EncryptRequest, { minItems: 1 }) }, { additionalProperties: false });
export type BatchEncryptRequest = Static<typeof BatchEncryptRequest>;
export const BatchEncryptResponse = Type.Object({
  results: Type.Array(Type.Union([Type.Object({ ok: Type.Literal(true), data: EncryptedData }), Type.Object({ ok: Type.Literal(false), error: batchItemError })])),
});
export type BatchEncryptResponse = Static<typeof BatchEncryptResponse>;
export const BatchDecryptRequest = Type.Object({ items: Type.Array(DecryptRequest, { minItems: 1 }) }, { additionalProperties: false });
export type BatchDecryptRequest = Static<typeof BatchDecryptRequest>;
export const BatchDecryptResponse = Type.Object({
  results: Type.Array(Type.Union([Type.Object({ ok: Type.Literal(true), plaintext: Base64 }), Type.Object({ ok: Type.Literal(false), error: batchItemError })])),
});
export type BatchDecryptResponse = Static<typeof BatchDecryptResponse>;

export const ScheduleDestructionRequest = Type.Object(
  {
    pending_days: Type.Integer({ minimum: 7, maximum: 30, description: 'waiting period, 7 to 30 days' }),
    version: Type.Optional(Type.Integer({ minimum: 1, description: 'destroy one version only; omit to destroy the whole key' })),
    force: Type.Optional(Type.Boolean({ description: 'destroy a version that may still protect data: files an approval request instead' })),
  },
  { additionalProperties: false },
);
export type ScheduleDestructionRequest = Static<typeof ScheduleDestructionRequest>;
export const CancelDestructionRequest = Type.Object({ version: Type.Optional(Type.Integer({ minimum: 1 })) }, { additionalProperties: false });
export type CancelDestructionRequest = Static<typeof CancelDestructionRequest>;

export const KeyIdParams = Type.Object({ key_id: Type.String({ maxLength: 64 }) });
