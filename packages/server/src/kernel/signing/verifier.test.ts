import { request } from 'node:https';
import Fastify, { type FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { PalisadeError, SIGNATURE_HEADER, formatSignatureHeader, isPalisadeError, parseSignatureHeader, randomBytes, sha256, signatureV1 } from '@palisade/core';
import { PalisadeApiError, PalisadeClient, RequestSigner } from '@palisade/sdk';
import { getFreePort, requireService } from '@palisade/testkit';
import { makeCa, makeLeaf, type TestCa, type TestLeaf } from '../../testing/certs.js';
import { MemoryReplayCache, RedisReplayCache, type ReplayCache } from './replay-cache.js';
import { RequestVerifier } from './verifier.js';

const redisUrl = inject('redisUrl');
if (!redisUrl) requireService('redis', 'signed requests: the Redis replay cache');

// One injected clock for signers and verifiers: tests move it, nothing waits on real time.
let now = 1_800_000_000; // unix seconds
const clock = () => new Date(now * 1000);

const KEY_ID = 'agent-7';
const SECRET = randomBytes(32);
const secrets = async (id: string) => (id === KEY_ID ? SECRET : null);

/** A request as a node received it, to send again byte for byte (or altered). */
interface Received {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: Buffer;
}

interface Node {
  port: number;
  addr: string;
  received: Received[];
  app: FastifyInstance;
}

let ca: TestCa;
let leaf: TestLeaf;
const nodes: Node[] = [];
const caches: ReplayCache[] = [];

/** A loopback HTTPS server whose every route requires a signed request, as the gateway will. */
async function startNode(verifier: RequestVerifier): Promise<Node> {
  const app = Fastify({ https: { cert: leaf.cert, key: leaf.key } });
  const received: Received[] = [];
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body)); // the bytes as sent
  app.setErrorHandler((e, _req, reply) => {
    const err = isPalisadeError(e) ? e : new PalisadeError('PAL_INTERNAL', undefined, { cause: e });
    void reply.code(err.status).type('application/problem+json').send(err.toProblem());
  });
  app.all('/*', async (req) => {
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
    received.push({ method: req.method, url: req.raw.url!, headers, body });
    const v = await verifier.verify({ method: req.method, url: req.raw.url!, headers: req.headers, body });
    return { ok: true, key_id: v.keyId, url: req.raw.url, body: body.toString('utf8') };
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;
  const node = { port, addr: `127.0.0.1:${port}`, received, app };
  nodes.push(node);
  return node;
}

function verifierWith(replay: ReplayCache, skewSeconds?: number): RequestVerifier {
  caches.push(replay);
  return new RequestVerifier({ secrets, replay, clock, ...(skewSeconds === undefined ? {} : { skewSeconds }) });
}

const clients: PalisadeClient[] = [];
function client(node: Node, signer?: RequestSigner): PalisadeClient {
  const c = new PalisadeClient({ addr: node.addr, ca: ca.pem, ...(signer ? { signer } : {}) });
  clients.push(c);
  return c;
}
const signer = (opts: Partial<ConstructorParameters<typeof RequestSigner>[0]> = {}) => new RequestSigner({ keyId: KEY_ID, secret: SECRET, clock, ...opts });

/** Sends `r` with node:https, headers as given (content-length recomputed from the body). */
function send(node: Node, r: Received): Promise<{ status: number; json: { code?: string; ok?: boolean; key_id?: string } }> {
  const headers: Record<string, string> = { ...r.headers };
  delete headers.connection;
  delete headers['transfer-encoding'];
  if (r.body.length > 0 || 'content-length' in headers) headers['content-length'] = String(r.body.length);
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: node.port, method: r.method, path: r.url, headers, ca: ca.pem, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(r.body);
  });
}

