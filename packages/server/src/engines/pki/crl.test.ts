import 'reflect-metadata';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AsnConvert } from '@peculiar/asn1-schema';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireService } from '@palisade/testkit';
import { KEYS, run, testCa, type SigningTestCa as TestCa } from '../../testing/signing-ca.js';
import { buildCrl, crlToPem, type CrlEntry } from './crl.js';
import { caCertificateParts, readChildren, readTlv, signatureAlgorithmFor, type Tlv } from './signature.js';
import { CA_ALGORITHMS, type SigningCa } from './types.js';

const openssl = requireService('openssl', 'CRL codec against openssl');


/** The TBSCertList's fields, read back with the strict DER reader. */
function tbsFields(crl: Buffer): Tlv[] {
  const outer = readTlv(crl, 0)!;
  expect(outer.end).toBe(crl.length);
  return readChildren(crl, readChildren(crl, outer)![0]!)!;
}

const bytes = (buf: Buffer, t: Tlv) => buf.subarray(t.start, t.end);
const hour = 3600_000;

describe.skipIf(!openssl.available).each(CA_ALGORITHMS)('CRL signed by a %s CA', (alg) => {
  let dir: string;
  let ca: TestCa;
  const revokedSerial = '4a1b2c3d4e5f60718293a4b5c6d7e8f9';
  const goodSerial = '5b2c3d4e5f60718293a4b5c6d7e8f90a';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'palisade-crl-'));
    ca = await testCa(alg, `Palisade Test CA ${alg}`);
    await writeFile(join(dir, 'ca.pem'), ca.pem);
    await writeFile(join(dir, 'revoked.pem'), await ca.issue(revokedSerial));
    await writeFile(join(dir, 'good.pem'), await ca.issue(goodSerial));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const entries: CrlEntry[] = [
    { serial: revokedSerial, revokedAt: new Date(Date.now() - 2 * hour), reason: 'keyCompromise' },
    { serial: '0080aa', revokedAt: new Date(Date.now() - hour), reason: 'unspecified' },
    { serial: '1234', revokedAt: new Date(Date.now() - hour), reason: 'certificateHold' },
  ];
  const now = () => ({ thisUpdate: new Date(Date.now() - 60_000), nextUpdate: new Date(Date.now() + 24 * hour) });

  it('openssl verifies it and lists the serials, the reasons (none for unspecified), the CRL number and the key id', async () => {
    const crl = await buildCrl({ ca: ca.ca, crlNumber: 42n, ...now(), entries });
    await writeFile(join(dir, 'crl.der'), crl);
    const { code, output } = await run(['crl', '-in', 'crl.der', '-inform', 'DER', '-CAfile', 'ca.pem', '-noout', '-text'], dir);
    expect(code, output).toBe(0);
    expect(output).toContain('verify OK');
    expect(output).toContain('Version 2 (0x1)');
    expect(output).toContain(`Signature Algorithm: ${KEYS[alg].name}`);
    expect(output).toMatch(/X509v3 CRL Number:\s*\n\s*42\n/);
    const ski = caCertificateParts(ca.ca.certificate).subjectKeyId!.toString('hex').toUpperCase().replace(/(..)(?!$)/g, '$1:');
    expect(output).toMatch(new RegExp(`X509v3 Authority Key Identifier:\\s*\\n\\s*(keyid:)?${ski}\\n`));
    const blocks = output.split('Serial Number: ').slice(1);
    expect(blocks.map((b) => b.slice(0, b.indexOf('\n')))).toEqual([revokedSerial.toUpperCase(), '80AA', '1234']);
    expect(blocks[0]).toContain('Key Compromise');
    expect(blocks[1]).not.toContain('CRL Reason Code');
    expect(blocks[2]).toContain('Certificate Hold');
  });

  it('makes openssl verify -crl_check refuse the revoked leaf and accept the good one', async () => {
    await writeFile(join(dir, 'crl.pem'), crlToPem(await buildCrl({ ca: ca.ca, crlNumber: 43n, ...now(), entries })));
    const revoked = await run(['verify', '-crl_check', '-CAfile', 'ca.pem', '-CRLfile', 'crl.pem', 'revoked.pem'], dir);
    expect(revoked.code, revoked.output).not.toBe(0);
    expect(revoked.output).toContain('certificate revoked');
    const good = await run(['verify', '-crl_check', '-CAfile', 'ca.pem', '-CRLfile', 'crl.pem', 'good.pem'], dir);
    expect(good.code, good.output).toBe(0);
    expect(good.output).toContain('good.pem: OK');
  });

  it('copies the issuer from the CA certificate byte for byte and uses the CA algorithm', async () => {
    const crl = await buildCrl({ ca: ca.ca, crlNumber: 1n, ...now(), entries });
    const [version, algorithm, issuer, thisUpdate, nextUpdate, revoked, extensions] = tbsFields(crl);
    expect(bytes(crl, version!).toString('hex')).toBe('020101');
    expect(bytes(crl, algorithm!)).toEqual(Buffer.from(AsnConvert.serialize(signatureAlgorithmFor(alg))));
    expect(bytes(crl, issuer!)).toEqual(caCertificateParts(ca.ca.certificate).subject);
    expect([thisUpdate!.tag, nextUpdate!.tag, revoked!.tag, extensions!.tag]).toEqual([0x17, 0x17, 0x30, 0xa0]);
    const outer = readChildren(crl, readTlv(crl, 0)!)!;
    expect(bytes(crl, outer[1]!)).toEqual(bytes(crl, algorithm!));
  });

  it('omits revokedCertificates from an empty CRL, which openssl still verifies', async () => {
    const crl = await buildCrl({ ca: ca.ca, crlNumber: 2n, ...now(), entries: [] });
    expect(tbsFields(crl).map((t) => t.tag)).toEqual([0x02, 0x30, 0x30, 0x17, 0x17, 0xa0]);
    await writeFile(join(dir, 'empty.pem'), crlToPem(crl));
    const { code, output } = await run(['crl', '-in', 'empty.pem', '-CAfile', 'ca.pem', '-noout', '-text'], dir);
    expect(code, output).toBe(0);
    expect(output).toContain('verify OK');
    expect(output).toContain('No Revoked Certificates.');
  });

  it('writes UTCTime before 2050 and GeneralizedTime from 2050 on, in whole seconds', async () => {
    const crl = await buildCrl({
      ca: ca.ca,
      crlNumber: 3n,
      thisUpdate: new Date('2049-12-31T23:59:59.750Z'),
      nextUpdate: new Date('2050-01-01T00:00:00Z'),
      entries: [{ serial: '01', revokedAt: new Date('2051-06-01T12:00:00.5Z'), reason: 'superseded' }],
    });
    const [, , , thisUpdate, nextUpdate, revoked] = tbsFields(crl);
    const text = (t: Tlv) => crl.subarray(t.contentStart, t.end).toString('latin1');
    expect([thisUpdate!.tag, text(thisUpdate!)]).toEqual([0x17, '491231235959Z']);
    expect([nextUpdate!.tag, text(nextUpdate!)]).toEqual([0x18, '20500101000000Z']);
    const revocationDate = readChildren(crl, readChildren(crl, revoked!)![0]!)![1]!;
    expect([revocationDate.tag, text(revocationDate)]).toEqual([0x18, '20510601120000Z']);
    await writeFile(join(dir, 'y2050.der'), crl);
    const { code, output } = await run(['crl', '-in', 'y2050.der', '-inform', 'DER', '-CAfile', 'ca.pem', '-noout', '-text'], dir);
    expect(code, output).toBe(0);
    expect(output).toContain('Next Update: Jan  1 00:00:00 2050 GMT');
    expect(output).toContain('Revocation Date: Jun  1 12:00:00 2051 GMT');
    expect(output).toContain('Superseded');
  });

  it('encodes CRL numbers up to 20 octets and refuses larger or negative ones', async () => {
    const crl = await buildCrl({ ca: ca.ca, crlNumber: (1n << 159n) - 1n, ...now(), entries: [] });
    await writeFile(join(dir, 'big.der'), crl);
    const { output } = await run(['crl', '-in', 'big.der', '-inform', 'DER', '-noout', '-crlnumber'], dir);
    expect(output.trim()).toBe(`crlNumber=0x7F${'FF'.repeat(19)}`);
    await expect(buildCrl({ ca: ca.ca, crlNumber: 1n << 159n, ...now(), entries: [] })).rejects.toThrow(/20 octets/);
    await expect(buildCrl({ ca: ca.ca, crlNumber: -1n, ...now(), entries: [] })).rejects.toThrow(/20 octets/);
  });
});

