/**
 * One upstream (the agent framework's API, a tool server): a keep-alive connection pool, a circuit breaker, and the
 * forwarding of one request. Requests go out through undici's Pool (its dispatch API costs about half of what
 * `http.request` does per request, measured in bench/gateway.ts): responses stream through with back-pressure (the
 * upstream's socket is paused while the client's is full), and SSE events or chunks are written as they arrive. A
 * client that goes away aborts the upstream request; an upstream that does not start answering in time is a 504, one
 * that stalls mid-body is cut off. Upgrades (WebSockets) go through node:http, whose 'upgrade' event hands over the
 * socket.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest, type ClientRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Duplex } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import { PalisadeError } from '@palisade/core';
import { CircuitBreaker, type CircuitTicket } from './circuit-breaker.js';
import type { GatewayConfig } from './config.js';

type UpstreamSetting = GatewayConfig['upstreams'][string];

/** Methods whose request may be sent twice (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/** Hop-by-hop headers (RFC 9110 §7.6.1) and the ones the gateway sets itself: never copied from one side to the other. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

const NONE: ReadonlySet<string> = new Set();

/** Headers of a message minus hop-by-hop ones, those its Connection header names, and `drop`. */
export function endToEnd(headers: IncomingHttpHeaders, drop: ReadonlySet<string> = NONE): OutgoingHttpHeaders {
  const connection = headers.connection;
  const named = connection ? new Set(String(connection).toLowerCase().split(',').map((s) => s.trim())) : NONE;
  const out: OutgoingHttpHeaders = {};
  for (const k in headers) {
    const v = headers[k];
    if (v === undefined || HOP_BY_HOP.has(k) || named.has(k) || drop.has(k)) continue;
    out[k] = v;
  }
  return out;
}

export interface ForwardRequest {
  method: string;
  /** Path and query for the upstream (its base path already applied). */
  target: string;
  headers: OutgoingHttpHeaders;
  body: Buffer | null;
  timeoutMs: number;
}

export interface ForwardResult {
  status: number;
  /** Milliseconds until the upstream's response headers. */
  upstreamMs: number;
  bytesOut: number;
}

/** What the gateway does with a response before the client sees it: headers to set, and an optional body rewrite. */
export interface ResponsePlan {
  headers: Record<string, string>;
  /** Rewrite a JSON body (response field encryption); the body is then buffered up to `maxBytes`. */
  rewrite?: { maxBytes: number; apply(body: Buffer, contentType: string): Promise<{ body: Buffer; headers: Record<string, string> }> };
}

export class Upstream {
  readonly name: string;
  readonly breaker: CircuitBreaker;
  readonly #base: URL;
  readonly #pool: Pool;
  readonly #ca: Buffer | undefined;
  readonly #request: typeof httpRequest;
  readonly #connectTimeoutMs: number;
  readonly timeoutMs: number;
  readonly #basePath: string;
  /** Relayed upgrades (WebSockets): the server no longer tracks them, so closing ends them here. */
  readonly #tunnels = new Set<Duplex>();

  constructor(name: string, s: UpstreamSetting, opts: { now?: () => number; onCircuitChange?: (name: string, to: string) => void } = {}) {
    this.name = name;
    this.#base = new URL(s.url);
    this.#basePath = this.#base.pathname.replace(/\/$/, '');
    const tls = this.#base.protocol === 'https:';
    this.#ca = tls && s.ca_file ? readFileSync(s.ca_file) : undefined;
    this.#pool = new Pool(this.#base.origin, { connections: s.max_connections, pipelining: 1, connect: { timeout: s.connect_timeout_ms, ...(this.#ca ? { ca: this.#ca } : {}) } });
    this.#request = (tls ? httpsRequest : httpRequest) as typeof httpRequest;
    this.#connectTimeoutMs = s.connect_timeout_ms;
    this.timeoutMs = s.timeout_ms;
    this.breaker = new CircuitBreaker(name, { failureThreshold: s.circuit.failure_threshold, openMs: s.circuit.open_seconds * 1000, ...(opts.now ? { now: opts.now } : {}) });
    if (opts.onCircuitChange) this.breaker.onChange = (_from, to) => opts.onCircuitChange!(name, to);
  }

  /** `host[:port]` for the Host header the upstream sees. */
  get host(): string {
    return this.#base.host;
  }

  /** The upstream target for a request path: its base path, then the path. */
  targetFor(pathAndQuery: string): string {
    return this.#basePath + pathAndQuery;
  }

  /** An upgrade request on its own connection (node:http; the connection becomes the tunnel). */
  #open(method: string, target: string, headers: OutgoingHttpHeaders): ClientRequest {
    const req = this.#request({ protocol: this.#base.protocol, hostname: this.#base.hostname, port: this.#base.port || undefined, method, path: target, headers, agent: false, ...(this.#ca ? { ca: this.#ca } : {}) });
    req.on('socket', (socket) => {
      if (!socket.connecting) return;
      const t = setTimeout(() => req.destroy(Object.assign(new Error(`connect to ${this.name} timed out`), { code: 'ECONNECT_TIMEOUT' })), this.#connectTimeoutMs);
      socket.once('connect', () => clearTimeout(t));
      socket.once('close', () => clearTimeout(t));
    });
    return req;
  }

