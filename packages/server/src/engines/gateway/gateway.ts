/**
 * The gateway in front of the agent framework. Each request goes through these steps, in this order, and the first
 * that refuses answers (a problem document; the refusal audited and counted) so the upstream never sees it:
 *
 *   | step            | refuses with                                                                              |
 *   |-----------------|-------------------------------------------------------------------------------------------|
 *   | Node's parser   | 400 smuggling / bad header, 431 headers too large, 408 slow client (listener.ts)          |
 *   | request target  | 400 PAL_GATEWAY_PATH_REJECTED: dot segments, encoded slashes, double encoding, ...        |
 *   | headers         | 400 PAL_GATEWAY_REQUEST_SMUGGLING (CL/TE), PAL_GATEWAY_HEADER_REJECTED (injection)        |
 *   | route           | 404 / 405 (first route whose pattern and method match)                                    |
 *   | authentication  | 401: the route's accepted methods (bearer JWT, API key, client certificate)               |
 *   | rate limits     | 429 + Retry-After + RateLimit: global, per client, per endpoint (Redis: exact across nodes)|
 *   | authorization   | 403: the authorization engine decides the route's permission, with context                |
 *   | body            | 413 over the route's limit, 415 content type, 400 invalid JSON, 400 JSON Schema (2020-12)  |
 *   | signature       | 401 PAL_SIGNATURE_*: HMAC, clock skew, replayed nonce (routes with `signed`)             |
 *   | fields          | 400 PAL_FIELD_*: SDK-sealed request fields are opened for the upstream                     |
 *   | screening       | 403 PAL_GATEWAY_PROMPT_BLOCKED (or flagged and forwarded), by the route's policy          |
 *   | upstream        | 502 unreachable, 504 too slow, 503 circuit open; the response streams back                |
 *
 * Every answer carries the seed's security headers. The request log has one line per request (route, status,
 * times, principal, sizes), never a body.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { PalisadeError, isPalisadeError } from '@palisade/core';
import type { Principal } from '../../kernel/auth/api-keys.js';
import type { Decision, RequestFacts, ResourceAttrs } from '../../kernel/auth/decision.js';
import type { AuditEventInput } from '../../kernel/audit/events.js';
import { peerCertificateChain } from '../../kernel/auth/client-certificates.js';
import { toPalisadeError } from '../../http/problem.js';
import type { AuthMethod, GatewayConfig, GatewayRouteSetting, RateSetting } from './config.js';
import { compilePattern, type PathPattern } from './path-pattern.js';
import { checkRequestHeaders, parseRequestTarget, type RequestTarget } from './request-target.js';
import { rateLimitHeaders, windowsFor, type LimitOutcome, type SlidingWindowLimiter, type WindowSpec } from './rate-limit.js';
import { Upstream, endToEnd, type ResponsePlan } from './upstream.js';
import { securityHeaders, sendProblem, writeSocketProblem } from './answer.js';
import { textsAt, type PromptDetector } from './screening.js';
import type { GatewayMetrics } from './metrics.js';

/** The credentials the gateway accepts, checked by the identity services the API's pipeline uses. */
export interface GatewayCredentials {
  apiKey(token: string): Promise<Principal>;
  accessToken(token: string, req: IncomingMessage): Promise<Principal>;
  /** A TLS client certificate chain as a principal; absent when the listener asks for no client certificates. */
  certificate?: (chain: Buffer[]) => Promise<Principal>;
}

/** Signed requests (routes with `signed`): verifies and names the principal whose key signed. */
export interface GatewaySignatures {
  verify(req: { method: string; url: string; headers: IncomingMessage['headers']; body: Buffer }): Promise<{ keyId: string; principal_id: string }>;
}

/** Request and response field encryption (routes with `encrypt`), with the SDK's field-level machinery. */
export interface FieldSpec {
  keys: Partial<Record<'internal' | 'confidential' | 'restricted', string>>;
  fields: Record<string, { classification: 'internal' | 'confidential' | 'restricted'; data_type: string }>;
}
export interface FieldExchange {
  direction: 'request' | 'response';
  method: string;
  path: string;
  id: string;
}
export interface GatewayFields {
  open(body: unknown, spec: FieldSpec, exchange: FieldExchange): Promise<unknown>;
  seal(body: unknown, spec: FieldSpec, exchange: FieldExchange): Promise<{ body: unknown; headers: Record<string, string> }>;
}

