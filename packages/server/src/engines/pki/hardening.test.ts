/**
 * Defects a security review of the PKI, mTLS and SDK pinning found, each pinned by a test: identities in another
 * namespace, a revoked listener certificate, pathLen under an external intermediate, the root signing OCSP answers,
 * and a forged issuer satisfying SPKI pins.
 */
import 'reflect-metadata';
import { execFile } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type PeerCertificate } from 'node:tls';
import { promisify } from 'node:util';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PalisadeApiError, PalisadeClient, spkiPin } from '@palisade/sdk';
import { codeOf, startServer, type TestServer } from '../../testing/harness.js';
import { loadCa, makeCa, makeLeaf } from '../../testing/certs.js';

const run = promisify(execFile);

function peer(addr: string, ca: string): Promise<PeerCertificate> {
  const [host, port] = addr.split(':');
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port: Number(port), ca, servername: 'localhost' }, () => {
      resolve(sock.getPeerCertificate(false));
      sock.end();
    });
    sock.on('error', reject);
  });
}

const TD = 'spiffe://palisade.internal';

describe('PKI review', () => {
  let s: TestServer;
  let rootPem = '';
  let dir = '';
  const clients: PalisadeClient[] = [];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pki-review-'));
    s = await startServer('sqlite', {
      mutate: (c) => {
        c.tls.client_auth.identities = {
          // every workload may ask for its own certificate (the default policy restricts it to its own service)
          [`${TD}/ns/*/sa/*`]: ['pki:certificates:issue', 'auth:self:read'],
          // only workloads in the prod namespace may read KMS keys
          [`${TD}/ns/prod/sa/*`]: ['kms:keys:list'],
        };
      },
    });
    rootPem = (await s.client.pki.initRoot()).root.certificate_pem!;
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await s?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const asWorkload = async (service: string, namespace: string) => {
    const cert = await s.client.pki.issue({ service, namespace, key_algorithm: 'ECDSA-P256' });
    const c = new PalisadeClient({ addr: s.addr, ca: rootPem, cert: cert.chain_pem, key: cert.private_key_pem! });
    clients.push(c);
    return c;
  };

  it('a non-owner workload cannot obtain a SPIFFE identity in another namespace (default policy)', async () => {
    const dev = await asWorkload('api', 'dev');
    expect((await dev.whoami()).principal_id).toBe(`${TD}/ns/dev/sa/api`);
    // The default policy checks only `service` against the caller's identity; `namespace` is free, and it is rendered
    // into the SPIFFE id and the `{service}.{namespace}.svc.cluster.local` DNS name.
    const r = await codeOf(dev.pki.issue({ service: 'api', namespace: 'prod', key_algorithm: 'ECDSA-P256' })).catch(async () => {
      const stolen = await dev.pki.issue({ service: 'api', namespace: 'prod', key_algorithm: 'ECDSA-P256' });
      const prod = new PalisadeClient({ addr: s.addr, ca: rootPem, cert: stolen.chain_pem, key: stolen.private_key_pem! });
      clients.push(prod);
      const who = await prod.whoami();
      return { status: 201, code: `issued ${stolen.sans.join(' ')} -> ${who.principal_id} with ${who.permissions.join(',')}` };
    });
    expect(r).toEqual({ status: 403, code: 'PAL_PKI_NAME_NOT_ALLOWED' });
  });

  it('a revoked listener certificate is replaced at the next reload, not served (and stapled as revoked) until renewal', async () => {
    const before = await peer(s.addr, rootPem);
    const listener = (await s.client.pki.list({ service: 'palisade', status: 'valid' })).certificates.find((c) => c.fingerprint_sha256 === before.fingerprint256.replace(/:/g, '').toLowerCase())!;
    expect(listener).toBeDefined();
    await s.client.pki.revoke(listener.serial, 'keyCompromise');
    await s.rt.listener!.reload();
    const after = await peer(s.addr, rootPem);
    expect(after.serialNumber.toLowerCase()).not.toBe(listener.serial);
  });

  it('mTLS enforces the pathLen:0 of an intermediate: a sub-CA under an external intermediate does not authenticate', async () => {
    await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'ext-key.pem'), '-subj', '/CN=External Issuing CA', '-out', join(dir, 'ext.csr')]);
    const ext = await s.client.pki.signIntermediate(await readFile(join(dir, 'ext.csr'), 'utf8'));
    const extCa = await loadCa(ext.certificate_pem!, await readFile(join(dir, 'ext-key.pem'), 'utf8'));
    const sub = await makeCa('Sub CA under pathLen 0', { issuer: extCa });
    const leaf = await makeLeaf(sub, { uris: [`${TD}/ns/prod/sa/anything`], eku: ['clientAuth'] });
    const c = new PalisadeClient({ addr: s.addr, ca: rootPem, cert: leaf.cert + sub.pem + ext.certificate_pem!, key: leaf.key });
    clients.push(c);
    const answer = await c.whoami().then(
      (w) => `accepted as ${w.principal_id}`,
      (e: unknown) => (e instanceof PalisadeApiError ? String(e.problem.reason ?? e.code) : String(e)),
    );
    expect(answer).toBe('untrusted_issuer');
  });

  it('the OCSP responder does not make the root key sign answers for anonymous requests', async () => {
    await writeFile(join(dir, 'root.pem'), rootPem);
    await run('openssl', ['ocsp', '-issuer', join(dir, 'root.pem'), '-serial', '0x1234', '-reqout', join(dir, 'root-req.der')]);
    const res = await s.client.transport.raw('POST', '/pki/ocsp', await readFile(join(dir, 'root-req.der')), { 'content-type': 'application/ocsp-request' });
    await writeFile(join(dir, 'root-resp.der'), res.body);
    // openssl exits 1 on a responder error; its output is what we judge
    const r = await run('openssl', ['ocsp', '-respin', join(dir, 'root-resp.der'), '-resp_text', '-noverify']).catch((e: { stdout?: string; stderr?: string }) => ({ stdout: `${e.stdout ?? ''}${e.stderr ?? ''}` }));
    expect(r.stdout).toMatch(/unauthorized/i);
    expect(r.stdout).not.toMatch(/Cert Status/);
  });
});

