import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireService } from '@palisade/testkit';
import { startServer, type TestServer } from '../testing/harness.js';

describe('system routes', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer('sqlite');
    const k = await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM' });
    await s.client.kms.decrypt(k.key_id, await s.client.kms.encrypt(k.key_id, 'x'));
    await s.client.kms.rotateKey(k.key_id);
  });
  afterAll(async () => s?.close());
  const get = (path: string, auth = true) => s.client.transport.raw('GET', path, undefined, auth ? {} : { authorization: '' });

  it('healthz and readyz answer without a token', async () => {
    expect((await get('/healthz', false)).status).toBe(200);
    const r = await get('/readyz', false);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body.toString())).toEqual({ status: 'ready', checks: { storage: 'ok', seal: 'ok', audit: 'ok' } });
  });

  it('serves the OpenAPI document generated from the route schemas', async () => {
    const doc = JSON.parse((await get('/v1/openapi.json', false)).body.toString());
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/keys', '/v1/keys/{key_id}/encrypt', '/v1/keys/{key_id}/decrypt', '/v1/keys/{key_id}/rotate', '/v1/auth/api-keys']));
    expect(doc.paths['/v1/keys'].post.requestBody.content['application/json'].schema.properties.algorithm.enum).toContain('AES-256-GCM');
  });

  it('metrics need a token, carry the seed names, and pass promtool check metrics', async () => {
    expect((await get('/metrics', false)).status).toBe(401);
    const r = await get('/metrics');
    expect(r.status).toBe(200);
    const text = r.body.toString();
    for (const m of ['encryption_operations_total{algorithm="AES-256-GCM",key_type="DEK",status="success"} 1', 'decryption_operations_total{algorithm="AES-256-GCM",key_type="DEK",status="success"} 1', 'key_rotations_total{key_type="DEK",status="success"} 1', 'encryption_operation_duration_seconds_bucket{le="0.001",operation="encrypt"}', 'key_age_seconds{key_id=', 'http_requests_total{']) {
      expect(text).toContain(m);
    }
    if (!requireService('promtool', 'promtool check metrics').available) return;
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20_000 });
    expect(lint.stdout + lint.stderr).toBe('');
    expect(lint.status).toBe(0);
  });
});
