import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parse as parseYaml } from 'yaml';
import { PalisadeError } from '@palisade/core';
import { fillProviderDefaults, IdentityConfigSchema } from '../engines/identity/config.js';
import { GatewayConfigSchema, fillGatewayDefaults, gatewayConfigProblems } from '../engines/gateway/config.js';

/** Every setting, its type and its default. `palisade.yaml` uses these names; env vars override them. */
export const ConfigSchema = Type.Object(
  {
    addr: Type.String({ pattern: '^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$', default: '127.0.0.1:8443', description: 'host:port to listen on (PALISADE_ADDR)' }),
    data_dir: Type.String({ minLength: 1, default: './.palisade', description: 'data directory (PALISADE_DATA_DIR)' }),
    database_url: Type.Optional(Type.String({ pattern: '^(postgres(ql)?://|sqlite:).+', description: 'postgres://... for PostgreSQL; SQLite in the data directory when unset (PALISADE_DATABASE_URL)' })),
    redis_url: Type.Optional(Type.String({ pattern: '^rediss?://', description: 'optional Redis (PALISADE_REDIS_URL)' })),
    log_level: Type.Union([Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'), Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent')], { default: 'info' }),
    bootstrap_token: Type.Optional(Type.String({ minLength: 32, maxLength: 512, pattern: '^[\\x21-\\x7e]+$', description: 'owner API key to create on first start (PALISADE_BOOTSTRAP_TOKEN); at least 32 characters' })),
    seal: Type.Object(
      {
        provider: Type.Union([Type.Literal('file'), Type.Literal('passphrase'), Type.Literal('pkcs11')], { default: 'file', description: 'file (development only), passphrase, or pkcs11 (an HSM) (PALISADE_SEAL)' }),
        pkcs11: Type.Object(
          {
            module: Type.Optional(Type.String({ minLength: 1, description: 'path of the PKCS#11 library (PALISADE_PKCS11_MODULE)' })),
            token: Type.Optional(Type.String({ minLength: 1, maxLength: 32, description: 'token label (PALISADE_PKCS11_TOKEN)' })),
            slot: Type.Optional(Type.Integer({ minimum: 0, description: 'slot id, instead of the token label (PALISADE_PKCS11_SLOT)' })),
            pin: Type.Optional(Type.String({ minLength: 1, description: 'user PIN; prefer PALISADE_PKCS11_PIN or pin_file over writing it here' })),
            pin_file: Type.Optional(Type.String({ minLength: 1, description: 'file holding the user PIN (PALISADE_PKCS11_PIN_FILE)' })),
            key_label: Type.String({ minLength: 1, maxLength: 64, default: 'palisade-root', description: 'label of the root key object in the token' }),
          },
          { default: {}, additionalProperties: false },
        ),
        argon2: Type.Object(
          {
            memory_kib: Type.Integer({ minimum: 8192, maximum: 4 * 1024 * 1024, default: 65536 }),
            iterations: Type.Integer({ minimum: 1, maximum: 100, default: 3 }),
            parallelism: Type.Integer({ minimum: 1, maximum: 16, default: 1 }),
          },
          { default: {}, additionalProperties: false, description: 'Argon2id cost for the passphrase seal (fixed at init and re-key)' },
        ),
        health_check_seconds: Type.Integer({ minimum: 1, maximum: 3600, default: 15, description: 'how often the root of trust (HSM session) is checked' }),
      },
      { default: {}, additionalProperties: false },
    ),
    tls: Type.Object(
      {
        min_version: Type.Union([Type.Literal('TLSv1.3'), Type.Literal('TLSv1.2')], { default: 'TLSv1.3', description: 'TLSv1.2 adds only ECDHE AEAD suites and turns session tickets off (PALISADE_TLS_MIN_VERSION)' }),
        names: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'extra DNS names / IPs for the server certificate' }),
        reload_check_seconds: Type.Integer({ minimum: 1, maximum: 86_400, default: 60, description: 'how often the listener looks for a renewed certificate; new handshakes use it, open connections are untouched (PALISADE_TLS_RELOAD_CHECK_SECONDS)' }),
        client_auth: Type.Object(
          {
            mode: Type.Union([Type.Literal('off'), Type.Literal('optional'), Type.Literal('require')], {
              default: 'optional',
              description:
                'mTLS: off = no client certificate is asked for; optional = asked for, a bad one is answered with a 401 problem naming the reason; require = the handshake fails without a certificate chaining to the trust roots (even /healthz) (PALISADE_TLS_CLIENT_AUTH)',
            }),
            revocation_check_seconds: Type.Integer({ minimum: 1, maximum: 86_400, default: 60, description: 'the revoked-serials list is re-read at most this often: a revoked client certificate is refused within this bound' }),
            identities: Type.Record(Type.String({ pattern: '^spiffe://.+' }), Type.Array(Type.String({ minLength: 1 })), {
              default: {},
              description: 'SPIFFE id glob (`*` = one path segment, `**` = any) -> permissions of the certificates naming a matching id (union of all matches); none by default: least privilege',
            }),
          },
          { default: {}, additionalProperties: false },
        ),
      },
      { default: {}, additionalProperties: false },
    ),
    storage: Type.Object({ sqlite_synchronous: Type.Union([Type.Literal('full'), Type.Literal('normal')], { default: 'full' }) }, { default: {}, additionalProperties: false }),
    limits: Type.Object({ body_bytes: Type.Integer({ minimum: 1, maximum: 64 * 1024 * 1024, default: 10 * 1024 * 1024, description: 'largest request body' }) }, { default: {}, additionalProperties: false }),
    metrics: Type.Object({ public: Type.Boolean({ default: false, description: 'serve /metrics without a token' }) }, { default: {}, additionalProperties: false }),
    kms: Type.Object(
      {
        rotation_days: Type.Object(
          { internal: Type.Integer({ minimum: 1, maximum: 3650, default: 90 }), confidential: Type.Integer({ minimum: 1, maximum: 3650, default: 30 }), restricted: Type.Integer({ minimum: 1, maximum: 3650, default: 7 }) },
          { default: {}, additionalProperties: false },
        ),
        max_encryptions_per_version: Type.Integer({ minimum: 1, maximum: 2 ** 32, default: 2 ** 32, description: 'retire a key version after this many encryptions (NIST SP 800-38D)' }),
        nonce_block: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1024, description: 'encryptions a node reserves at once' }),
        scheduler_interval_seconds: Type.Integer({ minimum: 1, maximum: 86_400, default: 60, description: 'how often due rotations and destructions run' }),
        rotation_policies: Type.Object(
          {
            DEK: Type.Object({ frequency_days: Type.Integer({ minimum: 1, maximum: 3650, default: 30 }), overlap_days: Type.Integer({ minimum: 0, maximum: 365, default: 7 }), approval: Type.Boolean({ default: false }) }, { default: {}, additionalProperties: false }),
            KEK: Type.Object({ frequency_days: Type.Integer({ minimum: 1, maximum: 3650, default: 90 }), overlap_days: Type.Integer({ minimum: 0, maximum: 365, default: 30 }), approval: Type.Boolean({ default: true }) }, { default: {}, additionalProperties: false }),
            signing: Type.Object({ frequency_days: Type.Integer({ minimum: 1, maximum: 3650, default: 180 }), overlap_days: Type.Integer({ minimum: 0, maximum: 365, default: 90 }), approval: Type.Boolean({ default: true }) }, { default: {}, additionalProperties: false }),
            TLS: Type.Object({ frequency_days: Type.Integer({ minimum: 1, maximum: 3650, default: 90 }), overlap_days: Type.Integer({ minimum: 0, maximum: 365, default: 30 }), approval: Type.Boolean({ default: false }) }, { default: {}, additionalProperties: false }),
            hmac: Type.Object({ frequency_days: Type.Integer({ minimum: 1, maximum: 3650, default: 30 }), overlap_days: Type.Integer({ minimum: 0, maximum: 365, default: 7 }), approval: Type.Boolean({ default: false }) }, { default: {}, additionalProperties: false }),
          },
          { default: {}, additionalProperties: false, description: "the seed's key_rotation_policies by key type: a key rotates at the stricter of its type's frequency and its classification's period; approval = a second principal approves; overlap = days the previous version stays active" },
        ),
      },
      { default: {}, additionalProperties: false },
    ),
    pki: Type.Object(
      {
        trust_domain: Type.String({ pattern: '^(?!-)[a-z0-9-]{1,63}(\\.[a-z0-9-]{1,63})*$', default: 'palisade.internal', description: 'the SPIFFE trust domain and the suffix of service names ({service}.{environment}.<trust domain>)' }),
        organization: Type.String({ minLength: 1, maxLength: 64, default: 'Palisade', description: 'O of CA and service certificates' }),
        country: Type.String({ pattern: '^[A-Z]{2}$', default: 'US', description: 'C of CA and service certificates (ISO 3166 code)' }),
        environment: Type.String({ pattern: '^[a-z0-9-]{1,63}$', default: 'production', description: 'default {environment} of issued names' }),
        base_url: Type.Optional(Type.String({ pattern: '^https?://[^/?#]+$', description: 'scheme://host[:port] written into certificates for the CRL, OCSP and CA issuers; https://<addr> when unset' })),
        root: Type.Object(
          {
            algorithm: Type.Union([Type.Literal('ECDSA-P384'), Type.Literal('ECDSA-P256'), Type.Literal('RSA-4096')], { default: 'ECDSA-P384' }),
            validity_days: Type.Integer({ minimum: 30, maximum: 36_500, default: 3650 }),
            common_name: Type.String({ minLength: 1, maxLength: 64, default: 'Palisade Root CA' }),
          },
          { default: {}, additionalProperties: false },
        ),
        intermediate: Type.Object(
          {
            algorithm: Type.Union([Type.Literal('ECDSA-P384'), Type.Literal('ECDSA-P256'), Type.Literal('RSA-4096')], { default: 'ECDSA-P384' }),
            validity_days: Type.Integer({ minimum: 30, maximum: 36_500, default: 1825 }),
            common_name: Type.String({ minLength: 1, maxLength: 64, default: 'Palisade Intermediate CA' }),
          },
          { default: {}, additionalProperties: false },
        ),
        crl_validity_hours: Type.Integer({ minimum: 1, maximum: 24 * 30, default: 24, description: 'nextUpdate of each CRL; a new one is signed at half of it, and at once after a revocation' }),
        ocsp_validity_hours: Type.Integer({ minimum: 1, maximum: 24 * 7, default: 4, description: 'nextUpdate of OCSP answers' }),
        renew_before_days: Type.Integer({ minimum: 1, maximum: 365, default: 30, description: 'certificates Palisade manages (its own listener) are renewed this long before expiry' }),
        templates: Type.Record(
          Type.String({ pattern: '^[a-z0-9-]{1,32}$' }),
          Type.Object(
            {
              subject: Type.Object({ cn: Type.String({ minLength: 1 }), o: Type.Optional(Type.String()), ou: Type.Optional(Type.String()), c: Type.Optional(Type.String()) }, { additionalProperties: false }),
              dns: Type.Array(Type.String({ minLength: 1 }), { default: [] }),
              ip: Type.Array(Type.String({ minLength: 1 }), { default: [] }),
              uri: Type.Array(Type.String({ minLength: 1 }), { default: [] }),
              key_usage: Type.Array(Type.Union([Type.Literal('digitalSignature'), Type.Literal('keyEncipherment'), Type.Literal('keyAgreement')]), { default: ['digitalSignature'] }),
              ext_key_usage: Type.Array(Type.Union([Type.Literal('serverAuth'), Type.Literal('clientAuth')]), { default: ['serverAuth', 'clientAuth'] }),
              ttl_days: Type.Integer({ minimum: 1, maximum: 825, default: 90 }),
              max_ttl_days: Type.Integer({ minimum: 1, maximum: 825, default: 90 }),
            },
            { additionalProperties: false },
          ),
          { default: {}, description: 'issuance templates by name, added to the built-in `service` (the seed\'s service_certificate_template); placeholders {service} {environment} {namespace} {department} {service_ip} {trust_domain} {organization} {country}' },
        ),
        policy: Type.Optional(
          Type.Array(
            Type.Object(
              {
                principals: Type.Array(Type.String({ minLength: 1 }), { minItems: 1 }),
                templates: Type.Array(Type.String({ minLength: 1 }), { default: ['*'] }),
                services: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'globs; {principal} = the caller\'s own service' }),
                namespaces: Type.Array(Type.String({ minLength: 1 }), { default: ['{principal}'], description: 'globs; {principal} = the caller\'s own namespace (of its SPIFFE id; default for other principals)' }),
                environments: Type.Array(Type.String({ minLength: 1 }), { default: ['*'] }),
                extra_dns: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'globs for further DNS names (* = one label, ** = any)' }),
                ip_ranges: Type.Array(Type.String({ pattern: '^[0-9a-fA-F:.]+/[0-9]{1,3}$' }), { default: [] }),
              },
              { additionalProperties: false },
            ),
            { description: 'who may ask for which names; default: the owner anything, every other principal only its own service' },
          ),
        ),
      },
      { default: {}, additionalProperties: false },
    ),
    audit: Type.Object(
      {
        origin: Type.Optional(Type.String({ minLength: 1, maxLength: 200, pattern: '^[\\x21-\\x7e]+$', description: 'checkpoint origin line (the log\'s name for verifiers and witnesses); palisade/audit/<log id> when unset' })),
        checkpoint: Type.Object(
          {
            interval_seconds: Type.Integer({ minimum: 1, maximum: 86_400, default: 10, description: 'sign a checkpoint at least this often when the log grew' }),
            max_events: Type.Integer({ minimum: 1, maximum: 10_000_000, default: 1000, description: '... or as soon as this many events were appended since the last one' }),
          },
          { default: {}, additionalProperties: false },
        ),
        anchors: Type.Array(
          Type.Object(
            {
              name: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._-]+$' }),
              kind: Type.Union([Type.Literal('witness'), Type.Literal('rfc3161')], { description: 'a C2SP tlog-witness (cosigns) or an RFC 3161 time-stamping authority' }),
              url: Type.String({ pattern: '^https?://' }),
              key: Type.Optional(Type.String({ minLength: 1, description: "witness: its verifier key (name+hash+base64 key), to check its cosignatures" })),
              ca_file: Type.Optional(Type.String({ minLength: 1, description: 'CA certificate (PEM) to trust for https, and for an rfc3161 TSA to verify its tokens' })),
            },
            { additionalProperties: false },
          ),
          { default: [], description: 'where checkpoints are anchored: witnesses cosign, time-stamping authorities timestamp' },
        ),
        exports: Type.Array(
          Type.Object(
            {
              name: Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._-]+$' }),
              kind: Type.Union([Type.Literal('syslog'), Type.Literal('webhook')]),
              format: Type.Union([Type.Literal('rfc5424'), Type.Literal('cef'), Type.Literal('ocsf')], { default: 'ocsf' }),
              url: Type.String({ pattern: '^(tls|tcp|https?)://', description: 'tls://host:port for syslog (RFC 5425), https://... for a webhook' }),
              ca_file: Type.Optional(Type.String({ minLength: 1 })),
              secret_file: Type.Optional(Type.String({ minLength: 1, description: 'webhook: file holding the HMAC secret that signs each delivery' })),
              types: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'event types (or prefixes ending in *) to send; all when unset' })),
            },
            { additionalProperties: false },
          ),
          { default: [], description: 'SIEM sinks; each receives every event at least once, resuming from its cursor after a restart' },
        ),
        retention: Type.Object(
          {
            default_days: Type.Integer({ minimum: 1, maximum: 36_500, default: 2555, description: 'how long an event\'s payload is kept (seven years)' }),
            classes: Type.Record(Type.String({ pattern: '^[a-z0-9_.]+\\*?$' }), Type.Integer({ minimum: 1, maximum: 36_500 }), { default: {}, description: 'days by event type or prefix (kms.*); the longest match wins' }),
            purge_interval_seconds: Type.Integer({ minimum: 1, maximum: 86_400 * 7, default: 3600 }),
          },
          { default: {}, additionalProperties: false },
        ),
      },
      { default: {}, additionalProperties: false },
    ),
    acme: Type.Object(
      {
        require_eab: Type.Boolean({ default: true, description: 'newAccount needs an External Account Binding (an EAB key from POST /v1/acme/eab-keys)' }),
        base_url: Type.Optional(Type.String({ pattern: '^https?://[^/?#]+$', description: 'scheme://host[:port] clients reach the server at; from the request\'s Host when unset' })),
        terms_of_service: Type.Optional(Type.String({ pattern: '^https?://', description: 'termsOfService URL in the directory; when set, newAccount needs termsOfServiceAgreed' })),
        nonce_ttl_seconds: Type.Integer({ minimum: 10, maximum: 86_400, default: 3600 }),
        order_ttl_hours: Type.Integer({ minimum: 1, maximum: 24 * 30, default: 24, description: 'pending orders and authorizations expire after this' }),
        new_orders_per_hour: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 300, description: 'rate limit per account (counted in the database, so across nodes); 0 disables it' }),
        challenge: Type.Object(
          {
            http_port: Type.Integer({ minimum: 1, maximum: 65535, default: 80, description: 'port http-01 validation connects to' }),
            tls_port: Type.Integer({ minimum: 1, maximum: 65535, default: 443, description: 'port tls-alpn-01 validation connects to' }),
            dns_servers: Type.Array(Type.String({ pattern: '^(\\[[0-9a-fA-F:.]+\\]|[0-9.]+):[0-9]{1,5}$' }), { default: [], description: 'ip:port resolvers for dns-01 TXT and the A/AAAA of http-01/tls-alpn-01 targets; the system resolver when empty' }),
            timeout_seconds: Type.Integer({ minimum: 1, maximum: 300, default: 10, description: 'deadline of one validation' }),
            allow_loopback: Type.Boolean({ default: false, description: 'let validation connect to 127.0.0.0/8 and ::1 (tests, single-host setups)' }),
            allow_link_local: Type.Boolean({ default: false, description: 'let validation connect to link-local addresses (169.254/16, fe80::/10; cloud metadata lives there)' }),
          },
          { default: {}, additionalProperties: false },
        ),
      },
      { default: {}, additionalProperties: false },
    ),
    identity: IdentityConfigSchema,
    authz: Type.Object(
      {
        generation_poll_ms: Type.Integer({
          minimum: 50,
          maximum: 60_000,
          default: 1000,
          description: 'how often each node reads the authorization generation, the backstop should a change notification (PostgreSQL NOTIFY) be lost',
        }),
      },
      { default: {}, additionalProperties: false },
    ),
    gateway: GatewayConfigSchema,
    shutdown_grace_seconds: Type.Integer({ minimum: 0, maximum: 600, default: 25 }),
    gc_threads_nice: Type.Integer({
      minimum: 0,
      maximum: 19,
      default: 10,
      description: 'how many nice steps below the event loop `palisade serve` puts V8\'s garbage-collector threads on Linux, so that on busy cores the event loop runs first; 0 leaves them at the process\'s priority (PALISADE_GC_THREADS_NICE; ADR 0015)',
    }),
  },
  { additionalProperties: false },
);
export type Config = Static<typeof ConfigSchema>;

