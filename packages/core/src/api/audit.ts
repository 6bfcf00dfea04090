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
  authz: Type.Optional(
    Type.Object(
      {
        decision: Type.Union([Type.Literal('allow'), Type.Literal('deny'), Type.Literal('approval_required')]),
        reason: Type.String({ description: 'what decided, in one sentence' }),
        by: Type.Array(Type.String(), { description: 'the roles, bindings, rules and approvals that decided (role:developer, binding:bnd_…, rule:<id>)' }),
      },
      { description: "the request's authorization decision (requests through the pipeline)" },
    ),
  ),
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

const Hash = Type.String({ pattern: '^[A-Za-z0-9+/]{43}=$', description: 'SHA-256 hash, standard base64' });

export const AuditLogInfo = Type.Object({
  origin: Type.String({ description: 'the checkpoint origin line: the log\'s name' }),
  verifier_keys: Type.Array(Type.String(), { description: 'C2SP note verifier keys of the checkpoint key, one per version (pin these)' }),
  size: Type.Integer({ minimum: 0 }),
  root_hash: Hash,
});
export type AuditLogInfo = Static<typeof AuditLogInfo>;

export const AuditAnchorReceipt = Type.Object({
  anchor: Type.String(),
  kind: Type.String({ description: 'witness (a cosignature line) or rfc3161 (a time-stamp token, base64 DER)' }),
  receipt: Type.String(),
  created_at: Type.String({ format: 'date-time' }),
});
export type AuditAnchorReceipt = Static<typeof AuditAnchorReceipt>;

export const AuditCheckpoint = Type.Object({
  size: Type.Integer({ minimum: 1 }),
  root_hash: Hash,
  created_at: Type.String({ format: 'date-time' }),
  note: Type.String({ description: 'C2SP signed note: the checkpoint signed by the log, with the witnesses\' cosignature lines appended' }),
  anchors: Type.Array(AuditAnchorReceipt),
});
export type AuditCheckpoint = Static<typeof AuditCheckpoint>;

const Size = (min: number) => Type.Integer({ minimum: min, maximum: Number.MAX_SAFE_INTEGER });
export const InclusionProofQuery = Type.Object({ index: Size(0), tree_size: Size(1) }, { additionalProperties: false });
export const InclusionProof = Type.Object({
  leaf_index: Type.Integer({ minimum: 0 }),
  tree_size: Type.Integer({ minimum: 1 }),
  leaf_hash: Hash,
  hashes: Type.Array(Hash, { description: 'RFC 9162 §2.1.3 audit path, nearest sibling first' }),
});
export type InclusionProof = Static<typeof InclusionProof>;

export const ConsistencyProofQuery = Type.Object({ from: Size(1), to: Size(1) }, { additionalProperties: false });
export const ConsistencyProof = Type.Object({
  from: Type.Integer({ minimum: 1 }),
  to: Type.Integer({ minimum: 1 }),
  hashes: Type.Array(Hash, { description: 'RFC 9162 §2.1.4 consistency proof' }),
});
export type ConsistencyProof = Static<typeof ConsistencyProof>;

export const HoldFilter = Type.Object(
  {
    since: Type.Optional(Type.String({ format: 'date-time' })),
    until: Type.Optional(Type.String({ format: 'date-time' })),
    type: Type.Optional(Type.String({ maxLength: 128, pattern: '^[a-z0-9_.]+\\*?$' })),
    principal: Type.Optional(Type.String({ maxLength: 128 })),
    resource: Type.Optional(Type.String({ maxLength: 128 })),
  },
  { additionalProperties: false, description: 'which events the hold keeps; all given fields must match (everything when empty)' },
);
export const CreateHoldRequest = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 128 }), reason: Type.String({ minLength: 1, maxLength: 1024 }), filter: Type.Optional(HoldFilter) },
  { additionalProperties: false },
);
export type CreateHoldRequest = Static<typeof CreateHoldRequest>;
export const LegalHold = Type.Object({
  id: Type.String(),
  name: Type.String(),
  reason: Type.String(),
  filter: HoldFilter,
  created_at: Type.String({ format: 'date-time' }),
  created_by: Type.String(),
  released_at: Nullable(Type.String({ format: 'date-time' })),
  released_by: Nullable(Type.String()),
});
export type LegalHold = Static<typeof LegalHold>;

export const EraseSubjectRequest = Type.Object({ subject: Type.String({ minLength: 1, maxLength: 256, description: 'the data subject, e.g. user:alice' }) }, { additionalProperties: false });
export const EraseSubjectResponse = Type.Object({ subject_ref: Type.String(), erased_at: Type.String({ format: 'date-time' }), had_data: Type.Boolean() });

export const AuditHashRequest = Type.Object({ value: Type.String({ maxLength: 65536 }) }, { additionalProperties: false });
export const AuditHashResponse = Type.Object({ hash: Type.String({ description: 'hmac-sha256:<hex>, as sensitive values appear in events' }) });
