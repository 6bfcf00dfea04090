import { Type, type Static } from '@sinclair/typebox';
import { enumOf } from './kms.js';

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);
const Permission = Type.String({ minLength: 1, maxLength: 128, pattern: '^(\\*|[a-z0-9-]+|\\*)(:(\\*|[a-z0-9-]+))*$', description: '`engine:resource:action`; `*` matches one segment, a trailing `*` everything below' });
const RoleName = Type.String({ minLength: 2, maxLength: 64, pattern: '^[a-z][a-z0-9-]*$' });
/** `*` (everywhere), `org:<id>`, or `org:<id>/project:<name>`. */
export const Scope = Type.String({ maxLength: 200, pattern: '^(\\*|org:[A-Za-z0-9_-]+(/project:[A-Za-z0-9._-]+)?)$', description: '`*`, `org:<org id>` or `org:<org id>/project:<project>`' });
const Subject = Type.String({ maxLength: 64, pattern: '^(usr|grp|svc)_[A-Za-z0-9]+$', description: 'a user, group or service identity id' });

export const AuthzRole = Type.Object({
  name: Type.String(),
  description: Nullable(Type.String()),
  permissions: Type.Array(Type.String(), { description: 'every permission the role carries (for a built-in tier, with those it inherits)' }),
  builtin: Type.Boolean(),
  tier: Type.Union([Type.Integer({ minimum: 1, maximum: 6 }), Type.Null()], { description: 'built-in tiers: 1 (viewer) to 6 (owner); each a strict superset of the one below' }),
});
export type AuthzRole = Static<typeof AuthzRole>;
export const AuthzRoleList = Type.Object({ roles: Type.Array(AuthzRole) });
export type AuthzRoleList = Static<typeof AuthzRoleList>;

export const CreateRoleRequest = Type.Object(
  { name: RoleName, description: Type.Optional(Type.String({ maxLength: 500 })), permissions: Type.Array(Permission, { minItems: 1, maxItems: 200, uniqueItems: true }) },
  { additionalProperties: false },
);
export type CreateRoleRequest = Static<typeof CreateRoleRequest>;
export const UpdateRoleRequest = Type.Object(
  { description: Type.Optional(Type.String({ maxLength: 500 })), permissions: Type.Optional(Type.Array(Permission, { minItems: 1, maxItems: 200, uniqueItems: true })) },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateRoleRequest = Static<typeof UpdateRoleRequest>;

export const AuthzBinding = Type.Object({
  id: Type.String(),
  subject: Type.String({ description: 'user, group or service identity id' }),
  role: Type.String(),
  scope: Type.String({ description: '`*`, `org:<id>` or `org:<id>/project:<name>`' }),
  expires_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'a time-boxed (just-in-time) grant ends by itself at this instant' }),
  reason: Nullable(Type.String()),
  created_by: Type.String(),
  created_at: Type.String({ format: 'date-time' }),
  approval_id: Nullable(Type.String({ description: 'the approval that granted it, for a requested grant' })),
});
export type AuthzBinding = Static<typeof AuthzBinding>;
export const AuthzBindingList = Type.Object({ bindings: Type.Array(AuthzBinding) });
export type AuthzBindingList = Static<typeof AuthzBindingList>;

export const ListBindingsQuery = Type.Object(
  {
    subject: Type.Optional(Type.String({ maxLength: 64, description: 'a user, group or service identity id' })),
    role: Type.Optional(Type.String({ maxLength: 64 })),
    active: Type.Optional(Type.Boolean({ description: 'only bindings that have not expired' })),
  },
  { additionalProperties: false },
);
export type ListBindingsQuery = Static<typeof ListBindingsQuery>;

export const CreateBindingRequest = Type.Object(
  {
    subject: Subject,
    role: RoleName,
    scope: Type.Optional(Scope),
    expires_in_minutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 525_600, description: 'a just-in-time grant: the binding ends by itself after this long' })),
    reason: Type.Optional(Type.String({ maxLength: 500 })),
  },
  { additionalProperties: false },
);
export type CreateBindingRequest = Static<typeof CreateBindingRequest>;