/** A request the SDK's signer signed but that was never sent: to tamper with, re-time or delay. */
function signedButUnsent(node: Node, s = signer(), method = 'POST', url = '/v1/kms/keys/k1/encrypt?context=a%20b&b=1', bodyText = '{"plaintext":"aGk="}'): Received {
  const body = Buffer.from(bodyText);
  const headers: Record<string, string> = { host: node.addr, 'content-type': 'application/json', accept: 'application/json' };
  Object.assign(headers, s.sign({ method, url, headers, body }));
  return { method, url, headers, body };
}

/** The same signature header with `ts` changed, not re-signed. */
function retimed(r: Received, ts: number): Received {
  const p = parseSignatureHeader(r.headers[SIGNATURE_HEADER]);
  return { ...r, headers: { ...r.headers, [SIGNATURE_HEADER]: formatSignatureHeader({ ...p, timestamp: ts }) } };
}

async function refusedWith(p: Promise<unknown>, code: string): Promise<void> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e, `expected ${code}`).toBeInstanceOf(PalisadeApiError);
  expect([(e as PalisadeApiError).status, (e as PalisadeApiError).code]).toEqual([401, code]);
}

beforeAll(async () => {
  ca = await makeCa('signed requests test CA');
  leaf = await makeLeaf(ca, { names: ['127.0.0.1', 'localhost'] });
});

afterAll(async () => {
  for (const c of clients) c.close();
  for (const n of nodes) await n.app.close();
  for (const c of caches) await c.close();
});

