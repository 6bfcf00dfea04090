/**
 * Syslog over TLS (RFC 5425): one long-lived connection to the collector, each message framed by octet counting
 * (`MSG-LEN SP SYSLOG-MSG`, §4.3), TLS 1.2 or later, the server's certificate verified against `ca_file` (or the
 * system roots) and its name or IP address checked against the URL's host.
 *
 * Acknowledgement: syslog has no application-level acknowledgement (neither RFC 5425 nor RFC 6587 defines one), so a
 * batch counts as delivered once all its frames were written and flushed to the socket without error. A collector
 * that dies right after that can lose what was still in flight (kernel buffers); the webhook sink, acknowledged by an
 * HTTP 2xx, has no such window. A connection the collector closed is noticed before the next batch and reopened.
 *
 * Reconnection is lazy: a failed connection fails the batch, and the next attempt (paced by the exporter's exponential
 * backoff) connects anew. `tcp://` (plain, unauthenticated) is accepted for tests and development only, with a warning.
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Logger } from 'pino';
import type { AuditEvent } from '../../../kernel/audit/events.js';
import { rfc5424Message, toCef, toOcsf, toRfc5424, type ExportFormat, type SyslogOptions } from './formats.js';
import { configError, displayUrl, type AuditSink } from './sink.js';

export interface SyslogSinkOptions {
  name: string;
  /** tls://host:port (RFC 5425; 6514 when the port is omitted) or tcp://host:port (tests and development only). */
  url: string;
  /** PEM CA certificate(s) the collector's certificate must chain to; the system roots when unset. */
  caPem?: string;
  format: ExportFormat;
  /** HOSTNAME, APP-NAME, SD-ID enterprise number, facility. */
  syslog: SyslogOptions;
  log: Logger;
  /** Default 10 s. */
  connectTimeoutMs?: number;
  /** How long a batch may take to flush to the socket (a collector that stopped reading). Default 30 s. */
  writeTimeoutMs?: number;
}

