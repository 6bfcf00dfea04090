// HMAC-SHA256 request signing (`Palisade-Signature`, v1): the client half of @palisade/core's canonical request.
import {
  SIGNATURE_HEADER,
  formatSignatureHeader,
  randomBytes,
  sha256,
  signatureV1,
  splitTarget,
} from '@palisade/core';

export interface RequestSignerOptions {
  /** The key id the server knows the secret by ([A-Za-z0-9._~-]{1,128}). */
  keyId: string;
  /** The shared HMAC secret: at least 16 bytes (32 random bytes recommended). */
  secret: Uint8Array;
  /**
   * Headers signed when the request has them, besides `host` (always signed). Default: `content-type` and
   * `palisade-approval`. The body is always covered, through its SHA-256.
   */
  headers?: readonly string[];
  /** The time stamped on signatures (default: the system clock). */
  clock?: () => Date;
}

export interface RequestToSign {
  method: string;
  /** `/path?query` as it will be sent, or an absolute URL (whose authority is the `host` when headers have none). */
  url: string;
  headers?: Readonly<Record<string, string | readonly string[] | number | undefined>>;
  /** The body bytes exactly as they will be sent (strings as UTF-8). */
  body?: Uint8Array | string;
}

const DEFAULT_HEADERS = ['content-type', 'palisade-approval'];

/**
 * Signs requests for a verifier that shares `secret`: each call stamps the current time and a fresh 128-bit nonce,
 * so a signed request is good once, within the server's clock-skew window (5 minutes by default).
 *
 *   const signer = new RequestSigner({ keyId: 'agent-7', secret });
 *   new PalisadeClient({ addr, token, signer }); // every request the client sends is signed
 */
export class RequestSigner {
  readonly keyId: string;
  readonly #secret: Buffer;
  readonly #headers: readonly string[];
  readonly #clock: () => Date;

  constructor(opts: RequestSignerOptions) {
    if (!/^[A-Za-z0-9._~-]{1,128}$/.test(opts.keyId)) throw new TypeError('RequestSigner: keyId must be 1..128 characters of [A-Za-z0-9._~-]');
    if (opts.secret.length < 16) throw new TypeError('RequestSigner: the secret must be at least 16 bytes');
    this.keyId = opts.keyId;
    this.#secret = Buffer.from(opts.secret);
    this.#headers = (opts.headers ?? DEFAULT_HEADERS).map((h) => h.toLowerCase());
    this.#clock = opts.clock ?? (() => new Date());
  }

  /**
   * The headers to add to the request: `palisade-signature`, and `host` when `headers` had none (taken from the
   * absolute `url`). Headers and body must then be sent exactly as given here.
   */
  sign(req: RequestToSign): Record<string, string> {
    const headers: Record<string, string | readonly string[] | number> = {};
    for (const [k, v] of Object.entries(req.headers ?? {})) if (v !== undefined) headers[k.toLowerCase()] = v;
    const added: Record<string, string> = {};
    if (headers.host === undefined) {
      const authority = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]+)/.exec(req.url)?.[1];
      if (authority === undefined) throw new TypeError('RequestSigner: no host header, and the url is not absolute');
      added.host = new URL(req.url).host; // without a default port, as a client sends it
      headers.host = added.host;
    }
    const signedHeaders = ['host', ...this.#headers.filter((h) => h !== 'host' && headers[h] !== undefined)];
    const { path, query } = splitTarget(req.url);
    const timestamp = Math.floor(this.#clock().getTime() / 1000);
    const nonce = randomBytes(16).toString('base64url');
    const signature = signatureV1(this.#secret, {
      keyId: this.keyId,
      method: req.method,
      path,
      query,
      headers,
      signedHeaders,
      bodySha256: sha256(req.body ?? '').toString('hex'),
      timestamp,
      nonce,
    });
    added[SIGNATURE_HEADER] = formatSignatureHeader({ keyId: this.keyId, timestamp, nonce, signedHeaders, signature });
    return added;
  }
}
