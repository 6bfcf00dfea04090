import type { IncomingMessage } from 'node:http';
import { Agent, request } from 'node:https';
import { checkServerIdentity, type DetailedPeerCertificate, type PeerCertificate } from 'node:tls';
import type { ProblemDetails } from '@palisade/core';
import { checkPins, validatePins } from './pins.js';
import type { RequestSigner } from './signing.js';

export interface ClientOptions {
  /** `https://host:port` or `host:port` (PALISADE_ADDR). */
  addr: string;
  /** API key (PALISADE_TOKEN); may be omitted for the public routes (seal status, init, unseal). */
  token?: string;
  /** PEM of the CA that issued the server certificate (PALISADE_CA_FILE's contents). Omit to use the system store. */
  ca?: string | Buffer;
  /**
   * SPKI pins, `sha256/<base64>` (HPKP's format; make them with spkiPin()). When set, a connection is refused unless
   * a certificate of the server's verified chain has one of these keys. At least three: the key in use and two
   * backup keys not yet in the chain (the seed's `backup_pins: 2`), so that a key change does not lock clients out.
   */
  pins?: string[];
  /** Client certificate chain (PEM, leaf first) for mTLS; with `key`. */
  cert?: string | Buffer;
  /** Private key (PEM) of `cert`. */
  key?: string | Buffer;
  /** Concurrent keep-alive connections (default 16). */
  maxSockets?: number;
  /** Per-request timeout in ms (default 30 s). */
  timeoutMs?: number;
  /**
   * Signs every request (`Palisade-Signature`: HMAC-SHA256 over method, path, query, host and chosen headers, body,
   * time and a fresh nonce) for routes and gateways that verify signed requests. Off by default.
   */
  signer?: Pick<RequestSigner, 'sign'>;
}

/** An error answer of the API, carrying its RFC 9457 problem document. */
export class PalisadeApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: ProblemDetails,
  ) {
    super(`${problem.code}: ${problem.detail}`);
    this.name = 'PalisadeApiError';
  }
  get code(): string {
    return this.problem.code;
  }
}

/** The header that uses an approved approval request (`apr_…`) for one operation (PAL_APPROVAL_REQUIRED says which). */
export const APPROVAL_HEADER = 'palisade-approval';

/** HTTPS with keep-alive; JSON in, JSON out; problem documents become PalisadeApiError. */
export class Transport {
  readonly #agent: Agent;
  readonly #host: string;
  readonly #port: number;
  readonly #token: string | undefined;
  readonly #timeout: number;
  /** Sent with every request of this transport (a call's own headers win). */
  readonly #headers: Readonly<Record<string, string>>;
  /** False for a transport made by withHeaders(): the connections belong to the one it came from. */
  readonly #owner: boolean;
  readonly #signer: Pick<RequestSigner, 'sign'> | undefined;
  /** The Host header Node sends (`host[:port]`, no default port), which a signature covers. */
  readonly #authority: string;

