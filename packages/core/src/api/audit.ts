import { Type, type Static } from '@sinclair/typebox';
import { enumOf } from './kms.js';

export const OUTCOMES = ['success', 'failure', 'denied'] as const;
export type Outcome = (typeof OUTCOMES)[number];

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()]);

export const AuditActor = Type.Object({
  principal_id: Nullable(Type.String()),
  api_key_id: Type.Optional(Nullable(Type.String())),
  source_ip: Type.Optional(Nullable(Type.String())),
});
export type AuditActor = Static<typeof AuditActor>;

/** One entry of the audit ledger, exactly as stored (its RFC 8785 canonical JSON is the Merkle leaf). */
export const AuditEvent = Type.Object({
  index: Type.Integer({ minimum: 0 }),
  time: Type.String({ format: 'date-time' }),
  type: Type.String({ description: 'e.g. kms.encrypt, auth.failed, authz.denied' }),
  actor: AuditActor,
  outcome: enumOf(OUTCOMES),
  request_id: Type.Optional(Nullable(Type.String())),
  action: Type.Optional(Nullable(Type.String({ description: 'the permission exercised, e.g. kms:encrypt' }))),
  resource: Type.Optional(Nullable(Type.Object({ type: Type.String(), id: Type.Optional(Nullable(Type.String())) }))),
  error_code: Type.Optional(Nullable(Type.String())),
  details: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'non-secret details; secrets appear only as HMACs' })),
  personal: Type.Optional(
    Type.Object(
      {
        subject_ref: Type.String({ description: 'HMAC of the data subject (never the identifier itself)' }),
        ciphertext: Type.String({ description: "the event's personal fields, encrypted under the subject's key (base64); unreadable once the subject is erased" }),
      },
      { description: 'personal data, crypto-shreddable: erasing the subject destroys its key, the leaf (and every proof) stays valid' },
    ),
  ),
});
export type AuditEvent = Static<typeof AuditEvent>;

export const AuditQuery = Type.Object(
  {
    type: Type.Optional(Type.String({ maxLength: 128, pattern: '^[a-z0-9_.]+\\*?$', description: 'exact type, or a prefix ending in * (kms.*)' })),
    outcome: Type.Optional(enumOf(OUTCOMES)),
    principal: Type.Optional(Type.String({ maxLength: 128 })),
    action: Type.Optional(Type.String({ maxLength: 128 })),
    resource: Type.Optional(Type.String({ maxLength: 128, description: 'resource id, e.g. a key id' })),
    request_id: Type.Optional(Type.String({ maxLength: 128 })),
    since: Type.Optional(Type.String({ format: 'date-time' })),
    until: Type.Optional(Type.String({ format: 'date-time' })),
    order: Type.Optional(enumOf(['asc', 'desc'] as const, 'desc (newest first) by default')),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100 })),
    cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })),
  },
  { additionalProperties: false },
);
export type AuditQuery = Static<typeof AuditQuery>;

export const AuditEventPage = Type.Object({
  events: Type.Array(AuditEvent),
  /** Where to continue; set when more rows may match (also when the scan budget of one page ran out). */
  next_cursor: Nullable(Type.String()),
});
export type AuditEventPage = Static<typeof AuditEventPage>;
