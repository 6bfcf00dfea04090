/**
 * The audit event catalogue: every event type the ledger accepts, with the JSON Schema of its `details`, which of
 * those fields are personal data (crypto-shredded per data subject) and which are sensitive (written only as
 * `hmac-sha256:<hex>`, as Vault's audit devices do), and the outcomes it may have. `docs/audit-events.md` is
 * generated from this table (`npm run docs:audit-events`) and a test keeps them in sync; another test scans the
 * server's sources so that every type it emits is listed here.
 *
 * Type names are stable: SIEM rules match on them. Entries marked `planned` belong to engines not built yet; their
 * schemas are the contract those engines implement.
 */
import { Type, type TObject, type TProperties, type TSchema } from '@sinclair/typebox';
import type { Outcome } from '../api/audit.js';

export const AUDIT_CATEGORIES = [
  'authentication',
  'identity',
  'mfa',
  'session',
  'token',
  'authz',
  'approval',
  'kms',
  'seal',
  'pki',
  'acme',
  'config',
  'backup',
  'gateway',
  'detection',
  'incident',
  'response',
  'compliance',
  'audit',
] as const;
export type AuditCategory = (typeof AUDIT_CATEGORIES)[number];

export interface AuditEventSpec {
  /** Dotted, lower-case: `<engine>.<object>.<verb>`. */
  readonly type: string;
  readonly category: AuditCategory;
  /** One line: what happened. */
  readonly description: string;
  /** The outcomes this type is recorded with. */
  readonly outcomes: readonly Outcome[];
  /** `resource.type` of the event when it names one (null: it never does). */
  readonly resource: string | null;
  /** Schema of `details` for a `success` outcome (additionalProperties false, every field described). */
  readonly details: TObject;
  /** `details` fields that are personal data: they belong in `personal_fields`, encrypted under the subject's key. */
  readonly personal: readonly string[];
  /** `details` fields that are secrets: only ever their HMAC (`hmac-sha256:<hex>`, the pattern enforces it). */
  readonly sensitive: readonly string[];
  /** A valid `details` for the first outcome listed. */
  readonly example: Readonly<Record<string, unknown>>;
  /** For an engine not built yet: the schema is the contract it will implement. */
  readonly planned: boolean;
}

// ------------------------------------------------------------------------------------------------- field helpers
// Every field carries a description; the compiled checker needs no format registry, so formats are patterns.

/** RFC 3339 date-time, as a pattern (the compiled checker has no format registry). */
export const AUDIT_DATE_TIME_PATTERN = '^\\d{4}-\\d{2}-\\d{2}[Tt ]\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?([Zz]|[+-]\\d{2}(:?\\d{2})?)$';
/** How sensitive values appear in events (the barrier's `auditHmac`, `POST /v1/audit/hash` to search for one). */
export const AUDIT_HMAC_PATTERN = '^hmac-sha256:[0-9a-f]{64}$';

const str = (description: string, opts: Record<string, unknown> = {}) => Type.String({ description, ...opts });
const int = (description: string, opts: Record<string, unknown> = {}) => Type.Integer({ minimum: 0, description, ...opts });
const bool = (description: string) => Type.Boolean({ description });
const time = (description: string) => Type.String({ pattern: AUDIT_DATE_TIME_PATTERN, description: `${description} (RFC 3339 date-time)` });
const hex256 = (description: string) => Type.String({ pattern: '^[0-9a-f]{64}$', description: `${description} (SHA-256, hex)` });
const hmac = (description: string) => Type.String({ pattern: AUDIT_HMAC_PATTERN, description: `${description}: hmac-sha256:<hex>, never the value` });
const strs = (description: string) => Type.Array(Type.String(), { description });
const oneOf = <T extends string>(values: readonly T[], description: string) => Type.Union(values.map((v) => Type.Literal(v)), { description });
const orNull = (t: TSchema, description: string) => Type.Union([t, Type.Null()], { description });
const opt = Type.Optional;

const target = (description: string) =>
  Type.Object({ type: str('resource type, e.g. kms_key'), id: str('resource id') }, { additionalProperties: false, description });

const holdFilter = Type.Object(
  {
    since: opt(time('events at or after')),
    until: opt(time('events before')),
    type: opt(str('event type, or a prefix ending in *')),
    principal: opt(str('principal id of the actor')),
    resource: opt(str('resource id')),
  },
  { additionalProperties: false, description: 'which events the hold keeps; all given fields must match (everything when empty)' },
);

const KEY_TYPES = ['DEK', 'KEK', 'signing', 'TLS', 'hmac'] as const;
const ALGORITHMS = ['AES-256-GCM', 'CHACHA20-POLY1305', 'ECDSA-P256', 'ECDSA-P384', 'ED25519', 'RSA-4096', 'HMAC-SHA256'] as const;
const USAGES = ['encrypt', 'decrypt', 'sign', 'verify'] as const;
const CLASSIFICATIONS = ['internal', 'confidential', 'restricted'] as const;

const keyVersion = () => int('the key version used', { minimum: 1 });
const approvalId = () => str('the approval request filed instead of acting now');
const awaiting = () => oneOf(['awaiting_approval'] as const, 'set when the action waits for a second principal');
const newKey = {
  key_type: opt(oneOf(KEY_TYPES, 'the key type')),
  algorithm: opt(oneOf(ALGORITHMS, 'the algorithm')),
  classification: opt(oneOf(CLASSIFICATIONS, 'the data classification it protects')),
  usage: opt(Type.Array(oneOf(USAGES, 'a usage'), { description: 'what the key may be used for' })),
  origin: opt(oneOf(['generated', 'imported'] as const, 'imported: version 1 came from outside')),
  exportable: opt(bool('may be exported wrapped for another party')),
};
const newKeyExample = { key_type: 'DEK', algorithm: 'AES-256-GCM', classification: 'confidential', usage: ['encrypt', 'decrypt'], origin: 'generated', exportable: false };
const gatewayRequest = {
  route: str('the gateway route\'s name (empty when no route matched)'),
  method: str('HTTP method'),
};

// ------------------------------------------------------------------------------------------------------ entries

interface Def {
  category: AuditCategory;
  description: string;
  outcomes: readonly Outcome[];
  resource?: string | null;
  fields?: TProperties;
  personal?: readonly string[];
  sensitive?: readonly string[];
  example?: Record<string, unknown>;
  planned?: true;
}

const ROUTE: readonly Outcome[] = ['success', 'failure'];
const DONE: readonly Outcome[] = ['success'];
const ALL: readonly Outcome[] = ['success', 'failure', 'denied'];

