/**
 * The witness HTTP interface (c2sp.org/tlog-witness): `POST <prefix>/add-checkpoint`, answering with the protocol's
 * own status codes and text/plain bodies (409 for a stale old size carries `Content-Type: text/x.tlog.size` and the
 * recorded size). Plain HTTP by default, HTTPS with a certificate and key; keep-alive connections are served.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Witness } from './witness.js';

/** Largest request body accepted (a checkpoint note with a few signatures and 63 proof lines is a few KiB). */
export const MAX_REQUEST_BYTES = 1024 * 1024;
const DRAIN_FACTOR = 8;

export interface WitnessServerOptions {
  witness: Witness;
  /** PEM certificate chain and private key: serve HTTPS (TLS 1.2+) instead of plain HTTP. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  maxBodyBytes?: number;
  /** Whole-request deadline (default 30 s). */
  requestTimeoutMs?: number;
  /** Internal failures (storage, signing): the client gets a bare 500. */
  onError?: (e: unknown) => void;
}

export interface RunningWitnessServer {
  server: Server;
  /** `http://host:port` or `https://host:port`: the submission prefix. */
  url: string;
  port: number;
  /** Stop accepting, let in-flight requests finish (at most `graceMs`, default 10 s), then close the witness. */
  close(graceMs?: number): Promise<void>;
}

function send(res: ServerResponse, status: number, body: string, contentType = 'text/plain; charset=utf-8', headers: Record<string, string> = {}): void {
  const payload = Buffer.from(body, 'utf8');
  res.writeHead(status, { 'content-type': contentType, 'content-length': String(payload.length), 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...headers });
  res.end(payload);
}

/**
 * Read the body up to `max` bytes; null when it is larger. The excess is then read and dropped (so that the client
 * sees the 413 rather than a reset), up to DRAIN_FACTOR times `max`, past which the connection is cut.
 */
function readBody(req: IncomingMessage, max: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    let over = false;
    const overflow = () => {
      over = true;
      chunks.length = 0;
      resolve(null);
    };
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (over) {
        if (n > DRAIN_FACTOR * max) req.socket.destroy();
        return;
      }
      if (n > max) overflow();
      else chunks.push(c);
    });
    req.on('end', () => {
      if (!over) resolve(Buffer.concat(chunks));
    });
    req.on('error', (e) => {
      if (!over) reject(e);
    });
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > max) overflow();
  });
}

async function handle(opts: WitnessServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '').split('?')[0];
  if (path !== '/add-checkpoint') {
    send(res, 404, 'not found\n');
    return;
  }
  if (req.method !== 'POST') {
    send(res, 405, 'add-checkpoint takes POST\n', undefined, { allow: 'POST' });
    return;
  }
  const body = await readBody(req, opts.maxBodyBytes ?? MAX_REQUEST_BYTES);
  if (body === null) {
    send(res, 413, 'request body too large\n', undefined, { connection: 'close' });
    return;
  }
  const r = await opts.witness.addCheckpoint(body);
  if (r.ok) send(res, 200, r.cosignatures.join(''));
  else if ('conflictSize' in r) send(res, 409, `${r.conflictSize}\n`, 'text/x.tlog.size');
  else send(res, r.status, `${r.error}\n`);
}

/** An HTTP(S) server for the witness (not listening yet). */
export function createWitnessServer(opts: WitnessServerOptions): Server {
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    handle(opts, req, res).catch((e: unknown) => {
      opts.onError?.(e);
      if (!res.headersSent) send(res, 500, 'internal error\n');
      else res.destroy();
    });
  };
  const server: Server = opts.tls ? (createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2' }, listener) as unknown as Server) : createHttpServer(listener);
  server.requestTimeout = opts.requestTimeoutMs ?? 30_000;
  server.headersTimeout = Math.min(server.requestTimeout, 10_000);
  server.keepAliveTimeout = 30_000;
  return server;
}

/** Create the server and listen on `host:port` (port 0: any free port). */
export async function listenWitness(opts: WitnessServerOptions & { host: string; port: number }): Promise<RunningWitnessServer> {
  const server = createWitnessServer(opts);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  let closing: Promise<void> | null = null;
  return {
    server,
    port: addr.port,
    url: `${opts.tls ? 'https' : 'http'}://${host}:${addr.port}`,
    close(graceMs = 10_000) {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        const timer = setTimeout(() => server.closeAllConnections(), graceMs);
        await closed;
        clearTimeout(timer);
        await opts.witness.close();
      })();
      return closing;
    },
  };
}
