import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startUpstream, type TestUpstream } from '../../testing/upstream.js';
import { Upstream } from './upstream.js';

const setting = (url: string) => ({ url, timeout_ms: 2000, connect_timeout_ms: 1000, max_connections: 8, circuit: { failure_threshold: 2, open_seconds: 30 } });

/** A front server whose handler is the test's: `forward` gets a real ServerResponse. */
async function front(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; port: number }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port };
}

describe('Upstream.forward', () => {
  let up: TestUpstream;
  beforeAll(async () => {
    up = await startUpstream();
  });
  afterAll(() => up.close());

  it('a client gone before the request is forwarded is a 499, never sent, and does not count against the circuit', async () => {
    const u = new Upstream('fw', setting(up.url));
    const results: Array<{ status: number }> = [];
    const { server, port } = await front((req, res) => {
      req.resume();
      res.destroy(); // the client left while the gateway was still admitting the request: 'close' is past
      res.once('close', () => void u.forward({ method: 'POST', target: '/framework/gone', headers: { host: u.host }, body: Buffer.from('{}'), timeoutMs: 2000 }, res, { headers: {} }).then((r) => results.push(r)));
    });
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve) => {
        const r = request({ host: '127.0.0.1', port, method: 'POST', path: '/' }, () => resolve());
        r.on('error', () => resolve());
        r.end('{}');
      });
    }
    await expect.poll(() => results.length).toBe(5);
    expect(results.map((r) => r.status)).toEqual([499, 499, 499, 499, 499]);
    expect(u.breaker.state).toBe('closed');
    expect(up.seen.filter((s) => s.url === '/framework/gone')).toEqual([]);
    u.close();
    server.close();
  });

  it('a client that leaves while the upstream is still working is a 499 and does not count against the circuit', async () => {
    const u = new Upstream('fw', setting(up.url));
    const results: Array<{ status: number }> = [];
    const { server, port } = await front((req, res) => {
      req.resume();
      void u.forward({ method: 'GET', target: '/framework/slow', headers: { host: u.host }, body: null, timeoutMs: 2000 }, res, { headers: {} }).then((r) => results.push(r));
    });
    for (let i = 0; i < 3; i++) {
      const before = up.seen.length;
      const r = request({ host: '127.0.0.1', port, path: '/' });
      r.on('error', () => undefined);
      r.end();
      await expect.poll(() => up.seen.length).toBe(before + 1); // the upstream has it and does not answer
      r.destroy();
      await expect.poll(() => results.length).toBe(i + 1);
    }
    expect(results.map((r) => r.status)).toEqual([499, 499, 499]);
    expect(u.breaker.state).toBe('closed');
    u.close();
    server.close();
  });

  it('an upstream that refuses connections fails twice and opens the circuit (threshold 2)', async () => {
    const dead = await front(() => undefined);
    const url = `http://127.0.0.1:${dead.port}`;
    await new Promise<void>((r) => dead.server.close(() => r()));
    const u = new Upstream('dead', setting(url));
    const codes: string[] = [];
    const { server, port } = await front((req, res) => {
      req.resume();
      u.forward({ method: 'GET', target: '/', headers: { host: u.host }, body: null, timeoutMs: 2000 }, res, { headers: {} }).then(
        () => res.end(),
        (e: { code: string }) => {
          codes.push(e.code);
          res.end();
        },
      );
    });
    for (let i = 0; i < 2; i++) {
      await new Promise<void>((resolve) => request({ host: '127.0.0.1', port, path: '/' }, (r) => r.resume().on('end', resolve)).end());
    }
    expect(codes).toEqual(['PAL_GATEWAY_UPSTREAM_UNAVAILABLE', 'PAL_GATEWAY_UPSTREAM_UNAVAILABLE']);
    expect(u.breaker.state).toBe('open');
    u.close();
    server.close();
  });
});