describe('signed requests, SDK to verifier over HTTPS (memory replay cache)', () => {
  let node: Node;
  let signed: PalisadeClient;
  beforeAll(async () => {
    node = await startNode(verifierWith(new MemoryReplayCache({ now: () => now * 1000 })));
    signed = client(node, signer());
  });

  it('requests the SDK signs verify: a JSON body, a query with spaces and "+", a GET without body, an SDK method', async () => {
    const post = await signed.transport.send<{ ok: boolean; key_id: string; body: string }>('POST', '/v1/things/a%20b?z=1&a=x%2By', { hello: 'wörld' });
    expect(post).toMatchObject({ ok: true, key_id: KEY_ID, body: '{"hello":"wörld"}' });
    const get = await signed.transport.send<{ ok: boolean; url: string }>('GET', `/v1/audit/events?${new URLSearchParams({ type: 'a b+c', limit: '5' })}`);
    expect(get).toMatchObject({ ok: true, url: '/v1/audit/events?type=a+b%2Bc&limit=5' });
    expect(await signed.whoami()).toMatchObject({ ok: true, key_id: KEY_ID });
    // withApproval() keeps the signer, and the approval header is signed
    expect(await signed.withApproval('apr_123').transport.send('DELETE', '/v1/kms/keys/k1')).toMatchObject({ ok: true });
    const last = node.received.at(-1)!;
    expect(last.headers['palisade-approval']).toBe('apr_123');
    expect(parseSignatureHeader(last.headers[SIGNATURE_HEADER]).signedHeaders).toEqual(['host', 'palisade-approval']);
  });

  it('the same request sent again is refused as a replay; a fresh signature of the same request is not', async () => {
    await signed.transport.send('POST', '/v1/kms/keys/k1/encrypt', { plaintext: 'aGk=' });
    const original = node.received.at(-1)!;
    const replay = await send(node, original);
    expect([replay.status, replay.json.code]).toEqual([401, 'PAL_SIGNATURE_REPLAYED']);
    // an unchanged copy sent a third time: still refused
    expect((await send(node, original)).json.code).toBe('PAL_SIGNATURE_REPLAYED');
    await expect(signed.transport.send('POST', '/v1/kms/keys/k1/encrypt', { plaintext: 'aGk=' })).resolves.toMatchObject({ ok: true });
  });

  it('a re-timed request (ts changed without re-signing) is refused: inside the window as invalid, outside as expired', async () => {
    const r = signedButUnsent(node);
    const ts = parseSignatureHeader(r.headers[SIGNATURE_HEADER]).timestamp;
    expect((await send(node, retimed(r, ts + 60))).json.code).toBe('PAL_SIGNATURE_INVALID');
    expect((await send(node, retimed(r, ts - 1))).json.code).toBe('PAL_SIGNATURE_INVALID');
    expect((await send(node, retimed(r, ts - 301))).json.code).toBe('PAL_SIGNATURE_EXPIRED');
    expect((await send(node, retimed(r, ts + 301))).json.code).toBe('PAL_SIGNATURE_EXPIRED');
    // none of those spent the nonce: the untouched request still goes through, once
    expect((await send(node, r)).json).toMatchObject({ ok: true });
  });

  it('a request signed outside the window is refused as expired, at the window\'s edges it verifies', async () => {
    const skewed = (offset: number) => client(node, signer({ clock: () => new Date((now + offset) * 1000) }));
    await refusedWith(skewed(-301).whoami(), 'PAL_SIGNATURE_EXPIRED');
    await refusedWith(skewed(+301).whoami(), 'PAL_SIGNATURE_EXPIRED');
    await expect(skewed(-300).whoami()).resolves.toMatchObject({ ok: true });
    await expect(skewed(+300).whoami()).resolves.toMatchObject({ ok: true });
  });

  it('a signed request held back past the window is refused as expired', async () => {
    const r = signedButUnsent(node);
    now += 301;
    try {
      expect((await send(node, r)).json.code).toBe('PAL_SIGNATURE_EXPIRED');
    } finally {
      now -= 301;
    }
  });

  it('tampering with the body, path, query, a signed header, host or method is refused as invalid', async () => {
    const r = signedButUnsent(node);
    const tampered: Array<[string, Received]> = [
      ['body', { ...r, body: Buffer.from('{"plaintext":"aGl="}') }],
      ['body appended', { ...r, body: Buffer.concat([r.body, Buffer.from(' ')]) }],
      ['body removed', { ...r, body: Buffer.alloc(0) }],
      ['path', { ...r, url: r.url.replace('/k1/', '/k2/') }],
      ['path %2F for /', { ...r, url: r.url.replace('/keys/k1', '/keys%2Fk1') }],
      ['query value', { ...r, url: r.url.replace('b=1', 'b=2') }],
      ['query pair added', { ...r, url: `${r.url}&admin=true` }],
      ['query removed', { ...r, url: r.url.split('?')[0]! }],
      ['query "%20" → "%2B"', { ...r, url: r.url.replace('a%20b', 'a%2Bb') }],
      ['signed header content-type', { ...r, headers: { ...r.headers, 'content-type': 'text/plain' } }],
      ['host', { ...r, headers: { ...r.headers, host: `localhost:${node.port}` } }],
      ['method', { ...r, method: 'PUT' }],
    ];
    for (const [what, t] of tampered) {
      const res = await send(node, t);
      expect([what, res.status, res.json.code]).toEqual([what, 401, 'PAL_SIGNATURE_INVALID']);
    }
    // equivalent forms of the same request verify: "+" for "%20" in the query, lower-case percent-encoding, query order
    const equivalent = { ...r, url: '/v1/kms/keys/k1/encrypt?b=1&context=a+b', headers: { ...r.headers, accept: 'text/plain' } };
    expect((await send(node, equivalent)).json).toMatchObject({ ok: true });
  });

  it('an unknown key id, a wrong secret, no signature, a malformed one, or one without host are refused, each with its code', async () => {
    await refusedWith(client(node, signer({ keyId: 'agent-8' })).whoami(), 'PAL_SIGNATURE_KEY_UNKNOWN');
    await refusedWith(client(node, signer({ secret: randomBytes(32) })).whoami(), 'PAL_SIGNATURE_INVALID');
    await refusedWith(client(node).whoami(), 'PAL_SIGNATURE_MISSING');

    const r = signedButUnsent(node);
    const garbled = { ...r, headers: { ...r.headers, [SIGNATURE_HEADER]: r.headers[SIGNATURE_HEADER]!.replace('v1;', 'v2;') } };
    expect((await send(node, garbled)).json.code).toBe('PAL_SIGNATURE_MALFORMED');

    // a valid HMAC over a canonical request that leaves out host: refused, host is required
    const nonce = randomBytes(16).toString('base64url');
    const input = { keyId: KEY_ID, method: 'GET', path: '/v1/auth/whoami', query: '', headers: { accept: 'application/json' }, signedHeaders: ['accept'], bodySha256: sha256('').toString('hex'), timestamp: now, nonce };
    const noHost: Received = { method: 'GET', url: '/v1/auth/whoami', body: Buffer.alloc(0), headers: { host: node.addr, accept: 'application/json', [SIGNATURE_HEADER]: formatSignatureHeader({ ...input, signature: signatureV1(SECRET, input) }) } };
    const res = await send(node, noHost);
    expect(res.json.code).toBe('PAL_SIGNATURE_MALFORMED');
  });
});

