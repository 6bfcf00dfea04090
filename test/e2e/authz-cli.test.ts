/**
 * `palisade authz` end to end: the CLI spawned against a live server; `explain` with its decision, reason and table
 * of steps; a broken policy file reported as `file:line:column: path: message` (exit 1) by `policy validate` and
 * `policy apply`, which then stores a valid one; custom roles, a time-boxed binding and a requested grant.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startServer, stopAll, tempDir, type CliResult, type Server } from './helpers.js';

afterAll(stopAll);

// Each CLI run is a fresh Node process through tsx (a second or two): the tests get minutes, not the default 30 s.

let srv: Server;
let env: NodeJS.ProcessEnv;
let dir = '';
const f = (n: string) => join(dir, n);
const cli = (args: string[]): Promise<CliResult> => runCli(args, { env });
const ok = (r: CliResult): string => {
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.toString('utf8');
};
const json = <T = Record<string, unknown>>(r: CliResult): T => JSON.parse(ok(r)) as T;
/** The rows of a tab-separated table, header first. */
const rows = (text: string): string[][] => text.trimEnd().split('\n').map((l) => l.split('\t'));

// Two problems the schema lets through, found by the checks after it: a CIDR that is not one, and a rule id used twice.
const BROKEN = `version: 1
rules:
  - id: rotate-from-the-office
    effect: deny
    actions: ["kms:keys:rotate"]
    unless:
      source_ip: [10.0.0.0/33]
  - id: rotate-from-the-office
    effect: allow
    actions: ["kms:keys:read"]
`;
// A problem of the schema: an effect that is not one.
const BAD_EFFECT = `version: 1
rules:
  - id: rotate-from-the-office
    effect: deny
    actions: ["kms:keys:rotate"]
  - id: reads
    effect: permit
    actions: ["kms:keys:read"]
`;
const GOOD = `version: 1
locations:
  office: [10.20.0.0/16]
rules:
  - id: rotate-from-the-office
    description: key rotation only from the office network
    effect: deny
    actions: ["kms:keys:rotate"]
    unless:
      location: [office]
`;

beforeAll(async () => {
  srv = await startServer();
  env = { ...srv.env, PALISADE_TOKEN: srv.token, PALISADE_CA_FILE: srv.caFile };
  dir = tempDir('palisade-authz-cli-');
  writeFileSync(f('broken.yaml'), BROKEN);
  writeFileSync(f('bad-effect.yaml'), BAD_EFFECT);
  writeFileSync(f('policy.yaml'), GOOD);
});