  /** What withHeaders() does: `base`'s connections and credentials, with `headers` on every request. */
  constructor(base: Transport, headers: Record<string, string>);
  // (last, so that ConstructorParameters<typeof Transport> stays [ClientOptions])
  constructor(opts: ClientOptions);
  constructor(opts: ClientOptions | Transport, headers: Record<string, string> = {}) {
    if (opts instanceof Transport) {
      this.#agent = opts.#agent;
      this.#host = opts.#host;
      this.#port = opts.#port;
      this.#token = opts.#token;
      this.#timeout = opts.#timeout;
      this.#headers = { ...opts.#headers, ...lowerKeys(headers) };
      this.#owner = false;
      this.#signer = opts.#signer;
      this.#authority = opts.#authority;
      return;
    }
    this.#headers = lowerKeys(headers);
    this.#owner = true;
    const url = new URL(/^https?:\/\//.test(opts.addr) ? opts.addr : `https://${opts.addr}`);
    if (url.protocol !== 'https:') throw new Error('Palisade speaks HTTPS only');
    this.#host = url.hostname.replace(/^\[|\]$/g, '');
    this.#port = Number(url.port || 443);
    this.#authority = url.host;
    this.#signer = opts.signer;
    this.#token = opts.token;
    this.#timeout = opts.timeoutMs ?? 30_000;
    if ((opts.cert === undefined) !== (opts.key === undefined)) throw new Error('cert and key go together: give both for a client certificate, or neither');
    const pins = opts.pins ? validatePins(opts.pins) : null;
    this.#agent = new Agent({
      keepAlive: true,
      maxSockets: opts.maxSockets ?? 16,
      minVersion: 'TLSv1.2',
      ...(opts.ca ? { ca: opts.ca } : {}),
      ...(opts.cert !== undefined && opts.key !== undefined ? { cert: opts.cert, key: opts.key } : {}),
      // Node calls this only once the chain verified, with the detailed certificate (getPeerCertificate(true));
      // the pin check comes on top of the hostname check.
      ...(pins ? { checkServerIdentity: (host: string, cert: PeerCertificate) => checkServerIdentity(host, cert) ?? checkPins(pins, cert as DetailedPeerCertificate) } : {}),
    });
  }

  async send<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const res = await this.raw(method, path, payload, { ...(payload ? { 'content-type': 'application/json' } : {}), ...headers });
    if (res.status >= 400) throw problemOf(res);
    const text = res.body.toString('utf8');
    return (text.length > 0 && /json/.test(res.contentType) ? JSON.parse(text) : text) as T;
  }

  /**
   * POST an `application/x-www-form-urlencoded` body (the OAuth endpoints); `headers` may replace the bearer token,
   * e.g. with Basic client credentials. OAuth error answers (`{error, error_description}`) become PalisadeApiError too.
   */
  async sendForm<T>(path: string, fields: Record<string, string | undefined>, headers: Record<string, string> = {}): Promise<T> {
    const entries = Object.entries(fields).filter((e): e is [string, string] => e[1] !== undefined);
    const res = await this.raw('POST', path, Buffer.from(new URLSearchParams(entries).toString()), { 'content-type': 'application/x-www-form-urlencoded', ...headers });
    if (res.status >= 400) throw problemOf(res);
    const text = res.body.toString('utf8');
    return (text.length > 0 && /json/.test(res.contentType) ? JSON.parse(text) : text) as T;
  }

  async raw(method: string, path: string, body: Buffer | undefined, headers: Record<string, string>): Promise<{ status: number; contentType: string; body: Buffer }> {
    return readAll(await this.#open(method, path, body, { accept: 'application/json', ...headers }));
  }

  /** A GET whose body is read as it arrives (exports): resolves once the status is in; errors are problem documents. */
  async stream(path: string): Promise<IncomingMessage> {
    const res = await this.#open('GET', path, undefined, {});
    if ((res.statusCode ?? 0) < 400) return res;
    throw problemOf(await readAll(res));
  }

  #open(method: string, path: string, body: Buffer | undefined, headers: Record<string, string>): Promise<IncomingMessage> {
    let all: Record<string, string> = { ...(this.#token ? { authorization: `Bearer ${this.#token}` } : {}), ...(body ? { 'content-length': String(body.length) } : {}), ...this.#headers, ...headers };
    if (this.#signer) {
      all = { host: this.#authority, ...lowerKeys(all) };
      Object.assign(all, this.#signer.sign({ method, url: path, headers: all, body }));
    }
    return new Promise((resolve, reject) => {
      const req = request(
        {
          host: this.#host,
          port: this.#port,
          method,
          path,
          agent: this.#agent,
          headers: all,
          timeout: this.#timeout,
        },
        resolve,
      );
      req.on('timeout', () => req.destroy(new Error(`request timed out after ${this.#timeout} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /**
   * A transport on the same connections whose requests all carry `headers` as well (e.g. `Palisade-Approval`).
   * Its close() does nothing: the connections are closed with this transport.
   */
  withHeaders(headers: Record<string, string>): Transport {
    return new Transport(this, headers);
  }

  close(): void {
    if (this.#owner) this.#agent.destroy();
  }
}

function lowerKeys(h: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
}

function readAll(res: IncomingMessage): Promise<{ status: number; contentType: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks) }));
    res.on('error', reject);
  });
}

/** An error answer as PalisadeApiError: its problem document, or one made from the status and text. */
function problemOf(res: { status: number; contentType: string; body: Buffer }): PalisadeApiError {
  const text = res.body.toString('utf8');
  let parsed: unknown = null;
  if (text.length > 0 && /json/.test(res.contentType)) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
  }
  // OAuth endpoints answer in RFC 6749 §5.2's format: its error code (invalid_client, invalid_scope, ...) is the code.
  const oauth = typeof parsed === 'object' && parsed !== null && !('code' in parsed) && typeof (parsed as { error?: unknown }).error === 'string' ? (parsed as { error: string; error_description?: string }) : null;
  if (oauth) parsed = { code: oauth.error, title: 'OAuth error', status: res.status, detail: oauth.error_description ?? oauth.error, type: 'about:blank' };
  const problem = (typeof parsed === 'object' && parsed !== null ? parsed : { code: 'PAL_HTTP', title: 'HTTP error', status: res.status, detail: text, type: 'about:blank' }) as ProblemDetails;
  return new PalisadeApiError(res.status, problem);
}

/** `path?k=v&...` from the defined entries of `q` (no `?` when none). */
export function withQuery(path: string, q: object): string {
  const qs = new URLSearchParams(Object.entries(q).filter(([, v]) => v !== undefined).map(([k, v]): [string, string] => [k, String(v)])).toString();
  return qs ? `${path}?${qs}` : path;
}
