/**
 * The SDK's authz client against a real server over HTTPS (SQLite and PostgreSQL): built-in and custom roles, a time-boxed binding
 * that `explain` shows (and, once expired, names as the reason), policies refused with line numbers and stored as
 * versions, a requested grant approved by another principal, and an operation repeated with `Palisade-Approval`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeOf, dialects, startServer, type TestServer } from '../../server/src/testing/harness.js';
import { PalisadeApiError, policyErrors, type PalisadeClient } from './index.js';

const MINUTE_MS = 60_000;

const INVALID_POLICY = `version: 1
rules:
  - id: no-weekend-rotation
    effect: deny
    actions: ["kms:keys:rotate"]
    when:
      source_ip: [10.0.0.0/33]
  - id: no-weekend-rotation
    effect: permit
    actions: ["kms:keys:rotate"]
`;

const policyFor = (svcId: string) => `version: 1
locations:
  office: [10.20.0.0/16]
rules:
  - id: rotate-from-the-office
    description: key rotation only from the office network
    effect: deny
    actions: ["kms:keys:rotate"]
    unless:
      location: [office]
  - id: new-keys-need-approval
    effect: require_approval
    principals: ["service:${svcId}"]
    actions: ["kms:keys:create"]
`;

for (const d of dialects()) {
  describe.skipIf(!d.available)(`SDK: authz (roles, bindings, grants, policies, explain) against a real server (${d.name})`, () => {
    let s: TestServer;
    let c: PalisadeClient;

    beforeAll(async () => {
      s = await startServer(d.name);
      c = s.client;
    });
    afterAll(async () => s?.close());

    it('roles: the six built-in tiers, and custom roles created, read, changed and deleted', async () => {
      const { roles } = await c.authz.roles();
      expect(roles.map((r) => [r.name, r.builtin, r.tier])).toEqual([
        ['viewer', true, 1],
        ['agent', true, 2],
        ['developer', true, 3],
        ['operator', true, 4],
        ['security-admin', true, 5],
        ['owner', true, 6],
      ]);
      // each tier a strict superset of the one below
      for (let i = 1; i < roles.length; i++) expect(roles[i]!.permissions).toEqual(expect.arrayContaining(roles[i - 1]!.permissions));
      expect(await c.authz.role('viewer')).toEqual(roles[0]);

      const created = await c.authz.createRole({ name: 'scratch', description: 'temporary', permissions: ['kms:keys:read'] });
      expect(created).toEqual({ name: 'scratch', description: 'temporary', permissions: ['kms:keys:read'], builtin: false, tier: null });
      expect((await c.authz.roles()).roles.map((r) => r.name)).toEqual(['viewer', 'agent', 'developer', 'operator', 'security-admin', 'owner', 'scratch']);
      expect(await c.authz.updateRole('scratch', { permissions: ['kms:keys:read', 'kms:keys:list'] })).toMatchObject({ permissions: ['kms:keys:read', 'kms:keys:list'], description: 'temporary' });
      expect(await c.authz.role('scratch')).toMatchObject({ permissions: ['kms:keys:read', 'kms:keys:list'] });

      expect(await codeOf(c.authz.createRole({ name: 'scratch', permissions: ['kms:keys:read'] }))).toEqual({ status: 409, code: 'PAL_AUTHZ_ROLE_EXISTS' });
      expect(await codeOf(c.authz.createRole({ name: 'viewer', permissions: ['kms:keys:read'] }))).toEqual({ status: 409, code: 'PAL_AUTHZ_ROLE_EXISTS' });
      expect(await codeOf(c.authz.updateRole('owner', { description: 'x' }))).toEqual({ status: 409, code: 'PAL_AUTHZ_ROLE_BUILTIN' });
      expect(await codeOf(c.authz.deleteRole('viewer'))).toEqual({ status: 409, code: 'PAL_AUTHZ_ROLE_BUILTIN' });
      expect(await codeOf(c.authz.createRole({ name: 'Bad Name', permissions: ['kms:keys:read'] }))).toMatchObject({ status: 400, code: 'PAL_VALIDATION_FAILED' });

      await c.authz.deleteRole('scratch');
      expect(await codeOf(c.authz.role('scratch'))).toEqual({ status: 404, code: 'PAL_AUTHZ_ROLE_NOT_FOUND' });
    });

    it('bindings: a custom role bound for 30 minutes grants its permission, explain shows the binding, and names the expiry once it ended', async () => {
      await c.authz.createRole({ name: 'key-rotator', description: 'rotates keys', permissions: ['kms:keys:rotate'] });
      const dana = await c.identity.createUser({ username: 'dana', roles: ['viewer'] });
      const ask = { principal_id: dana.id, action: 'kms:keys:rotate', resource: { type: 'kms_key', id: 'key_x' } };

      const before = await c.authz.explain(ask);
      expect(before).toMatchObject({ decision: 'deny', principal_id: dana.id, action: 'kms:keys:rotate', policy_version: 0 });
      expect(before.reason).toContain('no role, binding or rule grants kms:keys:rotate');

      const b = await c.authz.bind({ subject: dana.id, role: 'key-rotator', expires_in_minutes: 30, reason: 'incident 42' });
      expect(b).toMatchObject({ subject: dana.id, role: 'key-rotator', scope: '*', reason: 'incident 42', approval_id: null });
      expect(b.id).toMatch(/^bnd_/);
      expect(Date.parse(b.expires_at!) - s.clock.now().getTime()).toBe(30 * MINUTE_MS);
      expect((await c.authz.bindings({ subject: dana.id })).bindings).toEqual([b]);
      expect((await c.authz.bindings({ role: 'key-rotator', active: true })).bindings.map((x) => x.id)).toEqual([b.id]);
      expect((await c.authz.bindings({ role: 'viewer' })).bindings).toEqual([]);

      const now = await c.authz.explain(ask);
      expect(now).toMatchObject({ decision: 'allow', reason: `binding:${b.id} grants kms:keys:rotate` });
      expect(now.steps).toContainEqual({ source: `binding:${b.id}`, effect: 'allow', matched: true, why: expect.stringContaining('role key-rotator (*, until') });

      // 31 minutes on (explain's own clock), the grant has ended and is the reason
      const later = await c.authz.explain({ ...ask, context: { time: new Date(s.clock.now().getTime() + 31 * MINUTE_MS).toISOString() } });
      expect(later.decision).toBe('deny');
      expect(later.reason).toContain(`grant ${b.id} of key-rotator expired at ${b.expires_at}`);
      expect(later.steps).toContainEqual({ source: `binding:${b.id}`, effect: 'allow', matched: false, why: expect.stringContaining('expired at') });

      // a bound role cannot be deleted; unbinding ends the grant
      expect(await codeOf(c.authz.deleteRole('key-rotator'))).toEqual({ status: 409, code: 'PAL_AUTHZ_ROLE_IN_USE' });
      await c.authz.unbind(b.id);
      expect((await c.authz.bindings({ subject: dana.id })).bindings).toEqual([]);
      expect((await c.authz.explain(ask)).decision).toBe('deny');
      expect(await codeOf(c.authz.unbind(b.id))).toEqual({ status: 404, code: 'PAL_AUTHZ_BINDING_NOT_FOUND' });
      expect(await codeOf(c.authz.bind({ subject: dana.id, role: 'no-such-role' }))).toEqual({ status: 404, code: 'PAL_AUTHZ_ROLE_NOT_FOUND' });
      await c.authz.deleteRole('key-rotator');
    });

    it('policies: an invalid one is refused with each problem\'s line and column; a valid one becomes version 1, then 2', async () => {
      expect(await c.authz.policy()).toMatchObject({ version: 0, rules: 0, created_at: null });
      expect((await c.authz.policyVersions()).versions).toEqual([]);

      const err = await c.authz.putPolicy(INVALID_POLICY).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PalisadeApiError);
      expect([(err as PalisadeApiError).status, (err as PalisadeApiError).code]).toEqual([400, 'PAL_AUTHZ_POLICY_INVALID']);
      const problems = policyErrors(err);
      expect(problems).toEqual([{ line: 9, column: 13, path: '/rules/1/effect', message: expect.any(String) }]);
      expect(policyErrors(new Error('x'))).toBeNull();
      // the validation endpoint answers the same problems without an error (and finds them all once the schema holds)
      expect(await c.authz.validatePolicy(INVALID_POLICY)).toEqual({ valid: false, rules: 0, errors: problems });
      const semantic = await c.authz.validatePolicy(INVALID_POLICY.replace('permit', 'allow'));
      expect(semantic.valid).toBe(false);
      expect(semantic.errors.map((e) => [e.line, e.column, e.path])).toEqual([
        [7, 19, '/rules/0/when/source_ip/0'],
        [8, 9, '/rules/1/id'],
      ]);
      // nothing was stored
      expect((await c.authz.policy()).version).toBe(0);

      const svc = await c.identity.createService({ name: 'key-maker', roles: ['developer'] });
      const source = policyFor(svc.id);
      expect(await c.authz.validatePolicy(source)).toEqual({ valid: true, rules: 2, errors: [] });
      const v1 = await c.authz.putPolicy(source, 'first policy');
      expect(v1).toMatchObject({ version: 1, rules: 2, comment: 'first policy', created_by: expect.any(String) });
      expect(await c.authz.policy()).toMatchObject({ version: 1, source, sha256: v1.sha256 });
      const v2 = await c.authz.putPolicy(source.replace('10.20.0.0/16', '10.20.0.0/16, 192.0.2.0/24'));
      expect(v2).toMatchObject({ version: 2, comment: null });
      expect((await c.authz.policyVersions()).versions.map((v) => [v.version, v.rules, v.comment])).toEqual([
        [2, 2, null],
        [1, 2, 'first policy'],
      ]);
      expect((await c.authz.policyVersion(1)).source).toBe(source);
      expect(await codeOf(c.authz.policyVersion(3))).toEqual({ status: 404, code: 'PAL_AUTHZ_POLICY_NOT_FOUND' });

      // the rules take part in decisions: a deny unless in the office, with the network as the context
      const me = (await c.whoami()).principal_id;
      const away = await c.authz.explain({ action: 'kms:keys:rotate', context: { source_ip: '198.51.100.7' } });
      expect(away).toMatchObject({ decision: 'deny', principal_id: me, policy_version: 2 });
      expect(away.reason).toContain('rule rotate-from-the-office denies kms:keys:rotate');
      const office = await c.authz.explain({ action: 'kms:keys:rotate', context: { source_ip: '10.20.3.4' } });
      expect(office.decision).toBe('allow');
      expect(office.steps).toContainEqual({ source: 'rule:rotate-from-the-office', effect: 'deny', matched: false, why: expect.stringContaining('exempt') });
    });

    it('withApproval: an operation a rule holds for approval runs once with the Palisade-Approval header', async () => {
      const svc = (await c.identity.listServices()).services.find((x) => x.name === 'key-maker')!;
      const key = await c.identity.createServiceApiKey(svc.id, { name: 'maker' });
      const maker = s.clientWith(key.token);

      const held = await maker.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', classification: 'internal', name: 'held' }).catch((e: unknown) => e);
      expect(held).toBeInstanceOf(PalisadeApiError);
      expect([(held as PalisadeApiError).status, (held as PalisadeApiError).code]).toEqual([403, 'PAL_APPROVAL_REQUIRED']);
      const approvalId = (held as PalisadeApiError).problem['approval_id'] as string;
      expect(approvalId).toMatch(/^apr_/);

      // not yet approved: the header is refused
      expect(await codeOf(maker.withApproval(approvalId).kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', classification: 'internal', name: 'held' }))).toEqual({ status: 403, code: 'PAL_APPROVAL_INVALID' });
      expect((await c.approvals.approve(approvalId)).status).toBe('approved');

      const approved = maker.withApproval(approvalId);
      const created = await approved.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', classification: 'internal', name: 'held' });
      expect(created).toMatchObject({ name: 'held' });
      // once only; and the client it came from does not carry the header
      expect(await codeOf(approved.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', classification: 'internal', name: 'held-2' }))).toEqual({ status: 403, code: 'PAL_APPROVAL_INVALID' });
      expect(await codeOf(maker.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', classification: 'internal', name: 'held-2' }))).toEqual({ status: 403, code: 'PAL_APPROVAL_REQUIRED' });
      // closing the derived client leaves the connections of the one it came from open
      approved.close();
      expect((await maker.whoami()).principal_id).toBe(svc.id);
    });

    it('requestGrant: a pending approval; another principal approves it and the time-boxed binding appears', async () => {
      const me = (await c.whoami()).principal_id;
      const a = await c.authz.requestGrant({ role: 'developer', minutes: 60, reason: 'on call' });
      expect(a).toMatchObject({ action: 'authz.grant', status: 'pending', requested_by: me, resource: { type: 'authz_role', id: 'developer' }, reason: 'on call', decided_by: null });
      expect(a.details).toMatchObject({ subject: me, role: 'developer', scope: '*', minutes: 60, break_glass: false });
      expect(a.id).toMatch(/^apr_/);
      expect((await c.approvals.get(a.id)).status).toBe('pending');

      const glass = await c.authz.requestGrant({ role: 'developer', minutes: 15, reason: 'outage', break_glass: true, scope: 'org:default' });
      expect(glass).toMatchObject({ status: 'pending', reason: 'BREAK-GLASS: outage' });
      expect(Date.parse(glass.expires_at) - s.clock.now().getTime()).toBe(60 * MINUTE_MS);
      expect(await codeOf(c.authz.requestGrant({ role: 'nobody', minutes: 5, reason: 'x' }))).toEqual({ status: 404, code: 'PAL_AUTHZ_ROLE_NOT_FOUND' });

      // not by the requester; by a security administrator
      expect(await codeOf(c.approvals.approve(a.id))).toEqual({ status: 403, code: 'PAL_APPROVAL_SELF' });
      const admin = await c.identity.createService({ name: 'approver', roles: ['security-admin'] });
      const approver = s.clientWith((await c.identity.createServiceApiKey(admin.id, { name: 'approve' })).token);
      const done = await approver.approvals.approve(a.id);
      expect(done).toMatchObject({ status: 'approved', decided_by: admin.id, result: { binding_id: expect.stringMatching(/^bnd_/), expires_at: expect.any(String) } });
      const grant = (await c.authz.bindings({ subject: me })).bindings;
      expect(grant).toEqual([expect.objectContaining({ role: 'developer', scope: '*', reason: 'on call', approval_id: a.id, created_by: admin.id })]);
      expect(Date.parse(grant[0]!.expires_at!) - s.clock.now().getTime()).toBe(60 * MINUTE_MS);
    });
  });
}