export interface GatewayDeps {
  config: GatewayConfig;
  credentials: GatewayCredentials;
  authz: { authorize(facts: RequestFacts, action: string, resource: ResourceAttrs): Promise<Decision> };
  /** Append one audit event in its own transaction (fails closed: the refusal then answers 503). */
  audit(event: AuditEventInput): Promise<void>;
  limiter: SlidingWindowLimiter;
  signatures?: GatewaySignatures;
  fields?: GatewayFields;
  /** Why the gateway cannot serve now (sealed), or null. */
  unavailable(): string | null;
  metrics: GatewayMetrics;
  clock: () => Date;
  log: Logger;
}

interface CompiledRoute {
  s: GatewayRouteSetting;
  pattern: PathPattern;
  methods: ReadonlySet<string>;
  permission: string;
  upstream: Upstream;
  validate: ValidateFunction | null;
  maxBody: number;
  anyType: boolean;
  types: ReadonlySet<string>;
}

const PER_MS = { second: 1000, minute: 60_000, hour: 3_600_000 } as const;
const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;
const BEARER = /^Bearer ([\x21-\x7e]{1,4096})$/;
const JWT = /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
/** Request headers never passed upstream: the client's credential, and what only the gateway may assert. */
const NOT_FORWARDED = new Set(['authorization', 'cookie', 'host', 'content-length', 'expect', 'forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-real-ip', 'x-palisade-principal', 'x-palisade-auth-method', 'x-palisade-route', 'palisade-prompt-screening']);

function windows(policy: string, key: string, r: RateSetting): WindowSpec[] {
  return windowsFor(policy, key, { requests: r.requests, per_ms: PER_MS[r.per], ...(r.burst !== undefined ? { burst: r.burst } : {}) });
}

/** The request body, or null as soon as it passes `limit` bytes (the rest is not read). Events, not `for await`: cheaper. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.off('data', onData).off('end', onEnd).off('error', reject);
        req.pause();
        resolve(null);
        return;
      }
      chunks.push(c);
    };
    const onEnd = () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    req.on('data', onData).once('end', onEnd).once('error', reject);
  });
}

function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase();
}

function isJson(type: string): boolean {
  return type === 'application/json' || type.endsWith('+json');
}

/** Per-request state, for the log line, the metrics and the audit events. */
interface Exchange {
  id: string;
  started: number;
  method: string;
  path: string;
  route: CompiledRoute | null;
  principal: Principal | null;
  ip: string;
}

export class Gateway {
  readonly #d: GatewayDeps;
  readonly #routes: CompiledRoute[];
  readonly #upstreams = new Map<string, Upstream>();
  readonly #headers: Record<string, string>;
  #detector: PromptDetector | null = null;
  #warnedUnscreened = false;
  /** (policy, client) -> until when a refusal by it is not audited again (one event per window). */
  readonly #limitAudited = new Map<string, number>();
  /** Connections clientError has answered. */
  readonly #answered = new WeakSet<object>();
  /** `per_endpoint` limits: counted per client for every path their pattern matches. */
  readonly #endpoints: Array<{ policy: string; pattern: PathPattern; rate: RateSetting }>;

  /**
   * The request log: its fields are fixed and carry no credential or body, so it skips pino's redaction, which
   * re-reads every redact path on each call (about 12 µs and 30 KiB of garbage per line, measured in the benchmark).
   */
  readonly #access: Logger;

