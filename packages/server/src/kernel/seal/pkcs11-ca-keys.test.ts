/**
 * CA keys in the run's SoftHSM2 token: generated non-extractable, their public key read out as SPKI, signatures
 * that node:crypto verifies as X.509 carries them, for every CA algorithm.
 */
import { createPublicKey, randomBytes, verify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverCases, softHsmEnv } from '../../testing/harness.js';
import { privateKeyAttributes } from '../../testing/pkcs11-objects.js';
import { Pkcs11CaKeys, type HsmCaAlgorithm } from './pkcs11-ca-keys.js';

const available = serverCases().some((c) => c.seal === 'pkcs11' && c.available); // fails in CI without SoftHSM2

describe.skipIf(!available)('PKCS#11 CA keys (SoftHSM2)', () => {
  let keys: Pkcs11CaKeys;
  let token: { module: string; label: string; pin: string };
  const ops: string[] = [];
  beforeAll(() => {
    const env = softHsmEnv();
    token = { module: env.PALISADE_PKCS11_MODULE!, label: env.PALISADE_PKCS11_TOKEN!, pin: env.PALISADE_PKCS11_PIN! };
    keys = new Pkcs11CaKeys({ module: token.module, token: token.label, pin: token.pin }, (op, status) => ops.push(`${op}:${status}`));
  });
  afterAll(async () => {
    await keys?.close();
  });

  const cases: Array<[HsmCaAlgorithm, string, object]> = [
    ['ECDSA-P256', 'sha256', { asymmetricKeyType: 'ec', namedCurve: 'prime256v1' }],
    ['ECDSA-P384', 'sha384', { asymmetricKeyType: 'ec', namedCurve: 'secp384r1' }],
    ['RSA-4096', 'sha256', { asymmetricKeyType: 'rsa', modulusLength: 4096 }],
  ];
  it.each(cases)('%s: generated in the token, non-extractable; its signatures verify as X.509 carries them', async (algorithm, hash, details) => {
    const label = `palisade-ca-test-${randomBytes(4).toString('hex')}`;
    const spki = await keys.createKey(label, algorithm);
    const publicKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    const { namedCurve, modulusLength } = publicKey.asymmetricKeyDetails ?? {};
    expect({ asymmetricKeyType: publicKey.asymmetricKeyType, ...(namedCurve ? { namedCurve } : {}), ...(modulusLength ? { modulusLength } : {}) }).toEqual(details);

    for (const tbs of [Buffer.from('to be signed'), randomBytes(2000)]) {
      const signature = await keys.sign(label, algorithm, tbs);
      expect(verify(hash, tbs, { key: publicKey, dsaEncoding: 'der' }, signature)).toBe(true); // DER Ecdsa-Sig-Value / PKCS#1 v1.5
    }

    expect(privateKeyAttributes(token, label)).toEqual({ count: 1, sensitive: true, extractable: false, token: true, sign: true, value: expect.stringMatching(/CKR_ATTRIBUTE_SENSITIVE/) as unknown as string });
    await expect(keys.createKey(label, algorithm)).rejects.toThrow(/already holds a key labelled/);
  });

  it('many ECDSA signatures: r and s of every length encode as DER that verifies', async () => {
    const label = `palisade-ca-test-${randomBytes(4).toString('hex')}`;
    const publicKey = createPublicKey({ key: await keys.createKey(label, 'ECDSA-P256'), format: 'der', type: 'spki' });
    const sigs = await Promise.all(Array.from({ length: 200 }, (_, i) => keys.sign(label, 'ECDSA-P256', Buffer.from(`message ${i}`))));
    sigs.forEach((sig, i) => expect(verify('sha256', Buffer.from(`message ${i}`), { key: publicKey, dsaEncoding: 'der' }, sig)).toBe(true));
    expect(new Set(sigs.map((s) => s.length)).size).toBeGreaterThan(1); // shorter r or s (leading zeros) and 0x00-prefixed ones occurred
  });

  it('an unknown label is PAL_PKI_CA_OFFLINE; operations are counted for hsm_operations_total; closed means closed', async () => {
    await expect(keys.sign('palisade-ca-nowhere', 'ECDSA-P384', Buffer.from('x'))).rejects.toMatchObject({ code: 'PAL_PKI_CA_OFFLINE' });
    expect(ops).toContain('generate:success');
    expect(ops).toContain('sign:success');
    expect(ops).toContain('sign:failure');
    const closed = new Pkcs11CaKeys({ module: token.module, token: token.label, pin: token.pin });
    await closed.close();
    await expect(closed.sign('palisade-ca-nowhere', 'ECDSA-P384', Buffer.from('x'))).rejects.toMatchObject({ code: 'PAL_SEAL_UNAVAILABLE' });
  });
});
