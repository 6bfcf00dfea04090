/**
 * One upstream (the agent framework's API, a tool server): a keep-alive connection pool, a circuit breaker, and the
 * forwarding of one request. Responses stream through with back-pressure (`pipeline`): a slow client slows the
 * upstream's socket instead of growing a buffer, and SSE events or chunks are written as they arrive. A client that
 * goes away aborts the upstream request; an upstream that does not start answering in time is aborted with a 504.
 */
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Duplex } from 'node:stream';
import { PalisadeError } from '@palisade/core';
import { CircuitBreaker } from './circuit-breaker.js';
import type { GatewayConfig } from './config.js';

type UpstreamSetting = GatewayConfig['upstreams'][string];

/** Methods whose request may be sent twice (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/** Hop-by-hop headers (RFC 9110 §7.6.1) and the ones the gateway sets itself: never copied from one side to the other. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** Headers of a message minus hop-by-hop ones and those its Connection header names. */
export function endToEnd(headers: IncomingHttpHeaders, drop: ReadonlySet<string> = new Set()): OutgoingHttpHeaders {
  const named = new Set(
    String(headers.connection ?? '')
      .toLowerCase()
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) {
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
  readonly #agent: HttpAgent;
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
    const common = { keepAlive: true, maxSockets: s.max_connections, maxFreeSockets: Math.min(s.max_connections, 256), scheduling: 'lifo' as const };
    this.#agent = tls ? new HttpsAgent({ ...common, ...(s.ca_file ? { ca: readFileSync(s.ca_file) } : {}) }) : new HttpAgent(common);
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

  #open(method: string, target: string, headers: OutgoingHttpHeaders): ClientRequest {
    const req = this.#request({ protocol: this.#base.protocol, hostname: this.#base.hostname, port: this.#base.port || undefined, method, path: target, headers, agent: this.#agent });
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
   * circuit's 503; once the response has started, a failure aborts it.
   */
  forward(f: ForwardRequest, res: ServerResponse, plan: ResponsePlan): Promise<ForwardResult> {
    const ticket = this.breaker.acquire();
    const started = performance.now();
    return new Promise<ForwardResult>((resolve, reject) => {
      let settled = false;
      const fail = (e: PalisadeError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ticket.failure();
        reject(e);
      };
      let retried = false;
      const send = (): ClientRequest => {
        const req = this.#open(f.method, f.target, f.headers);
        req.on('error', (e: NodeJS.ErrnoException) => {
          // A kept-alive connection the upstream had already closed (its idle timeout raced our reuse): the request
          // never reached it, so an idempotent one is sent once more on a fresh connection instead of failing.
          if (!settled && !retried && req.reusedSocket && IDEMPOTENT.has(f.method) && (e.code === 'ECONNRESET' || e.code === 'EPIPE')) {
            retried = true;
            up = send();
            return;
          }
          fail(new PalisadeError('PAL_GATEWAY_UPSTREAM_UNAVAILABLE', `${this.name} is unreachable or broke the connection (${e.code ?? e.message})`, { extensions: { upstream: this.name }, cause: e }));
        });
        req.on('response', onResponse);
        if (f.body && f.body.length > 0) req.end(f.body);
        else req.end();
        return req;
      };
      const timer = setTimeout(() => {
        up.destroy();
        fail(new PalisadeError('PAL_GATEWAY_UPSTREAM_TIMEOUT', `${this.name} did not answer within ${f.timeoutMs} ms`, { extensions: { upstream: this.name } }));
      }, f.timeoutMs);
      // The client went away first: stop the upstream work too.
      res.once('close', () => {
        if (!res.writableFinished) {
          up.destroy();
          if (!settled) {
            settled = true;
            clearTimeout(timer);
            ticket.release();
            resolve({ status: 499, upstreamMs: performance.now() - started, bytesOut: 0 });
          }
        }
      });
      const onResponse = (upRes: IncomingMessage) => {
        if (settled) {
          upRes.destroy();
          return;
        }
        settled = true;
        clearTimeout(timer);
        const status = upRes.statusCode ?? 502;
        if (status >= 500) ticket.failure();
        else ticket.success();
        const upstreamMs = performance.now() - started;
        // A stalled stream is not kept open forever (the listener goes with the response: sockets are reused).
        const socket = upRes.socket;
        const idle = () => upRes.destroy(new Error('upstream idle'));
        socket.setTimeout(f.timeoutMs);
        socket.on('timeout', idle);
        upRes.once('close', () => {
          socket.setTimeout(0);
          socket.off('timeout', idle);
        });
        const headers = { ...endToEnd(upRes.headers), ...plan.headers };
        const done = (bytesOut: number) => resolve({ status, upstreamMs, bytesOut });
        if (plan.rewrite && status < 300 && (upRes.headers['content-type'] ?? '').includes('json')) {
          this.#rewrite(upRes, res, status, headers, plan.rewrite).then(done, (e: unknown) => {
            upRes.destroy();
            res.destroy(e as Error);
            done(0);
          });
          return;
        }
        res.writeHead(status, headers);
        // A stream (SSE, chunked: no length) shows its headers at once; a sized body goes out with them in one write.
        if (upRes.headers['content-length'] === undefined) res.flushHeaders();
        // pipe(), not pipeline(): the same back-pressure without an AbortController per response (measurable here).
        let bytes = 0;
        let ended = false;
        const end = () => {
          if (ended) return;
          ended = true;
          done(bytes);
        };
        upRes.on('data', (c: Buffer) => void (bytes += c.length));
        upRes.once('error', () => res.destroy()); // the upstream broke off mid-body: so does the answer
        res.once('finish', end);
        res.once('close', () => {
          if (!res.writableFinished) upRes.destroy();
          end();
        });
        upRes.pipe(res);
      };
      let up = send();
    });
  }

  async #rewrite(upRes: IncomingMessage, res: ServerResponse, status: number, headers: OutgoingHttpHeaders, rw: NonNullable<ResponsePlan['rewrite']>): Promise<number> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of upRes as AsyncIterable<Buffer>) {
      size += c.length;
      if (size > rw.maxBytes) throw new Error(`response of ${this.name} exceeds ${rw.maxBytes} bytes`);
      chunks.push(c);
    }
    const { body, headers: more } = await rw.apply(Buffer.concat(chunks), String(upRes.headers['content-type']));
    delete headers['content-length'];
    res.writeHead(status, { ...headers, ...more, 'content-length': body.length });
    res.end(body);
    return body.length;
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
    this.#agent.destroy();
  }
}
