import { createHash, createPrivateKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestDnsServer } from '@palisade/testkit';
import { dialects } from '../../testing/harness.js';
import { ACME_ERR, acmeFixture, accountKey, csrFor, label, OWNER, publicJwkOf, signJws, startAcmeServer, TestAcmeClient, type AcmeFixture, type AcmeTestServer } from '../../testing/acme.js';
import { certId } from './ari.js';
import { TestingCa } from '../../testing/acme-ca.js';

const ERR = ACME_ERR;

describe.each(dialects())('ACME server ($name)', ({ name, available }) => {
  let f: AcmeFixture;
  let s: AcmeTestServer;
  let ca: TestingCa;
  let dns: TestDnsServer;
  let tokens: Map<string, string>;
  const eabKey = (body?: Record<string, unknown>) => f.eabKey(body);
  const client = () => new TestAcmeClient(s.http, s.base);
  const registered = () => f.registered();
  const readyOrder = (c: TestAcmeClient, names: string[]) => f.readyOrder(c, names);
  const certRows = async () => (await s.rt.storage.db.selectFrom('acme_certificates').select('serial').execute()).length;

  beforeAll(async () => {
    if (!available) return;
    f = await acmeFixture(name);
    ({ s, ca, dns, tokens } = f);
  });
  afterAll(async () => f?.close());

  describe.skipIf(!available)('', () => {
    it('serves the directory and nonces (HEAD 200, GET 204), with Replay-Nonce and no-store on every answer', async () => {
      const dir = await s.http('GET', `${s.base}/acme/directory`);
      expect(dir.status).toBe(200);
      expect(JSON.parse(dir.body)).toMatchObject({ newNonce: `${s.base}/acme/new-nonce`, renewalInfo: `${s.base}/acme/renewal-info`, meta: { externalAccountRequired: true } });
      const head = await s.http('HEAD', `${s.base}/acme/new-nonce`);
      const get = await s.http('GET', `${s.base}/acme/new-nonce`);
      expect([head.status, get.status]).toEqual([200, 204]);
      for (const r of [dir, head, get]) {
        expect(r.headers['replay-nonce']).toMatch(/^[A-Za-z0-9_-]{22}$/);
        expect(r.headers['cache-control']).toBe('no-store');
      }
      expect(head.headers['replay-nonce']).not.toBe(get.headers['replay-nonce']);
      const missing = await s.http('POST', `${s.base}/acme/nowhere`, { body: '{}', headers: { 'content-type': 'application/jose+json' } });
      expect(missing.status).toBe(404);
      expect(missing.headers['content-type']).toContain('application/problem+json');
      expect(missing.headers['replay-nonce']).toBeTruthy();
    });

    it('refuses an account without EAB when it is required, and with a wrong MAC; a used single-use key binds no second account', async () => {
      const before = (await s.rt.storage.db.selectFrom('acme_accounts').select('id').execute()).length;
      const none = await client().register();
      expect(none.status).toBe(403);
      expect(none.json.type).toBe(`${ERR}externalAccountRequired`);
      const key = await eabKey();
      const wrong = await client().register({ key_id: key.key_id, hmac_key: Buffer.alloc(32, 7).toString('base64url') });
      expect([wrong.status, wrong.json.type]).toEqual([403, `${ERR}unauthorized`]);
      const ok = client();
      const created = await ok.register(key);
      expect(created.status).toBe(201);
      expect(created.headers.location).toMatch(new RegExp(`^${s.base}/acme/account/acct_`));
      expect(created.json).toMatchObject({ status: 'valid', orders: `${created.headers.location}/orders` });
      const reused = await client().register(key);
      expect([reused.status, reused.json.type]).toEqual([403, `${ERR}unauthorized`]);
      expect((await s.rt.storage.db.selectFrom('acme_accounts').select('id').execute()).length).toBe(before + 1);
      // the same key again: the existing account, 200
      const again = await ok.register();
      expect([again.status, again.headers.location]).toEqual([200, created.headers.location]);
      const unknown = await client().register(undefined, { onlyReturnExisting: true });
      expect(unknown.json.type).toBe(`${ERR}accountDoesNotExist`);
      // the EAB key is listed, used, never with its HMAC key
      const list = await s.rt.app.inject({ method: 'GET', url: '/v1/acme/eab-keys', headers: { authorization: `Bearer ${OWNER}` } });
      const listed = list.json<{ eab_keys: Array<Record<string, unknown>> }>().eab_keys.find((k) => k.key_id === key.key_id)!;
      expect(listed.used_by).toBe(created.headers.location!.split('/').pop());
      expect(listed).not.toHaveProperty('hmac_key');
      const events = await s.rt.ledger.query({ type: 'acme.account.create', outcome: 'success', limit: 5 });
      expect(events.events[0]).toMatchObject({ actor: { principal_id: `acme:${created.headers.location!.split('/').pop()}` }, details: { eab_key_id: key.key_id, contacts: 0 } });
    });

    it('revoked EAB keys bind nothing; EAB key routes need their permission', async () => {
      const key = await eabKey();
      const del = await s.rt.app.inject({ method: 'DELETE', url: `/v1/acme/eab-keys/${key.key_id}`, headers: { authorization: `Bearer ${OWNER}` } });
      expect(del.json()).toMatchObject({ revoked_at: expect.any(String) });
      expect((await client().register(key)).json.type).toBe(`${ERR}unauthorized`);
      expect((await s.rt.app.inject({ method: 'POST', url: '/v1/acme/eab-keys', payload: { name: 'x' } })).statusCode).toBe(401);
    });

    it('answers bad JWS with the right ACME error: signature, reused nonce, another account\'s kid, algorithms, url, media type', async () => {
      const c = await registered();
      const other = await registered();
      const dir = await c.directory();
      // bad signature: sign with a key that is not the account's
      const bad = await c.post(dir.newOrder, { identifiers: [{ type: 'dns', value: 'x.test' }] }, { key: accountKey() });
      expect([bad.status, bad.json.type]).toEqual([400, `${ERR}malformed`]);
      // wrong account key: the kid of another account
      const wrongKid = await c.post(dir.newOrder, { identifiers: [{ type: 'dns', value: 'x.test' }] }, { kid: other.kid! });
      expect([wrongKid.status, wrongKid.json.type]).toEqual([400, `${ERR}malformed`]);
      // reused nonce
      const nonce = await c.nonce();
      expect((await c.post(c.kid!, '', { nonce })).status).toBe(200);
      const replay = await c.post(c.kid!, '', { nonce });
      expect([replay.status, replay.json.type]).toEqual([400, `${ERR}badNonce`]);
      expect(replay.headers['replay-nonce']).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect((await c.post(c.kid!, '', { nonce: replay.headers['replay-nonce']! })).status).toBe(200);
      // unknown nonce
      expect((await c.post(c.kid!, '', { nonce: 'AAAAAAAAAAAAAAAAAAAAAA' })).json.type).toBe(`${ERR}badNonce`);
      // algorithms: none, HS256, unknown → badSignatureAlgorithm with the list
      for (const alg of ['none', 'HS256', 'ES512']) {
        const r = await c.post(c.kid!, '', { alg });
        expect([r.json.type, r.json.algorithms]).toEqual([`${ERR}badSignatureAlgorithm`, ['ES256', 'ES384', 'RS256', 'EdDSA']]);
      }
      // url must be this request's
      expect((await c.post(c.kid!, '', { headerUrl: dir.newOrder })).json.type).toBe(`${ERR}unauthorized`);
      // b64:false and crit
      expect((await c.post(c.kid!, '', { header: { b64: false, crit: ['b64'] } })).json.type).toBe(`${ERR}malformed`);
      // jwk where a kid is required, kid where a jwk is required
      expect((await c.post(dir.newOrder, { identifiers: [] }, { jwk: true })).json.type).toBe(`${ERR}malformed`);
      expect((await c.post(dir.newAccount, {}, { kid: c.kid! })).json.type).toBe(`${ERR}malformed`);
      // only application/jose+json
      const json = await c.post(c.kid!, '', { contentType: 'application/json' });
      expect([json.status, json.json.type]).toEqual([415, `${ERR}malformed`]);
      // a body that is not a JWS
      const raw = await s.http('POST', dir.newOrder, { body: '{"hello":1}', headers: { 'content-type': 'application/jose+json' } });
      expect([raw.status, JSON.parse(raw.body).type]).toEqual([400, `${ERR}malformed`]);
      // weak RSA account key
      const weak = new TestAcmeClient(s.http, s.base, generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey, 'RS256');
      expect((await weak.register(await eabKey())).json.type).toBe(`${ERR}badPublicKey`);
    });

    it('resumes a validation a dead node left processing, once, and records it once', async () => {
      const c = await registered();
      dns.set('resume.example.test', 'A', ['127.0.0.1']);
      const order = await c.post((await c.directory()).newOrder, { identifiers: [{ type: 'dns', value: 'resume.example.test' }] });
      const authzUrl = (order.json.authorizations as string[])[0]!;
      const ch = ((await c.post(authzUrl, '')).json as { challenges: Array<{ type: string; url: string; token: string }> }).challenges.find((x) => x.type === 'http-01')!;
      tokens.set(ch.token, c.keyAuthorization(ch.token));
      const id = ch.url.split('/').pop()!;
      // as if a node had claimed it long ago and died before recording anything
      await s.rt.storage.db.updateTable('acme_challenges').set({ status: 'processing', started_at: '2000-01-01T00:00:00.000Z' }).where('id', '=', id).execute();
      const [first, second] = await Promise.all([s.rt.acme.validator.resume(), s.rt.acme.validator.resume()]);
      expect(first + second).toBe(1);
      await s.rt.acme.validator.idle();
      expect((await c.post(ch.url, '')).json.status).toBe('valid');
      expect((await c.post(order.headers.location!, '')).json.status).toBe('ready');
      expect(await s.rt.acme.validator.resume()).toBe(0);
      const events = await s.rt.storage.db.selectFrom('audit_events').select('data').where('type', '=', 'acme.challenge.validate').execute();
      expect(events.filter((e) => e.data.includes(id))).toHaveLength(1);
    });

    it('accepts ES384, RS256 and EdDSA account keys', async () => {
      for (const alg of ['ES384', 'RS256', 'EdDSA'] as const) {
        const c = new TestAcmeClient(s.http, s.base, accountKey(alg), alg);
        expect((await c.register(await eabKey())).status).toBe(201);
        expect((await c.post(c.kid!, '')).json.status).toBe('valid');
      }
    });

    it('updates contacts (mailto only), deactivates, and refuses a deactivated account', async () => {
      const c = await registered();
      expect((await c.post(c.kid!, { contact: ['mailto:ops@example.com'] })).json.contact).toEqual(['mailto:ops@example.com']);
      expect((await c.post(c.kid!, { contact: ['tel:+123'] })).json.type).toBe(`${ERR}unsupportedContact`);
      expect((await c.post(c.kid!, { contact: ['mailto:not an address'] })).json.type).toBe(`${ERR}invalidContact`);
      expect((await c.post(c.kid!, { status: 'deactivated' })).json.status).toBe('deactivated');
      const after = await c.post(c.kid!, '');
      expect([after.status, after.json.type]).toEqual([403, `${ERR}unauthorized`]);
      const events = await s.rt.ledger.query({ type: 'acme.account.update', limit: 5 });
      expect(events.events.map((e) => e.details)).toContainEqual({ status: 'deactivated', contacts: 1 });
    });

    it('rolls the account key over (keyChange), refusing a key in use and a wrong oldKey', async () => {
      const c = await registered();
      const taken = await registered();
      const dir = await c.directory();
      const inner = (newKey: KeyObject, oldKey = c.key) => signJws(newKey, 'ES256', { jwk: publicJwkOf(newKey), url: dir.keyChange }, { account: c.kid, oldKey: publicJwkOf(oldKey) });
      const conflict = await c.post(dir.keyChange, inner(taken.key));
      expect([conflict.status, conflict.headers.location]).toEqual([409, taken.kid]);
      const stranger = accountKey();
      expect((await c.post(dir.keyChange, inner(accountKey(), stranger))).json.type).toBe(`${ERR}unauthorized`);
      const fresh = accountKey();
      expect((await c.post(dir.keyChange, inner(fresh))).status).toBe(200);
      expect((await c.post(c.kid!, '')).json.type).toBe(`${ERR}malformed`); // the old key no longer verifies
      c.key = fresh;
      expect((await c.post(c.kid!, '')).json.status).toBe('valid');
    });

    it('rejects bad identifiers with one subproblem each, and offers the right challenges per identifier', async () => {
      const c = await registered();
      const dir = await c.directory();
      const bad = await c.post(dir.newOrder, { identifiers: [{ type: 'dns', value: 'a..b' }, { type: 'dns', value: 'x.*.example' }, { type: 'dns', value: 'fine.example' }] });
      expect(bad.json.type).toBe(`${ERR}rejectedIdentifier`);
      expect((bad.json.subproblems as Array<{ identifier: { value: string } }>).map((p) => p.identifier.value)).toEqual(['a..b', 'x.*.example']);
      expect((await c.post(dir.newOrder, { identifiers: [{ type: 'email', value: 'a@b.c' }] })).json.type).toBe(`${ERR}unsupportedIdentifier`);
      const order = await c.post(dir.newOrder, { identifiers: [{ type: 'dns', value: '*.wild.example' }, { type: 'ip', value: '127.0.0.1' }, { type: 'dns', value: 'Plain.Example' }] });
      expect(order.status).toBe(201);
      expect(order.json.identifiers).toEqual([{ type: 'dns', value: '*.wild.example' }, { type: 'dns', value: 'plain.example' }, { type: 'ip', value: '127.0.0.1' }]);
      const kinds: Record<string, string[]> = {};
      for (const url of order.json.authorizations as string[]) {
        const a = (await c.post(url, '')).json as { identifier: { value: string }; wildcard?: boolean; challenges: Array<{ type: string }> };
        kinds[`${a.identifier.value}${a.wildcard ? ' (wildcard)' : ''}`] = a.challenges.map((x) => x.type).sort();
      }
      expect(kinds).toEqual({ 'wild.example (wildcard)': ['dns-01'], 'plain.example': ['dns-01', 'http-01', 'tls-alpn-01'], '127.0.0.1': ['http-01', 'tls-alpn-01'] });
      // finalize before the order is ready
      const early = await c.post(order.json.finalize as string, { csr: (await csrFor(['plain.example'])).der.toString('base64url') });
      expect([early.status, early.json.type]).toEqual([403, `${ERR}orderNotReady`]);
      // another account cannot read it
      const other = await registered();
      expect((await other.post(order.headers.location!, '')).json.type).toBe(`${ERR}unauthorized`);
    });

    it('validates http-01 and dns-01, fails a wrong answer (order invalid, audited), and records every outcome', async () => {
      const c = await registered();
      const dir = await c.directory();
      const good = label() + '.example';
      const viaDns = label() + '.example';
      const wrong = label() + '.example';
      dns.set(good, 'A', ['127.0.0.1']);
      dns.set(wrong, 'A', ['127.0.0.1']);
      const order = await c.post(dir.newOrder, { identifiers: [{ type: 'dns', value: good }, { type: 'dns', value: viaDns }] });
      for (const url of order.json.authorizations as string[]) {
        const a = (await c.post(url, '')).json as { identifier: { value: string }; challenges: Array<{ type: string; url: string; token: string }> };
        if (a.identifier.value === good) {
          const ch = a.challenges.find((x) => x.type === 'http-01')!;
          tokens.set(ch.token, c.keyAuthorization(ch.token));
          const res = await c.post(ch.url, {});
          expect(res.headers.link).toContain(`<${url}>;rel="up"`);
        } else {
          const ch = a.challenges.find((x) => x.type === 'dns-01')!;
          dns.set(`_acme-challenge.${viaDns}`, 'TXT', ['unrelated', createHash('sha256').update(c.keyAuthorization(ch.token)).digest('base64url')]);
          await c.post(ch.url, {});
        }
      }
      await s.rt.acme.validator.idle();
      expect((await c.post(order.headers.location!, '')).json.status).toBe('ready');

      const bad = await c.post(dir.newOrder, { identifiers: [{ type: 'dns', value: wrong }] });
      const authzUrl = (bad.json.authorizations as string[])[0]!;
      const ch = ((await c.post(authzUrl, '')).json.challenges as Array<{ type: string; url: string; token: string }>).find((x) => x.type === 'http-01')!;
      tokens.set(ch.token, 'not the key authorization');
      await c.post(ch.url, {});
      await s.rt.acme.validator.idle();
      const failed = await c.post(ch.url, '');
      expect(failed.json).toMatchObject({ status: 'invalid', error: { type: `${ERR}incorrectResponse`, identifier: { type: 'dns', value: wrong } } });
      expect((await c.post(authzUrl, '')).json.status).toBe('invalid');
      expect((await c.post(bad.headers.location!, '')).json.status).toBe('invalid');
      const events = (await s.rt.ledger.query({ type: 'acme.challenge.validate', limit: 10 })).events;
      expect(events.find((e) => e.resource?.id === ch.url.split('/').pop())).toMatchObject({ outcome: 'failure', error_code: 'PAL_ACME_CHALLENGE_FAILED', details: { error: `${ERR}incorrectResponse`, challenge_type: 'http-01' } });
    });

    it('refuses to validate against link-local addresses and answers dns errors for names that do not resolve', async () => {
      const c = await registered();
      const meta = label() + '.example';
      dns.set(meta, 'A', ['169.254.169.254']);
      const gone = label() + '.example';
      const order = await c.post((await c.directory()).newOrder, { identifiers: [{ type: 'dns', value: meta }, { type: 'dns', value: gone }] });
      const urls: string[] = [];
      for (const url of order.json.authorizations as string[]) {
        const ch = ((await c.post(url, '')).json.challenges as Array<{ type: string; url: string }>).find((x) => x.type === 'http-01')!;
        await c.post(ch.url, {});
        urls.push(ch.url);
      }
      await s.rt.acme.validator.idle();
      const errors = await Promise.all(urls.map(async (u) => ((await c.post(u, '')).json.error as { type: string; detail: string })));
      expect(errors.map((e) => e.type).sort()).toEqual([`${ERR}connection`, `${ERR}dns`]);
      expect(errors.find((e) => e.type === `${ERR}connection`)!.detail).toContain('link-local');
    });

    it('finalize: a CSR for other names or asking for CA:TRUE is badCSR and issues nothing; a good one issues and downloads', async () => {
      const c = await registered();
      const n = label() + '.example';
      const { url, finalize } = await readyOrder(c, [n]);
      const calls = ca.issueCalls;
      const rows = await certRows();
      const other = await c.post(finalize, { csr: (await csrFor([n, 'extra.example'])).der.toString('base64url') });
      expect([other.status, other.json.type]).toEqual([400, `${ERR}badCSR`]);
      expect(ca.issueCalls).toBe(calls); // refused before the CA was asked
      const caTrue = await c.post(finalize, { csr: (await csrFor([n], { ca: true })).der.toString('base64url') });
      expect([caTrue.status, caTrue.json.type]).toEqual([400, `${ERR}badCSR`]);
      expect(caTrue.json.detail).toContain('CA:TRUE');
      expect(await certRows()).toBe(rows);
      expect((await c.post(url, '')).json.status).toBe('ready'); // nothing changed
      const garbage = await c.post(finalize, { csr: 'AAAA' });
      expect(garbage.json.type).toBe(`${ERR}badCSR`);

      const done = await c.post(finalize, { csr: (await csrFor([n])).der.toString('base64url') });
      expect(done.status).toBe(200);
      expect(done.json).toMatchObject({ status: 'valid', certificate: expect.stringMatching(/\/acme\/cert\/[0-9a-f]+$/) });
      expect(await certRows()).toBe(rows + 1);
      const pem = await c.post(done.json.certificate as string, '');
      expect(pem.headers['content-type']).toContain('application/pem-certificate-chain');
      expect(pem.body).toMatch(/^-----BEGIN CERTIFICATE-----/);
      const again = await c.post(finalize, { csr: (await csrFor([n])).der.toString('base64url') });
      expect(again.json.type).toBe(`${ERR}orderNotReady`);
      const stranger = await registered();
      expect((await stranger.post(done.json.certificate as string, '')).json.type).toBe(`${ERR}unauthorized`);
      const fin = (await s.rt.ledger.query({ type: 'acme.order.finalize', limit: 10 })).events;
      expect(fin.filter((e) => e.resource?.id === url.split('/').pop()).map((e) => [e.outcome, e.error_code])).toEqual(
        expect.arrayContaining([['success', null], ['failure', 'PAL_ACME_BAD_CSR']]),
      );
    });

    it('revokeCert: refuses an unrelated account and bad reasons, accepts the certificate key, then alreadyRevoked', async () => {
      const c = await registered();
      const n = label() + '.example';
      const { finalize } = await readyOrder(c, [n]);
      const csr = await csrFor([n]);
      const done = await c.post(finalize, { csr: csr.der.toString('base64url') });
      const pem = (await c.post(done.json.certificate as string, '')).body;
      const der = Buffer.from(pem.split('-----')[2]!.replace(/\s+/g, ''), 'base64').toString('base64url');
      const dir = await c.directory();
      const stranger = await registered();
      expect((await stranger.post(dir.revokeCert, { certificate: der })).json.type).toBe(`${ERR}unauthorized`);
      expect((await c.post(dir.revokeCert, { certificate: der, reason: 6 })).json.type).toBe(`${ERR}badRevocationReason`);
      const certKey = new TestAcmeClient(s.http, s.base, createPrivateKey(csr.keyPem), 'ES256');
      const revoked = await certKey.post(dir.revokeCert, { certificate: der, reason: 1 }, { jwk: true });
      expect(revoked.status).toBe(200);
      const serial = (done.json.certificate as string).split('/').pop()!;
      expect((await ca.find(null, { serial }))!.status).toBe('revoked');
      expect((await c.post(dir.revokeCert, { certificate: der })).json.type).toBe(`${ERR}alreadyRevoked`);
      const ev = (await s.rt.ledger.query({ type: 'acme.certificate.revoke', outcome: 'success', limit: 1 })).events[0];
      expect(ev).toMatchObject({ resource: { id: serial }, details: { reason: 'keyCompromise', authorized_by: 'certificate_key' } });
    });

    it('renewal information (RFC 9773) and replaces: a window in the validity, one replacement only, a past window once revoked', async () => {
      const c = await registered();
      const n = label() + '.example';
      const { finalize } = await readyOrder(c, [n]);
      const done = await c.post(finalize, { csr: (await csrFor([n])).der.toString('base64url') });
      const serial = (done.json.certificate as string).split('/').pop()!;
      const cert = (await ca.find(null, { serial }))!;
      const id = certId(cert.aki, serial);
      const info = await s.http('GET', `${s.base}/acme/renewal-info/${id}`);
      expect(info.status).toBe(200);
      expect(info.headers['retry-after']).toBe('21600');
      const w = (JSON.parse(info.body) as { suggestedWindow: { start: string; end: string } }).suggestedWindow;
      expect(Date.parse(w.start)).toBeGreaterThan(Date.parse(cert.not_before));
      expect(Date.parse(w.end)).toBeLessThan(Date.parse(cert.not_after));
      expect((await s.http('GET', `${s.base}/acme/renewal-info/AAAA.AQ`)).status).toBe(404);
      expect((await s.http('GET', `${s.base}/acme/renewal-info/not-an-id`)).status).toBe(400);

      const dir = await c.directory();
      const renewal = await c.post(dir.newOrder, { identifiers: [{ type: 'dns', value: n }], replaces: id });
      expect(renewal.status).toBe(201);
      const second = await c.post(dir.newOrder, { identifiers: [{ type: 'dns', value: n }], replaces: id });
      expect([second.status, second.json.type]).toEqual([409, `${ERR}alreadyReplaced`]);
      const stranger = await registered();
      expect((await stranger.post(dir.newOrder, { identifiers: [{ type: 'dns', value: n }], replaces: id })).json.type).toBe(`${ERR}unauthorized`);
      const ev = (await s.rt.ledger.query({ type: 'acme.order.create', outcome: 'success', limit: 5 })).events.find((e) => e.resource?.id === renewal.headers.location!.split('/').pop());
      expect(ev?.details).toMatchObject({ replaces: serial });

      await c.post(dir.revokeCert, { certificate: cert.der.toString('base64url'), reason: 4 });
      const past = (JSON.parse((await s.http('GET', `${s.base}/acme/renewal-info/${id}`)).body) as { suggestedWindow: { end: string } }).suggestedWindow;
      expect(Date.parse(past.end)).toBeLessThan(s.clock.now().getTime());
    });

    it('revokeCert by an account holding valid authorizations for every name', async () => {
      const owner = await registered();
      const n = label() + '.example';
      const { finalize } = await readyOrder(owner, [n]);
      const done = await owner.post(finalize, { csr: (await csrFor([n])).der.toString('base64url') });
      const serial = (done.json.certificate as string).split('/').pop()!;
      const der = (await ca.find(null, { serial }))!.der.toString('base64url');
      const holder = await registered();
      await readyOrder(holder, [n]);
      const r = await holder.post((await holder.directory()).revokeCert, { certificate: der, reason: 5 });
      expect(r.status).toBe(200);
      const ev = (await s.rt.ledger.query({ type: 'acme.certificate.revoke', outcome: 'success', limit: 1 })).events[0];
      expect(ev?.details).toMatchObject({ serial, authorized_by: 'authorized_account', reason: 'cessationOfOperation' });
    });
  });
});

describe('ACME server limits and open enrolment', () => {
  let s: AcmeTestServer;
  beforeAll(async () => {
    s = await startAcmeServer('sqlite', {
      ca: await TestingCa.create(),
      mutate: (c) => {
        c.acme.require_eab = false;
        c.acme.new_orders_per_hour = 2;
      },
    });
  });
  afterAll(async () => s?.close());

  it('enrols without EAB when not required, and rate-limits new orders per account with Retry-After', async () => {
    const c = new TestAcmeClient(s.http, s.base);
    expect((await c.register()).status).toBe(201);
    const dir = await c.directory();
    const order = () => c.post(dir.newOrder, { identifiers: [{ type: 'dns', value: `${label()}.example` }] });
    expect((await order()).status).toBe(201);
    expect((await order()).status).toBe(201);
    const limited = await order();
    expect([limited.status, limited.json.type]).toEqual([429, 'urn:ietf:params:acme:error:rateLimited']);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    s.clock.advanceDays(1);
    expect((await order()).status).toBe(201);
  });
});