describe.skipIf(!redisUrl)('signed requests across two nodes sharing one Redis', () => {
  const prefix = `palisade-test-${randomBytes(6).toString('hex')}:`;
  let a: Node;
  let b: Node;
  let redis: Redis;
  beforeAll(async () => {
    a = await startNode(verifierWith(new RedisReplayCache(redisUrl!, { prefix })));
    b = await startNode(verifierWith(new RedisReplayCache(redisUrl!, { prefix })));
    redis = new Redis(redisUrl!);
  });
  afterAll(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  });

  it('a request accepted by one node is refused as a replay by the other, and by itself', async () => {
    const c = client(a, signer());
    await expect(c.transport.send('POST', '/v1/kms/keys/k1/encrypt', { plaintext: 'aGk=' })).resolves.toMatchObject({ ok: true });
    const original = a.received.at(-1)!;
    expect((await send(b, original)).json.code).toBe('PAL_SIGNATURE_REPLAYED');
    expect((await send(a, original)).json.code).toBe('PAL_SIGNATURE_REPLAYED');
    // the nonce is remembered for 2 × skew = 600 s
    const nonce = parseSignatureHeader(original.headers[SIGNATURE_HEADER]).nonce;
    const ttl = await redis.ttl(`${prefix}sig-nonce:${KEY_ID}:${nonce}`);
    expect(ttl).toBeGreaterThan(590);
    expect(ttl).toBeLessThanOrEqual(600);
  });

  it('the same signed request sent to both nodes at once is accepted exactly once', async () => {
    for (let i = 0; i < 5; i++) {
      const r = signedButUnsent(a);
      const answers = await Promise.all([send(a, r), send(b, r), send(a, r), send(b, r)]);
      expect(answers.filter((x) => x.status === 200)).toHaveLength(1);
      expect(answers.filter((x) => x.json.code === 'PAL_SIGNATURE_REPLAYED')).toHaveLength(3);
    }
  });

  it('for contrast: two nodes with their own memory caches both accept the same request', async () => {
    const m1 = await startNode(verifierWith(new MemoryReplayCache({ now: () => now * 1000 })));
    const m2 = await startNode(verifierWith(new MemoryReplayCache({ now: () => now * 1000 })));
    const r = signedButUnsent(m1);
    expect((await send(m1, r)).status).toBe(200);
    expect((await send(m2, r)).status).toBe(200); // why a deployment with more than one node needs Redis
    expect((await send(m1, r)).json.code).toBe('PAL_SIGNATURE_REPLAYED');
  });
});

