import { Type, type Static } from '@sinclair/typebox';

/** A principal id as the server knows it: `usr_…`, `svc_…`, `owner`, a SPIFFE id (printable ASCII, no spaces). */
const principalId = (description: string) => Type.String({ minLength: 1, maxLength: 256, pattern: '^[\\x21-\\x7e]+$', description });

export const CreateSigningKeyRequest = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 128, description: 'what the key is for, e.g. the agent or host that signs with it' }),
    principal_id: Type.Optional(principalId('whose requests it signs (default: yours); another principal needs gateway:signing-keys:manage')),
  },
  { additionalProperties: false },
);
export type CreateSigningKeyRequest = Static<typeof CreateSigningKeyRequest>;

export const SigningKeyInfo = Type.Object({
  id: Type.String({ description: 'the key id a signature names (`key_id=` of `Palisade-Signature`)' }),
  principal_id: Type.String({ description: 'whose requests it signs: the gateway accepts its signatures only from this principal' }),
  name: Type.String(),
  created_at: Type.String({ format: 'date-time' }),
  created_by: Type.String(),
  revoked_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});
export type SigningKeyInfo = Static<typeof SigningKeyInfo>;

export const CreatedSigningKey = Type.Object({
  ...SigningKeyInfo.properties,
  secret: Type.String({ description: 'the HMAC-SHA256 secret, 32 bytes in base64url: shown once, stored only wrapped; store it now' }),
});
export type CreatedSigningKey = Static<typeof CreatedSigningKey>;

export const SigningKeyList = Type.Object({ signing_keys: Type.Array(SigningKeyInfo) });
export type SigningKeyList = Static<typeof SigningKeyList>;

export const ListSigningKeysQuery = Type.Object(
  { principal_id: Type.Optional(principalId('only this principal\'s keys (another principal\'s need gateway:signing-keys:manage)')) },
  { additionalProperties: false },
);
export type ListSigningKeysQuery = Static<typeof ListSigningKeysQuery>;