describe.skipIf(!openssl.available)('CRL input checks', () => {
  let ca: TestCa;
  beforeAll(async () => {
    ca = await testCa('ECDSA-P256', 'Palisade Check CA');
  });
  const thisUpdate = new Date();
  const nextUpdate = new Date(Date.now() + hour);

  it('refuses a nextUpdate that is not after thisUpdate, and a serial that is not hex', async () => {
    await expect(buildCrl({ ca: ca.ca, crlNumber: 1n, thisUpdate, nextUpdate: thisUpdate, entries: [] })).rejects.toThrow(/nextUpdate/);
    await expect(buildCrl({ ca: ca.ca, crlNumber: 1n, thisUpdate, nextUpdate, entries: [{ serial: '12xz', revokedAt: thisUpdate, reason: 'superseded' }] })).rejects.toThrow(/not hexadecimal/);
  });

  it('never publishes a signature the CA key did not make', async () => {
    const wrong: SigningCa = { ...ca.ca, signer: { algorithm: 'ECDSA-P256', sign: async () => Buffer.alloc(72, 1) } };
    await expect(buildCrl({ ca: wrong, crlNumber: 1n, thisUpdate, nextUpdate, entries: [] })).rejects.toThrow(/does not verify/);
    const other = await testCa('ECDSA-P256', 'Another CA');
    await expect(buildCrl({ ca: { ...ca.ca, signer: other.ca.signer }, crlNumber: 1n, thisUpdate, nextUpdate, entries: [] })).rejects.toThrow(/does not verify/);
  });

  it('writes PEM with the X509 CRL label in 64-column lines', async () => {
    const der = await buildCrl({ ca: ca.ca, crlNumber: 1n, thisUpdate, nextUpdate, entries: [] });
    const pem = crlToPem(der);
    expect(pem.startsWith('-----BEGIN X509 CRL-----\n')).toBe(true);
    expect(pem.endsWith('\n-----END X509 CRL-----\n')).toBe(true);
    const body = pem.split('\n').slice(1, -2);
    expect(body.slice(0, -1).every((l) => l.length === 64)).toBe(true);
    expect(Buffer.from(body.join(''), 'base64')).toEqual(der);
  });
});
