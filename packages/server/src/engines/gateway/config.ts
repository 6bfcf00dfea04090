/**
 * The gateway's settings (`gateway:` in palisade.yaml): its listener, upstreams, routes and limits. The defaults are
 * the seed's `api_gateway_security` (rate limits, 10 MB bodies, JSON content types, response headers); the gateway is
 * off until an operator turns it on and names at least one route.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { compilePattern } from './path-pattern.js';

const int = (minimum: number, maximum: number, def: number, description: string) => Type.Integer({ minimum, maximum, default: def, description });

export const AUTH_METHODS = ['bearer_token', 'api_key', 'client_cert'] as const;
export type AuthMethod = (typeof AUTH_METHODS)[number];

/** "100 per minute, bursts of 10": `burst` caps any burst × (period / requests) span (see rate-limit.ts). */
export const Rate = Type.Object(
  {
    requests: Type.Integer({ minimum: 1, maximum: 10_000_000, description: 'requests allowed per period' }),
    per: Type.Union([Type.Literal('second'), Type.Literal('minute'), Type.Literal('hour')], { description: 'the period' }),
    burst: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000_000, description: 'at most this many in any burst × (period / requests) span' })),
  },
  { additionalProperties: false },
);
export type RateSetting = Static<typeof Rate>;

export const Upstream = Type.Object(
  {
    url: Type.String({ pattern: '^https?://[^/?#]+(/[^?#]*)?$', description: 'scheme://host:port[/base path] of the upstream' }),
    ca_file: Type.Optional(Type.String({ minLength: 1, description: 'CA certificate (PEM) to trust for an https upstream' })),
    timeout_ms: int(1, 3_600_000, 30_000, 'time for the upstream to start its answer (headers), else 504; streams may then run longer'),
    connect_timeout_ms: int(1, 60_000, 5_000, 'time to connect, else 502'),
    max_connections: int(1, 100_000, 256, 'keep-alive connections to this upstream at most'),
    circuit: Type.Object(
      {
        failure_threshold: int(1, 10_000, 5, 'consecutive failures (connection errors, timeouts, 5xx) that open the circuit'),
        open_seconds: int(1, 3600, 30, 'how long an open circuit refuses before one probe is let through'),
      },
      { default: {}, additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);

/** Where in the JSON body prompts or tool results are, and what to do with the detector's verdict. */
const Screening = Type.Object(
  {
    paths: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'JSON paths (`messages[*].content`, `input`) of the texts to screen' }),
    kind: Type.Union([Type.Literal('prompt'), Type.Literal('tool_result')], { default: 'prompt' }),
    action: Type.Union([Type.Literal('block'), Type.Literal('flag')], { default: 'block', description: 'block: 403 PAL_GATEWAY_PROMPT_BLOCKED above the threshold; flag: forward, audit, and tell the upstream in Palisade-Prompt-Screening' }),
    threshold: Type.Number({ minimum: 0, maximum: 1, default: 0.5, description: 'detector score at or above which the action applies' }),
  },
  { additionalProperties: false },
);

/** Fields of the JSON body encrypted by the SDK (request) or for it (response): path -> {classification, data_type}. */
const FieldSchema = Type.Record(
  Type.String({ minLength: 1 }),
  Type.Object({ classification: Type.Union([Type.Literal('internal'), Type.Literal('confidential'), Type.Literal('restricted')]), data_type: Type.String({ pattern: '^[a-z][a-z0-9_-]{0,62}$' }) }, { additionalProperties: false }),
);
const KEK = Type.String({ minLength: 1, description: 'a KMS key (KEK) id or name' });

export const GatewayRoute = Type.Object(
  {
    name: Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,62}$', description: 'the route\'s name in logs, metrics and audit events' }),
    path: Type.String({ pattern: '^/', description: 'a path pattern: literal segments, `:name` for one segment, a trailing `*` for any rest' }),
    methods: Type.Array(Type.Union(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'].map((m) => Type.Literal(m))), { minItems: 1, default: ['GET', 'POST'] }),
    upstream: Type.String({ minLength: 1, description: 'a name from gateway.upstreams' }),
    upstream_path: Type.Optional(Type.String({ pattern: '^/', description: 'replace the matched literal prefix (the pattern up to its first `:` or `*`) with this' })),
    auth: Type.Array(Type.Union(AUTH_METHODS.map((m) => Type.Literal(m))), { default: [...AUTH_METHODS], description: 'accepted credentials; [] makes the route public (no permission then)' }),
    permission: Type.Optional(Type.String({ pattern: '^[a-z0-9*-]+(:[a-z0-9*-]+)*$', description: 'the permission the authorization engine decides (default gateway:<route name>:invoke)' })),
    schema: Type.Optional(Type.Unknown({ description: 'a JSON Schema (draft 2020-12) the JSON body must satisfy' })),
    max_body_bytes: Type.Optional(Type.Integer({ minimum: 0, maximum: 1024 * 1024 * 1024, description: 'largest body (default gateway.limits.body_bytes)' })),
    content_types: Type.Array(Type.String({ pattern: '^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+*-]+$' }), { default: ['application/json'], description: 'accepted media types of a body (parameters ignored); `*/*` accepts any' }),
    signed: Type.Boolean({ default: false, description: 'require a Palisade-Signature (HMAC) from a signing key of the authenticated principal' }),
    screen: Type.Optional(Screening),
    encrypt: Type.Optional(
      Type.Object(
        {
          keys: Type.Object({ internal: Type.Optional(KEK), confidential: Type.Optional(KEK), restricted: Type.Optional(KEK) }, { additionalProperties: false, description: 'the KMS key wrapping the data keys of each classification (the same as the SDK clients use)' }),
          request: Type.Optional(FieldSchema),
          response: Type.Optional(FieldSchema),
        },
        { additionalProperties: false, description: 'field-level encryption: request fields the SDK sealed are opened for the upstream; response fields are sealed for the client' },
      ),
    ),
    websocket: Type.Boolean({ default: false, description: 'accept WebSocket upgrades (GET) and relay frames both ways' }),
    timeout_ms: Type.Optional(Type.Integer({ minimum: 1, maximum: 3_600_000, description: 'overrides the upstream\'s timeout_ms' })),
  },
  { additionalProperties: false },
);
export type GatewayRouteSetting = Static<typeof GatewayRoute>;

