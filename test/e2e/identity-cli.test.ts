/**
 * `palisade users` and `palisade services` end to end: the CLI spawned against a live server; a password given on
 * stdin (never as a flag), list, disable and enable, and a service whose API key (its OAuth client secret) is rotated
 * with an overlap.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, runCli, startServer, stopAll, type CliResult, type Server } from './helpers.js';

afterAll(stopAll);

const PASSWORD = 'correct horse battery staple';
const HOUR_MS = 3_600_000;
// Each CLI run is a fresh Node process through tsx (a second or two): the tests get minutes, not the default 30 s.

let srv: Server;
let env: NodeJS.ProcessEnv;
const cli = (args: string[], input?: string): Promise<CliResult> => runCli(args, { env, ...(input !== undefined ? { input } : {}) });
const ok = (r: CliResult): string => {
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.toString('utf8');
};
const json = <T = Record<string, unknown>>(r: CliResult): T => JSON.parse(ok(r)) as T;
const login = (username: string, password: string) => request(srv, '/v1/auth/login', { body: { username, password } });
/** client_credentials with client_secret_basic: the HTTP status. */
const grant = async (clientId: string, secret: string) =>
  (
    await request(srv, '/v1/oauth/token', {
      body: 'grant_type=client_credentials',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}` },
    })
  ).status;

beforeAll(async () => {
  srv = await startServer();
  env = { ...srv.env, PALISADE_TOKEN: srv.token, PALISADE_CA_FILE: srv.caFile };
});

describe('palisade users', () => {
  it('create with --password-stdin, list, get, update, disable and enable, set-password, revoke-sessions, delete', async () => {
    const alice = json<{ id: string; username: string; roles: string[]; has_password: boolean }>(await cli(['users', 'create', 'alice', '--role', 'developer', '--email', 'alice@example.com', '--password-stdin'], `${PASSWORD}\n`));
    expect(alice).toMatchObject({ username: 'alice', roles: ['developer'], has_password: true });
    expect((await login('alice', PASSWORD)).status).toBe(200);
    const bob = json<{ id: string; roles: string[]; has_password: boolean }>(await cli(['users', 'create', 'bob', '--role', 'viewer', '--role', 'agent']));
    expect(bob).toMatchObject({ roles: ['viewer', 'agent'], has_password: false });

    // a weak password is refused with the server's reason; an empty stdin is a usage error
    const weak = await cli(['users', 'create', 'weak', '--password-stdin'], 'password1234\n');
    expect([weak.code, weak.stderr]).toEqual([1, expect.stringContaining('PAL_AUTH_PASSWORD_POLICY')]);
    expect((await cli(['users', 'create', 'empty', '--password-stdin'], '')).code).toBe(2);

    const table = ok(await cli(['users', 'list']));
    expect(table.split('\n')[0]).toBe('ID\tUSERNAME\tSTATUS\tROLES\tMFA\tSOURCE\tEMAIL');
    expect(table).toContain(`${alice.id}\talice\tactive\tdeveloper\t-\tlocal\talice@example.com`);
    expect(json<Array<{ id: string }>>(await cli(['users', 'list', '--json'])).map((u) => u.id).sort()).toEqual([alice.id, bob.id].sort());
    expect(json(await cli(['users', 'get', 'alice']))).toMatchObject({ id: alice.id });
    expect(json(await cli(['users', 'get', alice.id]))).toMatchObject({ username: 'alice' });
    expect((await cli(['users', 'get', 'nobody'])).code).toBe(1);

    expect(json(await cli(['users', 'update', 'alice', '--role', 'operator', '--display-name', 'Alice', '--mfa-required']))).toMatchObject({ roles: ['operator'], display_name: 'Alice', mfa_required: true });
    expect(json(await cli(['users', 'update', 'alice', '--no-mfa-required']))).toMatchObject({ mfa_required: false });

    // disable: no sign-in, shown in the list; enable brings it back
    expect(json(await cli(['users', 'disable', 'alice']))).toMatchObject({ active: false });
    expect((await login('alice', PASSWORD)).status).toBe(401);
    expect(ok(await cli(['users', 'list']))).toContain(`${alice.id}\talice\tdisabled\t`);
    expect(json(await cli(['users', 'enable', alice.id]))).toMatchObject({ active: true });
    expect((await login('alice', PASSWORD)).status).toBe(200);

    expect(json(await cli(['users', 'revoke-sessions', 'alice']))).toEqual({ sessions: 1 });
    const next = 'another long enough passphrase';
    const set = await cli(['users', 'set-password', 'alice', '--password-stdin'], `${next}\n`);
    expect(set.code, set.stderr).toBe(0);
    expect((await login('alice', PASSWORD)).status).toBe(401);
    expect((await login('alice', next)).status).toBe(200);
    // without --password-stdin and without a terminal there is nobody to ask
    const noTty = await cli(['users', 'set-password', 'alice']);
    expect([noTty.code, noTty.stderr]).toEqual([2, expect.stringContaining('--password-stdin')]);

    expect((await cli(['users', 'delete', 'bob'])).code).toBe(0);
    expect(ok(await cli(['users', 'list']))).not.toContain(bob.id);
  }, 180_000);
});

describe('palisade services', () => {
  it('create, list, get, an API key as OAuth client secret, rotation with overlap, disable, delete', async () => {
    const svc = json<{ id: string; name: string; roles: string[] }>(await cli(['services', 'create', 'agent-runner', '--description', 'runs agents']));
    expect(svc).toMatchObject({ name: 'agent-runner', roles: ['agent'] });
    const table = ok(await cli(['services', 'list']));
    expect(table).toContain(`${svc.id}\tagent-runner\tactive\tagent\t-`);
    expect(json(await cli(['services', 'get', 'agent-runner']))).toMatchObject({ id: svc.id, description: 'runs agents' });

    const k1 = json<{ id: string; token: string; permissions: string[]; expires_at: string }>(await cli(['services', 'api-key', 'agent-runner', '--name', 'oauth', '--permission', 'kms:encrypt', '--permission', 'pki:ca:read', '--expires-in-days', '90']));
    expect(k1.permissions).toEqual(['kms:encrypt', 'pki:ca:read']);
    expect(Date.parse(k1.expires_at) - Date.now()).toBeGreaterThan(89 * 24 * HOUR_MS);
    expect(await grant(svc.id, k1.token)).toBe(200);
    expect((await cli(['services', 'api-key', svc.id, '--name', 'x', '--overlap-hours', '2'])).code).toBe(2);

    // rotation with a 2-hour overlap: both keys work, the old one now ends within 2 hours
    const k2 = json<{ id: string; token: string }>(await cli(['services', 'api-key', svc.id, '--name', 'oauth-2', '--replaces', k1.id, '--overlap-hours', '2']));
    expect(await grant(svc.id, k1.token)).toBe(200);
    expect(await grant(svc.id, k2.token)).toBe(200);
    const keys = (await request(srv, '/v1/auth/api-keys', { token: srv.token })).json<{ api_keys: Array<{ id: string; expires_at: string | null }> }>().api_keys;
    const oldEnd = Date.parse(keys.find((k) => k.id === k1.id)!.expires_at!) - Date.now();
    expect(oldEnd).toBeGreaterThan(HOUR_MS);
    expect(oldEnd).toBeLessThanOrEqual(2 * HOUR_MS);

    // rotation with no overlap: the replaced key stops at once
    const k3 = json<{ id: string; token: string }>(await cli(['services', 'api-key', svc.id, '--name', 'oauth-3', '--replaces', k2.id, '--overlap-hours', '0']));
    expect(await grant(svc.id, k2.token)).toBe(401);
    expect(await grant(svc.id, k3.token)).toBe(200);
    expect(json<Array<{ id: string }>>(await cli(['services', 'api-keys', 'agent-runner'])).map((k) => k.id)).toEqual([k1.id, k2.id, k3.id]);
    expect(json(await cli(['services', 'revoke-key', 'agent-runner', k3.id]))).toMatchObject({ id: k3.id, revoked_at: expect.any(String) });
    expect(await grant(svc.id, k3.token)).toBe(401);

    expect(json(await cli(['services', 'disable', svc.id]))).toMatchObject({ active: false });
    expect(ok(await cli(['services', 'list']))).toContain(`${svc.id}\tagent-runner\tdisabled\t`);
    expect(await grant(svc.id, k3.token)).toBe(401);
    expect((await cli(['services', 'delete', 'agent-runner'])).code).toBe(0);
    const gone = await cli(['services', 'get', svc.id]);
    expect([gone.code, gone.stderr]).toEqual([1, expect.stringContaining('PAL_IDENTITY_SERVICE_NOT_FOUND')]);
  }, 120_000);
});
