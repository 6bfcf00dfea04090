import { afterAll, describe, expect, it } from 'vitest';
import { getFreePort } from '@palisade/testkit';
import { startServer, type TestServer } from '../../testing/harness.js';
import { httpsRequest } from '../../testing/https-request.js';
import { SESSION_COOKIE } from './engine.js';

// A Redis that cannot be reached is the server's failure, not the client's: 503 and /readyz says which dependency.
describe('sessions in an unreachable Redis', () => {
  let s: TestServer | undefined;
  afterAll(async () => s?.close());

  it('sign-in and session checks answer 503 PAL_UNAVAILABLE, never a 500 or a 401; /readyz names the session store', async () => {
    const port = await getFreePort(); // nothing listens there
    s = await startServer('sqlite', { mutate: (c) => void (c.redis_url = `redis://127.0.0.1:${port}`) });
    const call = (method: string, path: string, opts: Parameters<typeof httpsRequest>[4] = {}) => httpsRequest(s!.addr, s!.ca, method, path, opts);
    const owner = { authorization: `Bearer ${s.token}` };
    expect((await call('POST', '/v1/users', { headers: owner, json: { username: 'rita', password: 'correct horse battery staple' } })).status).toBe(201);

    const login = await call('POST', '/v1/auth/login', { json: { username: 'rita', password: 'correct horse battery staple' } });
    expect([login.status, login.json.code]).toEqual([503, 'PAL_UNAVAILABLE']);
    const session = await call('GET', '/v1/auth/session', { headers: { cookie: `${SESSION_COOKIE}=ps_${'a'.repeat(43)}` } });
    expect([session.status, session.json.code]).toEqual([503, 'PAL_UNAVAILABLE']);
    const ready = await call('GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.json.checks.sessions).toMatch(/^failed: the session store \(Redis\) is unavailable/);
    // API keys do not depend on Redis.
    expect((await call('GET', '/v1/users', { headers: owner })).status).toBe(200);
  });
});