export const GrantRequest = Type.Object(
  {
    role: RoleName,
    scope: Type.Optional(Scope),
    minutes: Type.Integer({ minimum: 1, maximum: 1440, description: 'how long the grant lasts once approved (at most a day)' }),
    reason: Type.String({ minLength: 1, maxLength: 500, description: 'why (shown to the approvers, kept in the audit log)' }),
    break_glass: Type.Optional(Type.Boolean({ description: 'emergency access: the approval request is marked so and expires in an hour' })),
  },
  { additionalProperties: false },
);
export type GrantRequest = Static<typeof GrantRequest>;

export const PolicySource = Type.Object(
  {
    source: Type.String({ minLength: 1, maxLength: 2_000_000, description: 'the policy document, YAML or JSON' }),
    comment: Type.Optional(Type.String({ maxLength: 500 })),
  },
  { additionalProperties: false },
);
export type PolicySource = Static<typeof PolicySource>;

export const PolicyVersion = Type.Object({
  version: Type.Integer({ minimum: 0, description: '0: no policy stored yet (roles and bindings only)' }),
  sha256: Type.String(),
  rules: Type.Integer({ minimum: 0 }),
  created_at: Nullable(Type.String({ format: 'date-time' })),
  created_by: Nullable(Type.String()),
  comment: Nullable(Type.String()),
  source: Type.Optional(Type.String()),
});
export type PolicyVersion = Static<typeof PolicyVersion>;
export const PolicyVersionList = Type.Object({ versions: Type.Array(PolicyVersion) });
export type PolicyVersionList = Static<typeof PolicyVersionList>;

export const PolicyProblem = Type.Object({ line: Type.Integer(), column: Type.Integer(), path: Type.String(), message: Type.String() });
export type PolicyProblem = Static<typeof PolicyProblem>;
export const PolicyValidation = Type.Object({ valid: Type.Boolean(), rules: Type.Integer(), errors: Type.Array(PolicyProblem) });
export type PolicyValidation = Static<typeof PolicyValidation>;

export const AUTHN_METHODS = ['api_key', 'session', 'access_token', 'client_certificate'] as const;

export const ExplainRequest = Type.Object(
  {
    principal_id: Type.Optional(Type.String({ maxLength: 64, description: 'who (defaults to the caller); explaining someone else needs authz:decisions:explain-any' })),
    action: Permission,
    resource: Type.Optional(
      Type.Object(
        {
          type: Type.String({ maxLength: 64 }),
          id: Type.Optional(Type.String({ maxLength: 256 })),
          name: Type.Optional(Type.String({ maxLength: 256 })),
          classification: Type.Optional(enumOf(['public', 'internal', 'confidential', 'restricted'] as const)),
          org: Type.Optional(Type.String({ maxLength: 64 })),
          project: Type.Optional(Type.String({ maxLength: 128 })),
        },
        { additionalProperties: false },
      ),
    ),
    context: Type.Optional(
      Type.Object(
        {
          time: Type.Optional(Type.String({ format: 'date-time' })),
          source_ip: Type.Optional(Type.String({ maxLength: 64 })),
          authentication: Type.Optional(enumOf(AUTHN_METHODS)),
          mfa_age_seconds: Type.Optional(Type.Integer({ minimum: 0 })),
          mfa_method: Type.Optional(Type.String({ maxLength: 32 })),
          certificate: Type.Optional(Type.String({ maxLength: 512, description: 'SPIFFE id of the client certificate' })),
          risk: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
          approval_id: Type.Optional(Type.String({ maxLength: 64 })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type ExplainRequest = Static<typeof ExplainRequest>;

export const DECISIONS = ['allow', 'deny', 'approval_required'] as const;
export type DecisionEffect = (typeof DECISIONS)[number];

export const DecisionStep = Type.Object({
  source: Type.String({ description: 'role:<name>, binding:<id>, rule:<id>, api_key:<id> or token:<client>' }),
  effect: enumOf(['allow', 'deny', 'require_approval', 'none'] as const),
  matched: Type.Boolean(),
  why: Type.String(),
});
export type DecisionStep = Static<typeof DecisionStep>;

export const Explanation = Type.Object({
  decision: enumOf(DECISIONS),
  reason: Type.String({ description: 'one sentence: what decided' }),
  principal_id: Type.String(),
  action: Type.String(),
  policy_version: Type.Integer(),
  steps: Type.Array(DecisionStep, { description: 'every role, binding and rule that applied, matched or was ruled out by its conditions' }),
});
export type Explanation = Static<typeof Explanation>;