/** Environment variables and the setting each one overrides. */
const ENV: Record<string, { path: string[]; kind: 'string' | 'int' | 'bool' | 'list' }> = {
  PALISADE_ADDR: { path: ['addr'], kind: 'string' },
  PALISADE_DATA_DIR: { path: ['data_dir'], kind: 'string' },
  PALISADE_DATABASE_URL: { path: ['database_url'], kind: 'string' },
  PALISADE_REDIS_URL: { path: ['redis_url'], kind: 'string' },
  PALISADE_PUBLIC_URL: { path: ['identity', 'public_url'], kind: 'string' },
  PALISADE_MFA_REQUIRED: { path: ['identity', 'mfa_required'], kind: 'bool' },
  PALISADE_LOG_LEVEL: { path: ['log_level'], kind: 'string' },
  PALISADE_BOOTSTRAP_TOKEN: { path: ['bootstrap_token'], kind: 'string' },
  PALISADE_SEAL: { path: ['seal', 'provider'], kind: 'string' },
  PALISADE_PKCS11_MODULE: { path: ['seal', 'pkcs11', 'module'], kind: 'string' },
  PALISADE_PKCS11_TOKEN: { path: ['seal', 'pkcs11', 'token'], kind: 'string' },
  PALISADE_PKCS11_SLOT: { path: ['seal', 'pkcs11', 'slot'], kind: 'int' },
  PALISADE_PKCS11_PIN: { path: ['seal', 'pkcs11', 'pin'], kind: 'string' },
  PALISADE_PKCS11_PIN_FILE: { path: ['seal', 'pkcs11', 'pin_file'], kind: 'string' },
  PALISADE_TLS_MIN_VERSION: { path: ['tls', 'min_version'], kind: 'string' },
  PALISADE_TLS_NAMES: { path: ['tls', 'names'], kind: 'list' },
  PALISADE_TLS_RELOAD_CHECK_SECONDS: { path: ['tls', 'reload_check_seconds'], kind: 'int' },
  PALISADE_TLS_CLIENT_AUTH: { path: ['tls', 'client_auth', 'mode'], kind: 'string' },
  PALISADE_PKI_TRUST_DOMAIN: { path: ['pki', 'trust_domain'], kind: 'string' },
  PALISADE_PKI_BASE_URL: { path: ['pki', 'base_url'], kind: 'string' },
  PALISADE_SQLITE_SYNCHRONOUS: { path: ['storage', 'sqlite_synchronous'], kind: 'string' },
  PALISADE_METRICS_PUBLIC: { path: ['metrics', 'public'], kind: 'bool' },
  PALISADE_KMS_MAX_ENCRYPTIONS_PER_VERSION: { path: ['kms', 'max_encryptions_per_version'], kind: 'int' },
  PALISADE_KMS_SCHEDULER_INTERVAL_SECONDS: { path: ['kms', 'scheduler_interval_seconds'], kind: 'int' },
  PALISADE_AUDIT_ORIGIN: { path: ['audit', 'origin'], kind: 'string' },
  PALISADE_ACME_REQUIRE_EAB: { path: ['acme', 'require_eab'], kind: 'bool' },
  PALISADE_ACME_BASE_URL: { path: ['acme', 'base_url'], kind: 'string' },
  PALISADE_AUDIT_CHECKPOINT_SECONDS: { path: ['audit', 'checkpoint', 'interval_seconds'], kind: 'int' },
  PALISADE_GATEWAY_ENABLED: { path: ['gateway', 'enabled'], kind: 'bool' },
  PALISADE_GATEWAY_ADDR: { path: ['gateway', 'addr'], kind: 'string' },
  PALISADE_GC_THREADS_NICE: { path: ['gc_threads_nice'], kind: 'int' },
};

