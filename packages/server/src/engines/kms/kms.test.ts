import { createPublicKey, verify as cryptoVerify, constants } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EncryptedData, KeyMetadata } from '@palisade/core';
import { codeOf, dialects, serverCases, startServer, type TestServer } from '../../testing/harness.js';

const flip = (b64: string, byte = 0): string => {
  const b = Buffer.from(b64, 'base64');
  b[byte] = b[byte]! ^ 0x01;
  return b.toString('base64');
};

describe.each(serverCases())('KMS over HTTPS ($name)', ({ name, dialect, seal, available }) => {
  let s: TestServer;
  const rotateWithApproval = async (keyId: string) => {
    const request = await s.client.kms.rotateKey(keyId);
    expect(request).toMatchObject({ action: 'kms.key.rotate', status: 'pending', requested_by: 'owner' });
    const approver = s.clientWith((await s.client.createApiKey({ name: `approver-${keyId}`, permissions: ['approvals:requests:decide', 'kms:keys:rotate'] })).token);
    return approver.approvals.approve((request as { id: string }).id);
  };
  beforeAll(async () => {
    if (available) s = await startServer(dialect, { seal });
  });
  afterAll(async () => s?.close());

  describe.skipIf(!available)('', () => {
    it('creates keys with metadata and the classification rotation defaults', async () => {
      const k = await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', classification: 'restricted', name: `orders-${name}` });
      expect(k).toMatchObject({ key_type: 'DEK', algorithm: 'AES-256-GCM', usage: ['encrypt', 'decrypt'], classification: 'restricted', version: 1, status: 'active', rotation_period_days: 7 });
      expect(Date.parse(k.expires_at) - Date.parse(k.created_at)).toBe(7 * 86_400_000);
      expect((await s.client.kms.createKey({ key_type: 'KEK', algorithm: 'AES-256-GCM', classification: 'confidential' })).rotation_period_days).toBe(30);
      // internal data allows 90 days, but the DEK policy (30 days) is stricter; a signing key: min(90, 180)
      expect((await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'CHACHA20-POLY1305' })).rotation_period_days).toBe(30);
      expect((await s.client.kms.createKey({ key_type: 'signing', algorithm: 'ED25519' })).rotation_period_days).toBe(90);
      expect((await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', rotation_period_days: 3 })).rotation_period_days).toBe(3);
      expect(await codeOf(s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', name: `orders-${name}` }))).toEqual({ status: 409, code: 'PAL_KMS_KEY_NAME_TAKEN' });
    });

    it('refuses usages and algorithms that do not fit', async () => {
      expect(await codeOf(s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', usage: ['sign'] }))).toEqual({ status: 400, code: 'PAL_KMS_INVALID_USAGE' });
      expect(await codeOf(s.client.kms.createKey({ key_type: 'signing', algorithm: 'AES-256-GCM' }))).toEqual({ status: 400, code: 'PAL_KMS_INVALID_ALGORITHM' });
      expect(await codeOf(s.client.kms.createKey({ key_type: 'DEK', algorithm: 'ED25519' }))).toEqual({ status: 400, code: 'PAL_KMS_INVALID_ALGORITHM' });
      const encOnly = await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', usage: ['encrypt'] });
      const ct = await s.client.kms.encrypt(encOnly.key_id, 'x');
      expect(await codeOf(s.client.kms.decrypt(encOnly.key_id, ct))).toEqual({ status: 400, code: 'PAL_KMS_OPERATION_NOT_PERMITTED' });
      const signer = await s.client.kms.createKey({ key_type: 'signing', algorithm: 'ED25519' });
      expect(await codeOf(s.client.kms.encrypt(signer.key_id, 'x'))).toEqual({ status: 400, code: 'PAL_KMS_OPERATION_NOT_PERMITTED' });
    });

    it('encrypts and decrypts with the context bound; any changed bit fails with PAL_KMS_DECRYPT_FAILED', async () => {
      for (const algorithm of ['AES-256-GCM', 'CHACHA20-POLY1305'] as const) {
        const k = await s.client.kms.createKey({ key_type: 'DEK', algorithm });
        const ctx = { tenant: 'acme', record: 42 };
        const ct = await s.client.kms.encrypt(k.key_id, 'attack at dawn', ctx);
        expect(ct).toMatchObject({ key_id: k.key_id, key_version: 1, algorithm });
        expect(Buffer.from(ct.iv, 'base64')).toHaveLength(12);
        expect(Buffer.from(ct.tag, 'base64')).toHaveLength(16);
        expect((await s.client.kms.decrypt(k.key_id, ct, { record: 42, tenant: 'acme' })).toString()).toBe('attack at dawn');
        const tampered: EncryptedData[] = [
          { ...ct, ciphertext: flip(ct.ciphertext) },
          { ...ct, iv: flip(ct.iv) },
          { ...ct, tag: flip(ct.tag, 15) },
          { ...ct, key_version: 2 },
          { ...ct, iv: Buffer.alloc(8).toString('base64') },
        ];
        for (const t of tampered) expect(await codeOf(s.client.kms.decrypt(k.key_id, t, ctx))).toEqual({ status: 400, code: 'PAL_KMS_DECRYPT_FAILED' });
        expect(await codeOf(s.client.kms.decrypt(k.key_id, ct, { tenant: 'acme', record: 43 }))).toEqual({ status: 400, code: 'PAL_KMS_DECRYPT_FAILED' });
        expect(await codeOf(s.client.kms.decrypt(k.key_id, ct))).toEqual({ status: 400, code: 'PAL_KMS_DECRYPT_FAILED' });
        const other = await s.client.kms.createKey({ key_type: 'DEK', algorithm });
        expect(await codeOf(s.client.kms.decrypt(other.key_id, { ...ct, key_id: other.key_id }, ctx))).toEqual({ status: 400, code: 'PAL_KMS_DECRYPT_FAILED' });
      }
    });

    it('handles empty and large plaintexts', async () => {
      const k = await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM' });
      expect(await s.client.kms.decrypt(k.key_id, await s.client.kms.encrypt(k.key_id, new Uint8Array(0)))).toHaveLength(0);
      const big = Buffer.alloc(5 * 1024 * 1024, 7);
      expect((await s.client.kms.decrypt(k.key_id, await s.client.kms.encrypt(k.key_id, big))).equals(big)).toBe(true);
    });

    it('rotates: new encryptions use the new version, older ones stay decryptable, min_decryption_version cuts them off', async () => {
      const k = await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM' });
      const v1 = await s.client.kms.encrypt(k.key_id, 'one');
      const r = await s.client.kms.rotateKey(k.key_id);
      expect(r).toMatchObject({ version: 2 });
      const v2 = await s.client.kms.encrypt(k.key_id, 'two');
      expect(v2.key_version).toBe(2);
      expect((await s.client.kms.decrypt(k.key_id, v1)).toString()).toBe('one');
      const shown = await s.client.kms.getKey(k.key_id);
      // the DEK policy's 7-day overlap: v1 stays active, then the scheduler makes it decrypt-only
      expect(shown.versions?.map((v) => [v.version, v.status])).toEqual([[1, 'active'], [2, 'active']]);
      expect(shown.rotation).toMatchObject({ state: 'overlap', approval_id: null, policy: { approval: false, overlap_days: 7 } });
      expect(Date.parse(shown.rotation!.overlap_until!) - Date.parse(shown.rotated_at)).toBe(7 * 86_400_000);
      s.clock.advanceDays(8);
      await s.rt.scheduler.tick();
      const after = await s.client.kms.getKey(k.key_id);
      expect(after.versions?.map((v) => [v.version, v.status, v.deactivate_at])).toEqual([[1, 'deprecated', null], [2, 'active', null]]);
      expect(after.rotation?.state).toBe('idle');
      expect((await s.client.audit.query({ type: 'kms.rotation.*', resource: k.key_id, order: 'asc' })).events.map((e) => e.type)).toEqual(['kms.rotation.pre_check', 'kms.rotation.health_check', 'kms.rotation.deactivate']);
      const rewrapped = await s.client.kms.rewrap(k.key_id, v1);
      expect(rewrapped.key_version).toBe(2);
      expect((await s.client.kms.decrypt(k.key_id, rewrapped)).toString()).toBe('one');
      expect((await s.client.kms.updateKey(k.key_id, { min_decryption_version: 2 })).min_decryption_version).toBe(2);
      expect(await codeOf(s.client.kms.decrypt(k.key_id, v1))).toEqual({ status: 400, code: 'PAL_KMS_VERSION_BELOW_MINIMUM' });
      expect(await codeOf(s.client.kms.updateKey(k.key_id, { min_decryption_version: 3 }))).toEqual({ status: 400, code: 'PAL_VALIDATION_FAILED' });
    });

    it('concurrent rotate + encrypt + decrypt never loses a version and never fails to decrypt', async () => {
      const k = await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM' });
      const before = await Promise.all(Array.from({ length: 10 }, (_, i) => s.client.kms.encrypt(k.key_id, `before-${i}`)));
      const work: Array<Promise<unknown>> = [];
      const during: Array<Promise<EncryptedData>> = [];
      for (let i = 0; i < 30; i++) {
        if (i % 6 === 0) work.push(s.client.kms.rotateKey(k.key_id));
        const e = s.client.kms.encrypt(k.key_id, `during-${i}`);
        during.push(e);
        work.push(e);
        work.push(s.client.kms.decrypt(k.key_id, before[i % 10]!).then((p) => expect(p.toString()).toBe(`before-${i % 10}`)));
      }
      await Promise.all(work);
      const meta = await s.client.kms.getKey(k.key_id);
      expect(meta.version).toBe(6);
      expect(meta.versions?.map((v) => v.version)).toEqual([1, 2, 3, 4, 5, 6]);
      const all = await Promise.all(during);
      for (let i = 0; i < all.length; i++) expect((await s.client.kms.decrypt(k.key_id, all[i]!)).toString()).toBe(`during-${i}`);
    });

    it('envelope encryption: data-key returns a DEK and its wrapped form', async () => {
      const kek = await s.client.kms.createKey({ key_type: 'KEK', algorithm: 'AES-256-GCM' });
      const dk = await s.client.kms.dataKey(kek.key_id, { context: { purpose: 'backup' } });
      expect(dk.plaintext).toHaveLength(32);
      expect((await s.client.kms.decrypt(kek.key_id, dk.ciphertext, { purpose: 'backup' })).equals(dk.plaintext)).toBe(true);
      expect((await s.client.kms.dataKey(kek.key_id, { bytes: 16 })).plaintext).toHaveLength(16);
    });

    it('signs and verifies with ECDSA P-256/P-384, Ed25519 and RSA-4096; the public key verifies outside Palisade', async () => {
      const msg = Buffer.from('release v1.2.3');
      for (const [algorithm, digest, opts] of [
        ['ECDSA-P256', 'sha256', { dsaEncoding: 'der' }],
        ['ECDSA-P384', 'sha384', { dsaEncoding: 'der' }],
        ['ED25519', null, {}],
        ['RSA-4096', 'sha256', { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }],
      ] as const) {
        if (algorithm === 'RSA-4096' && name !== 'sqlite-file') continue; // key generation is slow; once is enough
        const k = await s.client.kms.createKey({ key_type: 'signing', algorithm });
        const sig = await s.client.kms.sign(k.key_id, msg);
        expect(await s.client.kms.verify(k.key_id, msg, sig.signature)).toEqual({ valid: true, key_version: 1 });
        expect((await s.client.kms.verify(k.key_id, 'other', sig.signature)).valid).toBe(false);
        expect((await s.client.kms.verify(k.key_id, msg, Buffer.from('garbage').toString('base64'))).valid).toBe(false);
        const pub = await s.client.kms.publicKey(k.key_id);
        const key = createPublicKey(pub.public_key_pem);
        expect(cryptoVerify(digest, msg, { key, ...opts } as never, Buffer.from(sig.signature, 'base64'))).toBe(true);
        await rotateWithApproval(k.key_id); // signing keys: a second principal approves (the seed's policy)
        expect(await s.client.kms.verify(k.key_id, msg, sig.signature, 1)).toEqual({ valid: true, key_version: 1 });
        expect((await s.client.kms.verify(k.key_id, msg, sig.signature)).valid).toBe(false);
      }
    });

    it('computes and verifies HMACs', async () => {
      const k = await s.client.kms.createKey({ key_type: 'hmac', algorithm: 'HMAC-SHA256' });
      const m = await s.client.kms.hmac(k.key_id, 'hello');
      expect(Buffer.from(m.mac, 'base64')).toHaveLength(32);
      expect((await s.client.kms.verifyHmac(k.key_id, 'hello', m.mac)).valid).toBe(true);
      expect((await s.client.kms.verifyHmac(k.key_id, 'hellO', m.mac)).valid).toBe(false);
      expect(await codeOf(s.client.kms.publicKey(k.key_id))).toEqual({ status: 400, code: 'PAL_KMS_OPERATION_NOT_PERMITTED' });
    });

    it('batch encrypt/decrypt answers per item and caps at 1,000 items', async () => {
      const k = await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM' });
      const enc = await s.client.kms.encryptBatch(k.key_id, Array.from({ length: 50 }, (_, i) => ({ plaintext: `item-${i}`, context: { i } })));
      expect(enc.results.every((r) => r.ok)).toBe(true);
      const items = enc.results.map((r, i) => ({ ...(r.ok ? r.data : ({} as EncryptedData)), context: { i } }));
      items[7] = { ...items[7]!, tag: flip(items[7]!.tag) };
      const dec = await s.client.kms.decryptBatch(k.key_id, items);
      expect(dec.results.filter((r) => r.ok)).toHaveLength(49);
      expect(dec.results[7]).toMatchObject({ ok: false, error: { code: 'PAL_KMS_DECRYPT_FAILED', status: 400 } });
      expect(dec.results[3]).toEqual({ ok: true, plaintext: Buffer.from('item-3').toString('base64') });
      const tooMany = Array.from({ length: 1001 }, () => ({ plaintext: 'x' }));
      expect(await codeOf(s.client.kms.encryptBatch(k.key_id, tooMany))).toEqual({ status: 400, code: 'PAL_KMS_BATCH_TOO_LARGE' });
    });

    it('disable and enable', async () => {
      const k = await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM' });
      const ct = await s.client.kms.encrypt(k.key_id, 'x');
      expect((await s.client.kms.disableKey(k.key_id)).status).toBe('disabled');
      expect(await codeOf(s.client.kms.encrypt(k.key_id, 'x'))).toEqual({ status: 409, code: 'PAL_KMS_KEY_DISABLED' });
      expect(await codeOf(s.client.kms.decrypt(k.key_id, ct))).toEqual({ status: 409, code: 'PAL_KMS_KEY_DISABLED' });
      expect(await codeOf(s.client.kms.rotateKey(k.key_id))).toEqual({ status: 409, code: 'PAL_KMS_INVALID_STATE' });
      expect(await codeOf(s.client.kms.disableKey(k.key_id))).toEqual({ status: 409, code: 'PAL_KMS_INVALID_STATE' });
      expect((await s.client.kms.enableKey(k.key_id)).status).toBe('active');
      expect((await s.client.kms.decrypt(k.key_id, ct)).toString()).toBe('x');
    });

    it('schedules, cancels and carries out destruction; destroyed material is gone and says so', async () => {
      const k = await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM' });
      const v1 = await s.client.kms.encrypt(k.key_id, 'old');
      await s.client.kms.rotateKey(k.key_id);
      const v2 = await s.client.kms.encrypt(k.key_id, 'new');
      expect(await codeOf(s.client.kms.scheduleDestruction(k.key_id, 6, 1))).toEqual({ status: 400, code: 'PAL_VALIDATION_FAILED' });
      expect(await codeOf(s.client.kms.scheduleDestruction(k.key_id, 31, 1))).toEqual({ status: 400, code: 'PAL_VALIDATION_FAILED' });
      expect(await codeOf(s.client.kms.scheduleDestruction(k.key_id, 7, 2))).toEqual({ status: 409, code: 'PAL_KMS_CANNOT_DESTROY_CURRENT_VERSION' });
      // the retirement gate: v1 still protects a ciphertext until it is rewrapped to v2
      expect((await s.client.kms.getKey(k.key_id)).versions?.[0]?.protects).toEqual({ wrapped_keys: 0, ciphertexts: 1 });
      expect(await codeOf(s.client.kms.scheduleDestruction(k.key_id, 7, 1))).toEqual({ status: 409, code: 'PAL_KMS_VERSION_IN_USE' });
      expect((await s.client.kms.rewrap(k.key_id, v1)).key_version).toBe(2);
      expect((await s.client.kms.getKey(k.key_id)).versions?.map((v) => v.protects.ciphertexts)).toEqual([0, 2]);
      const scheduled = (await s.client.kms.scheduleDestruction(k.key_id, 7, 1)) as KeyMetadata;
      expect(scheduled.versions?.[0]).toMatchObject({ version: 1, status: 'pending_destruction' });
      expect(await codeOf(s.client.kms.decrypt(k.key_id, v1))).toEqual({ status: 409, code: 'PAL_KMS_KEY_PENDING_DESTRUCTION' });
      await s.client.kms.cancelDestruction(k.key_id, 1);
      expect((await s.client.kms.decrypt(k.key_id, v1)).toString()).toBe('old');
      await s.client.kms.scheduleDestruction(k.key_id, 7, 1);
      s.clock.advanceDays(6);
      expect((await s.rt.scheduler.tick()).destroyed).toEqual([]);
      s.clock.advanceDays(2);
      expect((await s.rt.scheduler.tick()).destroyed).toContainEqual({ key_id: k.key_id, version: 1 });
      expect(await codeOf(s.client.kms.decrypt(k.key_id, v1))).toEqual({ status: 410, code: 'PAL_KMS_KEY_DESTROYED' });
      expect((await s.client.kms.decrypt(k.key_id, v2)).toString()).toBe('new');
      const row = await s.rt.storage.db.selectFrom('kms_key_versions').select(['material', 'status']).where('key_id', '=', k.key_id).where('version', '=', 1).executeTakeFirstOrThrow();
      expect(row).toEqual({ material: null, status: 'destroyed' });

      // the whole key still protects data: only forced, and only with a second principal's approval
      expect(await codeOf(s.client.kms.scheduleDestruction(k.key_id, 30))).toEqual({ status: 409, code: 'PAL_KMS_VERSION_IN_USE' });
      const request = await s.client.kms.scheduleDestruction(k.key_id, 30, undefined, { force: true });
      expect(request).toMatchObject({ action: 'kms.key.destroy', status: 'pending', details: { ciphertexts: 2 } });
      expect((await s.client.kms.getKey(k.key_id)).status).toBe('active');
      const approver = s.clientWith((await s.client.createApiKey({ name: `destroyer-${k.key_id}`, permissions: ['approvals:requests:decide', 'kms:keys:destroy'] })).token);
      expect(await approver.approvals.approve((request as { id: string }).id)).toMatchObject({ status: 'approved' });
      expect(await codeOf(s.client.kms.encrypt(k.key_id, 'x'))).toEqual({ status: 409, code: 'PAL_KMS_KEY_PENDING_DESTRUCTION' });
      s.clock.advanceDays(31);
      await s.rt.scheduler.tick();
      expect((await s.client.kms.getKey(k.key_id)).status).toBe('destroyed');
      expect(await codeOf(s.client.kms.decrypt(k.key_id, v2))).toEqual({ status: 410, code: 'PAL_KMS_KEY_DESTROYED' });
      expect(await codeOf(s.client.kms.enableKey(k.key_id))).toEqual({ status: 409, code: 'PAL_KMS_INVALID_STATE' });
    });

    it('the scheduler rotates keys whose period has passed, under a lease', async () => {
      const k = await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', rotation_period_days: 1 });
      const ct = await s.client.kms.encrypt(k.key_id, 'x');
      s.clock.advanceDays(1.5);
      const { rotated } = await s.rt.scheduler.tick();
      expect(rotated).toContain(k.key_id);
      expect((await s.client.kms.getKey(k.key_id)).version).toBe(2);
      expect((await s.client.kms.decrypt(k.key_id, ct)).toString()).toBe('x');
      const lease = await s.rt.storage.db.selectFrom('leases').selectAll().where('name', '=', 'kms-scheduler').executeTakeFirst();
      expect(lease?.holder).toMatch(/^node_/);
    });

    it('lists with paging and filters', async () => {
      const tag = `paging-${name}`;
      for (let i = 0; i < 5; i++) await s.client.kms.createKey({ key_type: 'hmac', algorithm: 'HMAC-SHA256', name: `${tag}-${i}`, classification: 'confidential' });
      const seen: string[] = [];
      for await (const k of s.client.kms.allKeys({ key_type: 'hmac', classification: 'confidential', limit: 2 } as never)) seen.push(k.name ?? '');
      expect(seen.filter((n) => n.startsWith(tag))).toHaveLength(5);
      const page = await s.client.kms.listKeys({ limit: 2, key_type: 'hmac' });
      expect(page.keys).toHaveLength(2);
      expect(page.next_cursor).not.toBeNull();
    });

    it('unknown keys are 404', async () => {
      expect(await codeOf(s.client.kms.getKey('key_aaaaaaaaaaaaaaaaaaaaaaaaaa'))).toEqual({ status: 404, code: 'PAL_KMS_KEY_NOT_FOUND' });
      expect(await codeOf(s.client.kms.encrypt('key_aaaaaaaaaaaaaaaaaaaaaaaaaa', 'x'))).toEqual({ status: 404, code: 'PAL_KMS_KEY_NOT_FOUND' });
    });
  });
});

describe.each(dialects())('GCM invocation budget ($name)', ({ name, available }) => {
  it.skipIf(!available)('retires a version before its encryption limit and rotates by itself', async () => {
    const s = await startServer(name, { env: { PALISADE_KMS_MAX_ENCRYPTIONS_PER_VERSION: '10' }, mutate: (c) => (c.kms.nonce_block = 4) });
    try {
      const k = await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM' });
      const cts: EncryptedData[] = [];
      for (let i = 0; i < 25; i++) cts.push(await s.client.kms.encrypt(k.key_id, `m${i}`));
      expect(cts.map((c) => c.key_version)).toEqual([...Array(10).fill(1), ...Array(10).fill(2), ...Array(5).fill(3)]);
      const meta = await s.client.kms.getKey(k.key_id);
      expect(meta.versions?.map((v) => v.encryptions_reserved)).toEqual([10, 10, 8]);
      for (let i = 0; i < 25; i++) expect((await s.client.kms.decrypt(k.key_id, cts[i]!)).toString()).toBe(`m${i}`);
      const rotations = await s.rt.storage.db.selectFrom('audit_events').select('data').where('type', '=', 'kms.key.rotate').execute();
      expect(rotations.map((r) => JSON.parse(r.data).details)).toEqual([{ reason: 'nonce_limit', version: 2 }, { reason: 'nonce_limit', version: 3 }]);
    } finally {
      await s.close();
    }
  });
});
