// Verifies `Palisade-Signature` (v1) on an incoming request: signature, clock skew, then the nonce (replay).
import {
  PalisadeError,
  SIGNATURE_HEADER,
  checkSignatureV1,
  parseSignatureHeader,
  sha256,
  splitTarget,
  type HeaderBag,
} from '@palisade/core';
import type { ReplayCache } from './replay-cache.js';

/** A request as it arrived: method, the request target as sent (`req.raw.url`), headers, the raw body bytes. */
export interface IncomingSignedRequest {
  method: string;
  /** `/path?query` exactly as on the request line (Fastify: `request.raw.url`; never a decoded or routed path). */
  url: string;
  headers: HeaderBag;
  /** The body bytes as received (not a re-serialized parse); absent or empty when there is none. */
  body?: Uint8Array | string;
}

/** What a verified signature vouches for. */
export interface VerifiedSignature {
  keyId: string;
  /** Unix seconds. */
  timestamp: number;
  nonce: string;
  signedHeaders: string[];
}

export interface RequestVerifierOptions {
  /** The HMAC secret of a key id, or null when the id is unknown (or disabled). */
  secrets: (keyId: string) => Promise<Buffer | null>;
  /** How far (seconds) a signature's timestamp may be from this server's clock, either way (default 300). */
  skewSeconds?: number;
  /** Accepted nonces: MemoryReplayCache for one node, RedisReplayCache across nodes. */
  replay: ReplayCache;
  clock?: () => Date;
  /** Headers every signature must cover (default `host`, which ties a request to the service it was sent to). */
  requiredHeaders?: readonly string[];
}

/**
 * Checks, cheapest first, and each failure with its own code (all 401):
 *  1. a `Palisade-Signature` header is there (PAL_SIGNATURE_MISSING) and parses, and covers the required headers
 *     (PAL_SIGNATURE_MALFORMED);
 *  2. its timestamp is within ±skew of this server's clock (PAL_SIGNATURE_EXPIRED): a re-timed or stale request;
 *  3. its key id has a secret (PAL_SIGNATURE_KEY_UNKNOWN);
 *  4. the HMAC-SHA256 of the canonical request equals `sig`, compared in constant time (PAL_SIGNATURE_INVALID);
 *  5. its (key id, nonce) was not accepted before (PAL_SIGNATURE_REPLAYED), recorded for 2 × skew.
 * The nonce is recorded only after the signature verified, so nobody without the secret can spend someone's nonce
 * or fill the cache. A nonce is remembered for 2 × skew: the whole span during which its timestamp is acceptable
 * (from ts − skew to ts + skew), so that once a nonce is forgotten the request carrying it is refused as expired.
 */
export class RequestVerifier {
  readonly #secrets: RequestVerifierOptions['secrets'];
  readonly #skew: number;
  readonly #replay: ReplayCache;
  readonly #clock: () => Date;
  readonly #required: readonly string[];

  constructor(opts: RequestVerifierOptions) {
    const skew = opts.skewSeconds ?? 300;
    if (!Number.isInteger(skew) || skew < 1) throw new RangeError('RequestVerifier: skewSeconds must be a positive integer');
    this.#secrets = opts.secrets;
    this.#skew = skew;
    this.#replay = opts.replay;
    this.#clock = opts.clock ?? (() => new Date());
    this.#required = (opts.requiredHeaders ?? ['host']).map((h) => h.toLowerCase());
  }

  /** How long a nonce is remembered: 2 × skew seconds. */
  get replayTtlSeconds(): number {
    return 2 * this.#skew;
  }

  async verify(req: IncomingSignedRequest): Promise<VerifiedSignature> {
    const raw = req.headers[SIGNATURE_HEADER] ?? findHeader(req.headers, SIGNATURE_HEADER);
    const p = parseSignatureHeader(typeof raw === 'number' ? String(raw) : raw);
    const unsigned = this.#required.filter((h) => !p.signedHeaders.includes(h));
    if (unsigned.length > 0) throw new PalisadeError('PAL_SIGNATURE_MALFORMED', `the signature must cover the header(s) ${unsigned.join(', ')}`);

    const now = Math.floor(this.#clock().getTime() / 1000);
    if (Math.abs(now - p.timestamp) > this.#skew) {
      throw new PalisadeError('PAL_SIGNATURE_EXPIRED', `the signature's timestamp is more than ${this.#skew} seconds from the server's clock`, {
        extensions: { server_time: now, skew_seconds: this.#skew },
      });
    }

    const secret = await this.#secrets(p.keyId);
    if (!secret) throw new PalisadeError('PAL_SIGNATURE_KEY_UNKNOWN', `no signing key "${p.keyId}"`);

    const { path, query } = splitTarget(req.url);
    const input = {
      keyId: p.keyId,
      method: req.method,
      path,
      query,
      headers: req.headers,
      signedHeaders: p.signedHeaders,
      bodySha256: sha256(req.body ?? '').toString('hex'),
      timestamp: p.timestamp,
      nonce: p.nonce,
    };
    if (!checkSignatureV1(secret, input, p.signature)) throw new PalisadeError('PAL_SIGNATURE_INVALID', 'the signature does not match the request');

    if (await this.#replay.seen(p.keyId, p.nonce, this.replayTtlSeconds)) {
      throw new PalisadeError('PAL_SIGNATURE_REPLAYED', 'this signed request (its nonce) was accepted before');
    }
    return { keyId: p.keyId, timestamp: p.timestamp, nonce: p.nonce, signedHeaders: p.signedHeaders };
  }
}

function findHeader(headers: HeaderBag, name: string): string | readonly string[] | number | undefined {
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) return v;
  return undefined;
}
