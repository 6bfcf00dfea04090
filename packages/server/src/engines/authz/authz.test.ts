import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { dialects, startServer, type TestServer } from '../../testing/harness.js';
import { httpsRequest } from '../../testing/https-request.js';
import { createRuntime } from '../../runtime.js';
import { createLogger } from '../../logging.js';

const PASSWORD = 'correct horse battery staple';

for (const d of dialects()) {
  describe.skipIf(!d.available)(`authorization over HTTPS (${d.name})`, () => {
    let s: TestServer;
    const call = (method: string, path: string, opts: Parameters<typeof httpsRequest>[4] = {}) => httpsRequest(s.addr, s.ca, method, path, opts);
    const owner = () => ({ authorization: `Bearer ${s.token}` });
    const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
    const events = async (type: string) => (await s.client.audit.query({ type, limit: 500 })).events;

    /** A service identity with these roles and an API key carrying what they hold. */
    const service = async (name: string, roles: string[]) => {
      const svc = await call('POST', '/v1/services', { headers: owner(), json: { name, roles } });
      expect(svc.status, svc.text).toBe(201);
      const key = await call('POST', `/v1/services/${svc.json.id}/api-keys`, { headers: owner(), json: { name: 'k' } });
      expect(key.status, key.text).toBe(201);
      return { id: svc.json.id as string, token: key.json.token as string };
    };
    /** A user with these roles, signed in: the session cookie headers of Palisade's own pages. */
    const user = async (username: string, roles: string[]) => {
      const u = await call('POST', '/v1/users', { headers: owner(), json: { username, password: PASSWORD, roles } });
      expect(u.status, u.text).toBe(201);
      const r = await call('POST', '/v1/auth/login', { json: { username, password: PASSWORD } });
      expect(r.status, r.text).toBe(200);
      const cookie = String(([] as string[]).concat(r.headers['set-cookie'] ?? [])[0]).split(';')[0]!;
      return { id: u.json.id as string, headers: { cookie, 'sec-fetch-site': 'same-origin' } };
    };
    const putPolicy = async (source: string) => {
      const r = await call('PUT', '/v1/authz/policy', { headers: owner(), json: { source } });
      expect(r.status, r.text).toBe(200);
      return r.json as { version: number };
    };
    const explain = async (body: Record<string, unknown>) => {
      const r = await call('POST', '/v1/authz/explain', { headers: owner(), json: body });
      expect(r.status, r.text).toBe(200);
      return r.json as { decision: string; reason: string; steps: Array<{ source: string; effect: string; matched: boolean; why: string }> };
    };
    const encrypt = (token: string, keyId: string) => call('POST', `/v1/keys/${keyId}/encrypt`, { headers: bearer(token), json: { plaintext: Buffer.from('x').toString('base64') } });

    let keyId: string;
    beforeAll(async () => {
      s = await startServer(d.name);
      keyId = (await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', name: 'payments/cards', classification: 'confidential' })).key_id;
    });
    afterAll(async () => s?.close());

    it('an invalid policy is refused with every problem on its line and column, and nothing is stored', async () => {
      const source = [
        'version: 1', //                                      1
        'locations:', //                                      2
        '  office: [10.0.0.0/8, 300.1.1.1/8]', //             3: bad CIDR
        'rules:', //                                          4
        '  - id: night', //                                   5
        '    effect: deny', //                                6
        '    actions: ["kms:*"]', //                          7
        '    unless: { time: { tz: Mars/Olympus, from: "08:00", to: "18:00" } }', // 8: unknown zone
        '  - id: night', //                                   9: duplicate id
        '    effect: maybe', //                               10: not an effect
        '    actions: ["kms:decrypt"]', //                   11
      ].join('\n');
      const r = await call('PUT', '/v1/authz/policy', { headers: owner(), json: { source } });
      expect(r.status).toBe(400);
      expect(r.json.code).toBe('PAL_AUTHZ_POLICY_INVALID');
      expect(r.json.errors).toEqual([expect.objectContaining({ line: 10, path: '/rules/1/effect' })]);
      // Fix the schema error: the semantic ones come next, each on its line.
      const second = await call('POST', '/v1/authz/policy/validate', { headers: owner(), json: { source: source.replace('maybe', 'deny') } });
      expect(second.json.valid).toBe(false);
      expect(second.json.errors.map((e: { line: number; message: string }) => [e.line, e.message.split(' ')[0]])).toEqual([
        [3, '300.1.1.1/8'],
        [8, 'unknown'],
        [9, 'rule'],
      ]);
      const yamlError = await call('POST', '/v1/authz/policy/validate', { headers: owner(), json: { source: 'version: 1\nrules:\n  - id: x\n    actions: [unclosed\n' } });
      expect(yamlError.json.errors[0].line).toBeGreaterThanOrEqual(4);
      expect((await call('GET', '/v1/authz/policy', { headers: owner() })).json.version).toBe(0);
      expect((await events('authz.policy.update')).map((e) => e.outcome)).toEqual(['failure']);
    });

    it('roles: six tiers, custom roles only with permissions the creator holds; bindings scoped to a project', async () => {
      const roles = (await call('GET', '/v1/authz/roles', { headers: owner() })).json.roles as Array<{ name: string; tier: number | null }>;
      expect(roles.filter((r) => r.tier !== null).map((r) => r.name)).toEqual(['viewer', 'agent', 'developer', 'operator', 'security-admin', 'owner']);
      const dev = await service('scoped-dev', ['developer']);
      const tooMuch = await call('POST', '/v1/authz/roles', { headers: bearer(dev.token), json: { name: 'x', permissions: ['kms:encrypt'] } });
      expect(tooMuch.status).toBe(403); // developers do not manage roles
      const created = await call('POST', '/v1/authz/roles', { headers: owner(), json: { name: 'payments-encryptor', permissions: ['kms:encrypt', 'kms:keys:read'] } });
      expect(created.status, created.text).toBe(201);
      const u = await user('pat', ['viewer']);
      expect((await call('POST', `/v1/keys/${keyId}/encrypt`, { headers: u.headers, json: { plaintext: 'eA==' } })).status).toBe(403);
      // Bound in another project: still refused. Bound in the key's project (the first segment of its name): allowed.
      const other = await call('POST', '/v1/authz/bindings', { headers: owner(), json: { subject: u.id, role: 'payments-encryptor', scope: 'org:default/project:billing' } });
      expect(other.status, other.text).toBe(201);
      expect((await call('POST', `/v1/keys/${keyId}/encrypt`, { headers: u.headers, json: { plaintext: 'eA==' } })).status).toBe(403);
      const right = await call('POST', '/v1/authz/bindings', { headers: owner(), json: { subject: u.id, role: 'payments-encryptor', scope: 'org:default/project:payments' } });
      const ok = await call('POST', `/v1/keys/${keyId}/encrypt`, { headers: u.headers, json: { plaintext: 'eA==' } });
      expect(ok.status, ok.text).toBe(200);
      // The audit event carries the decision and what made it.
      const ev = (await events('kms.encrypt')).find((e) => e.actor.principal_id === u.id)!;
      expect(ev.authz).toEqual({ decision: 'allow', reason: `binding:${right.json.id} grants kms:encrypt`, by: [`binding:${right.json.id}`] });
      // Removing the binding takes effect on the next request (the cache is dropped).
      expect((await call('DELETE', `/v1/authz/bindings/${right.json.id}`, { headers: owner() })).status).toBe(204);
      const after = await call('POST', `/v1/keys/${keyId}/encrypt`, { headers: u.headers, json: { plaintext: 'eA==' } });
      expect(after.status).toBe(403);
      expect(after.json.reason).toBe('no role, binding or rule grants kms:encrypt');
      const denied = (await events('authz.denied')).find((e) => e.actor.principal_id === u.id)!;
      expect(denied.authz).toMatchObject({ decision: 'deny', reason: 'no role, binding or rule grants kms:encrypt' });
      // A bound role cannot be deleted.
      expect((await call('DELETE', '/v1/authz/roles/payments-encryptor', { headers: owner() })).json.code).toBe('PAL_AUTHZ_ROLE_IN_USE');
    });

    it('a binding scoped to an organisation: its users and services, not another organisation\'s', async () => {
      const acme = await call('POST', '/v1/orgs', { headers: owner(), json: { name: 'acme' } });
      expect(acme.status, acme.text).toBe(201);
      const inAcme = await call('POST', '/v1/users', { headers: owner(), json: { username: 'wile', password: PASSWORD, org_id: acme.json.id } });
      const inDefault = await call('POST', '/v1/users', { headers: owner(), json: { username: 'road', password: PASSWORD } });
      const admin = await user('acme-admin', ['viewer']);
      const b = await call('POST', '/v1/authz/bindings', { headers: owner(), json: { subject: admin.id, role: 'security-admin', scope: `org:${acme.json.id}` } });
      expect(b.status, b.text).toBe(201);
      const rename = (id: string) => call('PATCH', `/v1/users/${id}`, { headers: admin.headers, json: { display_name: 'renamed' } });
      const ok = await rename(inAcme.json.id);
      expect(ok.status, ok.text).toBe(200);
      const refused = await rename(inDefault.json.id);
      expect(refused.status).toBe(403);
      expect(refused.json.reason).toBe('no role, binding or rule grants identity:users:update');
    });

    it('context: outside the time window, from a wrong network, with stale MFA, with a high risk score: each denied with the reason explain shows', async () => {
      const dev = await service('ctx-dev', ['developer']);
      await putPolicy(`
version: 1
locations:
  office: [10.20.0.0/16]
rules:
  - id: business-hours
    effect: deny
    principals: ["role:developer"]
    actions: ["kms:*"]
    unless: { time: { tz: Europe/Berlin, days: [mon, tue, wed, thu, fri], from: "08:00", to: "18:00" } }
  - id: office-network-for-operators
    effect: deny
    principals: ["role:operator"]
    actions: ["*"]
    unless: { location: [office] }
  - id: confidential-needs-fresh-mfa
    effect: deny
    actions: ["kms:decrypt"]
    resources: { classifications: [confidential, restricted] }
    when: { authentication: [session] }
    unless: { mfa: { max_age_seconds: 300 } }
  - id: risky
    effect: deny
    actions: ["*"]
    when: { risk: { min: 70 } }
  - id: signing-from-agents-only
    effect: deny
    actions: ["kms:sign"]
    unless: { certificate: ["spiffe://palisade.test/agents/*"] }
`);
      // Time: Saturday noon in Berlin is outside; Tuesday 10:00 inside.
      s.clock.set('2026-11-21T11:00:00Z');
      const sat = await encrypt(dev.token, keyId);
      expect(sat.status).toBe(403);
      expect(sat.json.reason).toBe('rule business-hours denies kms:encrypt: it is sat in Europe/Berlin, not mon/tue/wed/thu/fri; holds developer');
      s.clock.set('2026-11-24T09:00:00Z');
      expect((await encrypt(dev.token, keyId)).status).toBe(200);
      s.clock.set('2026-11-24T17:30:00Z'); // 18:30 in Berlin
      const late = await encrypt(dev.token, keyId);
      expect(late.json.reason).toBe('rule business-hours denies kms:encrypt: it is 18:30 in Europe/Berlin, outside 08:00–18:00; holds developer');
      const why = await explain({ principal_id: dev.id, action: 'kms:encrypt', resource: { type: 'kms_key', id: keyId }, context: { time: '2026-11-21T11:00:00Z' } });
      expect(why.decision).toBe('deny');
      expect(why.steps).toContainEqual({ source: 'rule:business-hours', effect: 'deny', matched: true, why: 'it is sat in Europe/Berlin, not mon/tue/wed/thu/fri; holds developer' });
      s.clock.set('2026-11-24T09:00:00Z');

      // Certificate identity: signing only with an agent's client certificate.
      const at = '2026-11-24T09:00:00Z';
      expect((await explain({ principal_id: dev.id, action: 'kms:sign', context: { time: at, certificate: 'spiffe://palisade.test/agents/a1' } })).decision).toBe('allow');
      expect((await explain({ principal_id: dev.id, action: 'kms:sign', context: { time: at } })).reason).toBe('rule signing-from-agents-only denies kms:sign: no client certificate');
      expect((await explain({ principal_id: dev.id, action: 'kms:sign', context: { time: at, certificate: 'spiffe://palisade.test/tools/t1' } })).reason).toBe(
        'rule signing-from-agents-only denies kms:sign: certificate spiffe://palisade.test/tools/t1 matches none of spiffe://palisade.test/agents/*',
      );

      // Network: an operator from loopback is outside the office.
      const op = await service('ctx-op', ['operator']);
      const net = await call('GET', '/v1/audit/events', { headers: bearer(op.token) });
      expect(net.status).toBe(403);
      expect(net.json.reason).toBe('rule office-network-for-operators denies audit:events:read: source 127.0.0.1 is in none of the locations office; holds operator');
      expect((await explain({ principal_id: op.id, action: 'audit:events:read', context: { source_ip: '10.20.3.4' } })).decision).toBe('allow');
      expect((await explain({ principal_id: op.id, action: 'audit:events:read', context: { source_ip: '192.0.2.1' } })).reason).toContain('source 192.0.2.1 is in none of the locations office');

      // MFA: a session that never verified a second factor cannot decrypt confidential data; fresh MFA can.
      const carol = await user('carol', ['agent']);
      const ct = await s.client.kms.encrypt(keyId, 'secret');
      const noMfa = await call('POST', `/v1/keys/${keyId}/decrypt`, { headers: carol.headers, json: ct });
      expect(noMfa.status).toBe(403);
      expect(noMfa.json.reason).toBe('rule confidential-needs-fresh-mfa denies kms:decrypt: authenticated by session; no second factor was verified in this session');
      const resource = { type: 'kms_key', id: keyId, name: 'payments/cards', classification: 'confidential', project: 'payments' };
      const stale = await explain({ principal_id: carol.id, action: 'kms:decrypt', resource, context: { authentication: 'session', mfa_age_seconds: 900, mfa_method: 'totp' } });
      expect(stale).toMatchObject({ decision: 'deny', reason: 'rule confidential-needs-fresh-mfa denies kms:decrypt: authenticated by session; the second factor was verified 900 s ago, more than 300 s' });
      expect((await explain({ principal_id: carol.id, action: 'kms:decrypt', resource, context: { authentication: 'session', mfa_age_seconds: 60, mfa_method: 'webauthn' } })).decision).toBe('allow');

      // Risk: the threat-detection hook scores this service high.
      s.rt.authz.setRiskSource(({ principal_id }) => (principal_id === dev.id ? 90 : 0));
      try {
        const risky = await encrypt(dev.token, keyId);
        expect(risky.json.reason).toBe('rule risky denies kms:encrypt: risk 90 ≥ 70');
        expect((await explain({ principal_id: dev.id, action: 'kms:encrypt', context: { risk: 10 } })).decision).toBe('allow');
        expect((await explain({ principal_id: dev.id, action: 'kms:encrypt' })).steps).toContainEqual({ source: 'rule:risky', effect: 'deny', matched: true, why: 'risk 90 ≥ 70' });
      } finally {
        s.rt.authz.setRiskSource(() => 0);
      }
      await putPolicy('version: 1\nrules: []\n');
    });

    it('a just-in-time grant works until it expires, then the denial names the expired grant', async () => {
      const dana = await user('dana', ['viewer']);
      expect((await call('GET', '/v1/audit/events', { headers: dana.headers })).status).toBe(403);
      // Dana asks; she cannot approve her own request; an administrator approves a 10-minute grant of operator.
      const asked = await call('POST', '/v1/authz/grants', { headers: dana.headers, json: { role: 'operator', minutes: 10, reason: 'incident INC-7' } });
      expect(asked.status, asked.text).toBe(202);
      const own = await call('POST', `/v1/approvals/${asked.json.id}/approve`, { headers: dana.headers, json: {} });
      expect(own.status).toBe(403);
      const approved = await call('POST', `/v1/approvals/${asked.json.id}/approve`, { headers: owner(), json: {} });
      expect(approved.status, approved.text).toBe(200);
      const bindingId = approved.json.result.binding_id as string;
      const granted = await call('GET', '/v1/audit/events', { headers: dana.headers });
      expect(granted.status, `${granted.text} ${JSON.stringify(await explain({ principal_id: dana.id, action: 'audit:events:read' }))}`).toBe(200);
      s.clock.advanceMinutes(11);
      const expired = await call('GET', '/v1/audit/events', { headers: dana.headers });
      expect(expired.status).toBe(403);
      expect(expired.json.reason).toMatch(new RegExp(`^no role, binding or rule grants audit:events:read; grant ${bindingId} of operator expired at `));
      const why = await explain({ principal_id: dana.id, action: 'audit:events:read' });
      expect(why.steps).toContainEqual(expect.objectContaining({ source: `binding:${bindingId}`, matched: false, why: expect.stringMatching(/^grant of operator \(\*\) expired at /) }));
      expect((await events('authz.binding.create')).some((e) => e.details?.['approval_id'] === asked.json.id)).toBe(true);
    });

    it('a restricted-data operation needs another principal\'s approval, and the approval works once', async () => {
      const restricted = (await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', name: 'hr/salaries', classification: 'restricted' })).key_id;
      const ct = await s.client.kms.encrypt(restricted, 'salary');
      await putPolicy(`
version: 1
rules:
  - id: restricted-needs-approval
    effect: require_approval
    actions: ["kms:decrypt"]
    resources: { classifications: [restricted] }
    approval: { ttl_minutes: 30 }
`);
      const admin = await service('sec-admin', ['security-admin']);
      const other = await service('other-admin', ['security-admin']);
      const decrypt = (token: string, approval?: string) => call('POST', `/v1/keys/${restricted}/decrypt`, { headers: { ...bearer(token), ...(approval ? { 'palisade-approval': approval } : {}) }, json: ct });
      const first = await decrypt(admin.token);
      expect(first.status).toBe(403);
      expect(first.json.code).toBe('PAL_APPROVAL_REQUIRED');
      const approvalId = first.json.approval_id as string;
      // Asking again finds the same pending request; using it before approval is refused.
      expect((await decrypt(admin.token)).json.approval_id).toBe(approvalId);
      expect((await decrypt(admin.token, approvalId)).json.code).toBe('PAL_APPROVAL_INVALID');
      // The requester can never approve their own.
      expect((await call('POST', `/v1/approvals/${approvalId}/approve`, { headers: bearer(admin.token), json: {} })).json.code).toBe('PAL_APPROVAL_SELF');
      expect((await call('POST', `/v1/approvals/${approvalId}/approve`, { headers: bearer(other.token), json: {} })).status).toBe(200);
      // Another principal cannot use it; the requester can, once.
      expect((await decrypt(other.token, approvalId)).json.code).toBe('PAL_APPROVAL_INVALID');
      const ok = await decrypt(admin.token, approvalId);
      expect(ok.status, ok.text).toBe(200);
      expect(Buffer.from(ok.json.plaintext, 'base64').toString()).toBe('salary');
      const again = await decrypt(admin.token, approvalId);
      expect(again.json).toMatchObject({ code: 'PAL_APPROVAL_INVALID', detail: `approval ${approvalId} was used already` });
      const ev = (await events('kms.decrypt')).find((e) => e.actor.principal_id === admin.id)!;
      expect(ev.authz).toMatchObject({ decision: 'allow', by: [expect.stringMatching(/^api_key:ak_/), 'rule:restricted-needs-approval', `approval:${approvalId}`] });
      expect((await events('approval.request')).some((e) => e.resource?.id === approvalId)).toBe(true);
      await putPolicy('version: 1\nrules: []\n');
    });
  });
}

const pgUrl = inject('pgUrl');
describe.skipIf(!pgUrl)('authorization across two nodes (PostgreSQL)', () => {
  it('a binding made or removed on one node changes the cached decision on the other at commit, without waiting for the poll', async () => {
    // The poll is set to a minute: only the NOTIFY at commit can make the other node see the change in time.
    const a = await startServer('postgres', { mutate: (cfg) => void (cfg.authz.generation_poll_ms = 60_000) });
    const b = await createRuntime(a.rt.config, { log: createLogger('silent'), tls: true, clock: a.clock.now });
    try {
      await b.app.listen({ host: '127.0.0.1', port: 0 });
      const addrB = `127.0.0.1:${(b.app.server.address() as { port: number }).port}`;
      const onA = (method: string, path: string, opts: Parameters<typeof httpsRequest>[4] = {}) => httpsRequest(a.addr, a.ca, method, path, opts);
      const onB = (method: string, path: string, opts: Parameters<typeof httpsRequest>[4] = {}) => httpsRequest(addrB, a.ca, method, path, opts);
      const owner = { authorization: `Bearer ${a.token}` };
      const u = (await onA('POST', '/v1/users', { headers: owner, json: { username: 'nodes', password: PASSWORD, roles: ['viewer'] } })).json;
      const login = await onA('POST', '/v1/auth/login', { json: { username: 'nodes', password: PASSWORD } });
      const headers = { cookie: String(([] as string[]).concat(login.headers['set-cookie'] ?? [])[0]).split(';')[0]!, 'sec-fetch-site': 'same-origin' };
      const readOnB = async () => (await onB('GET', '/v1/audit/events?limit=1', { headers })).status;
      const eventually = async (want: number) => {
        for (let i = 0; i < 100 && (await readOnB()) !== want; i++) await new Promise((r) => setTimeout(r, 50));
        return readOnB();
      };
      expect(await readOnB()).toBe(403); // decided (and cached) on B
      const bound = await onA('POST', '/v1/authz/bindings', { headers: owner, json: { subject: u.id, role: 'operator' } });
      expect(bound.status, bound.text).toBe(201);
      expect(await eventually(200)).toBe(200);
      expect((await onA('DELETE', `/v1/authz/bindings/${bound.json.id}`, { headers: owner })).status).toBe(204);
      expect(await eventually(403)).toBe(403);
      // A role change in the directory on A (viewer -> operator) reaches B the same way.
      expect((await onA('PATCH', `/v1/users/${u.id}`, { headers: owner, json: { roles: ['operator'] } })).status).toBe(200);
      const again = await onA('POST', '/v1/auth/login', { json: { username: 'nodes', password: PASSWORD } });
      headers.cookie = String(([] as string[]).concat(again.headers['set-cookie'] ?? [])[0]).split(';')[0]!;
      expect(await eventually(200)).toBe(200);
    } finally {
      await b.close();
      await a.close();
    }
  });
});
