/**
 * Defects a security review of the ACME server found, each pinned by a test: zone ids, IPv4 spelt as DNS names,
 * a certificate key equal to the account key, an account update echoing its status.
 */
import 'reflect-metadata';
import { KeyObject, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACME_ERR, acmeFixture, label, TestAcmeClient, type AcmeFixture } from '../../testing/acme.js';

const ERR = ACME_ERR;

describe('ACME security review (sqlite)', () => {
  let f: AcmeFixture;
  const registered = (key?: KeyObject) => f.registered(key);
  const readyOrder = (c: TestAcmeClient, names: string[]) => f.readyOrder(c, names);

  beforeAll(async () => {
    f = await acmeFixture('sqlite');
  });
  afterAll(async () => f?.close());

  it('newOrder with an IPv6 zone id (fe80::1%eth0) is rejectedIdentifier, not a 500', async () => {
    const c = await registered();
    const r = await c.post((await c.directory()).newOrder, { identifiers: [{ type: 'ip', value: 'fe80::1%eth0' }] });
    expect([r.status, r.json.type]).toEqual([400, `${ERR}rejectedIdentifier`]);
  });

  it('a dns identifier that is an IPv4 address in hex/short notation (0x7f.0.0.1, 0x7f.1) is rejected', async () => {
    const c = await registered();
    const dir = await c.directory();
    for (const value of ['0x7f.0.0.1', '0x7f.1']) {
      const r = await c.post(dir.newOrder, { identifiers: [{ type: 'dns', value }] });
      expect([value, r.status, r.json.type]).toEqual([value, 400, `${ERR}rejectedIdentifier`]);
    }
  });

  it('finalize refuses a CSR whose public key is the account key (badCSR), issuing nothing', async () => {
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
    const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const c = await registered(KeyObject.from(keys.privateKey));
    const n = `${label()}.example`;
    const { finalize } = await readyOrder(c, [n]);
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${n}`, keys, signingAlgorithm: alg, extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: n }])] });
    const r = await c.post(finalize, { csr: Buffer.from(csr.rawData).toString('base64url') });
    expect([r.status, r.json.type]).toEqual([400, `${ERR}badCSR`]);
  });

  it('an account update that echoes status "valid" (what certbot update_account sends) is accepted', async () => {
    const c = await registered();
    const r = await c.post(c.kid!, { status: 'valid', contact: ['mailto:ops@example.com'], termsOfServiceAgreed: true });
    expect([r.status, r.json.contact]).toEqual([200, ['mailto:ops@example.com']]);
  });
});