function invalid(setting: string, reason: string): PalisadeError {
  return new PalisadeError('PAL_CONFIG_INVALID', `invalid setting ${setting}: ${reason}`, { extensions: { setting } });
}

function setPath(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let cur = obj;
  for (const seg of path.slice(0, -1)) {
    if (typeof cur[seg] !== 'object' || cur[seg] === null) cur[seg] = {};
    cur = cur[seg] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = value;
}

/**
 * Load `palisade.yaml` (PALISADE_CONFIG, else ./palisade.yaml if present), apply env overrides, fill defaults, and
 * validate. Throws PAL_CONFIG_INVALID naming the setting and the reason.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Config {
  const file = env.PALISADE_CONFIG ?? (existsSync(resolve(cwd, 'palisade.yaml')) ? 'palisade.yaml' : undefined);
  let raw: Record<string, unknown> = {};
  if (file) {
    const path = isAbsolute(file) ? file : resolve(cwd, file);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      throw invalid('PALISADE_CONFIG', `cannot read ${path}: ${(e as Error).message}`);
    }
    try {
      raw = (parseYaml(text) as Record<string, unknown> | null) ?? {};
    } catch (e) {
      throw invalid(path, `not valid YAML: ${(e as Error).message}`);
    }
    if (typeof raw !== 'object' || Array.isArray(raw)) throw invalid(path, 'the top level must be a mapping');
  }
  for (const [name, spec] of Object.entries(ENV)) {
    const v = env[name];
    if (v === undefined || v === '') continue;
    let value: unknown = v;
    if (spec.kind === 'int') {
      if (!/^[0-9]+$/.test(v)) throw invalid(name, `must be a whole number, got "${v}"`);
      value = Number(v);
    } else if (spec.kind === 'bool') {
      if (!['true', 'false', '1', '0'].includes(v)) throw invalid(name, `must be true or false, got "${v}"`);
      value = v === 'true' || v === '1';
    } else if (spec.kind === 'list') {
      value = v.split(',').map((s) => s.trim()).filter(Boolean);
    }
    setPath(raw, spec.path, value);
  }
  const withDefaults = Value.Default(ConfigSchema, Value.Clone(raw)) as Record<string, unknown>;
  fillProviderDefaults(withDefaults);
  fillGatewayDefaults(withDefaults);
  const first = Value.Errors(ConfigSchema, withDefaults).First();
  if (first) {
    const setting = first.path.replace(/^\//, '').replace(/\//g, '.') || '(root)';
    const envName = Object.entries(ENV).find(([, s]) => s.path.join('.') === setting)?.[0];
    throw invalid(envName ? `${setting} (${envName})` : setting, first.message);
  }
  const config = withDefaults as Config;
  const port = Number(config.addr.slice(config.addr.lastIndexOf(':') + 1));
  if (port > 65535) throw invalid('addr (PALISADE_ADDR)', `port ${port} is out of range`);
  config.data_dir = resolve(cwd, config.data_dir);
  const gw = gatewayConfigProblems(config.gateway)[0];
  if (gw) throw invalid(gw.setting, gw.reason);
  if (config.seal.provider === 'pkcs11') {
    const p = config.seal.pkcs11;
    if (!p.module) throw invalid('seal.pkcs11.module (PALISADE_PKCS11_MODULE)', 'required when seal.provider is pkcs11');
    if (p.token === undefined && p.slot === undefined) throw invalid('seal.pkcs11.token (PALISADE_PKCS11_TOKEN)', 'name the token by label (or seal.pkcs11.slot)');
    if (p.pin === undefined && p.pin_file === undefined) throw invalid('seal.pkcs11.pin (PALISADE_PKCS11_PIN)', 'give the user PIN in PALISADE_PKCS11_PIN or a file in PALISADE_PKCS11_PIN_FILE');
  }
  return config;
}

export function splitAddr(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  return { host: addr.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(addr.slice(i + 1)) };
}
