import { Type, type Static } from '@sinclair/typebox';

/** `engine:resource:action` with `*` as a whole-segment wildcard (`kms:*`, `*`). */
export const Permission = Type.String({ pattern: '^(\\*|[a-z][a-z0-9-]*(:(\\*|[a-z][a-z0-9-]*)){0,2})$', maxLength: 128 });

export const CreateApiKeyRequest = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 128 }),
    permissions: Type.Array(Permission, { minItems: 1, maxItems: 100, uniqueItems: true }),
    expires_in_days: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650 })),
  },
  { additionalProperties: false },
);
export type CreateApiKeyRequest = Static<typeof CreateApiKeyRequest>;

export const ApiKeyInfo = Type.Object({
  id: Type.String(),
  name: Type.String(),
  principal_id: Type.String(),
  permissions: Type.Array(Type.String()),
  created_at: Type.String({ format: 'date-time' }),
  expires_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  last_used_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  revoked_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});
export type ApiKeyInfo = Static<typeof ApiKeyInfo>;
export const CreatedApiKey = Type.Object({ ...ApiKeyInfo.properties, token: Type.String({ description: 'shown once; store it now' }) });
export type CreatedApiKey = Static<typeof CreatedApiKey>;
export const ApiKeyList = Type.Object({ api_keys: Type.Array(ApiKeyInfo) });
export type ApiKeyList = Static<typeof ApiKeyList>;
export const WhoAmI = Type.Object({
  principal_id: Type.String({ description: 'the API key\'s principal, or the SPIFFE id of a client certificate' }),
  api_key_id: Type.Union([Type.String(), Type.Null()], { description: 'null when the client authenticated with a certificate (mTLS)' }),
  permissions: Type.Array(Type.String()),
});
export type WhoAmI = Static<typeof WhoAmI>;
