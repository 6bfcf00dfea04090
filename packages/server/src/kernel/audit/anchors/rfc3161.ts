/**
 * An RFC 3161 time-stamping authority as an audit anchor: each checkpoint body is time-stamped (SHA-256 message
 * imprint, fresh 64-bit nonce, TSA certificate requested), the token is checked, and the receipt stored is the
 * time-stamp token (base64 DER), which proves the checkpoint existed at the token's genTime to anyone who trusts the TSA.
 *
 * With a CA configured (`caPem`), the token must verify completely (signature, TSA certificate with the critical
 * timeStamping usage, chain to that CA, imprint, nonce), and https connections also trust that CA (besides the public
 * roots). Without one only the imprint and the nonce are checked: the token is stored unverified.
 */
import { X509Certificate } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import { PalisadeError, TSA_OID, parseTimeStampResponse, parseTimeStampToken, timeStampRequest, verifyTimeStampToken, type TimeStampVerification } from '@palisade/core';
import { postBuffer, type PostError } from '../../../http/post.js';
import type { Anchor, AnchorContext, SignedCheckpoint } from './anchor.js';

export interface Rfc3161AnchorOptions {
  name: string;
  /** The TSA's http(s) URL; requests are POSTed to it as application/timestamp-query (RFC 3161 §3.4). */
  url: string;
  /** PEM CA certificate(s): trust anchors for the tokens, and extra roots for https. */
  caPem?: string;
  /** Deadline for the whole exchange (connect, send, response). Default 10 s. */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_RESPONSE_BYTES = 1024 * 1024;
const REPLY_TYPES = new Set(['application/timestamp-reply', 'application/timestamp-response']); // the latter: pre-RFC drafts

export class Rfc3161Anchor implements Anchor {
  readonly kind = 'rfc3161';
  readonly name: string;
  readonly url: string;
  readonly #url: URL;
  readonly #caPem: string | undefined;
  readonly #timeoutMs: number;

  constructor(opts: Rfc3161AnchorOptions) {
    const bad = (what: string): PalisadeError => new PalisadeError('PAL_CONFIG_INVALID', `rfc3161 anchor ${opts.name}: ${what}`, { extensions: { setting: 'audit.anchors' } });
    let url: URL;
    try {
      url = new URL(opts.url);
    } catch {
      throw bad(`url ${opts.url} is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad(`url ${opts.url} must be http or https`);
    if (opts.caPem !== undefined) {
      const blocks = opts.caPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
      if (blocks.length === 0) throw bad('the CA file holds no PEM certificate');
      for (const b of blocks) {
        try {
          new X509Certificate(b);
        } catch {
          throw bad('the CA file holds an unreadable certificate');
        }
      }
    }
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw bad(`timeoutMs ${timeoutMs} must be a positive number`);
    this.name = opts.name;
    this.url = opts.url;
    this.#url = url;
    this.#caPem = opts.caPem;
    this.#timeoutMs = timeoutMs;
  }

  #fail(message: string, cause?: unknown): Error {
    return new Error(`rfc3161 anchor ${this.name} (${this.url}): ${message}`, cause === undefined ? undefined : { cause });
  }

  async anchor(cp: SignedCheckpoint, _ctx?: AnchorContext): Promise<string> {
    const data = Buffer.from(cp.body, 'utf8');
    const req = timeStampRequest(data, { certReq: true });
    const body = await this.#post(req.der);

    let resp;
    try {
      resp = parseTimeStampResponse(body);
    } catch (e) {
      throw this.#fail(`the reply is not a time-stamp response: ${(e as Error).message}`, e);
    }
    if (!resp.granted || !resp.token) {
      const detail = [...resp.statusString, ...(resp.failInfo.length ? [`failInfo ${resp.failInfo.join(',')}`] : [])].join('; ');
      throw this.#fail(`the TSA answered ${resp.statusName}${detail ? ` (${detail})` : ''}`);
    }
    const token = resp.token;
    if (this.#caPem !== undefined) {
      const v = verifyTimeStampToken(token, data, { trusted: [this.#caPem], nonce: req.nonce ?? undefined });
      if (!v.ok) throw this.#fail(`the time-stamp token does not verify: ${v.reason}`);
    } else {
      let info;
      try {
        info = parseTimeStampToken(token).tstInfo;
      } catch (e) {
        throw this.#fail(`the time-stamp token is malformed: ${(e as Error).message}`, e);
      }
      if (info.messageImprint.hashAlgorithm !== TSA_OID.sha256 || !info.messageImprint.digest.equals(req.digest)) {
        throw this.#fail('the time-stamp token does not cover this checkpoint (message imprint mismatch)');
      }
      if (info.nonce !== req.nonce) throw this.#fail('the time-stamp token does not answer this request (nonce mismatch)');
    }
    return token.toString('base64');
  }

  /** Verify a stored receipt for `cp` against the configured CA (needs `caPem`). */
  verifyReceipt(cp: Pick<SignedCheckpoint, 'body'>, receipt: string): TimeStampVerification {
    if (this.#caPem === undefined) return { ok: false, reason: `rfc3161 anchor ${this.name} has no CA configured to verify with` };
    return verifyTimeStampToken(Buffer.from(receipt, 'base64'), Buffer.from(cp.body, 'utf8'), { trusted: [this.#caPem] });
  }

  /** POST the query; resolves to the body of a 200 application/timestamp-reply, within the deadline. */
  async #post(query: Buffer): Promise<Buffer> {
    let r: { status: number; contentType: string; body: Buffer };
    try {
      r = await postBuffer(this.#url, query, {
        headers: { 'content-type': 'application/timestamp-query', accept: 'application/timestamp-reply' },
        timeoutMs: this.#timeoutMs,
        maxResponseBytes: MAX_RESPONSE_BYTES,
        ...(this.#caPem !== undefined ? { ca: [...rootCertificates, this.#caPem] } : {}),
      });
    } catch (e) {
      const err = e as PostError;
      if (err.kind === 'timeout') throw this.#fail(`no complete answer within ${this.#timeoutMs} ms`);
      if (err.kind === 'too-large') throw this.#fail(`the reply exceeds ${MAX_RESPONSE_BYTES} bytes`);
      throw this.#fail(`request failed: ${err.message}`, e);
    }
    if (r.status !== 200) {
      const text = r.body.toString('utf8', 0, Math.min(r.body.length, 200)).replace(/[^\x20-\x7e]+/g, ' ').trim();
      throw this.#fail(`HTTP ${r.status}${text ? `: ${text}` : ''}`);
    }
    const type = r.contentType.split(';')[0]!.trim().toLowerCase();
    if (!REPLY_TYPES.has(type)) throw this.#fail(`the reply's content type is ${type || 'missing'}, not application/timestamp-reply`);
    return r.body;
  }
}