export const GatewayConfigSchema = Type.Object(
  {
    enabled: Type.Boolean({ default: false, description: 'serve the gateway listener (PALISADE_GATEWAY_ENABLED)' }),
    addr: Type.String({ pattern: '^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$', default: '127.0.0.1:8444', description: 'host:port of the gateway listener (PALISADE_GATEWAY_ADDR); HTTPS with the server\'s certificate' }),
    upstreams: Type.Record(Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' }), Upstream, { default: {} }),
    routes: Type.Array(GatewayRoute, { default: [], description: 'matched in order; the first whose pattern and method match wins' }),
    rate_limits: Type.Object(
      {
        global: Type.Union([Rate, Type.Null()], { default: { requests: 1000, per: 'second', burst: 100 }, description: 'all requests together (null: none)' }),
        per_client: Type.Union([Rate, Type.Null()], { default: { requests: 60, per: 'minute', burst: 10 }, description: 'per principal, or per address on public routes (null: none)' }),
        per_endpoint: Type.Record(Type.String({ pattern: '^/' }), Rate, {
          default: { '/auth/*': { requests: 10, per: 'minute' }, '/framework/*': { requests: 100, per: 'minute' }, '/admin/*': { requests: 5, per: 'minute' } },
          description: 'path pattern -> limit, counted per client',
        }),
        on_store_error: Type.Union([Type.Literal('deny'), Type.Literal('allow')], { default: 'deny', description: 'when Redis cannot answer: deny (503) or let requests through unlimited' }),
      },
      { default: {}, additionalProperties: false, description: "the seed's limits by default; counted in Redis (exact across nodes) when redis_url is set, else in this process" },
    ),
    limits: Type.Object(
      {
        body_bytes: int(0, 1024 * 1024 * 1024, 10 * 1024 * 1024, 'largest request body (the seed: 10 MB)'),
        header_bytes: int(1024, 1024 * 1024, 16 * 1024, 'largest request line + headers (431 beyond)'),
        headers_timeout_ms: int(100, 600_000, 10_000, 'time for a client to send its headers (408)'),
        request_timeout_ms: int(100, 3_600_000, 30_000, 'time for a client to send its whole request (408)'),
        keep_alive_timeout_ms: int(100, 600_000, 5_000, 'idle keep-alive connections are closed after this'),
      },
      { default: {}, additionalProperties: false },
    ),
    headers: Type.Object(
      {
        content_security_policy: Type.String({ default: "default-src 'self'" }),
        referrer_policy: Type.String({ default: 'strict-origin-when-cross-origin' }),
        strict_transport_security: Type.String({ default: 'max-age=31536000; includeSubDomains' }),
      },
      { default: {}, additionalProperties: false, description: "the seed's response headers, set on every answer (X-Frame-Options DENY and nosniff always)" },
    ),
  },
  { default: {}, additionalProperties: false },
);
export type GatewayConfig = Static<typeof GatewayConfigSchema>;

/** What the schema cannot say: routes name existing upstreams, patterns compile, names are unique. Problems, or []. */
export function gatewayConfigProblems(c: GatewayConfig): Array<{ setting: string; reason: string }> {
  const out: Array<{ setting: string; reason: string }> = [];
  const names = new Set<string>();
  c.routes.forEach((r, i) => {
    const at = `gateway.routes.${i}`;
    if (names.has(r.name)) out.push({ setting: `${at}.name`, reason: `route name ${r.name} is used twice` });
    names.add(r.name);
    if (!Object.hasOwn(c.upstreams, r.upstream)) out.push({ setting: `${at}.upstream`, reason: `no upstream named ${r.upstream} in gateway.upstreams` });
    try {
      compilePattern(r.path);
    } catch (e) {
      out.push({ setting: `${at}.path`, reason: (e as Error).message });
    }
    if (r.websocket && !r.methods.includes('GET')) out.push({ setting: `${at}.methods`, reason: 'a websocket route must accept GET (the upgrade request)' });
  });
  for (const p of Object.keys(c.rate_limits.per_endpoint)) {
    try {
      compilePattern(p);
    } catch (e) {
      out.push({ setting: `gateway.rate_limits.per_endpoint.${p}`, reason: (e as Error).message });
    }
  }
  if (c.enabled && c.routes.length === 0) out.push({ setting: 'gateway.routes', reason: 'the gateway is enabled but has no routes' });
  return out;
}

/** TypeBox fills no defaults inside a Record's values: the upstreams' own (timeouts, pool, circuit) are filled here. */
export function fillGatewayDefaults(raw: Record<string, unknown>): void {
  const upstreams = (raw.gateway as Record<string, unknown> | undefined)?.upstreams;
  if (typeof upstreams !== 'object' || upstreams === null || Array.isArray(upstreams)) return;
  for (const [name, u] of Object.entries(upstreams)) {
    if (typeof u === 'object' && u !== null && !Array.isArray(u)) (upstreams as Record<string, unknown>)[name] = Value.Default(Upstream, u);
  }
}