const DEFS: Record<string, Def> = {
  // ---------------------------------------------------------------- authentication (request pipeline, auth engine)
  'auth.failed': {
    category: 'authentication',
    description: 'A request to an authenticated route presented no valid credential (the pipeline; error_code says why, action names the permission it wanted; for a client certificate, details say why it was refused).',
    outcomes: ['denied'],
    resource: null,
    fields: {
      method: opt(oneOf(['client_certificate'] as const, 'set when the credential was a TLS client certificate (mTLS)')),
      reason: opt(
        oneOf(['expired', 'not_yet_valid', 'untrusted_issuer', 'revoked', 'revocation_unavailable', 'no_client_auth_eku', 'no_identity'] as const, 'why the client certificate was refused'),
      ),
    },
    example: { method: 'client_certificate', reason: 'revoked' },
  },
  'auth.bootstrap': {
    category: 'authentication',
    description: 'First start: the owner API key (permission *) was created.',
    outcomes: DONE,
    resource: 'api_key',
    fields: { principal_id: str('the owner principal'), source: oneOf(['PALISADE_BOOTSTRAP_TOKEN', 'generated'] as const, 'where the token came from') },
    example: { principal_id: 'owner', source: 'generated' },
  },
  'auth.api_key.create': {
    category: 'authentication',
    description: 'An API key was created (its token is shown once and never recorded).',
    outcomes: ROUTE,
    resource: 'api_key',
    fields: { name: str('the key\'s label'), permissions: strs('the permissions it carries'), expires_at: orNull(time('expiry'), 'expiry, null for none'), principal_id: str('the service principal it authenticates') },
    example: { name: 'ci deploy', permissions: ['kms:encrypt'], expires_at: '2026-01-01T00:00:00.000Z', principal_id: 'svc_2f6c1b' },
  },
  'auth.api_key.revoke': { category: 'authentication', description: 'An API key was revoked.', outcomes: ROUTE, resource: 'api_key' },
  'auth.login.password': {
    category: 'authentication',
    description: 'A sign-in with a password: success (a session, or the MFA step next), or denied with the reason (the client is told only that sign-in failed).',
    outcomes: ALL,
    resource: 'user',
    fields: {
      username: opt(str('the name the user signed in with')),
      mfa_required: opt(bool('a second factor must follow before a session is issued')),
      reason: opt(oneOf(['bad_credentials', 'unknown_user', 'no_password', 'locked', 'disabled'] as const, 'why it failed')),
    },
    personal: ['username'],
    example: { username: 'alice', mfa_required: true },
  },
  'auth.login.passkey': {
    category: 'authentication',
    description: 'A passwordless sign-in with a passkey (a WebAuthn credential that verified the user).',
    outcomes: DONE,
    resource: 'user',
    fields: { factor_id: str('the passkey used') },
    example: { factor_id: 'mfa_01' },
  },
  'auth.login.oidc': {
    category: 'authentication',
    description: 'A user signed in through an OpenID Connect provider (or the attempt was refused, with the check that failed).',
    outcomes: ALL,
    resource: 'user',
    fields: { provider: str('the configured provider name'), issuer: opt(str('the provider\'s issuer URL')), email: opt(str('the email claim')), roles: opt(strs('roles from the group mapping')), created: opt(bool('the account was provisioned just in time')), reason: opt(str('why it failed, e.g. nonce_mismatch')) },
    personal: ['email'],
    example: { provider: 'okta', issuer: 'https://example.okta.com', email: 'alice@example.com', roles: ['developer'], created: false },
  },
  'auth.login.saml': {
    category: 'authentication',
    description: 'A user signed in through a SAML 2.0 identity provider (or the response was refused, with the check that failed).',
    outcomes: ALL,
    resource: 'user',
    fields: { provider: str('the configured provider name'), email: opt(str('the email attribute')), roles: opt(strs('roles from the group mapping')), created: opt(bool('the account was provisioned just in time')), idp_initiated: opt(bool('unsolicited response')), reason: opt(str('why it failed, e.g. invalid_signature')) },
    personal: ['email'],
    example: { provider: 'azure', email: 'alice@example.com', roles: ['operator'], created: true, idp_initiated: false },
  },
  'auth.logout': {
    category: 'authentication',
    description: 'A user signed out; the session ended.',
    outcomes: ROUTE,
    resource: 'session',
    fields: { session_ref: hmac('the session id') },
    sensitive: ['session_ref'],
    example: { session_ref: `hmac-sha256:${'ab'.repeat(32)}` },
  },
  'auth.lockout': {
    category: 'authentication',
    description: 'Repeated failures started a back-off on one counter (a factor, per account+source, source or account); other factors are not affected.',
    outcomes: DONE,
    resource: 'user',
    fields: {
      factor: oneOf(['password', 'totp', 'recovery_code', 'webauthn'] as const, 'the factor whose counter tripped'),
      rule: str('the counter: password_per_account_source, password_per_source, password_per_account, second_factor_per_account'),
      failed_attempts: int('failures that triggered it'),
      locked_until: time('when attempts are possible again'),
    },
    example: { factor: 'password', rule: 'password_per_account_source', failed_attempts: 5, locked_until: '2025-06-01T12:15:00.000Z' },
  },
  'auth.password.change': {
    category: 'authentication',
    description: 'A password was changed (by its user) or set (by an administrator); the user\'s other sessions and tokens end.',
    outcomes: ROUTE,
    resource: 'user',
    fields: { reset: bool('an administrator set it') },
    example: { reset: false },
  },

  // ---------------------------------------------------------------- identity
  'identity.org.create': {
    category: 'identity',
    description: 'An organisation was created.',
    outcomes: ROUTE,
    resource: 'organization',
    fields: { name: str('its name') },
    example: { name: 'research' },
  },
  'identity.user.create': {
    category: 'identity',
    description: 'A user account was created (by an administrator, SCIM provisioning, or the first federated sign-in).',
    outcomes: ROUTE,
    resource: 'user',
    fields: {
      username: opt(str('the sign-in name')),
      email: opt(str('email address')),
      display_name: opt(str('display name')),
      roles: strs('roles granted'),
      source: opt(str('local, scim, oidc:<provider> or saml:<provider>')),
    },
    personal: ['username', 'email', 'display_name'],
    example: { username: 'alice', email: 'alice@example.com', display_name: 'Alice Example', roles: ['operator'], source: 'local' },
  },
  'identity.user.update': {
    category: 'identity',
    description: 'A user account was changed (deactivating it ends its sessions, tokens and API keys).',
    outcomes: ROUTE,
    resource: 'user',
    fields: { changed: strs('names of the changed attributes (never their values)'), source: opt(str('who changed it: api, scim, oidc:<provider>, saml:<provider>')) },
    example: { changed: ['roles'] },
  },
  'identity.user.delete': {
    category: 'identity',
    description: 'A user account was deleted, with its factors, sessions, tokens and API keys.',
    outcomes: ROUTE,
    resource: 'user',
    fields: { username: opt(str('the sign-in name it had')), erase_subject: bool('its personal data in the audit log was crypto-shredded too') },
    personal: ['username'],
    example: { username: 'alice', erase_subject: false },
  },
  'identity.group.create': {
    category: 'identity',
    description: 'A group was created.',
    outcomes: ROUTE,
    resource: 'group',
    fields: { display_name: str('the group name'), roles: strs('roles its members get'), members: int('number of members') },
    example: { display_name: 'platform-admins', roles: ['operator'], members: 3 },
  },
  'identity.group.update': {
    category: 'identity',
    description: 'A group was changed (name, roles or members).',
    outcomes: ROUTE,
    resource: 'group',
    fields: { changed: strs('names of the changed attributes') },
    example: { changed: ['members'] },
  },
  'identity.group.delete': {
    category: 'identity',
    description: 'A group was deleted.',
    outcomes: ROUTE,
    resource: 'group',
    fields: { display_name: str('the group name it had') },
    example: { display_name: 'platform-admins' },
  },
  'identity.service.create': {
    category: 'identity',
    description: 'A service identity (an agent or service) was created.',
    outcomes: ROUTE,
    resource: 'service',
    fields: { name: str('its name'), roles: strs('roles granted'), spiffe_id: orNull(str('the SPIFFE id its client certificates carry'), 'null when it has none') },
    example: { name: 'agent-runner', roles: ['agent'], spiffe_id: 'spiffe://palisade.internal/ns/default/sa/agent-runner' },
  },
  'identity.service.update': {
    category: 'identity',
    description: 'A service identity was changed (deactivating it ends its tokens and API keys).',
    outcomes: ROUTE,
    resource: 'service',
    fields: { changed: strs('names of the changed attributes') },
    example: { changed: ['active'] },
  },
  'identity.service.delete': {
    category: 'identity',
    description: 'A service identity was deleted with its tokens and API keys.',
    outcomes: ROUTE,
    resource: 'service',
    fields: { name: str('its name') },
    example: { name: 'agent-runner' },
  },

  // ---------------------------------------------------------------- MFA
  'mfa.enroll': {
    category: 'mfa',
    description: 'A second factor was enrolled (a TOTP enrolment counts once confirmed with a code), or recovery codes were (re)generated.',
    outcomes: ROUTE,
    resource: 'mfa_factor',
    fields: {
      method: oneOf(['totp', 'webauthn', 'recovery_codes'] as const, 'the factor kind'),
      factor_name: opt(str('the label the user gave it')),
      count: opt(int('recovery codes generated')),
      pending: opt(bool('a TOTP secret was issued and waits for its first code to confirm it')),
    },
    example: { method: 'webauthn', factor_name: 'security key' },
  },
  'mfa.verify': {
    category: 'mfa',
    description: 'A second-factor challenge was answered (sign-in or step-up).',
    outcomes: ALL,
    resource: 'mfa_factor',
    fields: {
      method: oneOf(['totp', 'webauthn', 'recovery_codes'] as const, 'the factor kind'),
      step_up: opt(bool('a fresh factor inside a session, for a sensitive operation')),
      reason: opt(oneOf(['invalid_code', 'replayed', 'expired', 'rate_limited'] as const, 'why it failed')),
    },
    example: { method: 'totp' },
  },
  'mfa.remove': {
    category: 'mfa',
    description: 'A second factor was removed.',
    outcomes: ROUTE,
    resource: 'mfa_factor',
    fields: { method: oneOf(['totp', 'webauthn', 'recovery_codes'] as const, 'the factor kind'), by_admin: bool('an administrator removed it, not its user') },
    example: { method: 'totp', by_admin: false },
  },
  'mfa.recovery_code.use': {
    category: 'mfa',
    description: 'A recovery code was spent in place of a second factor.',
    outcomes: ROUTE,
    resource: 'mfa_factor',
    fields: { code_ref: hmac('the code'), remaining: int('codes left') },
    sensitive: ['code_ref'],
    example: { code_ref: `hmac-sha256:${'cd'.repeat(32)}`, remaining: 7 },
  },

  // ---------------------------------------------------------------- sessions
  'session.create': {
    category: 'session',
    description: 'A session was issued after a complete sign-in.',
    outcomes: DONE,
    resource: 'session',
    fields: {
      session_ref: hmac('the session id'),
      expires_at: time('absolute expiry'),
      mfa: bool('a second factor was verified'),
      method: opt(str('how the user signed in: password, passkey, oidc:<provider>, saml:<provider>')),
      user_agent: opt(str('the client\'s User-Agent')),
    },
    personal: ['user_agent'],
    sensitive: ['session_ref'],
    example: { session_ref: `hmac-sha256:${'ef'.repeat(32)}`, expires_at: '2025-06-01T20:00:00.000Z', mfa: true, method: 'password', user_agent: 'Mozilla/5.0' },
  },
  'session.revoke': {
    category: 'session',
    description: 'Sessions were ended before their expiry (an administrator, a password change, deprovisioning).',
    outcomes: ROUTE,
    resource: 'user',
    fields: { sessions: int('how many were ended'), reason: oneOf(['admin', 'password_change', 'compromised', 'deprovisioned'] as const, 'why') },
    example: { sessions: 2, reason: 'admin' },
  },

  // ---------------------------------------------------------------- tokens
  'token.issue': {
    category: 'token',
    description: 'Access (and refresh) tokens were issued: a client-credentials grant, a refresh, or a signed-in user asking for tokens. Denied grants record the OAuth error.',
    outcomes: ALL,
    resource: 'token',
    fields: {
      grant_type: oneOf(['client_credentials', 'refresh_token', 'session'] as const, 'how they were obtained'),
      client_id: str('the client they were issued to'),
      scopes: opt(strs('granted scopes')),
      expires_at: opt(time('access token expiry (exp)')),
      certificate_bound: opt(bool('bound to the client certificate (RFC 8705 cnf x5t#S256)')),
      refresh_family: opt(str('the refresh-token family')),
      error: opt(str('the OAuth error of a refused grant')),
      reason: opt(str('why a refresh token was refused: unknown, expired, revoked, reused, client_mismatch, inactive')),
    },
    example: { grant_type: 'client_credentials', client_id: 'svc_01', scopes: ['kms:encrypt'], expires_at: '2025-06-01T12:05:00.000Z', certificate_bound: true },
  },
  'token.revoke': {
    category: 'token',
    description: 'A token was revoked (RFC 7009): an access token until it expires, or a refresh token with its family. A reused refresh token revokes its family too.',
    outcomes: ROUTE,
    resource: 'token',
    fields: { token_type: oneOf(['access', 'refresh'] as const, 'the token kind'), reason: opt(oneOf(['requested', 'refresh_token_reuse'] as const, 'why')) },
    example: { token_type: 'refresh', reason: 'requested' },
  },
  'token.exchange': {
    category: 'token',
    description: 'A token was exchanged for a narrower one on behalf of an agent (RFC 8693).',
    outcomes: ALL,
    resource: 'token',
    fields: {
      subject_token_ref: hmac('the subject token presented'),
      actor_token_ref: opt(hmac('the actor token presented')),
      issued_token_ref: hmac('the token issued'),
      audience: str('the audience of the issued token'),
      scopes: strs('scopes of the issued token'),
    },
    sensitive: ['subject_token_ref', 'actor_token_ref', 'issued_token_ref'],
    example: { subject_token_ref: `hmac-sha256:${'02'.repeat(32)}`, issued_token_ref: `hmac-sha256:${'03'.repeat(32)}`, audience: 'tool:search', scopes: ['read'] },
    planned: true,
  },

  // ---------------------------------------------------------------- authorization
  'authz.denied': {
    category: 'authz',
    description: 'The authorization engine refused a request (the pipeline): `authz` carries the decision, its reason and the rules that made it; error_code is PAL_FORBIDDEN, or PAL_APPROVAL_REQUIRED when an approval request was filed instead.',
    outcomes: ['denied'],
    resource: null,
  },
  'authz.explain': {
    category: 'authz',
    description: 'Someone asked why a principal may or may not do something (POST /v1/authz/explain).',
    outcomes: ROUTE,
    resource: null,
    fields: { principal_id: str('whose decision was explained'), action: str('the permission asked about'), decision: oneOf(['allow', 'deny', 'approval_required'] as const, 'the answer') },
    example: { principal_id: 'usr_01', action: 'kms:decrypt', decision: 'deny' },
  },
  'authz.policy.validate': {
    category: 'authz',
    description: 'A policy document was checked without being stored.',
    outcomes: ROUTE,
    resource: null,
    fields: { sha256: hex256('the policy text'), valid: bool('whether it validated'), rules: int('how many rules it has (0 when invalid)') },
    example: { sha256: 'a'.repeat(64), valid: false, rules: 0 },
  },
  'authz.role.create': {
    category: 'authz',
    description: 'A custom role was created.',
    outcomes: ROUTE,
    resource: 'authz_role',
    fields: { permissions: strs('the permissions it carries') },
    example: { permissions: ['kms:encrypt', 'kms:decrypt'] },
  },
  'authz.role.update': {
    category: 'authz',
    description: 'A custom role was changed; every binding of it changes with it.',
    outcomes: ROUTE,
    resource: 'authz_role',
    fields: { permissions: strs('the permissions it carries now'), previous_permissions: strs('the permissions it carried before') },
    example: { permissions: ['kms:encrypt'], previous_permissions: ['kms:encrypt', 'kms:decrypt'] },
  },
  'authz.role.delete': {
    category: 'authz',
    description: 'A custom role that was not bound was deleted.',
    outcomes: ROUTE,
    resource: 'authz_role',
    fields: { permissions: strs('the permissions it carried') },
    example: { permissions: ['kms:encrypt'] },
  },
  'authz.binding.create': {
    category: 'authz',
    description: 'A role was bound to a user, group or service identity in a scope; with expires_at, a time-boxed grant (also when an approved grant request created it).',
    outcomes: ROUTE,
    resource: 'authz_binding',
    fields: {
      subject: str('the user, group or service identity'),
      role: str('the role'),
      scope: str('*, org:<id> or org:<id>/project:<name>'),
      expires_at: orNull(time('when the grant ends by itself'), 'null: until removed'),
      reason: orNull(str('why'), 'null when none was given'),
      approval_id: orNull(str('the approval that granted it'), 'null when an administrator bound it directly'),
    },
    example: { subject: 'usr_01', role: 'operator', scope: 'org:default', expires_at: '2026-01-01T12:00:00.000Z', reason: 'incident INC-42', approval_id: null },
  },
  'authz.binding.delete': {
    category: 'authz',
    description: 'A binding was removed, or a grant ended early.',
    outcomes: ROUTE,
    resource: 'authz_binding',
    fields: { subject: str('the user, group or service identity'), role: str('the role'), scope: str('its scope') },
    example: { subject: 'usr_01', role: 'operator', scope: '*' },
  },
  'authz.policy.update': {
    category: 'authz',
    description: 'A new version of the policy document was stored and is now in force.',
    outcomes: ROUTE,
    resource: 'authz_policy',
    fields: {
      version: int('the new version', { minimum: 1 }),
      sha256: hex256('the new policy text'),
      rules: int('how many rules it has'),
      previous_version: int('the version it replaced (0: none)'),
      previous_sha256: hex256('the previous policy text (of the empty string for none)'),
      comment: orNull(str('what changed, in the author\'s words'), 'null for none'),
    },
    example: { version: 2, sha256: 'b'.repeat(64), rules: 4, previous_version: 1, previous_sha256: 'a'.repeat(64), comment: 'office network for operators' },
  },

  // ---------------------------------------------------------------- approvals
  'approval.request': {
    category: 'approval',
    description: 'An action that needs a second principal was filed as an approval request.',
    outcomes: ROUTE,
    resource: 'approval',
    fields: { action: str('the action to run once approved, e.g. kms.key.rotate'), target: target('what it acts on') },
    example: { action: 'kms.key.rotate', target: { type: 'kms_key', id: 'key_01' } },
  },
  'approval.use': {
    category: 'approval',
    description: 'An approval of a single operation was used by a request that does not write otherwise (a write records the approval in its own event\'s `authz`).',
    outcomes: DONE,
    resource: 'approval',
    fields: {},
    example: {},
  },
  'approval.approve': {
    category: 'approval',
    description: 'A different principal approved a request; its action ran in the same transaction (its own events follow).',
    outcomes: ROUTE,
    resource: 'approval',
    fields: { action: str('the approved action'), target: target('what it acts on'), requested_by: str('principal who filed the request'), comment: orNull(str('comment'), "the approver's comment, null for none") },
    example: { action: 'kms.key.rotate', target: { type: 'kms_key', id: 'key_01' }, requested_by: 'svc_a1', comment: null },
  },
  'approval.reject': {
    category: 'approval',
    description: 'A different principal rejected a request; its action does not run.',
    outcomes: ROUTE,
    resource: 'approval',
    fields: { action: str('the rejected action'), target: target('what it would have acted on'), requested_by: str('principal who filed the request'), comment: orNull(str('comment'), "the approver's comment, null for none") },
    example: { action: 'audit.hold.release', target: { type: 'audit_hold', id: 'hold_01' }, requested_by: 'svc_a1', comment: 'case still open' },
  },
  'approval.expire': {
    category: 'approval',
    description: 'A pending request reached its expiry undecided (the KMS scheduler).',
    outcomes: DONE,
    resource: 'approval',
    fields: { action: str('the action that will not run'), target: target('what it would have acted on') },
    example: { action: 'kms.key.destroy', target: { type: 'kms_key', id: 'key_01' } },
  },

  // ---------------------------------------------------------------- KMS: lifecycle
  'kms.key.create': {
    category: 'kms',
    description: 'A key was created (through the API, or a system key at unseal: then name and system only).',
    outcomes: ROUTE,
    resource: 'kms_key',
    fields: { ...newKey, name: opt(str('the system key\'s reserved name, e.g. system/kek/internal')), system: opt(bool('a system key, created at unseal')) },
    example: newKeyExample,
  },
  'kms.key.import': {
    category: 'kms',
    description: 'A key was imported (bring your own key): version 1 is the unwrapped material.',
    outcomes: ROUTE,
    resource: 'kms_key',
    fields: newKey,
    example: { ...newKeyExample, origin: 'imported', exportable: true },
  },
  'kms.key.export': {
    category: 'kms',
    description: "A key version was exported wrapped under a receiver's RSA public key.",
    outcomes: ROUTE,
    resource: 'kms_key',
    fields: { version: int('the exported version', { minimum: 1 }), receiver_sha256: hex256("the receiver's public key PEM") },
    example: { version: 1, receiver_sha256: 'c'.repeat(64) },
  },
  'kms.key.update': {
    category: 'kms',
    description: "A key's min_decryption_version or rotation period was changed.",
    outcomes: ROUTE,
    resource: 'kms_key',
    fields: { min_decryption_version: opt(int('new minimum version that decrypts', { minimum: 1 })), rotation_period_days: opt(int('new rotation period', { minimum: 1 })) },
    example: { rotation_period_days: 90 },
  },
  'kms.key.rotate': {
    category: 'kms',
    description: 'A key was rotated (a new version encrypts from now on), or with approval_id a rotation awaits approval.',
    outcomes: ROUTE,
    resource: 'kms_key',
    fields: {
      reason: oneOf(['manual', 'scheduled', 'approved', 'nonce_limit'] as const, 'what caused it: an API call, the rotation period, an approved request, the nonce budget'),
      version: opt(int('the new current version', { minimum: 1 })),
      approval_id: opt(approvalId()),
      state: opt(awaiting()),
    },
    example: { reason: 'manual', version: 2 },
  },
  'kms.key.disable': { category: 'kms', description: 'A key was disabled: it refuses every operation until enabled.', outcomes: ROUTE, resource: 'kms_key' },
  'kms.key.enable': { category: 'kms', description: 'A disabled key was enabled again.', outcomes: ROUTE, resource: 'kms_key' },
  'kms.key.schedule_destruction': {
    category: 'kms',
    description: 'Destruction of a key or one version was scheduled, or with approval_id a forced destruction awaits approval.',
    outcomes: ROUTE,
    resource: 'kms_key',
    fields: {
      pending_days: int('waiting period before the material is erased', { minimum: 7, maximum: 30 }),
      version: opt(int('the version; absent for the whole key', { minimum: 1 })),
      force: opt(bool('destroy although it may still protect data (needs approval)')),
      approval_id: opt(approvalId()),
      state: opt(awaiting()),
    },
    example: { pending_days: 7, version: 1 },
  },
  'kms.key.cancel_destruction': {
    category: 'kms',
    description: 'A scheduled destruction was cancelled.',
    outcomes: ROUTE,
    resource: 'kms_key',
    fields: { version: opt(int('the version; absent for the whole key', { minimum: 1 })) },
    example: { version: 1 },
  },
  'kms.key.destroy': {
    category: 'kms',
    description: 'Key material was erased once its destruction date came (the KMS scheduler).',
    outcomes: DONE,
    resource: 'kms_key',
    fields: { version: orNull(int('version', { minimum: 1 }), 'the destroyed version, null for the whole key') },
    example: { version: null },
  },
  'kms.rotation.pre_check': {
    category: 'kms',
    description: 'Before a rotation: what the outgoing version protects and when the last backup was taken.',
    outcomes: DONE,
    resource: 'kms_key',
    fields: {
      from_version: int('the outgoing version', { minimum: 1 }),
      ciphertexts: int('ciphertexts made under it and not rewrapped away'),
      overlap_days: int('days it keeps encrypting alongside the new one'),
      last_backup_at: orNull(time('last backup'), 'time of the last backup.create event, null for none'),
    },
    example: { from_version: 1, ciphertexts: 42, overlap_days: 0, last_backup_at: null },
  },
  'kms.rotation.health_check': {
    category: 'kms',
    description: 'The new version round-tripped a probe before it was activated.',
    outcomes: DONE,
    resource: 'kms_key',
    fields: { version: int('the new version', { minimum: 1 }) },
    example: { version: 2 },
  },
  'kms.rotation.deactivate': {
    category: 'kms',
    description: 'After the overlap, a previous version became decrypt-only (the KMS scheduler).',
    outcomes: DONE,
    resource: 'kms_key',
    fields: { version: int('the deactivated version', { minimum: 1 }), reason: oneOf(['overlap ended'] as const, 'why') },
    example: { version: 1, reason: 'overlap ended' },
  },
  'kms.kek.rewrap': {
    category: 'kms',
    description: 'A batch of key versions moved to the current version of a system KEK (the KMS scheduler).',
    outcomes: DONE,
    resource: 'kms_key',
    fields: { to_version: int('the KEK version they are wrapped under now', { minimum: 1 }), rewrapped: int('key versions moved in this batch'), pending: int('key versions still under older KEK versions') },
    example: { to_version: 2, rewrapped: 500, pending: 120 },
  },
  'kms.kek.rewrap_all': {
    category: 'kms',
    description: 'An operator asked to rewrap every key still under an older KEK version now.',
    outcomes: ROUTE,
    fields: { pending: int('key versions still to rewrap when the request was accepted') },
    example: { pending: 620 },
  },

  // ---------------------------------------------------------------- KMS: cryptographic operations
  'kms.encrypt': {
    category: 'kms',
    description: 'Data was encrypted (plaintext and context are never recorded).',
    outcomes: ROUTE,
    resource: 'kms_key',
    fields: { key_version: keyVersion() },
    example: { key_version: 1 },
  },
  'kms.decrypt': {
    category: 'kms',
    description: 'A ciphertext was decrypted (or failed to: error_code says why).',
    outcomes: ROUTE,
    resource: 'kms_key',
    fields: { key_version: keyVersion() },
    example: { key_version: 1 },
  },
  'kms.encrypt.batch': {
    category: 'kms',
    description: 'A batch of items was encrypted; per-item failures are counted.',
    outcomes: ROUTE,
    resource: 'kms_key',
    fields: { items: int('items in the batch'), failed: int('items that failed') },
    example: { items: 10, failed: 0 },
  },
  'kms.decrypt.batch': {
    category: 'kms',
    description: 'A batch of ciphertexts was decrypted; per-item failures are counted.',
    outcomes: ROUTE,
    resource: 'kms_key',
    fields: { items: int('items in the batch'), failed: int('items that failed') },
    example: { items: 10, failed: 1 },
  },
  'kms.data_key': {
    category: 'kms',
    description: 'A data key was generated and returned with its wrapped form (envelope encryption).',
    outcomes: ROUTE,
    resource: 'kms_key',
    fields: { key_version: keyVersion(), bytes: int('length of the data key', { minimum: 1 }) },
    example: { key_version: 1, bytes: 32 },
  },
  'kms.rewrap': {
    category: 'kms',
    description: 'A ciphertext was re-encrypted under the current version without returning plaintext.',
    outcomes: ROUTE,
    resource: 'kms_key',
    fields: { from_version: int('the version it was under', { minimum: 1 }), to_version: int('the version it is under now', { minimum: 1 }) },
    example: { from_version: 1, to_version: 2 },
  },
  'kms.sign': {
    category: 'kms',
    description: 'A message was signed (the message is never recorded).',
    outcomes: ROUTE,
    resource: 'kms_key',
    fields: { key_version: keyVersion() },
    example: { key_version: 1 },
  },
  'kms.verify': {
    category: 'kms',
    description: 'A signature was verified.',
    outcomes: ROUTE,
    resource: 'kms_key',
    fields: { key_version: keyVersion(), valid: bool('the signature verified') },
    example: { key_version: 1, valid: true },
  },
  'kms.hmac': {
    category: 'kms',
    description: 'An HMAC was computed (the data is never recorded).',
    outcomes: ROUTE,
    resource: 'kms_key',
    fields: { key_version: keyVersion() },
    example: { key_version: 1 },
  },
  'kms.hmac.verify': {
    category: 'kms',
    description: 'An HMAC was verified in constant time.',
    outcomes: ROUTE,
    resource: 'kms_key',
    fields: { key_version: keyVersion(), valid: bool('the MAC verified') },
    example: { key_version: 1, valid: false },
  },

  // ---------------------------------------------------------------- seal
  'seal.init': {
    category: 'seal',
    description: 'The passphrase seal was initialised: a root key and recovery shares (never recorded).',
    outcomes: DONE,
    resource: 'seal',
    fields: { shares: int('recovery shares made', { minimum: 1 }), threshold: int('shares needed to unseal', { minimum: 1 }) },
    example: { shares: 5, threshold: 3 },
  },
  'seal.unseal': {
    category: 'seal',
    description: 'The seal was opened (failed attempts cannot be audited while sealed: they are logged).',
    outcomes: DONE,
    resource: 'seal',
    fields: { method: oneOf(['passphrase', 'recovery_shares', 'provider'] as const, 'what opened it') },
    example: { method: 'passphrase' },
  },
  'seal.seal': { category: 'seal', description: 'The seal was closed: the keyring and every unwrapped key left memory (after this event committed).', outcomes: ROUTE, resource: 'seal' },
  'seal.rekey': {
    category: 'seal',
    description: 'New recovery shares and passphrase were made, proven by the current ones (optionally rotating the root).',
    outcomes: ROUTE,
    resource: 'seal',
    fields: {
      proof: oneOf(['recovery_shares', 'passphrase'] as const, 'what proved the caller holds the current secret'),
      new_shares: int('recovery shares made', { minimum: 1 }),
      new_threshold: int('shares needed to unseal', { minimum: 1 }),
      rotate_root: bool('the root key was rotated too'),
    },
    example: { proof: 'passphrase', new_shares: 5, new_threshold: 3, rotate_root: false },
  },
  'seal.rotate_root.request': { category: 'seal', description: 'A root key rotation was requested; it runs once a second principal approves (resource: the approval).', outcomes: ROUTE, resource: 'approval' },
  'seal.rotate_root': {
    category: 'seal',
    description: 'The root key was rotated (on approval): the keyring and root-wrapped keys are under the new one.',
    outcomes: DONE,
    resource: 'seal',
    fields: { from: str('id of the previous root key (fingerprint or token label)'), to: str('id of the new root key'), rewrapped: int('root-wrapped key versions moved') },
    example: { from: '9f2c4e1a0b3d5c7e', to: '1a2b3c4d5e6f7a8b', rewrapped: 3 },
  },

  // ---------------------------------------------------------------- PKI and ACME
  'pki.ca.create': {
    category: 'pki',
    description: 'A certificate authority was created: the root, an intermediate (signed at once, or pending for an offline root), or an external intermediate the root signed.',
    outcomes: ROUTE,
    resource: 'ca',
    fields: {
      name: str('CA name'),
      kind: oneOf(['root', 'intermediate'] as const, 'its place in the hierarchy'),
      key_id: orNull(str('its KMS signing key'), 'the KMS key, null for a key held elsewhere (in the HSM: the token object labelled palisade-ca-<ca id>)'),
      key_store: oneOf(['kms', 'hsm', 'offline', 'external'] as const, 'where its key lives'),
      subject_dn: str('subject distinguished name'),
      parent_ca_id: orNull(str('issuer'), 'the issuing CA, null for a root'),
      not_after: orNull(time('expiry'), 'expiry, null while pending'),
      status: oneOf(['pending', 'active', 'retired'] as const, 'pending: waits for its certificate'),
    },
    example: { name: 'intermediate-01', kind: 'intermediate', key_id: 'key_01', key_store: 'kms', subject_dn: 'CN=Palisade Intermediate CA, O=Palisade, C=US', parent_ca_id: 'ca_root', not_after: '2030-01-01T00:00:00.000Z', status: 'active' },
  },
  'pki.ca.install': {
    category: 'pki',
    description: 'The certificate an offline root signed was installed on a pending intermediate, which became the issuer.',
    outcomes: ROUTE,
    resource: 'ca',
    fields: { name: str('CA name'), subject_dn: str('subject distinguished name'), not_after: orNull(time('expiry'), 'expiry') },
    example: { name: 'intermediate-02', subject_dn: 'CN=Palisade Intermediate CA, O=Palisade, C=US', not_after: '2030-01-01T00:00:00.000Z' },
  },
  'pki.ca.export_key': {
    category: 'pki',
    description: "The root CA's key was exported, encrypted under a passphrase (and erased from the server when removed).",
    outcomes: ROUTE,
    resource: 'ca',
    fields: { removed: bool('the key was erased from the server') },
    example: { removed: true },
  },
  'pki.certificate.issue': {
    category: 'pki',
    description: 'A certificate was issued.',
    outcomes: ALL,
    resource: 'certificate',
    fields: {
      ca_id: str('the issuing CA'),
      serial: str('serial number, hex', { pattern: '^[0-9a-f]+$' }),
      subject_dn: str('subject distinguished name'),
      sans: strs('subject alternative names'),
      profile: str('the issuance profile'),
      not_before: time('validity start'),
      not_after: time('validity end'),
      acme_order_id: opt(str('the ACME order, when issued through ACME')),
    },
    example: { ca_id: 'ca_01', serial: '4f1a', subject_dn: 'CN=agent-7', sans: ['agent-7.internal'], profile: 'agent-mtls', not_before: '2025-06-01T00:00:00.000Z', not_after: '2025-06-02T00:00:00.000Z' },
  },
  'pki.certificate.revoke': {
    category: 'pki',
    description: 'A certificate was revoked.',
    outcomes: ROUTE,
    resource: 'certificate',
    fields: {
      ca_id: str('the issuing CA'),
      serial: str('serial number, hex', { pattern: '^[0-9a-f]+$' }),
      reason: oneOf(['unspecified', 'keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'certificateHold', 'privilegeWithdrawn'] as const, 'RFC 5280 reason code'),
    },
    example: { ca_id: 'ca_01', serial: '4f1a', reason: 'keyCompromise' },
  },
  'pki.crl.publish': {
    category: 'pki',
    description: 'A certificate revocation list was signed and published.',
    outcomes: ROUTE,
    resource: 'ca',
    fields: { crl_number: int('CRL number'), entries: int('revoked certificates listed'), next_update: time('nextUpdate') },
    example: { crl_number: 12, entries: 3, next_update: '2025-06-02T00:00:00.000Z' },
  },
  'acme.eab_key.create': {
    category: 'acme',
    description: 'An External Account Binding key was created (its HMAC key is shown once and stored wrapped by the barrier).',
    outcomes: ROUTE,
    resource: 'acme_eab_key',
    fields: { name: str('the key\'s label'), reusable: bool('may bind more than one account'), expires_at: orNull(time('expiry'), 'expiry, null for none') },
    example: { name: 'build farm', reusable: false, expires_at: null },
  },
  'acme.eab_key.revoke': { category: 'acme', description: 'An External Account Binding key was revoked (accounts it bound stay).', outcomes: ROUTE, resource: 'acme_eab_key' },
  'acme.account.create': {
    category: 'acme',
    description: 'An ACME account was registered.',
    outcomes: ROUTE,
    resource: 'acme_account',
    fields: {
      jwk_thumbprint: str('RFC 7638 thumbprint of the account key, base64url'),
      contacts: int('contact URLs given (the addresses are personal data and not recorded)'),
      eab_key_id: orNull(str('EAB key id'), 'the external account binding used, null for none'),
    },
    example: { jwk_thumbprint: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs', contacts: 1, eab_key_id: 'eab_01' },
  },
  'acme.account.update': {
    category: 'acme',
    description: 'An ACME account changed its contacts or was deactivated by its holder.',
    outcomes: ROUTE,
    resource: 'acme_account',
    fields: { status: oneOf(['valid', 'deactivated'] as const, 'the account status after the change'), contacts: int('contact URLs it now has') },
    example: { status: 'deactivated', contacts: 0 },
  },
  'acme.account.key_change': {
    category: 'acme',
    description: 'An ACME account rolled over to a new key (RFC 8555 §7.3.5).',
    outcomes: ROUTE,
    resource: 'acme_account',
    fields: { old_jwk_thumbprint: str('thumbprint of the key replaced'), new_jwk_thumbprint: str('thumbprint of the new key') },
    example: { old_jwk_thumbprint: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs', new_jwk_thumbprint: 'Vj1vKk7zZ7bN5gqQ1bq8dP0kQ3xS6yWmJ2tR4uA9cEo' },
  },
  'acme.order.create': {
    category: 'acme',
    description: 'An ACME order was placed.',
    outcomes: ROUTE,
    resource: 'acme_order',
    fields: { account_id: str('the ACME account'), identifiers: strs('the identifiers ordered (dns names, IPs)'), replaces: opt(str('serial of the certificate it renews (RFC 9773), hex', { pattern: '^[0-9a-f]+$' })) },
    example: { account_id: 'acct_01', identifiers: ['agent-7.internal'] },
  },
  'acme.authz.deactivate': {
    category: 'acme',
    description: 'An ACME account gave up one of its authorizations.',
    outcomes: ROUTE,
    resource: 'acme_authz',
    fields: { account_id: str('the ACME account'), identifier: str('the identifier') },
    example: { account_id: 'acct_01', identifier: 'agent-7.internal' },
  },
  'acme.challenge.respond': {
    category: 'acme',
    description: 'An ACME client asked for a challenge to be validated; the outcome follows as acme.challenge.validate.',
    outcomes: ROUTE,
    resource: 'acme_challenge',
    fields: { account_id: str('the ACME account'), identifier: str('the identifier to prove'), challenge_type: oneOf(['http-01', 'dns-01', 'tls-alpn-01'] as const, 'the challenge') },
    example: { account_id: 'acct_01', identifier: 'agent-7.internal', challenge_type: 'http-01' },
  },
  'acme.challenge.validate': {
    category: 'acme',
    description: 'An ACME challenge was validated (success) or failed validation (failure, error_code PAL_ACME_CHALLENGE_FAILED, details.error the ACME problem type).',
    outcomes: ROUTE,
    resource: 'acme_challenge',
    fields: { order_id: str('the order'), identifier: str('the identifier proven'), challenge_type: oneOf(['http-01', 'dns-01', 'tls-alpn-01'] as const, 'the challenge'), error: opt(str('ACME problem type when it failed')) },
    example: { order_id: 'ord_01', identifier: 'agent-7.internal', challenge_type: 'http-01' },
  },
  'acme.order.finalize': {
    category: 'acme',
    description: 'An ACME order was finalized with a CSR and its certificate issued.',
    outcomes: ROUTE,
    resource: 'acme_order',
    fields: { account_id: str('the ACME account'), certificate_serial: opt(str('serial of the issued certificate, hex', { pattern: '^[0-9a-f]+$' })) },
    example: { account_id: 'acct_01', certificate_serial: '4f1a' },
  },
  'acme.certificate.revoke': {
    category: 'acme',
    description: 'A certificate issued through ACME was revoked by an ACME request (the CA records pki.certificate.revoke with it).',
    outcomes: ROUTE,
    resource: 'certificate',
    fields: {
      serial: str('serial number, hex', { pattern: '^[0-9a-f]+$' }),
      reason: oneOf(['unspecified', 'keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'certificateHold', 'privilegeWithdrawn'] as const, 'RFC 5280 reason'),
      authorized_by: oneOf(['issuing_account', 'authorized_account', 'certificate_key'] as const, 'what proved the right to revoke'),
    },
    example: { serial: '4f1a', reason: 'keyCompromise', authorized_by: 'certificate_key' },
  },

  // ---------------------------------------------------------------- configuration and backups
  'config.change': {
    category: 'config',
    description: 'A runtime setting was changed (secret settings appear only as an HMAC of the new value).',
    outcomes: ROUTE,
    resource: 'config',
    fields: {
      setting: str('dotted name, e.g. audit.retention.default_days'),
      source: oneOf(['api', 'file', 'env'] as const, 'where the change came from'),
      secret: bool('the setting holds a secret'),
      old_value: opt(Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()], { description: 'previous value (non-secret settings only)' })),
      new_value: opt(Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()], { description: 'new value (non-secret settings only)' })),
      new_value_ref: opt(hmac('new value of a secret setting')),
    },
    sensitive: ['new_value_ref'],
    example: { setting: 'audit.retention.default_days', source: 'api', secret: false, old_value: 2555, new_value: 3650 },
    planned: true,
  },
  'backup.create': {
    category: 'backup',
    description: 'A backup was written and is durable (offline CLI; the actor is system:backup-cli).',
    outcomes: DONE,
    resource: 'backup',
    fields: {
      os_user: opt(str('operating-system user who ran the command')),
      file: str('path of the backup file'),
      parts: int('data parts in the file'),
      tables: int('tables dumped'),
      rows: int('rows dumped'),
      bytes: int('file size'),
      manifest_sha256: hex256('the manifest: the backup\'s identity'),
      audit_size: int('audit log size the backup holds (up to the entry before this one)'),
    },
    personal: ['os_user'],
    example: { os_user: 'palisade', file: '/var/backups/palisade-20250601T000000Z-bk1.pbak', parts: 1, tables: 14, rows: 1200, bytes: 65536, manifest_sha256: 'd'.repeat(64), audit_size: 480 },
  },
  'backup.restore': {
    category: 'backup',
    description: 'A backup was restored into an empty database (offline CLI; the actor is system:backup-cli).',
    outcomes: DONE,
    resource: 'backup',
    fields: {
      os_user: opt(str('operating-system user who ran the command')),
      file: str('path of the backup file'),
      backup_created_at: time('when the backup was taken'),
      manifest_sha256: hex256('the manifest'),
      source_dialect: oneOf(['sqlite', 'postgres'] as const, 'database the backup was taken from'),
      rows: int('rows restored'),
      audit_size_at_backup: int('audit log size in the backup'),
      forced: bool('restored over a non-empty database with --force'),
    },
    personal: ['os_user'],
    example: { os_user: 'palisade', file: '/var/backups/palisade-20250601T000000Z-bk1.pbak', backup_created_at: '2025-06-01T00:00:00.000Z', manifest_sha256: 'd'.repeat(64), source_dialect: 'sqlite', rows: 1200, audit_size_at_backup: 480, forced: false },
  },

  // ---------------------------------------------------------------- gateway, detection, incidents, responses
  'gateway.request.rejected': {
    category: 'gateway',
    description: 'The gateway refused a malformed or hostile request before it reached an upstream (path traversal or encoding tricks, conflicting framing, header injection, oversized headers or body, slow client, wrong content type, invalid JSON, a body its schema refuses, a bad signature); error_code says which, `reason` the detail.',
    outcomes: ['denied'],
    resource: 'route',
    fields: { ...gatewayRequest, reason: str('what was wrong, e.g. dot-segment, encoded-slash, content-length-and-transfer-encoding, /messages/0/role: must be equal to one of the allowed values') },
    example: { route: 'framework', method: 'GET', reason: 'dot-segment' },
  },
  'gateway.block.rate_limit': {
    category: 'gateway',
    description: 'A gateway rate limit refused a client: recorded once per limit and client per window (further refusals in the same window are counted in metrics only, so a flood cannot flood the ledger).',
    outcomes: ['denied'],
    resource: 'route',
    fields: { ...gatewayRequest, policy: str('the limit that refused: global, client, endpoint:<pattern>, with -burst for a burst window'), key: oneOf(['global', 'principal', 'ip'] as const, 'what the limit counts by'), limit: int('requests allowed per window', { minimum: 1 }), window_seconds: Type.Number({ minimum: 0, description: 'window length' }) },
    example: { route: 'framework', method: 'POST', policy: 'client', key: 'principal', limit: 60, window_seconds: 60 },
  },
  'gateway.block.ip': {
    category: 'gateway',
    description: "The gateway refused a request from an address its allow/deny lists exclude (the address is the actor's source_ip).",
    outcomes: ['denied'],
    resource: 'route',
    fields: { ...gatewayRequest, list: oneOf(['deny', 'allow'] as const, 'deny: listed; allow: not on the allow list'), rule_id: str('the list entry or rule') },
    example: { route: '/v1/keys', method: 'GET', list: 'deny', rule_id: 'ipdeny_3' },
    planned: true,
  },
  'gateway.block.waf': {
    category: 'gateway',
    description: 'The gateway refused a request a request-inspection rule matched: for prompt screening, the detector scored a prompt or tool result at or above the route\'s threshold.',
    outcomes: ['denied'],
    resource: 'route',
    fields: {
      ...gatewayRequest,
      rule_id: str('the rule, or the detector that screened'),
      rule_category: str('e.g. injection, prompt_injection, oversize'),
      matched_ref: opt(hmac('the matched fragment')),
      score: opt(Type.Number({ minimum: 0, maximum: 1, description: 'the detector\'s score' })),
      labels: opt(strs('what the detector found')),
      path: opt(str('where in the body, e.g. messages[2].content')),
    },
    sensitive: ['matched_ref'],
    example: { route: 'framework', method: 'POST', rule_id: 'detector', rule_category: 'prompt_injection', score: 0.97, labels: ['instruction_override'], path: 'messages[1].content' },
  },
  'gateway.prompt.flag': {
    category: 'gateway',
    description: 'Prompt screening flagged a prompt or tool result on a route whose policy is to flag, not block: the request went on, marked for the upstream.',
    outcomes: ['success'],
    resource: 'route',
    fields: { ...gatewayRequest, rule_id: str('the detector'), score: Type.Number({ minimum: 0, maximum: 1, description: 'the detector\'s score' }), labels: strs('what the detector found'), path: str('where in the body') },
    example: { route: 'tools', method: 'POST', rule_id: 'detector', score: 0.71, labels: ['exfiltration'], path: 'result' },
  },
  'gateway.signing_key.create': {
    category: 'gateway',
    description: 'A request-signing key (HMAC secret) was created for a principal; the secret was shown once and is stored only wrapped.',
    outcomes: ROUTE,
    resource: 'signing_key',
    fields: { principal_id: str('whose requests it signs') },
    example: { principal_id: 'svc_01' },
  },
  'gateway.signing_key.revoke': {
    category: 'gateway',
    description: 'A request-signing key was revoked; signatures made with it are refused from then on.',
    outcomes: ROUTE,
    resource: 'signing_key',
    fields: { principal_id: str('whose key it was') },
    example: { principal_id: 'svc_01' },
  },
  'detect.alert': {
    category: 'detection',
    description: 'A detection rule fired.',
    outcomes: DONE,
    resource: 'detection',
    fields: {
      rule_id: str('the rule'),
      rule_name: str('its name'),
      severity: oneOf(['low', 'medium', 'high', 'critical'] as const, 'severity'),
      events: Type.Array(Type.Integer({ minimum: 0 }), { description: 'indices of the audit events that triggered it' }),
      principal_id: orNull(str('principal'), 'the principal it concerns, null for none'),
    },
    example: { rule_id: 'det_decrypt_burst', rule_name: 'Decryption burst', severity: 'high', events: [1201, 1202, 1203], principal_id: 'svc_a1' },
    planned: true,
  },
  'detect.rule.update': {
    category: 'detection',
    description: 'A detection rule was added, changed, enabled or disabled.',
    outcomes: ROUTE,
    resource: 'detection_rule',
    fields: { rule_id: str('the rule'), version: int('rule version', { minimum: 1 }), enabled: bool('the rule runs'), sha256: hex256('the rule definition') },
    example: { rule_id: 'det_decrypt_burst', version: 3, enabled: true, sha256: 'e'.repeat(64) },
    planned: true,
  },
  'incident.open': {
    category: 'incident',
    description: 'An incident was opened, from alerts or by hand.',
    outcomes: ROUTE,
    resource: 'incident',
    fields: { title: str('short title'), severity: oneOf(['low', 'medium', 'high', 'critical'] as const, 'severity'), source: oneOf(['detection', 'manual'] as const, 'who opened it'), alert_ids: strs('the alerts it groups') },
    example: { title: 'Decryption burst by svc_a1', severity: 'high', source: 'detection', alert_ids: ['alert_9'] },
    planned: true,
  },
  'incident.update': {
    category: 'incident',
    description: "An incident's status or assignee changed.",
    outcomes: ROUTE,
    resource: 'incident',
    fields: { status: oneOf(['open', 'triaged', 'contained', 'resolved'] as const, 'new status'), assignee: orNull(str('principal'), 'principal now responsible, null for none') },
    example: { status: 'contained', assignee: 'user_7' },
    planned: true,
  },
  'incident.close': {
    category: 'incident',
    description: 'An incident was closed.',
    outcomes: ROUTE,
    resource: 'incident',
    fields: { resolution: oneOf(['resolved', 'false_positive', 'duplicate'] as const, 'how it ended'), duration_seconds: int('time from open to close') },
    example: { resolution: 'resolved', duration_seconds: 5400 },
    planned: true,
  },
  'response.execute': {
    category: 'response',
    description: 'A response action ran (automatically from a playbook, or by hand): e.g. revoke an API key, disable a key.',
    outcomes: ROUTE,
    resource: 'response',
    fields: { playbook: orNull(str('playbook'), 'the playbook, null for a manual action'), action: str('what it did, e.g. auth.api_key.revoke'), target: target('what it acted on'), incident_id: orNull(str('incident'), 'the incident, null for none'), automatic: bool('no human started it') },
    example: { playbook: 'contain-credential', action: 'auth.api_key.revoke', target: { type: 'api_key', id: 'ak_01' }, incident_id: 'inc_3', automatic: true },
    planned: true,
  },
  'response.revert': {
    category: 'response',
    description: 'A response action was undone.',
    outcomes: ROUTE,
    resource: 'response',
    fields: { action: str('the action undone'), target: target('what it had acted on') },
    example: { action: 'kms.key.disable', target: { type: 'kms_key', id: 'key_01' } },
    planned: true,
  },

  // ---------------------------------------------------------------- compliance
  'compliance.run': {
    category: 'compliance',
    description: 'A compliance evaluation ran against a framework.',
    outcomes: ROUTE,
    resource: 'compliance_run',
    fields: { framework: str('e.g. soc2, iso27001, pci-dss'), controls: int('controls evaluated'), passed: int('controls passed'), failed: int('controls failed'), report_sha256: hex256('the report') },
    example: { framework: 'soc2', controls: 64, passed: 61, failed: 3, report_sha256: 'f'.repeat(64) },
    planned: true,
  },

  // ---------------------------------------------------------------- the audit log itself
  'audit.export': {
    category: 'audit',
    description: 'The log was exported (NDJSON with checkpoints) for offline verification.',
    outcomes: DONE,
    resource: 'audit_log',
    fields: { to: int('tree size exported up to', { minimum: 1 }) },
    example: { to: 1200 },
  },
  'audit.hash': { category: 'audit', description: 'A value was HMAC\'d the way sensitive values appear in events, to search for it (the value is not recorded).', outcomes: ROUTE, resource: null },
  'audit.hold.create': {
    category: 'audit',
    description: 'A legal hold was placed: what it covers is kept regardless of retention.',
    outcomes: ROUTE,
    resource: 'audit_hold',
    fields: { name: str('hold name'), filter: holdFilter },
    example: { name: 'case-42', filter: { type: 'kms.*', since: '2025-01-01T00:00:00Z' } },
  },
  'audit.hold.release.request': {
    category: 'audit',
    description: 'Release of a legal hold was requested; a second principal must approve.',
    outcomes: ROUTE,
    resource: 'audit_hold',
    fields: { approval_id: str('the approval request'), state: awaiting() },
    example: { approval_id: 'apr_01', state: 'awaiting_approval' },
  },
  'audit.hold.release': {
    category: 'audit',
    description: 'A legal hold was released (on approval); retention applies again.',
    outcomes: DONE,
    resource: 'audit_hold',
    fields: { name: str('hold name'), approval_id: str('the approval that released it') },
    example: { name: 'case-42', approval_id: 'apr_01' },
  },
  'audit.purge': {
    category: 'audit',
    description: 'Retention removed payloads (leaf hashes stay, so proofs still verify); held entries were kept.',
    outcomes: DONE,
    resource: null,
    fields: {
      purged: int('payloads removed'),
      held: int('expired entries a legal hold kept'),
      first_index: orNull(int('index'), 'first purged index, null when none'),
      last_index: orNull(int('index'), 'last purged index, null when none'),
    },
    example: { purged: 5000, held: 12, first_index: 0, last_index: 5011 },
  },
  'audit.subject.erase': {
    category: 'audit',
    description: "A data subject was erased: the key of its personal fields was destroyed (resource id: the subject's HMAC reference).",
    outcomes: ROUTE,
    resource: 'audit_subject',
    fields: { had_data: bool('the log held personal data of the subject') },
    example: { had_data: true },
  },
  'audit.verify': {
    category: 'audit',
    description: 'The log was verified from storage (roots, MACs, leaves); failure names the first bad index.',
    outcomes: ROUTE,
    resource: 'audit_log',
    fields: { size: int('tree size verified'), checked: int('entries recomputed'), sampled: bool('a sample, not every entry'), first_bad_index: orNull(int('index'), 'first index that disagrees, null when none') },
    example: { size: 1200, checked: 1200, sampled: false, first_bad_index: null },
    planned: true,
  },
  'audit.checkpoint.anchor': {
    category: 'audit',
    description: 'An anchor (witness or RFC 3161 time-stamping authority) refused or could not countersign a checkpoint.',
    outcomes: ['failure'],
    resource: 'audit_log',
    fields: { anchor: str('the anchor\'s configured name'), kind: oneOf(['witness', 'rfc3161'] as const, 'anchor kind'), size: int('checkpoint tree size', { minimum: 1 }), error: str('what went wrong') },
    example: { anchor: 'witness-eu', kind: 'witness', size: 1200, error: 'connection refused' },
    planned: true,
  },
};

function build(type: string, d: Def): AuditEventSpec {
  return Object.freeze({
    type,
    category: d.category,
    description: d.description,
    outcomes: Object.freeze([...d.outcomes]),
    resource: d.resource ?? null,
    details: Type.Object(d.fields ?? {}, { additionalProperties: false }),
    personal: Object.freeze([...(d.personal ?? [])]),
    sensitive: Object.freeze([...(d.sensitive ?? [])]),
    example: Object.freeze({ ...(d.example ?? {}) }),
    planned: d.planned === true,
  });
}

/** Every audit event type, by type name. */
export const AUDIT_EVENT_CATALOGUE: Readonly<Record<string, AuditEventSpec>> = Object.freeze(
  Object.fromEntries(
    Object.keys(DEFS)
      .sort()
      .map((type) => [type, build(type, DEFS[type]!)]),
  ),
);
