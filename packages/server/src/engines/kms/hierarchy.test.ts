import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EncryptedData, KeyMetadata } from '@palisade/core';
import { codeOf, serverCases, startServer, type TestServer } from '../../testing/harness.js';

describe.each(serverCases())('key hierarchy: root -> system KEKs -> keys ($name)', ({ dialect, seal, available }) => {
  let s: TestServer;
  let kek: KeyMetadata;
  const data: Array<{ key_id: string; ct: EncryptedData; plain: string }> = [];
  const versions = () => s.rt.storage.db.selectFrom('kms_key_versions').selectAll().execute();
  const decryptAll = async () => {
    s.rt.kms.forgetAll(); // nothing from memory: every key is unwrapped again from storage
    for (const d of data) expect((await s.client.kms.decrypt(d.key_id, d.ct)).toString()).toBe(d.plain);
  };

  beforeAll(async () => {
    if (!available) return;
    s = await startServer(dialect, { seal });
    s.rt.kms.onKekRotated = () => undefined; // this test drives the rewrap itself
  });
  afterAll(async () => s?.close());

  describe.skipIf(!available)('', () => {
    it('one system KEK per classification, wrapped by the root; every other key wrapped by the KEK of its classification', async () => {
      const all: KeyMetadata[] = [];
      for await (const k of s.client.kms.allKeys()) all.push(k);
      const keks = all.filter((k) => k.name?.startsWith('system/kek/'));
      expect(keks.map((k) => k.name).sort()).toEqual(['system/kek/confidential', 'system/kek/internal', 'system/kek/restricted']);
      expect(keks.every((k) => k.key_type === 'KEK' && k.rotation_period_days === 90)).toBe(true);
      kek = keks.find((k) => k.name === 'system/kek/confidential')!;

      for (let i = 0; i < 7; i++) {
        const k = await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', classification: 'confidential' });
        data.push({ key_id: k.key_id, ct: await s.client.kms.encrypt(k.key_id, `record ${i}`), plain: `record ${i}` });
      }
      const other = await s.client.kms.createKey({ key_type: 'signing', algorithm: 'ED25519', classification: 'restricted' });
      const rows = await versions();
      for (const r of rows) {
        if (keks.some((k) => k.key_id === r.key_id)) expect(r).toMatchObject({ wrapping: 'root', kek_id: null });
        else if (r.key_id === other.key_id || all.some((k) => k.key_id === r.key_id && (k.name === 'system/audit/checkpoint' || k.name === 'system/identity/token-signing'))) expect(r).toMatchObject({ wrapping: 'kek', kek_id: keks.find((k) => k.name === (r.key_id === other.key_id ? 'system/kek/restricted' : 'system/kek/internal'))!.key_id, kek_version: 1 });
        else expect(r).toMatchObject({ wrapping: 'kek', kek_id: kek.key_id, kek_version: 1 });
      }
      expect((await s.client.kms.getKey(kek.key_id)).rewrap).toEqual({ to_version: 1, pending: 0, total: 7 });
    });

    it('system keys cannot be used, disabled, destroyed, or impersonated by name', async () => {
      expect(await codeOf(s.client.kms.encrypt(kek.key_id, 'x'))).toEqual({ status: 409, code: 'PAL_KMS_SYSTEM_KEY' });
      expect(await codeOf(s.client.kms.disableKey(kek.key_id))).toEqual({ status: 409, code: 'PAL_KMS_SYSTEM_KEY' });
      expect(await codeOf(s.client.kms.scheduleDestruction(kek.key_id, 7))).toEqual({ status: 409, code: 'PAL_KMS_SYSTEM_KEY' });
      expect(await codeOf(s.client.kms.createKey({ key_type: 'KEK', algorithm: 'AES-256-GCM', name: 'system/kek/evil' }))).toEqual({ status: 400, code: 'PAL_VALIDATION_FAILED' });
    });

    it('rotating a KEK rewraps everything under it in resumable batches; nothing is unreadable at any point', async () => {
      // the KEK policy requires a second principal: the rotation waits for an approval
      const request = await s.client.kms.rotateKey(kek.key_id);
      expect(request).toMatchObject({ action: 'kms.key.rotate', status: 'pending', resource: { type: 'kms_key', id: kek.key_id } });
      const id = (request as { id: string }).id;
      expect((await s.client.kms.getKey(kek.key_id)).rotation).toMatchObject({ state: 'awaiting_approval', approval_id: id });
      expect(await s.client.kms.rotateKey(kek.key_id)).toMatchObject({ id }); // asking again does not stack requests
      expect(await codeOf(s.client.approvals.approve(id))).toEqual({ status: 403, code: 'PAL_APPROVAL_SELF' });
      const bystander = s.clientWith((await s.client.createApiKey({ name: 'bystander', permissions: ['approvals:requests:decide'] })).token);
      expect(await codeOf(bystander.approvals.approve(id))).toEqual({ status: 403, code: 'PAL_FORBIDDEN' });
      const officer = s.clientWith((await s.client.createApiKey({ name: 'officer', permissions: ['approvals:requests:decide', 'kms:keys:rotate'] })).token);
      const approved = await officer.approvals.approve(id, 'quarterly KEK rotation');
      expect(approved).toMatchObject({ status: 'approved', result: { key_id: kek.key_id, version: 2 } });
      expect(approved.decided_by).not.toBe('owner');
      expect(await codeOf(officer.approvals.approve(id))).toEqual({ status: 409, code: 'PAL_APPROVAL_NOT_PENDING' });
      const rotated = await s.client.kms.getKey(kek.key_id);
      expect(rotated.version).toBe(2);
      expect(rotated.rewrap).toEqual({ to_version: 2, pending: 7, total: 7 });
      await decryptAll(); // still under KEK v1

      // a new key version is wrapped under the new KEK version at once
      const fresh = await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', classification: 'confidential' });
      data.push({ key_id: fresh.key_id, ct: await s.client.kms.encrypt(fresh.key_id, 'fresh'), plain: 'fresh' });
      expect((await s.client.kms.getKey(kek.key_id)).rewrap).toEqual({ to_version: 2, pending: 7, total: 8 });

      // one batch of 3, then the process "crashes": a restart resumes from the rows themselves
      await s.rt.storage.transact((tx) => s.rt.kms.rewrapPending(tx, 3));
      expect((await s.client.kms.getKey(kek.key_id)).rewrap).toEqual({ to_version: 2, pending: 4, total: 8 });
      await s.restart();
      s.rt.kms.onKekRotated = () => undefined;
      await decryptAll();

      const progress: Array<[number, number]> = [];
      expect(await s.rt.scheduler.rewrap(2, (done, pending) => progress.push([done, pending]))).toBe(4);
      expect(progress).toEqual([[2, 2], [4, 0]]);
      expect((await s.client.kms.getKey(kek.key_id)).rewrap).toEqual({ to_version: 2, pending: 0, total: 8 });
      expect((await versions()).filter((r) => r.kek_id === kek.key_id).every((r) => r.kek_version === 2)).toBe(true);
      await decryptAll();
    });

    it('the approval and every rotation step are audit events', async () => {
      const types = (await s.client.audit.query({ type: 'approval.*', order: 'asc' })).events.map((e) => `${e.type}:${e.outcome}`);
      expect(types).toEqual(['approval.request:success', 'approval.approve:failure', 'approval.approve:failure', 'approval.approve:success', 'approval.approve:failure']);
      const steps = (await s.client.audit.query({ resource: kek.key_id, order: 'asc', limit: 500 })).events.map((e) => e.type);
      expect(steps).toEqual(expect.arrayContaining(['kms.rotation.pre_check', 'kms.rotation.health_check', 'kms.key.rotate']));
    });

    it('rewrap-all reports the backlog under every KEK and starts clearing it', async () => {
      const restricted = (await s.client.kms.listKeys({ name: 'system/kek/restricted' })).keys[0]!;
      const request = (await s.client.kms.rotateKey(restricted.key_id)) as { id: string };
      const officer = s.clientWith((await s.client.createApiKey({ name: 'officer-2', permissions: ['approvals:requests:decide', 'kms:keys:rotate'] })).token);
      await officer.approvals.approve(request.id);
      expect(await s.client.kms.rewrapAll()).toEqual({ pending: 1 }); // the restricted signing key
      await s.rt.scheduler.rewrap(); // what the kicked background pass does, awaited here
      expect(await s.client.kms.rewrapAll()).toEqual({ pending: 0 });
      await decryptAll();
    });

    it('each rewrap batch is an audit event and the ledger verifies', async () => {
      const events = (await s.client.audit.query({ type: 'kms.kek.rewrap', resource: kek.key_id, order: 'asc' })).events;
      expect(events.map((e) => e.details)).toEqual([
        { to_version: 2, rewrapped: 2, pending: 2 },
        { to_version: 2, rewrapped: 2, pending: 0 },
      ]);
      expect(await s.rt.ledger.verify()).toMatchObject({ ok: true });
    });
  });
});