  /**
   * Send one request and stream the answer to `res`. Throws (before anything was written to `res`) 502, 504 or the
   * circuit's 503; once the response has started, a failure aborts it. An idempotent request whose connection broke
   * before any answer (typically a kept-alive connection the upstream closed as we reused it) is sent once more; a
   * POST never is, it may have had an effect.
   */
  forward(f: ForwardRequest, res: ServerResponse, plan: ResponsePlan): Promise<ForwardResult> {
    const ticket = this.breaker.acquire();
    return new Promise<ForwardResult>((resolve, reject) => new Forwarding(this, this.#pool, ticket, f, res, plan, resolve, reject).start());
  }

  /**
   * A WebSocket (or other) upgrade: ask the upstream to switch protocols; on 101 relay its answer and then the bytes
   * both ways (pipe: back-pressure in each direction). Anything else is a refusal the caller turns into a problem.
   */
  upgrade(f: Omit<ForwardRequest, 'body'>, client: Duplex, head: Buffer, responseHeaders: Record<string, string>): Promise<{ status: number; upstreamMs: number }> {
    const ticket = this.breaker.acquire();
    const started = performance.now();
    return new Promise((resolve, reject) => {
      let settled = false;
      const up = this.#open(f.method, f.target, f.headers);
      const timer = setTimeout(() => {
        up.destroy();
        finish(new PalisadeError('PAL_GATEWAY_UPSTREAM_TIMEOUT', `${this.name} did not answer the upgrade within ${f.timeoutMs} ms`, { extensions: { upstream: this.name } }));
      }, f.timeoutMs);
      const finish = (e: PalisadeError | null, status = 101) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (e) {
          ticket.failure();
          reject(e);
        } else resolve({ status, upstreamMs: performance.now() - started });
      };
      up.on('error', (e: NodeJS.ErrnoException) => finish(new PalisadeError('PAL_GATEWAY_UPSTREAM_UNAVAILABLE', `${this.name} is unreachable (${e.code ?? e.message})`, { extensions: { upstream: this.name }, cause: e })));
      up.on('response', (upRes) => {
        upRes.resume();
        finish(new PalisadeError('PAL_GATEWAY_UPSTREAM_UNAVAILABLE', `${this.name} refused the upgrade (${upRes.statusCode})`, { extensions: { upstream: this.name } }));
      });
      up.on('upgrade', (upRes, upSocket, upHead) => {
        ticket.success();
        const headers: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(upRes.headers)) if (v !== undefined && k !== 'connection' && k !== 'upgrade') headers[k] = v;
        Object.assign(headers, responseHeaders, { connection: 'Upgrade', upgrade: upRes.headers.upgrade ?? 'websocket' });
        const lines = [`HTTP/1.1 101 Switching Protocols`];
        for (const [k, v] of Object.entries(headers)) for (const one of ([] as string[]).concat(v)) lines.push(`${k}: ${one}`);
        client.write(lines.join('\r\n') + '\r\n\r\n');
        if (upHead.length > 0) client.write(upHead);
        if (head.length > 0) upSocket.write(head);
        this.#tunnels.add(client);
        const close = () => {
          this.#tunnels.delete(client);
          upSocket.destroy();
          client.destroy();
        };
        upSocket.on('error', close).on('close', close);
        client.on('error', close).on('close', close);
        upSocket.pipe(client);
        client.pipe(upSocket);
        finish(null);
      });
      client.once('close', () => {
        if (!settled) {
          up.destroy();
          settled = true;
          clearTimeout(timer);
          ticket.release();
          resolve({ status: 499, upstreamMs: performance.now() - started });
        }
      });
      up.end();
    });
  }

  close(): void {
    for (const t of this.#tunnels) t.destroy();
    this.#pool.destroy().catch(() => undefined);
  }
}

/**
 * One request on its way through the pool: the dispatch handler (undici calls it), and the promise it settles. A class
 * with fields rather than closures: one object per request, whose methods undici calls directly.
 */
class Forwarding implements Dispatcher.DispatchHandler {
  /** The promise is settled: by the response's start, a failure before it, or the client leaving. */
  #settled = false;
  #retried = false;
  #controller: Dispatcher.DispatchController | null = null;
  /** The response is being streamed (status, when its headers were in, bytes so far). */
  #status = 0;
  #upstreamMs = 0;
  #bytes = 0;
  /** A rewrite buffers the body instead (null: stream it), then answers with these headers. */
  #rewrite: { chunks: Buffer[]; size: number; headers: OutgoingHttpHeaders; contentType: string } | null = null;
  readonly #started = performance.now();
  readonly #request: Dispatcher.DispatchOptions;

