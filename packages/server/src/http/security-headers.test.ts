import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PalisadeError } from '@palisade/core';
import { startServer, OWNER_TOKEN, type TestServer } from '../testing/harness.js';
import { registerProblemHandlers } from './problem.js';
import { SECURITY_HEADERS, installSecurityHeaders } from './security-headers.js';

const EXPECTED = {
  'strict-transport-security': 'max-age=31536000; includeSubDomains; preload',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

describe('security headers (inject)', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = Fastify();
    registerProblemHandlers(app);
    installSecurityHeaders(app);
    app.addHook('onRequest', async (req) => {
      if (req.url === '/refused-early') throw new PalisadeError('PAL_AUTH_REQUIRED');
    });
    app.get('/ok', async () => ({ ok: true }));
    app.get('/cached', async (_req, reply) => reply.header('cache-control', 'public, max-age=60').send({ ok: true }));
    app.get('/bad', async () => {
      throw new PalisadeError('PAL_VALIDATION_FAILED', 'nope');
    });
    app.get('/crash', async () => {
      throw new Error('boom');
    });
    app.get('/refused-early', async () => ({ unreachable: true }));
    await app.ready();
  });
  afterAll(async () => app?.close());

  it('the values are the seed\'s', () => {
    expect(SECURITY_HEADERS).toEqual(EXPECTED);
  });

  it.each([
    ['/ok', 200],
    ['/bad', 400],
    ['/crash', 500],
    ['/refused-early', 401],
    ['/no-such-route', 404],
  ])('%s (%i) carries every header and Cache-Control: no-store', async (url, status) => {
    const res = await app.inject({ method: 'GET', url });
    expect(res.statusCode).toBe(status);
    expect(res.headers).toMatchObject({ ...EXPECTED, 'cache-control': 'no-store' });
  });

  it('a route that sets its own Cache-Control keeps it', async () => {
    const res = await app.inject({ method: 'GET', url: '/cached' });
    expect(res.headers).toMatchObject({ ...EXPECTED, 'cache-control': 'public, max-age=60' });
  });
});

describe('security headers on the real app', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer('sqlite');
  });
  afterAll(async () => s?.close());

  it.each([
    ['GET', '/healthz', undefined, 200],
    ['GET', '/v1/auth/whoami', OWNER_TOKEN, 200],
    ['GET', '/v1/auth/whoami', undefined, 401],
    ['GET', '/v1/auth/whoami', 'pal_wrong_token_000000000000000000000000', 401],
    ['GET', '/v1/nothing-here', OWNER_TOKEN, 404],
    ['POST', '/v1/keys', OWNER_TOKEN, 400],
  ] as const)('%s %s → %i', async (method, url, token, status) => {
    const res = await s.rt.app.inject({ method, url, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(method === 'POST' ? { 'content-type': 'application/json' } : {}) }, ...(method === 'POST' ? { payload: '{}' } : {}) });
    expect(res.statusCode).toBe(status);
    expect(res.headers).toMatchObject({ ...EXPECTED, 'cache-control': 'no-store' });
  });
});
