/**
 * A real upstream for gateway tests, on loopback: it records every request it sees (so a test can prove a refused
 * one never arrived), echoes them as JSON, streams SSE and chunked bodies on cue, stalls, fails, and speaks enough
 * WebSocket (RFC 6455 handshake, then an echo of the raw bytes) to prove an upgrade is relayed both ways.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export interface TestUpstream {
  url: string;
  seen: SeenRequest[];
  /** Release the next event of an open /stream response (resolves once it was written). */
  release(): void;
  /** Number of /stream responses whose client went away. */
  aborted: number;
  close(): Promise<void>;
}

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export async function startUpstream(): Promise<TestUpstream> {
  const seen: SeenRequest[] = [];
  const waiting: Array<() => void> = [];
  const pending: number[] = [];
  const state = { aborted: 0 };
  const dropped = new Set<string>();
  const gate = () => new Promise<void>((r) => (pending.length > 0 ? (pending.shift(), r()) : waiting.push(r)));
  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
    const body = Buffer.concat(chunks).toString('utf8');
    const url = req.url ?? '/';
    seen.push({ method: req.method ?? '', url, headers: req.headers, body });
    const path = url.split('?')[0]!;
    if (path.endsWith('/stream')) {
      // SSE: one event per release(), so a test can see event n arrive before event n+1 exists.
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.on('close', () => !res.writableFinished && state.aborted++);
      for (let i = 1; i <= 3 && !res.destroyed; i++) {
        await gate();
        res.write(`data: event ${i}\n\n`);
      }
      res.end();
      return;
    }
    if (path.endsWith('/chunked')) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      for (let i = 0; i < 64; i++) res.write(Buffer.alloc(64 * 1024, i)); // 4 MiB, written without waiting
      res.end();
      return;
    }
    if (path.endsWith('/slow')) return; // never answers
    // Closes the connection without answering, the first time a path is asked for: a kept-alive connection the
    // upstream dropped just as the proxy reused it.
    if (path.includes('/drop-once') && !dropped.has(path)) {
      dropped.add(path);
      req.socket.destroy();
      return;
    }
    if (path.endsWith('/fail')) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('down');
      return;
    }
    if (path.endsWith('/secret')) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ card: '4111 1111 1111 1111', name: 'Ada' }));
      return;
    }
    const out = JSON.stringify({ method: req.method, url, headers: req.headers, body });
    res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'yes', 'x-frame-options': 'SAMEORIGIN' }).end(out);
  };
  const server: Server = createServer((req, res) => void handler(req, res).catch(() => res.destroy()));
  const tunnels = new Set<import('node:stream').Duplex>();
  server.on('upgrade', (req, socket) => {
    tunnels.add(socket);
    socket.on('close', () => tunnels.delete(socket));
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: '' });
    const key = String(req.headers['sec-websocket-key'] ?? '');
    const accept = createHash('sha1').update(key + WS_GUID).digest('base64');
    socket.write(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${accept}`, '', ''].join('\r\n'));
    socket.on('data', (d: Buffer) => socket.write(d)); // echo
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    get aborted() {
      return state.aborted;
    },
    release() {
      const w = waiting.shift();
      if (w) w();
      else pending.push(1);
    },
    async close() {
      for (const t of tunnels) t.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
