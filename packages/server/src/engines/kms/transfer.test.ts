import { createHmac, generateKeyPairSync, randomBytes, createPrivateKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { aeadOpen, canonicalBytes, unwrapTransfer, wrapForTransfer } from '@palisade/core';
import { codeOf, serverCases, startServer, type TestServer } from '../../testing/harness.js';

describe.each(serverCases())('bring your own key and wrapped export ($name)', ({ dialect, seal, available }) => {
  let s: TestServer;
  let wrappingPem = '';
  const receiver = generateKeyPairSync('rsa', { modulusLength: 3072 });
  beforeAll(async () => {
    if (available) s = await startServer(dialect, { seal });
  });
  afterAll(async () => s?.close());

  describe.skipIf(!available)('', () => {
    it('imports an AES key: what the server encrypts opens outside with the imported material', async () => {
      const w = await s.client.kms.wrappingKey();
      expect(w).toMatchObject({ algorithm: 'RSA-4096', format: 'RSA_AES_KEY_WRAP_SHA_256' });
      wrappingPem = w.public_key_pem;
      expect((await s.client.kms.wrappingKey()).public_key_pem).toBe(wrappingPem); // stable

      const material = randomBytes(32);
      const k = await s.client.kms.importKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', classification: 'confidential', wrapped_key: wrapForTransfer(wrappingPem, material).toString('base64') });
      expect(k).toMatchObject({ origin: 'imported', exportable: false, version: 1 });
      const ct = await s.client.kms.encrypt(k.key_id, 'made inside');
      // the same key outside can check what the server produced: it is really the imported material
      const row = await s.rt.storage.db.selectFrom('kms_key_versions').select(['wrapping', 'material']).where('key_id', '=', k.key_id).executeTakeFirstOrThrow();
      expect(row.wrapping).toBe('kek');
      expect(Buffer.from(row.material!).includes(material)).toBe(false);
      // outside, the imported material opens what the server sealed (its AAD is the documented canonical form)
      const aad = canonicalBytes({ f: 1, kid: k.key_id, ver: 1, alg: 'AES-256-GCM', ctx: {} });
      const opened = aeadOpen('AES-256-GCM', material, Buffer.from(ct.iv, 'base64'), Buffer.from(ct.ciphertext, 'base64'), Buffer.from(ct.tag, 'base64'), aad);
      expect(opened.toString()).toBe('made inside');
      expect((await s.client.kms.decrypt(k.key_id, ct)).toString()).toBe('made inside');
      expect(await codeOf(s.client.kms.exportKey(k.key_id, receiver.publicKey.export({ type: 'spki', format: 'pem' }).toString()))).toEqual({ status: 409, code: 'PAL_KMS_NOT_EXPORTABLE' });
    });

    it('imports an Ed25519 key as PKCS#8 and signs with it; refuses material that does not fit', async () => {
      const kp = generateKeyPairSync('ed25519');
      const der = kp.privateKey.export({ type: 'pkcs8', format: 'der' });
      const k = await s.client.kms.importKey({ key_type: 'signing', algorithm: 'ED25519', wrapped_key: wrapForTransfer(wrappingPem, der).toString('base64') });
      expect((await s.client.kms.publicKey(k.key_id)).public_key_pem).toBe(kp.publicKey.export({ type: 'spki', format: 'pem' }).toString());
      const sig = await s.client.kms.sign(k.key_id, 'hello');
      expect((await s.client.kms.verify(k.key_id, 'hello', sig.signature)).valid).toBe(true);

      const wrongCurve = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'pkcs8', format: 'der' });
      expect(await codeOf(s.client.kms.importKey({ key_type: 'signing', algorithm: 'ECDSA-P256', wrapped_key: wrapForTransfer(wrappingPem, wrongCurve).toString('base64') }))).toEqual({ status: 400, code: 'PAL_KMS_IMPORT_INVALID' });
      expect(await codeOf(s.client.kms.importKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', wrapped_key: wrapForTransfer(wrappingPem, randomBytes(16)).toString('base64') }))).toEqual({ status: 400, code: 'PAL_KMS_IMPORT_INVALID' });
      const tampered = wrapForTransfer(wrappingPem, randomBytes(32));
      tampered[tampered.length - 1]! ^= 1;
      expect(await codeOf(s.client.kms.importKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', wrapped_key: tampered.toString('base64') }))).toEqual({ status: 400, code: 'PAL_KMS_IMPORT_INVALID' });
      const otherServer = generateKeyPairSync('rsa', { modulusLength: 4096 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
      expect(await codeOf(s.client.kms.importKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', wrapped_key: wrapForTransfer(otherServer, randomBytes(32)).toString('base64') }))).toEqual({ status: 400, code: 'PAL_KMS_IMPORT_INVALID' });
    });

    it('exports an exportable key wrapped for the receiver, who gets the same key back', async () => {
      const k = await s.client.kms.createKey({ key_type: 'hmac', algorithm: 'HMAC-SHA256', exportable: true });
      const pem = receiver.publicKey.export({ type: 'spki', format: 'pem' }).toString();
      const out = await s.client.kms.exportKey(k.key_id, pem);
      expect(out).toMatchObject({ key_id: k.key_id, version: 1, algorithm: 'HMAC-SHA256', format: 'RSA_AES_KEY_WRAP_SHA_256' });
      const material = unwrapTransfer(createPrivateKey(receiver.privateKey.export({ type: 'pkcs8', format: 'pem' })), Buffer.from(out.wrapped_key, 'base64'));
      const mac = await s.client.kms.hmac(k.key_id, 'data');
      expect(createHmac('sha256', material).update('data').digest('base64')).toBe(mac.mac);
      const small = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
      expect(await codeOf(s.client.kms.exportKey(k.key_id, small))).toEqual({ status: 400, code: 'PAL_VALIDATION_FAILED' });
      const audit = (await s.client.audit.query({ type: 'kms.key.export', outcome: 'success' })).events;
      expect(audit).toHaveLength(1);
      expect(JSON.stringify(audit)).not.toContain(out.wrapped_key.slice(0, 40));
    });
  });
});
