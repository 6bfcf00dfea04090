import { createPrivateKey, sign as cryptoSign, constants } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openssl } from '../../testing/signing-ca.js';
import { codeOf, dialects, startServer, type TestServer } from '../../testing/harness.js';
import { signIntermediateOffline } from './cas.js';
import { buildCertificate, fromPem, newSerial, parseCsr, toPem } from './x509.js';
import type { CaAlgorithm } from './types.js';


describe.each(dialects())('PKI ($name)', ({ name, available }) => {
  let s: TestServer;
  let dir = '';
  const file = (n: string) => join(dir, n);
  let rootPem = '';
  beforeAll(async () => {
    if (!available) return;
    s = await startServer(name);
    dir = await mkdtemp(join(tmpdir(), 'pki-test-'));
    const init = await s.client.pki.initRoot();
    rootPem = init.root.certificate_pem!;
    await writeFile(file('root.pem'), rootPem);
  });
  afterAll(async () => {
    await s?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  describe.skipIf(!available)('', () => {
    it('creates a P-384 root and an intermediate under it, once', async () => {
      const { cas } = await s.client.pki.listCas();
      const root = cas.find((c) => c.kind === 'root')!;
      const inter = cas.find((c) => c.kind === 'intermediate')!;
      expect(root).toMatchObject({ status: 'active', key_store: 'kms', algorithm: 'ECDSA-P384' });
      expect(inter).toMatchObject({ status: 'active', parent_id: root.id, key_store: 'kms' });
      expect(await s.client.pki.rootPem()).toBe(rootPem);
      await writeFile(file('inter.pem'), inter.certificate_pem!);
      expect(await openssl(['verify', '-x509_strict', '-CAfile', file('root.pem'), file('inter.pem')])).toContain(': OK');
      const text = await openssl(['x509', '-in', file('root.pem'), '-noout', '-text']);
      expect(text).toMatch(/NIST CURVE: P-384/);
      expect(text).toMatch(/CA:TRUE/);
      expect(await codeOf(s.client.pki.initRoot())).toEqual({ status: 409, code: 'PAL_PKI_ROOT_EXISTS' });
    });

    it('keeps CA keys out of the KMS API: no signing, rotation, export or destruction through /v1/keys', async () => {
      const created = (await s.client.audit.query({ type: 'pki.ca.create', limit: 10 })).events;
      const keyId = created.map((e) => e.details?.key_id).find((k): k is string => typeof k === 'string')!;
      expect(keyId).toBeDefined();
      expect(await codeOf(s.client.kms.sign(keyId, Buffer.from('tbs')))).toEqual({ status: 409, code: 'PAL_KMS_SYSTEM_KEY' });
      expect(await codeOf(s.client.kms.rotateKey(keyId))).toEqual({ status: 409, code: 'PAL_KMS_SYSTEM_KEY' });
      expect(await codeOf(s.client.kms.scheduleDestruction(keyId, 7, 1))).toEqual({ status: 409, code: 'PAL_KMS_SYSTEM_KEY' });
    });

    it("issues the seed's service certificate that openssl accepts for both purposes, and audits it", async () => {
      const cert = await s.client.pki.issue({ service: 'payments', environment: 'prod', namespace: 'agents', department: 'platform', ip: ['10.0.0.7'] });
      expect(cert.private_key_pem).toContain('PRIVATE KEY');
      await writeFile(file('leaf.pem'), cert.certificate_pem);
      await writeFile(file('chain.pem'), cert.chain_pem);
      for (const purpose of ['sslserver', 'sslclient']) {
        expect(await openssl(['verify', '-x509_strict', '-purpose', purpose, '-CAfile', file('root.pem'), '-untrusted', file('chain.pem'), file('leaf.pem')])).toContain(': OK');
      }
      const text = await openssl(['x509', '-in', file('leaf.pem'), '-noout', '-text']);
      expect(text).toContain('Subject: C = US, O = Palisade, OU = platform, CN = payments.prod.palisade.internal');
      expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment, Key Agreement/);
      expect(text).toMatch(/X509v3 Extended Key Usage: critical\s+TLS Web Server Authentication, TLS Web Client Authentication/);
      expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
      expect(text).toContain('DNS:payments.prod.svc.cluster.local, DNS:payments.agents.svc.cluster.local, IP Address:10.0.0.7, URI:spiffe://palisade.internal/ns/agents/sa/payments');
      expect(text).toMatch(/CRL Distribution Points:[\s\S]*\/pki\/crl\/ca_[a-z0-9]+\.crl/);
      expect(text).toMatch(/OCSP - URI:https:\/\/.*\/pki\/ocsp/);
      expect(Date.parse(cert.not_after) - Date.parse(cert.not_before)).toBe(90 * 86_400_000 + 60_000);
      const events = (await s.client.audit.query({ type: 'pki.certificate.issue' })).events;
      expect(events[0]).toMatchObject({ outcome: 'success', resource: { type: 'certificate', id: cert.serial }, details: { serial: cert.serial, profile: 'service' } });
      expect(events.filter((e) => e.resource?.id === cert.serial)).toHaveLength(1);
    });

    it('exports certificate_expiry_seconds for the CAs and the newest certificate of each service', async () => {
      const text = (await s.client.transport.raw('GET', '/metrics', undefined, { accept: 'text/plain' })).body.toString();
      const days = (labels: string) => Number(new RegExp(`certificate_expiry_seconds\\{${labels}\\} ([0-9.e+]+)`).exec(text)?.[1]) / 86400;
      expect(days('certificate_type="service",service="payments"')).toBeCloseTo(90, 0);
      expect(days('certificate_type="root",service="root"')).toBeCloseTo(3650, 0);
      expect(text).toMatch(/certificate_expiry_seconds\{certificate_type="intermediate",service="intermediate-/);
    });

    it('signs a CSR for the names the template renders, and refuses CA:TRUE or foreign names', async () => {
      await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file('csr-key.pem'), '-subj', '/CN=ignored', '-addext', 'subjectAltName=DNS:search.production.svc.cluster.local', '-out', file('ok.csr')]);
      const ok = await s.client.pki.sign({ service: 'search', csr: await readFile(file('ok.csr'), 'utf8') });
      expect(ok.sans).toContain('dns:search.production.svc.cluster.local');
      await openssl(['req', '-new', '-key', file('csr-key.pem'), '-subj', '/CN=x', '-addext', 'basicConstraints=critical,CA:TRUE', '-out', file('ca.csr')]);
      expect(await codeOf(s.client.pki.sign({ service: 'search', csr: await readFile(file('ca.csr'), 'utf8') }))).toEqual({ status: 400, code: 'PAL_PKI_CSR_INVALID' });
      await openssl(['req', '-new', '-key', file('csr-key.pem'), '-subj', '/CN=x', '-addext', 'subjectAltName=DNS:bank.example.com', '-out', file('evil.csr')]);
      expect(await codeOf(s.client.pki.sign({ service: 'search', csr: await readFile(file('evil.csr'), 'utf8') }))).toEqual({ status: 403, code: 'PAL_PKI_NAME_NOT_ALLOWED' });
      expect(await codeOf(s.client.pki.sign({ service: 'search', csr: 'not a csr' }))).toEqual({ status: 400, code: 'PAL_PKI_CSR_INVALID' });
    });

    it('lets a principal ask only for its own service by default', async () => {
      const { token } = await s.client.createApiKey({ name: 'agent-7', permissions: ['pki:certificates:issue', 'auth:self:read'] });
      const agent = s.clientWith(token);
      const who = await agent.whoami();
      expect(await codeOf(agent.pki.issue({ service: 'payments' }))).toEqual({ status: 403, code: 'PAL_PKI_NAME_NOT_ALLOWED' });
      if (/^[a-z0-9-]{1,63}$/.test(who.principal_id)) expect((await agent.pki.issue({ service: who.principal_id })).sans).toContain(`uri:spiffe://palisade.internal/ns/default/sa/${who.principal_id}`);
    });

    it('revokes: the CRL lists it and OCSP answers revoked, good for the others (GET and POST)', async () => {
      const good = await s.client.pki.issue({ service: 'good', key_algorithm: 'ECDSA-P256' });
      const bad = await s.client.pki.issue({ service: 'bad' });
      const revoked = await s.client.pki.revoke(bad.serial, 'keyCompromise');
      expect(revoked).toMatchObject({ status: 'revoked', revocation_reason: 'keyCompromise' });
      expect(await codeOf(s.client.pki.revoke(bad.serial))).toEqual({ status: 409, code: 'PAL_PKI_ALREADY_REVOKED' });
      await writeFile(file('good.pem'), good.certificate_pem);
      await writeFile(file('bad.pem'), bad.certificate_pem);
      await writeFile(file('issuer.pem'), good.chain_pem.slice(good.certificate_pem.length));

      await writeFile(file('crl.der'), await s.client.pki.crl(good.ca_id));
      const crl = await openssl(['crl', '-inform', 'DER', '-in', file('crl.der'), '-CAfile', file('issuer.pem'), '-noout', '-text']);
      expect(crl).toContain('verify OK');
      expect(crl.toLowerCase()).toContain(bad.serial.toUpperCase().toLowerCase());
      expect(crl).toContain('Key Compromise');
      expect(crl.toLowerCase()).not.toContain(good.serial);
      await openssl(['crl', '-inform', 'DER', '-in', file('crl.der'), '-out', file('crl.pem')]);
      const both = file('root-and-inter.pem');
      await writeFile(both, rootPem + (await readFile(file('issuer.pem'), 'utf8')));
      expect(await openssl(['verify', '-crl_check', '-CAfile', both, '-CRLfile', file('crl.pem'), file('bad.pem')])).toContain('certificate revoked');
      expect(await openssl(['verify', '-crl_check', '-CAfile', both, '-CRLfile', file('crl.pem'), file('good.pem')])).toContain(': OK');

      for (const [leaf, want] of [['good.pem', ': good'], ['bad.pem', ': revoked']] as const) {
        await openssl(['ocsp', '-issuer', file('issuer.pem'), '-cert', file(leaf), '-reqout', file('req.der')]);
        const req = await readFile(file('req.der'));
        const post = await s.client.transport.raw('POST', '/pki/ocsp', req, { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response' });
        expect(post.contentType).toBe('application/ocsp-response');
        await writeFile(file('resp.der'), post.body);
        // -reqin checks the nonce against the request sent; -verify_other names the CA that signed the answer
        const out = await openssl(['ocsp', '-reqin', file('req.der'), '-respin', file('resp.der'), '-verify_other', file('issuer.pem'), '-CAfile', both, '-resp_text']);
        expect(out).toContain('Response verify OK');
        expect(out).toContain(`Cert Status: ${want.slice(2)}`);
        if (want === ': revoked') expect(out).toContain('Revocation Reason: keyCompromise');
        expect(await openssl(['ocsp', '-respin', file('resp.der'), '-issuer', file('issuer.pem'), '-cert', file(leaf), '-CAfile', both, '-no_nonce'])).toContain(`${file(leaf)}${want}`);
        const get = await s.client.transport.raw('GET', `/pki/ocsp/${encodeURIComponent(req.toString('base64'))}`, undefined, { accept: 'application/ocsp-response' });
        await writeFile(file('resp-get.der'), get.body);
        expect(await openssl(['ocsp', '-respin', file('resp-get.der'), '-issuer', file('issuer.pem'), '-cert', file(leaf), '-CAfile', both, '-no_nonce'])).toContain(`${file(leaf)}${want}`);
      }
      const junk = await s.client.transport.raw('POST', '/pki/ocsp', Buffer.from('junk'), { 'content-type': 'application/ocsp-request' });
      expect(junk.status).toBe(200);
      await writeFile(file('junk.der'), junk.body);
      expect(await openssl(['ocsp', '-respin', file('junk.der'), '-resp_text', '-noverify'])).toMatch(/malformedrequest/i);
    });

    it('publishes each CRL number once, however many fetch it at once after a revocation', async () => {
      const cert = await s.client.pki.issue({ service: 'crl-race' });
      await s.client.pki.revoke(cert.serial, 'superseded');
      const crls = await Promise.all(Array.from({ length: 6 }, () => s.client.pki.crl(cert.ca_id)));
      expect(new Set(crls.map((c) => c.toString('base64'))).size).toBe(1);
      const published = (await s.client.audit.query({ type: 'pki.crl.publish', resource: cert.ca_id, limit: 500 })).events.map((e) => e.details?.crl_number);
      expect(new Set(published).size).toBe(published.length);
    });

    it('rotates the intermediate without downtime: the old one keeps answering for its certificates', async () => {
      const before = await s.client.pki.issue({ service: 'old' });
      const next = await s.client.pki.rotateIntermediate();
      expect(next.status).toBe('active');
      const after = await s.client.pki.issue({ service: 'new' });
      expect(after.ca_id).toBe(next.id);
      expect(before.ca_id).not.toBe(next.id);
      expect((await s.client.pki.getCa(before.ca_id)).status).toBe('retired');
      await writeFile(file('old.pem'), before.certificate_pem);
      await writeFile(file('old-chain.pem'), before.chain_pem);
      expect(await openssl(['verify', '-CAfile', file('root.pem'), '-untrusted', file('old-chain.pem'), file('old.pem')])).toContain(': OK');
      await s.client.pki.revoke(before.serial, 'superseded');
      expect((await s.client.pki.crl(before.ca_id)).length).toBeGreaterThan(100);
    });

    it('takes the root offline and installs an intermediate it signed elsewhere', async () => {
      const passphrase = 'correct horse battery staple';
      const exported = await s.client.pki.exportRootKey(passphrase);
      expect(exported.encrypted_private_key_pem).toContain('ENCRYPTED PRIVATE KEY');
      expect(await codeOf(s.client.pki.exportRootKey(passphrase))).toEqual({ status: 409, code: 'PAL_PKI_CA_OFFLINE' });
      const pending = await s.client.pki.rotateIntermediate();
      expect(pending).toMatchObject({ status: 'pending', certificate_pem: null });
      const key = createPrivateKey({ key: exported.encrypted_private_key_pem, passphrase });
      const alg: CaAlgorithm = 'ECDSA-P384';
      const pem = await signIntermediateOffline({
        rootPem,
        csrPem: pending.csr_pem!,
        validityDays: 365,
        rootKey: { algorithm: alg, sign: async (tbs) => cryptoSign('sha384', tbs, { key, dsaEncoding: 'der', padding: constants.RSA_PKCS1_PADDING }) },
      });
      expect(await codeOf(s.client.pki.installIntermediate(pending.id, rootPem))).toEqual({ status: 400, code: 'PAL_PKI_INTERMEDIATE_INVALID' });
      // the pending key, but a subject the CSR did not ask for
      const rootSigner = { algorithm: alg, sign: async (tbs: Buffer) => cryptoSign('sha384', tbs, { key, dsaEncoding: 'der' }) };
      const renamed = await buildCertificate(
        { kind: 'intermediate', serial: newSerial(), subject: { CN: 'Somebody Else CA' }, issuer: fromPem(rootPem)[0]!, publicKey: (await parseCsr(pending.csr_pem!)).publicKey, notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000) },
        rootSigner,
      );
      expect(await codeOf(s.client.pki.installIntermediate(pending.id, toPem(renamed)))).toEqual({ status: 400, code: 'PAL_PKI_INTERMEDIATE_INVALID' });
      const installed = await s.client.pki.installIntermediate(pending.id, pem);
      expect(installed.status).toBe('active');
      const leaf = await s.client.pki.issue({ service: 'after-offline' });
      expect(leaf.ca_id).toBe(pending.id);
      await writeFile(file('off.pem'), leaf.certificate_pem);
      await writeFile(file('off-chain.pem'), leaf.chain_pem);
      expect(await openssl(['verify', '-CAfile', file('root.pem'), '-untrusted', file('off-chain.pem'), file('off.pem')])).toContain(': OK');
    });
  });
});
