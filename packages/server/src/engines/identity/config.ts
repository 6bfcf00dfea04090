import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ROLES } from '../../kernel/auth/roles.js';

const int = (minimum: number, maximum: number, def: number, description: string) => Type.Integer({ minimum, maximum, default: def, description });
const obj = <T extends Parameters<typeof Type.Object>[0]>(props: T, description?: string) => Type.Object(props, { default: {}, additionalProperties: false, ...(description ? { description } : {}) });

const Throttle = (threshold: number, description: string) =>
  obj({ threshold: int(1, 100_000, threshold, 'failures within window_minutes before back-off starts'), window_minutes: int(1, 24 * 60, 15, 'failures older than this are forgotten') }, description);

/** A built-in role name: a typo in a mapping fails at start-up instead of silently granting nothing. */
const Role = Type.Union(ROLES.map((r) => Type.Literal(r)), { description: `one of ${ROLES.join(', ')}` });

const OidcProvider = Type.Object(
  {
    issuer: Type.String({ pattern: '^https?://', description: 'the provider\'s issuer URL (discovery at <issuer>/.well-known/openid-configuration)' }),
    client_id: Type.String({ minLength: 1 }),
    client_secret: Type.Optional(Type.String({ minLength: 1, description: 'confidential client (client_secret_basic); a public client uses PKCE only' })),
    scopes: Type.Array(Type.String(), { default: ['openid', 'email', 'profile'] }),
    groups_claim: Type.String({ default: 'groups' }),
    role_mapping: Type.Record(Type.String(), Type.Array(Role), { default: {}, description: 'IdP group -> Palisade roles; users get the union on every sign-in' }),
    default_roles: Type.Array(Role, { default: [], description: 'roles every user of this provider gets' }),
    jit_provisioning: Type.Boolean({ default: true, description: 'create the account on first sign-in' }),
    allow_insecure_http: Type.Boolean({ default: false, description: 'allow an http:// issuer (tests on loopback only)' }),
  },
  { additionalProperties: false },
);

const SamlProvider = Type.Object(
  {
    idp_entity_id: Type.String({ minLength: 1 }),
    idp_sso_url: Type.String({ pattern: '^https?://' }),
    idp_certificates: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'PEM certificates the IdP signs with' }),
    sp_decryption_key_file: Type.Optional(Type.String({ minLength: 1, description: 'PEM private key: encrypted assertions are accepted' })),
    sp_certificate_file: Type.Optional(Type.String({ minLength: 1 })),
    allow_idp_initiated: Type.Boolean({ default: false }),
    groups_attribute: Type.String({ default: 'groups' }),
    email_attribute: Type.Optional(Type.String()),
    role_mapping: Type.Record(Type.String(), Type.Array(Role), { default: {} }),
    default_roles: Type.Array(Role, { default: [] }),
    jit_provisioning: Type.Boolean({ default: true }),
  },
  { additionalProperties: false },
);

/** Identity settings: sign-in, MFA, sessions, tokens and federation. */
export const IdentityConfigSchema = obj({
  public_url: Type.Optional(
    Type.String({ pattern: '^https://[^/?#]+$', description: 'https://host[:port] users reach Palisade at: token issuer, WebAuthn origin and RP id, OIDC/SAML callbacks; https://<addr> when unset' }),
  ),
  password_min_length: int(8, 64, 12, 'NIST SP 800-63B: length first, no composition rules'),
  mfa_required: Type.Boolean({ default: false, description: 'every local user must enrol a second factor (new users get mfa_required)' }),
  session: obj({
    idle_minutes: int(1, 24 * 60, 30, 'a session unused this long ends'),
    absolute_hours: int(1, 24 * 30, 12, 'a session ends this long after sign-in, used or not'),
    step_up_minutes: int(1, 24 * 60, 10, 'sensitive operations need a second factor verified within this'),
  }),
  lockout: obj({
    password_per_account_source: Throttle(5, 'password failures for one account from one source (IP)'),
    password_per_source: Throttle(20, 'password failures from one source, any account (credential stuffing)'),
    password_per_account: Throttle(50, 'password failures for one account from all sources (a distributed attack slows the password factor only)'),
    second_factor_per_account: Throttle(5, 'TOTP / recovery code / WebAuthn failures for one account (counted per factor)'),
    max_backoff_minutes: int(1, 24 * 60, 15, 'back-off doubles from 30 s per failure past the threshold up to this'),
  }),
  tokens: obj({
    algorithm: Type.Union([Type.Literal('EdDSA'), Type.Literal('ES256')], { default: 'EdDSA', description: 'access-token signature (the key lives in the KMS as system/identity/token-signing and rotates with the signing policy)' }),
    access_ttl_seconds: int(30, 86_400, 300, 'access token lifetime'),
    refresh_ttl_days: int(1, 365, 30, 'refresh token lifetime (each use rotates it)'),
    audience: Type.String({ default: 'palisade', description: 'aud of access tokens' }),
  }),
  oidc: Type.Record(Type.String({ pattern: '^[a-z0-9-]{1,32}$' }), OidcProvider, { default: {}, description: 'OpenID Connect providers by name (Azure AD, Okta, ...)' }),
  saml: Type.Record(Type.String({ pattern: '^[a-z0-9-]{1,32}$' }), SamlProvider, { default: {}, description: 'SAML 2.0 identity providers by name' }),
});
export type IdentityConfig = Static<typeof IdentityConfigSchema>;

/**
 * TypeBox fills defaults in objects but not inside the values of a record: the providers (`identity.oidc.<name>`,
 * `identity.saml.<name>`) get theirs here, before the whole configuration is validated.
 */
export function fillProviderDefaults(raw: Record<string, unknown>): void {
  const identity = raw.identity as Record<string, unknown> | undefined;
  for (const [key, schema] of [['oidc', OidcProvider], ['saml', SamlProvider]] as const) {
    const providers = identity?.[key];
    if (typeof providers !== 'object' || providers === null || Array.isArray(providers)) continue;
    for (const [name, p] of Object.entries(providers)) {
      if (typeof p === 'object' && p !== null && !Array.isArray(p)) (providers as Record<string, unknown>)[name] = Value.Default(schema, p);
    }
  }
}