describe('palisade authz', () => {
  it('explain: the decision, the reason and every step as a table; --json; the flags become the resource and the context', async () => {
    const text = ok(await cli(['authz', 'explain', '--action', 'kms:keys:read']));
    expect(text).toMatch(/^decision: allow\nreason: api_key:ak_[a-z0-9]+ grants kms:keys:read\nprincipal: \S+\naction: kms:keys:read\npolicy version: 0\n\nSOURCE\tEFFECT\tMATCHED\tWHY\n/);
    expect(rows(text.split('\n\n')[1]!).slice(1)).toEqual([[expect.stringMatching(/^api_key:ak_/), 'allow', 'yes', 'carries *']]);

    const e = json<{ decision: string; action: string; steps: unknown[] }>(
      await cli(['authz', 'explain', '--action', 'kms:decrypt', '--resource-type', 'kms_key', '--resource-id', 'key_x', '--name', 'payments/cards', '--classification', 'restricted', '--source-ip', '10.1.2.3', '--mfa-age', '60', '--risk', '20', '--at', '2026-01-05T10:00:00Z', '--json']),
    );
    expect(e).toMatchObject({ decision: 'allow', action: 'kms:decrypt', steps: [expect.objectContaining({ matched: true })] });

    // usage errors (exit 2) before any request
    const orphan = await cli(['authz', 'explain', '--action', 'kms:keys:read', '--resource-id', 'key_x']);
    expect([orphan.code, orphan.stderr]).toEqual([2, expect.stringContaining('--resource-type')]);
    expect((await cli(['authz', 'explain', '--action', 'kms:keys:read', '--at', 'yesterday'])).code).toBe(2);
    expect((await cli(['authz', 'explain', '--action', 'kms:keys:read', '--risk', '101'])).code).toBe(2);
    expect((await cli(['authz', 'explain'])).code).not.toBe(0); // --action is required
    // the server's refusal, as for every command: its code and detail, exit 1
    const bad = await cli(['authz', 'explain', '--action', 'Not A Permission']);
    expect([bad.code, bad.stderr]).toEqual([1, expect.stringContaining('error: PAL_VALIDATION_FAILED')]);
  }, 120_000);

  it('policy validate: each problem as file:line:column: path: message, exit 1; a valid file passes', async () => {
    const broken = await cli(['authz', 'policy', 'validate', f('broken.yaml')]);
    expect(broken.code).toBe(1);
    const lines = broken.stderr.trimEnd().split('\n');
    expect(lines.slice(0, 2)).toEqual([`${f('broken.yaml')}:7:19: /rules/0/unless/source_ip/0: 10.0.0.0/33 is not an IP address or CIDR block`, `${f('broken.yaml')}:8:9: /rules/1/id: rule id rotate-from-the-office is used twice (first by rules[0])`]);
    expect(lines[2]).toMatch(/^error: .*the policy is invalid \(2 problems\)/);
    expect(broken.stdout.toString()).toBe('');

    const effect = await cli(['authz', 'policy', 'validate', f('bad-effect.yaml')]);
    expect(effect.code).toBe(1);
    expect(effect.stderr).toMatch(new RegExp(`^${f('bad-effect.yaml').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:7:13: /rules/1/effect: .+$`, 'm'));

    expect(ok(await cli(['authz', 'policy', 'validate', f('policy.yaml')]))).toBe(`${f('policy.yaml')}: valid, 1 rules\n`);
    const missing = await cli(['authz', 'policy', 'validate', f('nope.yaml')]);
    expect([missing.code, missing.stderr]).toEqual([2, expect.stringContaining('cannot read')]);
  }, 120_000);

  it('policy apply: a broken file is refused the same way and nothing is stored; a valid one becomes version 1 and takes part in decisions', async () => {
    const broken = await cli(['authz', 'policy', 'apply', f('broken.yaml')]);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toContain(`${f('broken.yaml')}:7:19: /rules/0/unless/source_ip/0: 10.0.0.0/33 is not an IP address or CIDR block\n`);
    expect(broken.stderr).toContain(`${f('broken.yaml')}:8:9: /rules/1/id: `);
    expect(broken.stderr).not.toContain('PAL_AUTHZ_POLICY_INVALID: line'); // the problems, not the one-line summary
    expect(json(await cli(['authz', 'policy', 'versions', '--json']))).toEqual([]);

    const applied = ok(await cli(['authz', 'policy', 'apply', f('policy.yaml'), '--comment', 'office only']));
    expect(applied).toMatch(/^policy version 1: 1 rules, sha256 [0-9a-f]{64}\n$/);
    const got = await cli(['authz', 'policy', 'get']);
    expect(ok(got)).toBe(GOOD);
    expect(got.stderr).toMatch(/^version 1, 1 rules, sha256 [0-9a-f]{64}, by \S+ at /);
    expect(ok(await cli(['authz', 'policy', 'get', '--version', '1']))).toBe(GOOD);
    const gone = await cli(['authz', 'policy', 'get', '--version', '2']);
    expect([gone.code, gone.stderr]).toEqual([1, expect.stringContaining('PAL_AUTHZ_POLICY_NOT_FOUND')]);
    const versions = rows(ok(await cli(['authz', 'policy', 'versions'])));
    expect(versions[0]).toEqual(['VERSION', 'RULES', 'CREATED_AT', 'CREATED_BY', 'SHA256', 'COMMENT']);
    expect(versions.slice(1).map((r) => [r[0], r[1], r[5]])).toEqual([['1', '1', 'office only']]);

    // from outside the office the rule denies, from inside it is exempt
    const away = ok(await cli(['authz', 'explain', '--action', 'kms:keys:rotate', '--source-ip', '198.51.100.7']));
    expect(away).toMatch(/^decision: deny\nreason: rule rotate-from-the-office denies kms:keys:rotate/);
    expect(away).toMatch(/^policy version: 1$/m);
    expect(away).toMatch(/^rule:rotate-from-the-office\tdeny\tyes\t/m);
    const office = ok(await cli(['authz', 'explain', '--action', 'kms:keys:rotate', '--source-ip', '10.20.1.1']));
    expect(office).toMatch(/^decision: allow\n/);
    expect(office).toMatch(/^rule:rotate-from-the-office\tdeny\tno\texempt: /m);
  }, 120_000);

  it('roles, a custom role bound for 30 minutes (explain --principal shows the binding), unbind, delete; a requested grant', async () => {
    const table = rows(ok(await cli(['authz', 'roles'])));
    expect(table[0]).toEqual(['NAME', 'KIND', 'PERMISSIONS', 'DESCRIPTION']);
    expect(table.slice(1).map((r) => [r[0], r[1]])).toEqual([
      ['viewer', 'tier 1'],
      ['agent', 'tier 2'],
      ['developer', 'tier 3'],
      ['operator', 'tier 4'],
      ['security-admin', 'tier 5'],
      ['owner', 'tier 6'],
    ]);

    const role = json(await cli(['authz', 'role', 'create', 'key-rotator', '--permission', 'kms:keys:rotate', '--permission', 'kms:keys:read', '--description', 'rotates keys']));
    expect(role).toEqual({ name: 'key-rotator', description: 'rotates keys', permissions: ['kms:keys:rotate', 'kms:keys:read'], builtin: false, tier: null });
    expect(json<Array<{ name: string }>>(await cli(['authz', 'roles', '--json'])).map((r) => r.name)).toContain('key-rotator');
    expect(ok(await cli(['authz', 'roles']))).toContain('key-rotator\tcustom\tkms:keys:rotate,kms:keys:read\trotates keys\n');
    const dup = await cli(['authz', 'role', 'create', 'key-rotator', '--permission', 'kms:keys:read']);
    expect([dup.code, dup.stderr]).toEqual([1, expect.stringContaining('PAL_AUTHZ_ROLE_EXISTS')]);

    const dana = json<{ id: string }>(await cli(['users', 'create', 'dana', '--role', 'viewer']));
    const b = json<{ id: string; expires_at: string; reason: string; scope: string }>(await cli(['authz', 'bind', dana.id, 'key-rotator', '--minutes', '30', '--reason', 'incident 42']));
    expect(b).toMatchObject({ scope: '*', reason: 'incident 42' });
    expect(Date.parse(b.expires_at) - Date.now()).toBeGreaterThan(25 * 60_000);
    const listed = rows(ok(await cli(['authz', 'bindings', '--subject', dana.id])));
    expect(listed).toEqual([
      ['ID', 'SUBJECT', 'ROLE', 'SCOPE', 'EXPIRES', 'REASON'],
      [b.id, dana.id, 'key-rotator', '*', b.expires_at, 'incident 42'],
    ]);
    expect(json(await cli(['authz', 'bindings', '--role', 'viewer', '--json']))).toEqual([]);
    expect((await cli(['authz', 'bind', dana.id, 'key-rotator', '--minutes', '0'])).code).toBe(2);

    const why = ok(await cli(['authz', 'explain', '--principal', dana.id, '--action', 'kms:keys:rotate', '--resource-type', 'kms_key', '--resource-id', 'key_x', '--source-ip', '10.20.1.1']));
    expect(why).toContain(`decision: allow\nreason: binding:${b.id} grants kms:keys:rotate\nprincipal: ${dana.id}\n`);
    expect(why).toMatch(new RegExp(`^binding:${b.id}\\tallow\\tyes\\trole key-rotator \\(\\*, until `, 'm'));

    const inUse = await cli(['authz', 'role', 'delete', 'key-rotator']);
    expect([inUse.code, inUse.stderr]).toEqual([1, expect.stringContaining('PAL_AUTHZ_ROLE_IN_USE')]);
    const unbound = await cli(['authz', 'unbind', b.id]);
    expect([unbound.code, unbound.stderr]).toEqual([0, `removed ${b.id}\n`]);
    expect(rows(ok(await cli(['authz', 'bindings', '--subject', dana.id])))).toHaveLength(1);
    expect(ok(await cli(['authz', 'role', 'delete', 'key-rotator']))).toBe('');

    const grant = await cli(['authz', 'grant', 'request', 'developer', '--minutes', '30', '--reason', 'on call']);
    const a = json<{ id: string; status: string; action: string; details: Record<string, unknown> }>(grant);
    expect(a).toMatchObject({ status: 'pending', action: 'authz.grant', details: { role: 'developer', minutes: 30, reason: 'on call', break_glass: false } });
    expect(grant.stderr).toContain(`palisade approvals approve ${a.id}`);
    const glass = json<{ reason: string }>(await cli(['authz', 'grant', 'request', 'developer', '--minutes', '15', '--reason', 'outage', '--break-glass']));
    expect(glass.reason).toBe('BREAK-GLASS: outage');
    expect((await cli(['authz', 'grant', 'request', 'developer', '--minutes', '2000', '--reason', 'x'])).code).toBe(2);
  }, 180_000);
});