describe('replay caches', () => {
  it('memory: remembers a nonce for its TTL, per key id, then forgets it', async () => {
    let ms = 1_000_000;
    const cache = new MemoryReplayCache({ now: () => ms });
    expect(await cache.seen('k', 'n1', 600)).toBe(false);
    expect(await cache.seen('k', 'n1', 600)).toBe(true);
    expect(await cache.seen('other', 'n1', 600)).toBe(false);
    ms += 599_999;
    expect(await cache.seen('k', 'n1', 600)).toBe(true);
    ms += 1;
    expect(await cache.seen('k', 'n1', 600)).toBe(false);
  });

  it('memory: sweeps expired nonces, and when full of live ones refuses (PAL_UNAVAILABLE) rather than forget one', async () => {
    let ms = 0;
    const cache = new MemoryReplayCache({ now: () => ms, maxEntries: 3 });
    for (const n of ['a', 'b', 'c']) expect(await cache.seen('k', n, 10)).toBe(false);
    await expect(cache.seen('k', 'd', 10)).rejects.toMatchObject({ code: 'PAL_UNAVAILABLE', status: 503 });
    expect(await cache.seen('k', 'a', 10)).toBe(true); // nothing was forgotten
    ms = 10_000;
    expect(await cache.seen('k', 'd', 10)).toBe(false);
    expect(cache.size).toBe(1);
  });

  it('redis: an unreachable Redis is PAL_UNAVAILABLE (503), so the verifier refuses rather than let a replay through', async () => {
    const port = await getFreePort(); // nothing listens there
    const cache = new RedisReplayCache(`redis://127.0.0.1:${port}`);
    try {
      await expect(cache.seen('k', 'n', 600)).rejects.toMatchObject({ code: 'PAL_UNAVAILABLE', status: 503 });
      const verifier = new RequestVerifier({ secrets, replay: cache, clock });
      const node = await startNode(verifier);
      const res = await send(node, signedButUnsent(node));
      expect([res.status, res.json.code]).toEqual([503, 'PAL_UNAVAILABLE']);
    } finally {
      await cache.close();
    }
  });
});

describe('RequestVerifier (in process)', () => {
  it('defaults: 300 s of skew, nonces kept 600 s; bad options are refused', () => {
    expect(new RequestVerifier({ secrets, replay: new MemoryReplayCache() }).replayTtlSeconds).toBe(600);
    expect(new RequestVerifier({ secrets, replay: new MemoryReplayCache(), skewSeconds: 30 }).replayTtlSeconds).toBe(60);
    expect(() => new RequestVerifier({ secrets, replay: new MemoryReplayCache(), skewSeconds: 0 })).toThrow(RangeError);
  });

  it('checks the nonce only after the signature: a forged request cannot spend a real one', async () => {
    const replay = new MemoryReplayCache({ now: () => now * 1000 });
    const v = new RequestVerifier({ secrets, replay, clock });
    const s = signer();
    const body = Buffer.from('{}');
    const headers: Record<string, string> = { host: 'gw.example', 'content-type': 'application/json' };
    Object.assign(headers, s.sign({ method: 'POST', url: '/v1/x', headers, body }));
    const forged = { ...headers, [SIGNATURE_HEADER]: headers[SIGNATURE_HEADER]!.replace(/sig=.*/, `sig=${randomBytes(32).toString('base64url')}`) };
    await expect(v.verify({ method: 'POST', url: '/v1/x', headers: forged, body })).rejects.toMatchObject({ code: 'PAL_SIGNATURE_INVALID' });
    expect(replay.size).toBe(0);
    await expect(v.verify({ method: 'POST', url: '/v1/x', headers, body })).resolves.toMatchObject({ keyId: KEY_ID, signedHeaders: ['content-type', 'host'] });
    await expect(v.verify({ method: 'POST', url: '/v1/x', headers, body })).rejects.toMatchObject({ code: 'PAL_SIGNATURE_REPLAYED', status: 401 });
  });

  it('the signer refuses what it cannot sign', () => {
    expect(() => new RequestSigner({ keyId: 'a b', secret: SECRET })).toThrow(/keyId/);
    expect(() => new RequestSigner({ keyId: 'a', secret: randomBytes(15) })).toThrow(/16 bytes/);
    expect(() => signer().sign({ method: 'GET', url: '/no-host' })).toThrow(/host/);
    expect(signer().sign({ method: 'GET', url: 'https://gw.example:443/x' }).host).toBe('gw.example');
    expect(signer().sign({ method: 'GET', url: 'https://[::1]:8200/x' }).host).toBe('[::1]:8200');
  });
});