  constructor(
    private readonly upstream: Upstream,
    private readonly pool: Pool,
    private readonly ticket: CircuitTicket,
    private readonly f: ForwardRequest,
    private readonly res: ServerResponse,
    private readonly plan: ResponsePlan,
    private readonly resolve: (r: ForwardResult) => void,
    private readonly reject: (e: unknown) => void,
  ) {
    // headersTimeout: until the response starts (504); bodyTimeout: the longest silence inside a body (a stalled
    // stream is not kept open forever).
    this.#request = { method: f.method as Dispatcher.HttpMethod, path: f.target, headers: f.headers as Record<string, string>, body: f.body, headersTimeout: f.timeoutMs, bodyTimeout: f.timeoutMs };
  }

  start(): void {
    // The client went away first (before or while we forward): stop the upstream work too.
    if (this.res.destroyed) return this.#clientGone();
    this.res.on('close', this.#onClose);
    this.pool.dispatch(this.#request, this);
  }

  readonly #onClose = (): void => {
    if (!this.res.writableFinished) this.#clientGone();
  };

  readonly #onDrain = (): void => this.#controller?.resume();

  readonly #onDone = (): void => this.#finish();

  /** No failure of the upstream, so the circuit does not count it. */
  #clientGone(): void {
    if (!this.#settled) {
      this.#settled = true;
      this.ticket.release();
      this.resolve({ status: 499, upstreamMs: performance.now() - this.#started, bytesOut: 0 });
    }
    this.#controller?.abort(new Error('the client went away')); // after settling: abort calls onResponseError at once
  }

  #finish(): void {
    if (this.#status === 0) return;
    const r = { status: this.#status, upstreamMs: this.#upstreamMs, bytesOut: this.#bytes };
    this.#status = 0;
    this.resolve(r);
  }

  onRequestStart(c: Dispatcher.DispatchController): void {
    this.#controller = c;
    if (this.res.destroyed) this.#clientGone(); // its 'close' is still to come
  }

  onResponseStart(c: Dispatcher.DispatchController, status: number, upHeaders: IncomingHttpHeaders): void {
    if (this.#settled) return c.abort(new Error('the client went away'));
    this.#settled = true;
    if (status >= 500) this.ticket.failure();
    else this.ticket.success();
    this.#upstreamMs = performance.now() - this.#started;
    this.#status = status;
    const headers = Object.assign(endToEnd(upHeaders), this.plan.headers); // not a spread of a fresh object: see gateway.ts #serve
    const contentType = String(upHeaders['content-type'] ?? '');
    if (this.plan.rewrite && status < 300 && contentType.includes('json')) {
      this.#rewrite = { chunks: [], size: 0, headers, contentType };
      return;
    }
    const res = this.res;
    res.writeHead(status, headers);
    // A stream (SSE, chunked: no length) shows its headers at once; a sized body goes out with them in one write.
    if (upHeaders['content-length'] === undefined) res.flushHeaders();
    res.on('drain', this.#onDrain);
    res.on('finish', this.#onDone);
    res.on('close', this.#onDone);
  }

  onResponseData(c: Dispatcher.DispatchController, chunk: Buffer): void {
    const rw = this.#rewrite;
    if (rw) {
      rw.size += chunk.length;
      if (rw.size > this.plan.rewrite!.maxBytes) c.abort(new Error(`response of ${this.upstream.name} exceeds ${this.plan.rewrite!.maxBytes} bytes`));
      else rw.chunks.push(chunk);
      return;
    }
    this.#bytes += chunk.length;
    if (!this.res.write(chunk)) c.pause();
  }

  onResponseEnd(): void {
    const rw = this.#rewrite;
    if (!rw) {
      this.res.end();
      return;
    }
    const { headers } = rw;
    this.plan.rewrite!.apply(Buffer.concat(rw.chunks), rw.contentType).then(
      ({ body, headers: more }) => {
        delete headers['content-length'];
        this.res.writeHead(this.#status, Object.assign(headers, more, { 'content-length': body.length }));
        this.res.end(body);
        this.#bytes = body.length;
        this.#finish();
      },
      () => this.#broken(),
    );
  }

  #broken(): void {
    this.res.destroy();
    this.#bytes = 0;
    this.#finish();
  }

  onResponseError(_c: Dispatcher.DispatchController, e: Error & { code?: string }): void {
    if (this.#settled) {
      // the upstream broke off or stalled mid-body: so does the answer
      if (this.#status !== 0) this.#broken();
      return;
    }
    const f = this.f;
    const broken = e.code === 'UND_ERR_SOCKET' || e.code === 'ECONNRESET' || e.code === 'EPIPE';
    if (broken && !this.#retried && IDEMPOTENT.has(f.method) && !this.res.destroyed) {
      this.#retried = true;
      this.pool.dispatch(this.#request, this);
      return;
    }
    this.#settled = true;
    this.ticket.failure();
    const name = this.upstream.name;
    if (e.code === 'UND_ERR_HEADERS_TIMEOUT') this.reject(new PalisadeError('PAL_GATEWAY_UPSTREAM_TIMEOUT', `${name} did not answer within ${f.timeoutMs} ms`, { extensions: { upstream: name } }));
    else this.reject(new PalisadeError('PAL_GATEWAY_UPSTREAM_UNAVAILABLE', `${name} is unreachable or broke the connection (${e.code ?? e.message})`, { extensions: { upstream: name }, cause: e }));
  }
}