  constructor(deps: GatewayDeps) {
    this.#d = deps;
    this.#access = deps.log.child({}, { redact: { paths: [] } });
    const c = deps.config;
    this.#headers = securityHeaders(c.headers);
    for (const [name, s] of Object.entries(c.upstreams)) {
      this.#upstreams.set(name, new Upstream(name, s, { now: () => deps.clock().getTime(), onCircuitChange: (n, to) => this.#circuitChanged(n, to) }));
    }
    const ajv = new Ajv2020({ allErrors: false, strict: false });
    this.#endpoints = Object.entries(c.rate_limits.per_endpoint).map(([pattern, rate]) => ({ policy: `endpoint:${pattern}`, pattern: compilePattern(pattern), rate }));
    this.#routes = c.routes.map((s) => {
      const upstream = this.#upstreams.get(s.upstream);
      if (!upstream) throw new PalisadeError('PAL_CONFIG_INVALID', `gateway route ${s.name}: no upstream named ${s.upstream}`, { extensions: { setting: 'gateway.routes' } });
      let validate: ValidateFunction | null = null;
      if (s.schema !== undefined) {
        try {
          validate = ajv.compile(s.schema as object);
        } catch (e) {
          throw new PalisadeError('PAL_CONFIG_INVALID', `gateway route ${s.name}: its schema does not compile: ${(e as Error).message}`, { extensions: { setting: 'gateway.routes' } });
        }
      }
      const types = new Set(s.content_types.map((t) => t.toLowerCase()));
      return {
        s,
        pattern: compilePattern(s.path),
        methods: new Set(s.websocket ? [...s.methods, 'GET'] : s.methods),
        permission: s.permission ?? `gateway:${s.name}:invoke`,
        upstream,
        validate,
        maxBody: s.max_body_bytes ?? c.limits.body_bytes,
        anyType: types.has('*/*'),
        types,
      };
    });
  }

  /** The detector screened routes use (the threat-detection engine's). */
  setDetector(detector: PromptDetector | null): void {
    this.#detector = detector;
  }

  get routes(): readonly GatewayRouteSetting[] {
    return this.#routes.map((r) => r.s);
  }

  #circuitChanged(upstream: string, to: string): void {
    this.#d.metrics.circuit(upstream, to as 'open');
    this.#d.log[to === 'open' ? 'warn' : 'info']({ upstream, circuit: to }, `gateway: circuit of ${upstream} is ${to.replace('_', '-')}`);
  }

  // ---------------------------------------------------------------------------------------------------- requests

  /** The `request` handler of the gateway's HTTPS server. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const x = this.#exchange(req);
    this.#serve(req, res, x).then(
      (r) => this.#finish(x, r.status, r.upstreamMs, r.bytesOut),
      (e: unknown) => {
        const pe = toPalisadeError(e);
        if (pe.status >= 500 && !pe.code.startsWith('PAL_GATEWAY_')) this.#d.log.error({ err: pe.cause ?? e, request_id: x.id }, 'gateway request failed');
        const extra: Record<string, string> = { ...((e as { headers?: Record<string, string> }).headers ?? {}) };
        if (pe.code === 'PAL_GATEWAY_METHOD_NOT_ALLOWED') extra.allow = String(pe.extensions.allow ?? '');
        if (pe.code === 'PAL_GATEWAY_CIRCUIT_OPEN') extra['retry-after'] = String(pe.extensions.retry_after_seconds ?? 1);
        // A refusal before the body was read leaves it on the connection: close it rather than parse what follows.
        const close = !req.complete || pe.code === 'PAL_GATEWAY_REQUEST_SMUGGLING';
        sendProblem(res, pe, { path: x.path, requestId: x.id, headers: this.#headers, close, extra });
        if (close) req.resume();
        this.#finish(x, pe.status, null, 0, pe.code);
      },
    );
  }

  #exchange(req: IncomingMessage): Exchange {
    const h = req.headers['x-request-id'];
    return {
      id: typeof h === 'string' && REQUEST_ID.test(h) ? h : randomUUID(),
      started: performance.now(),
      method: req.method ?? 'GET',
      path: (req.url ?? '/').split('?')[0]!.slice(0, 256),
      route: null,
      principal: null,
      ip: req.socket.remoteAddress ?? '',
    };
  }

  #finish(x: Exchange, status: number, upstreamMs: number | null, bytesOut: number, code?: string): void {
    const ms = performance.now() - x.started;
    const route = x.route?.s.name ?? 'unmatched';
    this.#d.metrics.answered(route, status, ms / 1000, upstreamMs === null ? null : upstreamMs / 1000);
    if (code) this.#d.metrics.refused(route, code);
    this.#access.info(
      {
        request_id: x.id,
        route,
        method: x.method,
        path: x.path,
        status,
        ...(code ? { code } : {}),
        ms: Math.round(ms * 100) / 100,
        ...(upstreamMs !== null ? { upstream_ms: Math.round(upstreamMs * 100) / 100 } : {}),
        bytes_out: bytesOut,
        principal: x.principal?.principal_id ?? null,
        ip: x.ip,
      },
      'gateway request',
    );
  }

  async #serve(req: IncomingMessage, res: ServerResponse, x: Exchange) {
    const { route, target, limits } = await this.#admit(req, x, false);
    const { body, parsed } = await this.#body(req, x, route);
    let out = body;
    let json = parsed;
    if (route.s.signed) await this.#verifySignature(req, x, body);
    const encrypt = route.s.encrypt;
    if (encrypt?.request && json !== undefined) {
      try {
        json = await this.#fields().open(json, { keys: encrypt.keys, fields: encrypt.request }, { direction: 'request', method: x.method, path: x.path, id: x.id });
      } catch (e) {
        if (isPalisadeError(e) && e.code.startsWith('PAL_FIELD_')) await this.#rejected(x, e, `${e.code.slice(4).toLowerCase()} at ${String(e.extensions.path ?? '?')}`);
        throw e;
      }
      out = Buffer.from(JSON.stringify(json));
    }
    const screening = route.s.screen && json !== undefined ? await this.#screen(x, route, json) : null;
    const headers = this.#upstreamHeaders(req, x, route, out);
    if (screening) headers['palisade-prompt-screening'] = screening;
    // Object.assign, not spread: V8 (Node 20) keeps objects spread from a fresh object alive through young-generation
    // GCs, and on this path that promoted every request's headers (bench/gateway.ts: major GCs set the p99).
    const planHeaders: Record<string, string> = Object.assign({}, limits, this.#headers);
    planHeaders['x-request-id'] = x.id;
    const plan: ResponsePlan = { headers: planHeaders };
    const enc = encrypt?.response;
    if (enc) {
      plan.rewrite = {
        maxBytes: this.#d.config.limits.body_bytes,
        apply: async (b) => {
          const sealed = await this.#fields().seal(JSON.parse(b.toString('utf8')) as unknown, { keys: encrypt.keys, fields: enc }, { direction: 'response', method: x.method, path: x.path, id: x.id });
          return { body: Buffer.from(JSON.stringify(sealed.body)), headers: sealed.headers };
        },
      };
    }
    const upstreamPath = this.#upstreamPath(route, target.rawPath) + (target.query ? `?${target.query}` : '');
    return route.upstream.forward({ method: x.method, target: route.upstream.targetFor(upstreamPath), headers, body: out.length > 0 ? out : null, timeoutMs: route.s.timeout_ms ?? route.upstream.timeoutMs }, res, plan);
  }

  /** Target, headers, route, authentication, rate limits and authorization: everything decided before a body is read. */
  async #admit(req: IncomingMessage, x: Exchange, upgrade: boolean): Promise<{ route: CompiledRoute; target: RequestTarget; limits: Record<string, string> }> {
    const down = this.#d.unavailable();
    if (down) throw new PalisadeError('PAL_UNAVAILABLE', down);
    let target: RequestTarget;
    try {
      target = parseRequestTarget(req.url ?? '');
      checkRequestHeaders(req.rawHeaders);
    } catch (e) {
      await this.#rejected(x, e);
      throw e;
    }
    const path = target.path;
    const route = this.#match(x.method, path, upgrade);
    x.route = route;
    if (route.s.auth.length > 0) {
      x.principal = await this.#authenticate(req, x, route);
    }
    const limits = await this.#rateLimit(x, route, path);
    if (x.principal) await this.#authorize(x, route);
    return { route, target, limits };
  }

  #match(method: string, path: string, upgrade: boolean): CompiledRoute {
    const allowed = new Set<string>();
    for (const r of this.#routes) {
      if (!r.pattern.match(path)) continue;
      if (upgrade ? r.s.websocket && method === 'GET' : r.methods.has(method) || (method === 'HEAD' && r.methods.has('GET'))) return r;
      for (const m of r.methods) allowed.add(m);
    }
    if (allowed.size === 0) throw new PalisadeError('PAL_GATEWAY_ROUTE_NOT_FOUND', `no gateway route for ${path}`);
    if (upgrade) throw new PalisadeError('PAL_GATEWAY_METHOD_NOT_ALLOWED', `the route for ${path} does not accept WebSocket upgrades`, { extensions: { allow: [...allowed].join(', ') } });
    throw new PalisadeError('PAL_GATEWAY_METHOD_NOT_ALLOWED', `the route for ${path} does not accept ${method}`, { extensions: { allow: [...allowed].join(', ') } });
  }

  async #authenticate(req: IncomingMessage, x: Exchange, route: CompiledRoute): Promise<Principal> {
    const accepted = route.s.auth;
    const header = req.headers.authorization;
    const chain = !header && this.#d.credentials.certificate ? peerCertificateChain(req.socket) : [];
    let kind: AuthMethod | null = null;
    let token = '';
    if (header) {
      const m = BEARER.exec(header);
      if (!m?.[1]) return this.#authFailed(x, route, new PalisadeError('PAL_AUTH_INVALID', 'Authorization must be `Bearer <access token or API key>`'));
      token = m[1];
      kind = JWT.test(token) ? 'bearer_token' : 'api_key';
    } else if (chain.length > 0) kind = 'client_cert';
    if (!kind) return this.#authFailed(x, route, new PalisadeError('PAL_AUTH_REQUIRED', `this route needs a credential: ${accepted.join(', ')}`));
    if (!accepted.includes(kind)) {
      return this.#authFailed(x, route, new PalisadeError('PAL_GATEWAY_AUTH_METHOD', `this route does not accept ${kind}; it accepts ${accepted.join(', ')}`, { extensions: { accepted } }));
    }
    try {
      if (kind === 'client_cert') return await this.#d.credentials.certificate!(chain);
      if (kind === 'bearer_token') return await this.#d.credentials.accessToken(token, req);
      return await this.#d.credentials.apiKey(token);
    } catch (e) {
      return this.#authFailed(x, route, e, kind === 'client_cert');
    }
  }

  async #authFailed(x: Exchange, route: CompiledRoute, e: unknown, certificate = false): Promise<never> {
    const pe = toPalisadeError(e);
    if (pe.status !== 401) throw pe;
    const details = certificate ? { method: 'client_certificate', ...(typeof pe.extensions.reason === 'string' ? { reason: pe.extensions.reason } : {}) } : {};
    await this.#audit(x, { type: 'auth.failed', error_code: pe.code, details, resource: null });
    throw pe;
  }

  async #authorize(x: Exchange, route: CompiledRoute): Promise<void> {
    const resource: ResourceAttrs = { type: 'gateway_route', id: route.s.name, name: route.s.name };
    const d = await this.#d.authz.authorize({ principal: x.principal!, source_ip: x.ip, approval_id: null }, route.permission, resource);
    if (d.decision === 'allow') return;
    const reason = d.decision === 'approval_required' ? `${d.reason} (approvals are not taken at the gateway)` : d.reason;
    await this.#audit(x, { type: 'authz.denied', error_code: 'PAL_FORBIDDEN', details: {}, resource: { type: 'gateway_route', id: route.s.name }, authz: { decision: d.decision, reason: d.reason, by: d.by } });
    throw new PalisadeError('PAL_FORBIDDEN', `${route.permission} is not allowed: ${reason}`, { extensions: { permission: route.permission, reason } });
  }

  /**
   * Audits what happened to this request: its actor, id and route (the route's permission as the action). A refusal
   * (error_code set) is `denied`; otherwise `success`.
   */
  async #audit(x: Exchange, e: Pick<AuditEventInput, 'type' | 'error_code' | 'details'> & Partial<Pick<AuditEventInput, 'resource' | 'authz'>>): Promise<void> {
    await this.#d.audit({
      actor: { principal_id: x.principal?.principal_id ?? null, api_key_id: x.principal?.api_key_id ?? null, source_ip: x.ip },
      outcome: e.error_code ? 'denied' : 'success',
      request_id: x.id,
      action: x.route?.permission ?? null,
      resource: x.route ? { type: 'route', id: x.route.s.name } : null,
      ...e,
    });
  }

  /** Counts the request in its windows; the RateLimit headers for the answer, or throws 429. */
  async #rateLimit(x: Exchange, route: CompiledRoute, path: string): Promise<Record<string, string>> {
    const rl = this.#d.config.rate_limits;
    const client = x.principal ? `p:${x.principal.principal_id}` : `ip:${x.ip}`;
    const specs: WindowSpec[] = [];
    if (rl.global) specs.push(...windows('global', 'global', rl.global));
    if (rl.per_client) specs.push(...windows('client', `client:${client}`, rl.per_client));
    for (const e of this.#endpoints) if (e.pattern.match(path)) specs.push(...windows(e.policy, `${e.policy}:${client}`, e.rate));
    if (specs.length === 0) return {};
    const now = this.#d.clock().getTime();
    let outcome: LimitOutcome;
    try {
      outcome = await this.#d.limiter.check(specs, now, x.id);
    } catch (e) {
      if (rl.on_store_error === 'allow') {
        this.#d.log.warn({ err: e }, 'gateway: rate limiter unavailable, letting the request through (rate_limits.on_store_error: allow)');
        return {};
      }
      throw e;
    }
    const headers = rateLimitHeaders(outcome);
    if (outcome.allowed) return headers;
    const policy = outcome.exceeded[0] ?? 'global';
    const spec = specs.find((s) => s.policy === policy)!;
    const auditKey = `${policy}\n${spec.key}`;
    if ((this.#limitAudited.get(auditKey) ?? 0) <= now) {
      if (this.#limitAudited.size > 10_000) this.#limitAudited.clear();
      this.#limitAudited.set(auditKey, now + spec.windowMs);
      await this.#audit(x, { type: 'gateway.block.rate_limit', error_code: 'PAL_GATEWAY_RATE_LIMITED', details: { route: route.s.name, method: x.method, policy, key: policy.startsWith('global') ? 'global' : x.principal ? 'principal' : 'ip', limit: spec.limit, window_seconds: spec.windowMs / 1000 } });
    }
    throw Object.assign(new PalisadeError('PAL_GATEWAY_RATE_LIMITED', `rate limit ${policy} exceeded: ${spec.limit} requests per ${spec.windowMs / 1000} s`, { extensions: { limit: policy } }), { headers });
  }

  /** Reads the body up to the route's limit; checks its type; parses and validates JSON. */
  async #body(req: IncomingMessage, x: Exchange, route: CompiledRoute): Promise<{ body: Buffer; parsed: unknown }> {
    const declared = req.headers['content-length'];
    const hasBody = (declared !== undefined && declared !== '0') || req.headers['transfer-encoding'] !== undefined;
    if (!hasBody) {
      if (route.validate && x.method !== 'GET' && x.method !== 'HEAD') await this.#invalid(x, new PalisadeError('PAL_VALIDATION_FAILED', 'this route needs a JSON body'), 'missing-body');
      return { body: Buffer.alloc(0), parsed: undefined };
    }
    const type = mediaType(req.headers['content-type']);
    if (!route.anyType && !route.types.has(type)) {
      await this.#invalid(x, new PalisadeError('PAL_UNSUPPORTED_MEDIA_TYPE', `this route accepts ${[...route.types].join(', ')}, not ${type || 'a body without Content-Type'}`), `content-type ${type || 'missing'}`);
    }
    if (declared !== undefined && Number(declared) > route.maxBody) {
      await this.#invalid(x, new PalisadeError('PAL_BODY_TOO_LARGE', `the body (${declared} bytes) exceeds this route's ${route.maxBody} bytes`), 'declared-length-over-limit');
    }
    const body = await readBody(req, route.maxBody);
    if (body === null) return this.#invalid(x, new PalisadeError('PAL_BODY_TOO_LARGE', `the body exceeds this route's ${route.maxBody} bytes`), 'body-over-limit');
    if (!isJson(type)) return { body, parsed: undefined };
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch (e) {
      await this.#invalid(x, new PalisadeError('PAL_MALFORMED_JSON', `the body is not valid JSON: ${(e as Error).message}`), 'invalid-json');
    }
    if (route.validate && !route.validate(parsed)) {
      const errors = (route.validate.errors ?? []).map((v) => ({ path: `body${v.instancePath}`, message: v.message ?? 'is invalid' }));
      const first = errors[0];
      await this.#invalid(x, new PalisadeError('PAL_VALIDATION_FAILED', first ? `${first.path} ${first.message}` : 'the body does not match the route schema', { extensions: { errors } }), first ? `${first.path}: ${first.message}` : 'schema');
    }
    return { body, parsed };
  }

  async #invalid(x: Exchange, pe: PalisadeError, reason: string): Promise<never> {
    await this.#rejected(x, pe, reason);
    throw pe;
  }

  /** Audits a malformed or hostile request (gateway.request.rejected). */
  async #rejected(x: Exchange, e: unknown, reason?: string): Promise<void> {
    const pe = toPalisadeError(e);
    const why = reason ?? (typeof pe.extensions.reason === 'string' ? pe.extensions.reason : pe.message);
    await this.#audit(x, { type: 'gateway.request.rejected', error_code: pe.code, details: { route: x.route?.s.name ?? '', method: x.method, reason: why.slice(0, 300) } });
  }

  async #verifySignature(req: IncomingMessage, x: Exchange, body: Buffer): Promise<void> {
    const signatures = this.#d.signatures;
    try {
      if (!signatures) throw new PalisadeError('PAL_UNAVAILABLE', 'signed routes need the signing-key service');
      const v = await signatures.verify({ method: x.method, url: req.url ?? '/', headers: req.headers, body });
      if (v.principal_id !== x.principal?.principal_id) throw new PalisadeError('PAL_SIGNATURE_KEY_UNKNOWN', `signing key ${v.keyId} does not belong to the authenticated principal`);
    } catch (e) {
      if (isPalisadeError(e) && e.status === 401) await this.#rejected(x, e, e.code.replace('PAL_SIGNATURE_', 'signature-').toLowerCase());
      throw e;
    }
  }

  #fields(): GatewayFields {
    if (!this.#d.fields) throw new PalisadeError('PAL_UNAVAILABLE', 'field encryption is not available on this gateway');
    return this.#d.fields;
  }

  /** Screens the route's prompt paths: throws when blocked; the header value for the upstream when flagged. */
  async #screen(x: Exchange, route: CompiledRoute, json: unknown): Promise<string | null> {
    const s = route.s.screen!;
    const name = route.s.name;
    if (!this.#detector) {
      if (!this.#warnedUnscreened) this.#d.log.warn({ route: name }, 'gateway: routes ask for prompt screening but no detector is set; forwarding unscreened');
      this.#warnedUnscreened = true;
      this.#d.metrics.screened(name, 'unscreened');
      return null;
    }
    const items = s.paths.flatMap((p) => textsAt(json, p).map((t) => ({ ...t, kind: s.kind })));
    if (items.length === 0) {
      this.#d.metrics.screened(name, 'pass');
      return null;
    }
    const verdicts = await this.#detector.screen(items);
    let worst = -1;
    verdicts.forEach((v, i) => {
      if (worst === -1 || v.score > verdicts[worst]!.score) worst = i;
    });
    const v = verdicts[worst];
    if (!v || v.score < s.threshold) {
      this.#d.metrics.screened(name, 'pass');
      return null;
    }
    const at = items[worst]!.path;
    const details = { route: name, method: x.method, rule_id: this.#detector.name, score: v.score, labels: v.labels, path: at };
    if (s.action === 'block') {
      this.#d.metrics.screened(name, 'block');
      await this.#audit(x, { type: 'gateway.block.waf', error_code: 'PAL_GATEWAY_PROMPT_BLOCKED', details: { ...details, rule_category: 'prompt_injection' } });
      throw new PalisadeError('PAL_GATEWAY_PROMPT_BLOCKED', `the ${s.kind.replace('_', ' ')} at ${at} was refused by screening (${v.labels.join(', ') || 'score ' + v.score})`, { extensions: { labels: v.labels, path: at } });
    }
    this.#d.metrics.screened(name, 'flag');
    await this.#audit(x, { type: 'gateway.prompt.flag', error_code: null, details });
    return `flagged; score=${v.score}; labels=${v.labels.join(',')}; path=${at}`;
  }

  /** The request path for the upstream: the route's literal prefix replaced by `upstream_path` when set. */
  #upstreamPath(route: CompiledRoute, rawPath: string): string {
    const to = route.s.upstream_path;
    if (to === undefined) return rawPath;
    const prefix = route.pattern.prefix === '/' ? '' : route.pattern.prefix;
    const rest = rawPath.slice(prefix.length);
    return (to.replace(/\/$/, '') + rest) || '/';
  }

  #upstreamHeaders(req: IncomingMessage, x: Exchange, route: CompiledRoute, body: Buffer): OutgoingHttpHeaders {
    const h = endToEnd(req.headers, NOT_FORWARDED);
    h.host = route.upstream.host;
    h['x-request-id'] = x.id;
    h['x-forwarded-for'] = x.ip;
    h['x-forwarded-proto'] = 'https';
    if (req.headers.host) h['x-forwarded-host'] = req.headers.host;
    h['x-palisade-route'] = route.s.name;
    if (x.principal) {
      h['x-palisade-principal'] = x.principal.principal_id;
      h['x-palisade-auth-method'] = x.principal.method ?? 'api_key';
    }
    if (body.length > 0 || (x.method !== 'GET' && x.method !== 'HEAD')) h['content-length'] = String(body.length);
    return h;
  }

  // ---------------------------------------------------------------------------------------------------- upgrades

  /** The `upgrade` handler: the same admission as a request, then the upstream's 101 and a two-way relay. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const x = this.#exchange(req);
    socket.on('error', () => socket.destroy());
    const run = async () => {
      const { route, target } = await this.#admit(req, x, true);
      if (String(req.headers.upgrade ?? '').toLowerCase() !== 'websocket') throw new PalisadeError('PAL_GATEWAY_HEADER_REJECTED', 'only WebSocket upgrades are relayed', { extensions: { header: 'upgrade' } });
      const headers = this.#upstreamHeaders(req, x, route, Buffer.alloc(0));
      delete headers['content-length'];
      headers.connection = 'Upgrade';
      headers.upgrade = 'websocket';
      const path = this.#upstreamPath(route, target.rawPath) + (target.query ? `?${target.query}` : '');
      return route.upstream.upgrade({ method: 'GET', target: route.upstream.targetFor(path), headers, timeoutMs: route.s.timeout_ms ?? route.upstream.timeoutMs }, socket, head, { ...this.#headers, 'x-request-id': x.id });
    };
    run().then(
      (r) => this.#finish(x, r.status, r.upstreamMs, 0),
      (e: unknown) => {
        const pe = toPalisadeError(e);
        const extra: Record<string, string> = { ...((e as { headers?: Record<string, string> }).headers ?? {}) };
        writeSocketProblem(socket, pe, { path: x.path, requestId: x.id, headers: this.#headers, extra });
        this.#finish(x, pe.status, null, 0, pe.code);
      },
    );
  }

  /** A request Node's parser refused (smuggling, bad headers, too large, too slow): answer, audit, close. */
  async clientError(err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Duplex & { remoteAddress?: string; bytesRead?: number }): Promise<void> {
    // Node reports the connection again when the client then goes (HPE_INVALID_EOF_STATE): answered and audited once.
    if (this.#answered.has(socket)) return;
    // A connection that sent nothing before the timeout (a balancer's or a browser's preconnect, a TCP or TLS probe)
    // is not a refused request: closed without an answer or an audit record, as nginx does. (bytesRead counts the
    // request's bytes, after TLS.)
    if ((err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'ERR_HTTP_HEADERS_TIMEOUT') && socket.bytesRead === 0) {
      socket.destroy();
      return;
    }
    this.#answered.add(socket);
    const pe = parserError(err);
    const x: Exchange = { id: randomUUID(), started: performance.now(), method: '-', path: '-', route: null, principal: null, ip: socket.remoteAddress ?? '' };
    writeSocketProblem(socket, pe, { path: '-', requestId: x.id, headers: this.#headers });
    this.#finish(x, pe.status, null, 0, pe.code);
    if (err.code === 'ECONNRESET') return;
    await this.#rejected(x, pe, String(err.code ?? err.message)).catch((e: unknown) => this.#d.log.error({ err: e }, 'gateway: could not audit a refused request'));
  }

  close(): void {
    for (const u of this.#upstreams.values()) u.close();
  }
}

/** Node's HTTP parser errors as the gateway's codes. */
function parserError(err: NodeJS.ErrnoException): PalisadeError {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return new PalisadeError('PAL_GATEWAY_HEADERS_TOO_LARGE');
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'ERR_HTTP_HEADERS_TIMEOUT':
      return new PalisadeError('PAL_GATEWAY_REQUEST_TIMEOUT');
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_TRANSFER_ENCODING':
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
    case 'HPE_INVALID_CHUNK_SIZE':
      return new PalisadeError('PAL_GATEWAY_REQUEST_SMUGGLING', `the request's framing is ambiguous or invalid (${err.code})`, { extensions: { reason: err.code } });
    case 'HPE_INVALID_HEADER_TOKEN':
    case 'HPE_LF_EXPECTED':
    case 'HPE_CR_EXPECTED':
    case 'HPE_INVALID_EOF_STATE':
      return new PalisadeError('PAL_GATEWAY_HEADER_REJECTED', `a request header is malformed (${err.code})`, { extensions: { reason: err.code } });
    default:
      return new PalisadeError('PAL_GATEWAY_HEADER_REJECTED', `the request is malformed (${err.code ?? 'parse error'})`, { extensions: { reason: err.code ?? 'parse-error' } });
  }
}