describe('SDK SPKI pinning', () => {
  it('is not satisfied by an unverified certificate carrying the pinned key appended to the chain', async () => {
    const alg = { name: 'ECDSA', namedCurve: 'P-256' } as const;
    // the key the client pins (the real server's), and two backups
    const pinned = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const pinnedPem = `-----BEGIN PUBLIC KEY-----\n${Buffer.from(await webcrypto.subtle.exportKey('spki', pinned.publicKey)).toString('base64')}\n-----END PUBLIC KEY-----\n`;
    const backups = await Promise.all([1, 2].map(async () => spkiPin((await makeCa('backup')).pem)));
    // a CA the client trusts mis-issues a certificate for the server's name (what pinning is for)
    const misissuing = await makeCa('Trusted but mis-issuing CA');
    const leaf = await makeLeaf(misissuing, { names: ['127.0.0.1', 'localhost'] });
    // the attacker appends a forged "issuer" with the pinned public key: right name and key id, signature by nobody
    const junk = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const ski = misissuing.cert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;
    const forged = await x509.X509CertificateGenerator.create({
      serialNumber: '01',
      subject: misissuing.cert.subject,
      issuer: 'CN=Nobody',
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      publicKey: pinned.publicKey,
      signingKey: junk.privateKey,
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true), new x509.SubjectKeyIdentifierExtension(ski)],
    });
    const server = createServer({ key: leaf.key, cert: leaf.cert + forged.toString('pem') + '\n' }, (_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ principal_id: 'mitm', api_key_id: null, permissions: [] }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = new PalisadeClient({ addr: `127.0.0.1:${(server.address() as AddressInfo).port}`, ca: misissuing.pem, token: 'pal_secret', pins: [spkiPin(pinnedPem), ...backups] });
    try {
      const answer = await client.whoami().then(
        (w) => `connected to ${w.principal_id}`,
        (e: unknown) => String((e as { code?: string }).code ?? e),
      );
      expect(answer).toBe('ERR_PALISADE_PIN_MISMATCH');
    } finally {
      client.close();
      server.close();
    }
  });
});