/** RFC 5425 §4.3 octet-counting frame: the MSG length in octets, a space, the message. */
export function octetFrame(msg: string): Buffer {
  const body = Buffer.from(msg, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length} `, 'ascii'), body]);
}

/**
 * The syslog message of an event in a sink's format: rfc5424 is toRfc5424 (STRUCTURED-DATA and the canonical JSON);
 * cef and ocsf ride as the MSG of an RFC 5424 message without STRUCTURED-DATA.
 */
export function syslogMessage(e: AuditEvent, format: ExportFormat, opts: SyslogOptions): string {
  if (format === 'rfc5424') return toRfc5424(e, opts);
  const msg = format === 'cef' ? toCef(e, { hostname: opts.hostname, ...(opts.productVersion ? { productVersion: opts.productVersion } : {}) }) : JSON.stringify(toOcsf(e, opts));
  return rfc5424Message(e, opts, '-', msg);
}

export class SyslogSink implements AuditSink {
  readonly name: string;
  readonly #url: URL;
  readonly #host: string;
  readonly #port: number;
  readonly #tls: boolean;
  readonly #opts: SyslogSinkOptions;
  #socket: Socket | null = null;
  /** False from the moment the collector ends the connection or it fails. */
  #open = false;

  constructor(opts: SyslogSinkOptions) {
    let url: URL;
    try {
      url = new URL(opts.url);
    } catch {
      throw configError(opts.name, 'url is not a URL');
    }
    if (url.protocol !== 'tls:' && url.protocol !== 'tcp:') throw configError(opts.name, `a syslog sink needs tls://host:port (or tcp:// for tests), not ${url.protocol}//`);
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    if (!host) throw configError(opts.name, 'url has no host');
    const port = url.port ? Number(url.port) : url.protocol === 'tls:' ? 6514 : 514;
    this.name = opts.name;
    this.#url = url;
    this.#host = host;
    this.#port = port;
    this.#tls = url.protocol === 'tls:';
    this.#opts = opts;
    if (!this.#tls) opts.log.warn({ sink: opts.name, url: displayUrl(url) }, 'audit export over plain TCP: events travel unencrypted and the collector is not authenticated; use tls:// outside tests and development');
    if (!['rfc5424', 'cef', 'ocsf'].includes(opts.format)) throw configError(opts.name, `unknown format ${String(opts.format)}`);
  }

  async deliver(events: readonly AuditEvent[]): Promise<void> {
    if (events.length === 0) return;
    const frames = Buffer.concat(events.map((e) => octetFrame(syslogMessage(e, this.#opts.format, this.#opts.syslog))));
    const socket = await this.#connection();
    try {
      await this.#write(socket, frames);
    } catch (e) {
      this.#drop(socket);
      throw e;
    }
  }

  async close(): Promise<void> {
    const s = this.#socket;
    this.#socket = null;
    this.#open = false;
    if (!s || s.destroyed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        s.destroy();
        resolve();
      }, 2000);
      s.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      s.end();
    });
  }

  #drop(s: Socket): void {
    if (this.#socket === s) {
      this.#socket = null;
      this.#open = false;
    }
    s.destroy();
  }

  async #connection(): Promise<Socket> {
    // Let pending I/O events run first, so a close by the collector that already arrived is seen before reusing.
    if (this.#socket) await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.#socket && this.#open && !this.#socket.destroyed) return this.#socket;
    if (this.#socket) this.#drop(this.#socket);
    const s = await this.#connect();
    this.#socket = s;
    this.#open = true;
    const lost = (): void => {
      if (this.#socket === s) this.#open = false;
    };
    s.on('end', () => {
      lost();
      s.destroy();
    });
    s.on('close', lost);
    s.on('error', (err) => {
      lost();
      this.#opts.log.warn({ sink: this.name, err: err.message }, 'audit export syslog connection failed');
    });
    s.resume(); // a collector sends nothing; discard whatever it might
    return s;
  }

  #connect(): Promise<Socket> {
    const timeoutMs = this.#opts.connectTimeoutMs ?? 10_000;
    const where = displayUrl(this.#url);
    return new Promise<Socket>((resolve, reject) => {
      let settled = false;
      const s: Socket = this.#tls
        ? tlsConnect({
            host: this.#host,
            port: this.#port,
            ...(isIP(this.#host) ? {} : { servername: this.#host }),
            ...(this.#opts.caPem ? { ca: [this.#opts.caPem] } : {}),
            minVersion: 'TLSv1.2',
            rejectUnauthorized: true,
          })
        : netConnect({ host: this.#host, port: this.#port });
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        s.destroy();
        reject(new Error(`syslog ${where}: ${err.message}`, { cause: err }));
      };
      const timer = setTimeout(() => fail(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
      s.once('error', fail);
      s.once(this.#tls ? 'secureConnect' : 'connect', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        s.off('error', fail);
        s.setNoDelay(true);
        s.setKeepAlive(true, 30_000);
        this.#opts.log.info({ sink: this.name, url: where }, 'audit export connected to the syslog collector');
        resolve(s);
      });
    });
  }

  /** Resolves when the data was flushed to the socket (the write callback), within the write timeout. */
  #write(s: Socket, data: Buffer): Promise<void> {
    const timeoutMs = this.#opts.writeTimeoutMs ?? 30_000;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const done = (err?: Error | null): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        s.off('close', onClose);
        if (err) reject(err);
        else resolve();
      };
      const onClose = (): void => done(new Error(`syslog ${displayUrl(this.#url)}: the connection closed during the write`));
      const timer = setTimeout(() => done(new Error(`syslog ${displayUrl(this.#url)}: the batch was not flushed within ${timeoutMs} ms`)), timeoutMs);
      s.once('close', onClose);
      s.write(data, (err) => done(err ? new Error(`syslog ${displayUrl(this.#url)}: ${err.message}`, { cause: err }) : null));
    });
  }
}
