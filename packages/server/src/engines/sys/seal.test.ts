import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EncryptedData } from '@palisade/core';
import { codeOf, dialects, startServer, type TestServer } from '../../testing/harness.js';
import { allTables, kmsMaterials } from '../../testing/db-dump.js';

const PASS = 'correct horse battery staple';
const subsets = <T>(xs: T[], k: number): T[][] => (k === 0 ? [[]] : xs.flatMap((x, i) => subsets(xs.slice(i + 1), k - 1).map((r) => [x, ...r])));

describe.each(dialects())('passphrase seal: init, unseal, seal, rekey ($name)', ({ name, available }) => {
  let s: TestServer;
  let shares: string[] = [];
  let keyId = '';
  let ct: EncryptedData;
  beforeAll(async () => {
    if (available) s = await startServer(name, { seal: 'passphrase' });
  });
  afterAll(async () => s?.close());

  describe.skipIf(!available)('', () => {
    it('starts uninitialised: data routes answer 503, /readyz says why, status is public', async () => {
      expect(await s.client.sys.sealStatus()).toEqual({ provider: 'passphrase', state: 'uninitialized', recovery: null });
      expect(await codeOf(s.client.kms.listKeys())).toEqual({ status: 503, code: 'PAL_SEAL_NOT_INITIALIZED' });
      const ready = await s.client.transport.raw('GET', '/readyz', undefined, {});
      expect(ready.status).toBe(503);
      expect(JSON.parse(ready.body.toString()).checks.seal).toMatch(/^uninitialized: run `palisade operator init`/);
    });

    it('init refuses weak or inconsistent input, then creates shares once', async () => {
      expect(await codeOf(s.client.sys.init({ passphrase: 'short', shares: 5, threshold: 3 }))).toEqual({ status: 400, code: 'PAL_VALIDATION_FAILED' });
      expect(await codeOf(s.client.sys.init({ passphrase: PASS, shares: 3, threshold: 5 }))).toEqual({ status: 400, code: 'PAL_VALIDATION_FAILED' });
      const r = await s.client.sys.init({ passphrase: PASS, shares: 5, threshold: 3 });
      shares = r.shares;
      expect(shares).toHaveLength(5);
      expect(new Set(shares).size).toBe(5);
      expect(await codeOf(s.client.sys.init({ passphrase: PASS, shares: 5, threshold: 3 }))).toEqual({ status: 409, code: 'PAL_SEAL_ALREADY_INITIALIZED' });
      expect((await s.client.sys.sealStatus()).state).toBe('unsealed');
      keyId = (await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM' })).key_id;
      ct = await s.client.kms.encrypt(keyId, 'before the seal', { t: 1 });
    });

    it('seal closes every data route; a wrong passphrase does not open it; the right one does', async () => {
      expect((await s.client.sys.seal()).state).toBe('sealed');
      expect(await codeOf(s.client.kms.decrypt(keyId, ct, { t: 1 }))).toEqual({ status: 503, code: 'PAL_SEAL_SEALED' });
      expect(await codeOf(s.client.sys.seal())).toEqual({ status: 503, code: 'PAL_SEAL_SEALED' });
      expect(JSON.parse((await s.client.transport.raw('GET', '/readyz', undefined, {})).body.toString()).checks.seal).toMatch(/^sealed/);
      expect(await codeOf(s.client.sys.unseal({ passphrase: `${PASS}!` }))).toEqual({ status: 400, code: 'PAL_SEAL_UNSEAL_FAILED' });
      expect((await s.client.sys.unseal({ passphrase: PASS })).state).toBe('unsealed');
      expect((await s.client.kms.decrypt(keyId, ct, { t: 1 })).toString()).toBe('before the seal');
    });

    it('every 3 of the 5 shares unseal, given one at a time; every 2 do not', async () => {
      for (const three of subsets(shares, 3)) {
        await s.client.sys.seal();
        expect(await s.client.sys.unseal({ shares: [three[0]!] })).toMatchObject({ state: 'sealed', recovery: { threshold: 3, submitted: 1 } });
        expect(await s.client.sys.unseal({ shares: [three[1]!] })).toMatchObject({ state: 'sealed', recovery: { submitted: 2 } });
        expect((await s.client.sys.unseal({ shares: [three[2]!] })).state).toBe('unsealed');
      }
      await s.client.sys.seal();
      for (const two of subsets(shares, 2)) {
        expect(await s.client.sys.unseal({ shares: two, reset: true })).toMatchObject({ state: 'sealed', recovery: { submitted: 2 } });
      }
      await s.client.sys.unseal({ reset: true });
    });

    it('a corrupted share is refused on its own and not counted', async () => {
      const i = shares[0]!.length - 3;
      const bad = shares[0]!.slice(0, i) + (shares[0]![i] === 'a' ? 'b' : 'a') + shares[0]!.slice(i + 1);
      expect(bad).not.toBe(shares[0]);
      expect(await codeOf(s.client.sys.unseal({ shares: [bad] }))).toEqual({ status: 400, code: 'PAL_SEAL_SHARE_INVALID' });
      expect((await s.client.sys.sealStatus()).recovery?.submitted).toBe(0);
      expect((await s.client.sys.unseal({ shares: shares.slice(2) })).state).toBe('unsealed');
    });

    it('restart: starts sealed, and what was encrypted before decrypts after unsealing', async () => {
      await s.restart();
      expect((await s.client.sys.sealStatus()).state).toBe('sealed');
      await s.client.sys.unseal({ passphrase: PASS });
      expect((await s.client.kms.decrypt(keyId, ct, { t: 1 })).toString()).toBe('before the seal');
    });

    it('rekey with 3 shares: new shares and passphrase work, the old ones no longer do', async () => {
      const two = await s.client.sys.rekey({ shares: shares.slice(0, 2), new_passphrase: 'a brand new passphrase', new_shares: 3, new_threshold: 2 }).catch((e: unknown) => e);
      expect(two).toMatchObject({ status: 400, problem: { code: 'PAL_SEAL_SHARE_INVALID' } });
      const r = await s.client.sys.rekey({ shares: shares.slice(1, 4), new_passphrase: 'a brand new passphrase', new_shares: 3, new_threshold: 2 });
      expect(r.shares).toHaveLength(3);
      await s.client.sys.seal();
      expect(await codeOf(s.client.sys.unseal({ passphrase: PASS }))).toEqual({ status: 400, code: 'PAL_SEAL_UNSEAL_FAILED' });
      expect(await codeOf(s.client.sys.unseal({ shares: shares.slice(0, 3) }))).toEqual({ status: 400, code: 'PAL_SEAL_UNSEAL_FAILED' });
      expect((await s.client.sys.unseal({ shares: r.shares.slice(1) })).state).toBe('unsealed');
      await s.client.sys.seal();
      expect((await s.client.sys.unseal({ passphrase: 'a brand new passphrase' })).state).toBe('unsealed');
    });

    it('every seal operation is in the audit log, which verifies; no key material is stored in clear', async () => {
      const types = (await s.client.audit.query({ type: 'seal.*', limit: 500 })).events.map((e) => e.type);
      for (const t of ['seal.init', 'seal.unseal', 'seal.seal', 'seal.rekey']) expect(types).toContain(t);
      expect(await s.rt.ledger.verify()).toMatchObject({ ok: true });
      const dump = await allTables(s.rt.storage);
      const materials = await kmsMaterials(s.rt.storage, s.rt.seal);
      expect(materials.length).toBeGreaterThan(0);
      for (const m of materials) for (const needle of [m.toString('hex'), m.toString('base64'), m.toString('latin1')]) expect(dump.includes(needle)).toBe(false);
      expect(dump.includes(PASS)).toBe(false);
      expect(dump.includes('a brand new passphrase')).toBe(false);
    });
  });
});

describe.each(dialects())('root key rotation ($name)', ({ name, available }) => {
  describe.skipIf(!available)('', () => {
    it('file seal: approved by a second principal, the new root wraps the keyring and the system KEKs; data stays readable across a restart', async () => {
      const s = await startServer(name);
      try {
        const k = await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', classification: 'restricted' });
        const ct = await s.client.kms.encrypt(k.key_id, 'under the old root');
        const before = readFileSync(join(s.dataDir, 'seal.key'), 'utf8');
        const request = await s.client.sys.rotateRoot();
        expect(await codeOf(s.client.approvals.approve(request.id))).toEqual({ status: 403, code: 'PAL_APPROVAL_SELF' });
        const custodian = s.clientWith((await s.client.createApiKey({ name: 'custodian', permissions: ['approvals:requests:decide', 'sys:seal:rotate-root'] })).token);
        const done = await custodian.approvals.approve(request.id, 'yearly ceremony');
        expect(done.result).toMatchObject({ rewrapped: 3 });
        const { from, to } = done.result as { from: string; to: string };
        expect(to).not.toBe(from);
        expect(readFileSync(join(s.dataDir, 'seal.key'), 'utf8')).not.toBe(before);
        expect(existsSync(join(s.dataDir, 'seal.key.next'))).toBe(false);
        s.rt.kms.forgetAll();
        expect((await s.client.kms.decrypt(k.key_id, ct)).toString()).toBe('under the old root');
        await s.restart();
        expect((await s.client.kms.decrypt(k.key_id, ct)).toString()).toBe('under the old root');
        expect((await s.client.audit.query({ type: 'seal.rotate_root' })).events[0]).toMatchObject({ outcome: 'success', details: { from, to, rewrapped: 3 } });
        expect(await s.rt.ledger.verify()).toMatchObject({ ok: true });
      } finally {
        await s.close();
      }
    });

    it('passphrase seal: rekey --rotate-root replaces the root; the new passphrase opens it after a restart', async () => {
      const s = await startServer(name, { seal: 'passphrase' });
      try {
        const { shares } = await s.client.sys.init({ passphrase: PASS, shares: 3, threshold: 2 });
        const k = await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM' });
        const ct = await s.client.kms.encrypt(k.key_id, 'ceremony');
        expect(await codeOf(s.client.sys.rotateRoot())).toEqual({ status: 400, code: 'PAL_VALIDATION_FAILED' });
        const fresh = await s.client.sys.rekey({ shares: shares.slice(0, 2), new_passphrase: 'the passphrase of next year', new_shares: 3, new_threshold: 2, rotate_root: true });
        await s.restart();
        expect(await codeOf(s.client.sys.unseal({ shares: shares.slice(0, 2) }))).toEqual({ status: 400, code: 'PAL_SEAL_UNSEAL_FAILED' });
        expect((await s.client.sys.unseal({ shares: fresh.shares.slice(1) })).state).toBe('unsealed');
        expect((await s.client.kms.decrypt(k.key_id, ct)).toString()).toBe('ceremony');
      } finally {
        await s.close();
      }
    });
  });
});
