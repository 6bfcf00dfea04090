import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/config.js';

const ROOT = resolve(import.meta.dirname, '../../../../..');

function load(yaml: string) {
  const dir = mkdtempSync(join(tmpdir(), 'gw-config-'));
  writeFileSync(join(dir, 'palisade.yaml'), yaml);
  return loadConfig({} as NodeJS.ProcessEnv, dir);
}

describe('gateway configuration', () => {
  it('the example deploy/gateway/palisade.yaml loads, with the seed limits and every route default filled', () => {
    const c = loadConfig({ PALISADE_CONFIG: join(ROOT, 'deploy/gateway/palisade.yaml') } as NodeJS.ProcessEnv, ROOT);
    expect(c.gateway.enabled).toBe(true);
    expect(c.gateway.rate_limits).toEqual({
      global: { requests: 1000, per: 'second', burst: 100 },
      per_client: { requests: 60, per: 'minute', burst: 10 },
      per_endpoint: { '/auth/*': { requests: 10, per: 'minute' }, '/framework/*': { requests: 100, per: 'minute' }, '/admin/*': { requests: 5, per: 'minute' } },
      on_store_error: 'deny',
    });
    expect(c.gateway.limits.body_bytes).toBe(10 * 1024 * 1024);
    const chat = c.gateway.routes.find((r) => r.name === 'chat')!;
    expect(chat).toMatchObject({ auth: ['bearer_token', 'api_key', 'client_cert'], content_types: ['application/json'], signed: false, websocket: false });
    expect(c.gateway.upstreams.framework).toMatchObject({ connect_timeout_ms: 5000, max_connections: 256, circuit: { failure_threshold: 5, open_seconds: 30 } });
  });

  it('is off by default, with the seed limits ready', () => {
    const c = load('{}');
    expect(c.gateway.enabled).toBe(false);
    expect(c.gateway.rate_limits.per_client).toEqual({ requests: 60, per: 'minute', burst: 10 });
  });

  it.each([
    ['a route naming no upstream', 'gateway: { upstreams: {}, routes: [{ name: a, path: /x, upstream: nope }] }', 'gateway.routes.0.upstream'],
    ['a * before the end of a pattern', 'gateway: { upstreams: { u: { url: "http://127.0.0.1:1" } }, routes: [{ name: a, path: /x/*/y, upstream: u }] }', 'gateway.routes.0.path'],
    ['a route name used twice', 'gateway: { upstreams: { u: { url: "http://127.0.0.1:1" } }, routes: [{ name: a, path: /x, upstream: u }, { name: a, path: /y, upstream: u }] }', 'gateway.routes.1.name'],
    ['an enabled gateway without routes', 'gateway: { enabled: true }', 'gateway.routes'],
    ['an unknown authentication method', 'gateway: { upstreams: { u: { url: "http://127.0.0.1:1" } }, routes: [{ name: a, path: /x, upstream: u, auth: [password] }] }', 'gateway.routes.0.auth.0'],
  ])('refuses %s, naming the setting', (_what, yaml, setting) => {
    expect(() => load(yaml)).toThrow(expect.objectContaining({ code: 'PAL_CONFIG_INVALID', extensions: { setting } }));
  });
});
