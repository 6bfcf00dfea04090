/**
 * A root CA whose key lives in the HSM (key store `hsm`, the pkcs11 seal on SoftHSM2): generated in the token and
 * non-extractable, every root signature made there — the first intermediate, rotations, the root's CRL — across a
 * restart; export refused; and refused with a clear error on a server whose seal is not pkcs11.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openssl } from '../../testing/signing-ca.js';
import type { CertificateAuthority } from '@palisade/core';
import { codeOf, serverCases, softHsmEnv, startServer, type TestServer } from '../../testing/harness.js';
import { privateKeyAttributes } from '../../testing/pkcs11-objects.js';

const available = serverCases().some((c) => c.seal === 'pkcs11' && c.available); // fails in CI without SoftHSM2

describe.skipIf(!available)('PKI root key in the HSM (sqlite-pkcs11)', () => {
  let s: TestServer;
  let dir = '';
  let root: CertificateAuthority;
  let first: CertificateAuthority;
  const file = (n: string) => join(dir, n);

  /** openssl verify: a leaf issued now, through the current intermediate, against the root. */
  const verifyLeaf = async (service: string) => {
    const leaf = await s.client.pki.issue({ service });
    await writeFile(file(`${service}.pem`), leaf.certificate_pem);
    await writeFile(file(`${service}-chain.pem`), leaf.chain_pem);
    return openssl(['verify', '-x509_strict', '-purpose', 'sslserver', '-CAfile', file('root.pem'), '-untrusted', file(`${service}-chain.pem`), file(`${service}.pem`)]);
  };

  beforeAll(async () => {
    s = await startServer('sqlite', { seal: 'pkcs11' });
    dir = await mkdtemp(join(tmpdir(), 'pki-hsm-test-'));
    const init = await s.client.pki.initRoot({ key_store: 'hsm' });
    root = init.root;
    first = init.intermediate;
    await writeFile(file('root.pem'), root.certificate_pem!);
  });
  afterAll(async () => {
    await s?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('init-root with key_store hsm: a P-384 root signed in the token; its intermediate and a leaf verify; audited as hsm', async () => {
    expect(root).toMatchObject({ kind: 'root', status: 'active', key_store: 'hsm', algorithm: 'ECDSA-P384' });
    expect(first).toMatchObject({ kind: 'intermediate', status: 'active', key_store: 'kms', parent_id: root.id });
    expect(await openssl(['verify', '-x509_strict', '-check_ss_sig', '-CAfile', file('root.pem'), file('root.pem')])).toContain(': OK');
    expect(await verifyLeaf('first')).toContain(': OK');
    expect(await openssl(['x509', '-in', file('root.pem'), '-noout', '-text'])).toMatch(/NIST CURVE: P-384[\s\S]*CA:TRUE/);

    const created = (await s.client.audit.query({ type: 'pki.ca.create' })).events.find((e) => e.resource?.id === root.id);
    expect(created?.details).toMatchObject({ kind: 'root', key_store: 'hsm', key_id: null });
    // the KMS holds no key for it: the token does
    expect(await s.rt.storage.db.selectFrom('kms_keys').select('name').where('name', 'like', `%${root.id}%`).execute()).toEqual([]);
    expect(await s.rt.storage.db.selectFrom('pki_cas').select('key_ref').where('id', '=', root.id).executeTakeFirst()).toEqual({ key_ref: `palisade-ca-${root.id}` });
  });

  it('the private key is a token object, sensitive and not extractable: the token refuses to give its value', () => {
    const env = softHsmEnv();
    const attrs = privateKeyAttributes({ module: env.PALISADE_PKCS11_MODULE!, label: env.PALISADE_PKCS11_TOKEN!, pin: env.PALISADE_PKCS11_PIN! }, `palisade-ca-${root.id}`);
    expect(attrs).toMatchObject({ count: 1, token: true, sensitive: true, extractable: false, sign: true });
    expect(attrs.value).toMatch(/CKR_ATTRIBUTE_SENSITIVE/);
  });

  it('intermediate rotation is signed by the HSM root at once; the new one issues, the old one retires', async () => {
    const next = await s.client.pki.rotateIntermediate();
    expect(next).toMatchObject({ status: 'active', parent_id: root.id });
    await writeFile(file('next.pem'), next.certificate_pem!);
    expect(await openssl(['verify', '-x509_strict', '-CAfile', file('root.pem'), file('next.pem')])).toContain(': OK');
    expect((await s.client.pki.getCa(first.id)).status).toBe('retired');
    expect(await verifyLeaf('rotated')).toContain(': OK');
    const metrics = await s.rt.registry.getSingleMetricAsString('hsm_operations_total');
    expect(metrics).toMatch(/hsm_operations_total\{operation="sign",status="success"\} [1-9]/);
  });

  it('exporting the root key is refused: non-extractable by design', async () => {
    expect(await codeOf(s.client.pki.exportRootKey('a passphrase of 16+ chars'))).toEqual({ status: 409, code: 'PAL_PKI_KEY_NOT_EXPORTABLE' });
    expect((await s.client.pki.getCa(root.id)).key_store).toBe('hsm');
  });

  it('after a restart the root still signs in the token: a rotation and the root CRL verify', async () => {
    await s.restart();
    const again = await s.client.pki.rotateIntermediate();
    await writeFile(file('again.pem'), again.certificate_pem!);
    expect(await openssl(['verify', '-x509_strict', '-CAfile', file('root.pem'), file('again.pem')])).toContain(': OK');
    expect(await verifyLeaf('restarted')).toContain(': OK');
    await writeFile(file('root.crl'), await s.client.pki.crl(root.id));
    expect(await openssl(['crl', '-inform', 'DER', '-in', file('root.crl'), '-CAfile', file('root.pem'), '-noout'])).toContain('verify OK');
  });
});

describe('PKI root key in the HSM without the pkcs11 seal', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer('sqlite');
  });
  afterAll(async () => {
    await s?.close();
  });

  it('key_store hsm is refused with PAL_PKI_HSM_UNAVAILABLE, and nothing is created', async () => {
    expect(await codeOf(s.client.pki.initRoot({ key_store: 'hsm' }))).toEqual({ status: 409, code: 'PAL_PKI_HSM_UNAVAILABLE' });
    expect((await s.client.pki.listCas()).cas).toEqual([]);
    expect((await s.client.pki.initRoot()).root.key_store).toBe('kms');
  });
});
