/**
 * A webhook sink: each batch is one POST of a JSON array (the events in the sink's format: OCSF objects by default,
 * or RFC 5424 / CEF strings), signed as the Standard Webhooks specification describes:
 *
 *   webhook-id:        <sink>-<first index>-<last index>   (the same on every retry of a batch: receivers dedupe on it)
 *   webhook-timestamp: <unix seconds of this attempt>
 *   webhook-signature: v1,<base64 HMAC-SHA256(key, id + "." + timestamp + "." + body)>
 *
 * The key is the content of `secret_file`: `whsec_<base64>` (the specification's form) is decoded, anything else is
 * taken as its UTF-8 bytes; either way at least 16 bytes. A batch counts as delivered only on a 2xx answer within the
 * deadline; redirects are not followed. https verifies the server against `ca_file` besides the public roots; plain
 * http is accepted for tests and development only, with a warning.
 */
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import type { Logger } from 'pino';
import type { AuditEvent } from '../../../kernel/audit/events.js';
import { formatEvent, PALISADE_VERSION, type ExportFormat, type SyslogOptions } from './formats.js';
import { configError, displayUrl, type AuditSink } from './sink.js';
import { postBuffer, PostError } from '../../../http/post.js';

export interface WebhookSinkOptions {
  name: string;
  /** https://... (http:// for tests and development only). */
  url: string;
  /** PEM CA certificate(s) trusted for https besides the public roots. */
  caPem?: string;
  /** The HMAC key (parseWebhookSecret). */
  secret: Buffer;
  format: ExportFormat;
  /** For the rfc5424 and cef formats: HOSTNAME, APP-NAME, SD-ID enterprise number, facility; the product version. */
  syslog: SyslogOptions;
  log: Logger;
  clock: () => Date;
  /** Deadline for one delivery (connect, send, answer). Default 15 s. */
  timeoutMs?: number;
}

const MIN_SECRET_BYTES = 16;

/** The HMAC key from a secret file's text: `whsec_<base64>` decoded, else the UTF-8 bytes (trimmed). */
export function parseWebhookSecret(text: string, sink = 'webhook'): Buffer {
  const t = text.trim();
  let key: Buffer;
  if (t.startsWith('whsec_')) {
    const b64 = t.slice('whsec_'.length);
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw configError(sink, 'the secret has the whsec_ prefix but is not base64 after it');
    key = Buffer.from(b64, 'base64');
  } else {
    key = Buffer.from(t, 'utf8');
  }
  if (key.length < MIN_SECRET_BYTES) throw configError(sink, `the webhook secret must hold at least ${MIN_SECRET_BYTES} bytes`);
  return key;
}

export function readWebhookSecret(sink: string, path: string): Buffer {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw configError(sink, `cannot read secret_file ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  return parseWebhookSecret(text, sink);
}

/** The Standard Webhooks signature header value of one delivery. */
export function webhookSignature(key: Buffer, id: string, timestamp: number, body: Buffer): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest('base64')}`;
}

export class WebhookSink implements AuditSink {
  readonly name: string;
  readonly #url: URL;
  readonly #opts: WebhookSinkOptions;
  readonly #timeoutMs: number;
  #inflight: AbortController | null = null;

  constructor(opts: WebhookSinkOptions) {
    let url: URL;
    try {
      url = new URL(opts.url);
    } catch {
      throw configError(opts.name, 'url is not a URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw configError(opts.name, `a webhook sink needs an https:// url, not ${url.protocol}//`);
    if (url.username || url.password) throw configError(opts.name, 'put no credentials in the webhook url: deliveries are authenticated by their signature');
    if (!['rfc5424', 'cef', 'ocsf'].includes(opts.format)) throw configError(opts.name, `unknown format ${String(opts.format)}`);
    if (opts.secret.length < MIN_SECRET_BYTES) throw configError(opts.name, `the webhook secret must hold at least ${MIN_SECRET_BYTES} bytes`);
    this.name = opts.name;
    this.#url = url;
    this.#opts = opts;
    this.#timeoutMs = opts.timeoutMs ?? 15_000;
    if (url.protocol === 'http:') opts.log.warn({ sink: opts.name, url: displayUrl(url) }, 'audit export over plain http: events travel unencrypted; use https:// outside tests and development');
  }

  /** The id of a batch: stable across retries, so a receiver can drop a batch it already has. */
  batchId(events: readonly AuditEvent[]): string {
    return `${this.name}-${events[0]!.index}-${events[events.length - 1]!.index}`;
  }

  async deliver(events: readonly AuditEvent[]): Promise<void> {
    if (events.length === 0) return;
    const body = Buffer.from(JSON.stringify(events.map((e) => formatEvent(e, this.#opts.format, this.#opts.syslog))), 'utf8');
    const id = this.batchId(events);
    const timestamp = Math.floor(this.#opts.clock().getTime() / 1000);
    const headers = {
      'content-type': 'application/json',
      'content-length': String(body.length),
      'user-agent': `Palisade/${this.#opts.syslog.productVersion ?? PALISADE_VERSION} audit-export`,
      'webhook-id': id,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': webhookSignature(this.#opts.secret, id, timestamp, body),
    };
    await this.#post(body, headers);
  }

  async close(): Promise<void> {
    this.#inflight?.abort();
  }

  async #post(body: Buffer, headers: Record<string, string>): Promise<void> {
    const where = displayUrl(this.#url);
    const inflight = new AbortController();
    this.#inflight = inflight;
    try {
      // The answer's body is not needed: it is read and dropped (bounded by the deadline), so the socket can be reused.
      const r = await postBuffer(this.#url, body, {
        headers,
        timeoutMs: this.#timeoutMs,
        minVersion: 'TLSv1.2',
        discardBody: true,
        maxResponseBytes: Infinity,
        signal: inflight.signal,
        ...(this.#opts.caPem ? { ca: [...rootCertificates, this.#opts.caPem] } : {}),
      });
      if (r.status < 200 || r.status >= 300) throw new Error(`webhook ${where}: HTTP ${r.status}${r.status >= 300 && r.status < 400 ? ' (redirects are not followed)' : ''}`);
    } catch (e) {
      if (!(e instanceof PostError)) throw e;
      throw new Error(e.kind === 'timeout' ? `webhook ${where}: no answer within ${this.#timeoutMs} ms` : `webhook ${where}: ${e.message}`, { cause: e });
    } finally {
      this.#inflight = null;
    }
  }
}
