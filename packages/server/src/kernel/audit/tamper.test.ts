import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { leafHash, randomBytes, rootFromLeafHashes, verifyConsistency, verifyInclusion } from '@palisade/core';
import { openStorage, type Storage } from '../../storage/database.js';
import { Barrier } from '../seal/barrier.js';
import { AuditLedger } from './ledger.js';

const N = 1100; // past 4 stored subtrees of 256 leaves, and a ragged right edge

describe('audit ledger: proofs and tamper detection', () => {
  let dir: string;
  let storage: Storage;
  let ledger: AuditLedger;
  let pristine: Array<Record<string, unknown>>;
  const ev = (i: number) => ({ type: 'kms.encrypt', actor: { principal_id: `p${i % 7}` }, outcome: 'success' as const, resource: { type: 'kms_key', id: `key_${i}` }, details: { i } });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'palisade-tamper-'));
    storage = await openStorage({ url: join(dir, 'db.sqlite') });
    const barrier = new Barrier(randomBytes(32));
    ledger = new AuditLedger(storage, () => barrier, { check: () => null }); // synthetic events, outside the catalogue
    for (let i = 0; i < N; i += 100) await storage.transact((tx) => ledger.appendMany(tx, Array.from({ length: 100 }, (_, k) => ev(i + k))));
    pristine = await storage.db.selectFrom('audit_events').selectAll().orderBy('idx').execute();
  });
  afterAll(async () => {
    await storage.close();
    await rm(dir, { recursive: true, force: true });
  });
  // Each test starts from the pristine log.
  beforeEach(async () => {
    await storage.db.deleteFrom('audit_events').execute();
    for (let i = 0; i < pristine.length; i += 200) await storage.db.insertInto('audit_events').values(pristine.slice(i, i + 200) as never).execute();
  });

  it('stores the subtrees of 256 leaves and up, and proves against roots computed independently', async () => {
    const nodes = await storage.db.selectFrom('audit_nodes').select(['level', 'idx']).orderBy('level').orderBy('idx').execute();
    expect(nodes.map((n) => `${n.level}/${n.idx}`)).toEqual(['8/0', '8/1', '8/2', '8/3', '9/0', '9/1', '10/0']);
    const leaves = pristine.map((r) => r.leaf_hash as Buffer);
    for (const size of [1, 2, 255, 256, 257, 700, 1024, 1025, N]) {
      const root = rootFromLeafHashes(leaves.slice(0, size));
      expect((await ledger.tree.root(size)).equals(root)).toBe(true);
      for (const i of [0, 1, size >> 1, size - 1]) {
        if (i >= size) continue;
        const p = await ledger.inclusionProof(i, size);
        expect(verifyInclusion(i, size, p.leaf_hash, p.hashes, root), `${i}/${size}`).toBe(true);
        expect(p.leaf_hash.equals(leafHash(Buffer.from(pristine[i]!.data as string)))).toBe(true);
      }
      for (const from of [1, 3, 256, 511, size]) {
        if (from > size) continue;
        const proof = await ledger.consistencyProof(from, size);
        expect(verifyConsistency(from, size, rootFromLeafHashes(leaves.slice(0, from)), root, proof), `${from}->${size}`).toBe(true);
      }
    }
    await expect(ledger.inclusionProof(N, N)).rejects.toMatchObject({ code: 'PAL_AUDIT_PROOF_RANGE' });
    await expect(ledger.consistencyProof(0, 5)).rejects.toMatchObject({ code: 'PAL_AUDIT_PROOF_RANGE' });
    await expect(ledger.consistencyProof(5, N + 1)).rejects.toMatchObject({ code: 'PAL_AUDIT_PROOF_RANGE' });
  });

  it('answers the same proofs without stored subtrees (logs written before them), rebuilding them from the leaves', async () => {
    const nodes = await storage.db.selectFrom('audit_nodes').selectAll().execute();
    await storage.db.deleteFrom('audit_nodes').execute();
    try {
      const leaves = pristine.map((r) => r.leaf_hash as Buffer);
      const root = rootFromLeafHashes(leaves);
      expect((await ledger.tree.root(N)).equals(root)).toBe(true);
      for (const i of [0, 300, 1099]) {
        const p = await ledger.inclusionProof(i, N);
        expect(verifyInclusion(i, N, p.leaf_hash, p.hashes, root)).toBe(true);
      }
      expect(verifyConsistency(700, N, rootFromLeafHashes(leaves.slice(0, 700)), root, await ledger.consistencyProof(700, N))).toBe(true);
    } finally {
      await storage.db.insertInto('audit_nodes').values(nodes).execute();
    }
  });

  it('verifies the untouched log and reports progress', async () => {
    const seen: number[] = [];
    expect(await ledger.verify((p) => seen.push(p.checked), 500)).toMatchObject({ ok: true, size: N });
    expect(seen).toEqual([500, 1000, N]);
  });

  const set = (idx: number, values: Record<string, unknown>) => storage.db.updateTable('audit_events').set(values).where('idx', '=', idx).execute();

  it('a changed payload is located', async () => {
    await set(613, { data: (pristine[613]!.data as string).replace('"success"', '"failure"') });
    expect(await ledger.verify()).toMatchObject({ ok: false, first_bad_index: 613, reason: 'leaf hash does not match the event data' });
  });

  it('a changed payload with its leaf hash recomputed is located by the entry MAC', async () => {
    const data = (pristine[613]!.data as string).replace('"success"', '"failure"');
    await set(613, { data, leaf_hash: leafHash(Buffer.from(data)) });
    expect(await ledger.verify()).toMatchObject({ ok: false, first_bad_index: 613, reason: 'entry MAC is invalid' });
  });

  it('a deleted entry is located', async () => {
    await storage.db.deleteFrom('audit_events').where('idx', '=', 300).execute();
    expect(await ledger.verify()).toMatchObject({ ok: false, first_bad_index: 300, reason: 'entry 300 is missing' });
  });

  it('two swapped entries (reordering) are located', async () => {
    const [a, b] = [pristine[420]!, pristine[421]!];
    await set(420, { data: b.data, leaf_hash: b.leaf_hash, type: b.type, ts: b.ts });
    await set(421, { data: a.data, leaf_hash: a.leaf_hash, type: a.type, ts: a.ts });
    expect(await ledger.verify()).toMatchObject({ ok: false, first_bad_index: 420 });
  });

  it('an inserted entry (renumbering the rest) is located', async () => {
    // Shift entries 900.. up by one and put a forged event at 900, keeping each row self-consistent.
    for (let i = N - 1; i >= 900; i--) {
      const r = pristine[i]!;
      const data = (r.data as string).replace(`"index":${i}`, `"index":${i + 1}`);
      await storage.db.updateTable('audit_events').set({ idx: i + 1, data, leaf_hash: leafHash(Buffer.from(data)) }).where('idx', '=', i).execute();
    }
    const forged = (pristine[900]!.data as string).replace('"i":900', '"i":-1');
    await storage.db.insertInto('audit_events').values({ ...(pristine[900] as object), data: forged, leaf_hash: leafHash(Buffer.from(forged)) } as never).execute();
    expect(await ledger.verify()).toMatchObject({ ok: false, first_bad_index: 900 });
  });

  it('a truncated tail is detected against the head and the checkpoints', async () => {
    await storage.db.deleteFrom('audit_events').where('idx', '>=', 1000).execute();
    expect(await ledger.verify()).toMatchObject({ ok: false, first_bad_index: 1000 });
  });

  it('a changed type column (what queries filter on) is located', async () => {
    await set(77, { type: 'kms.decrypt' });
    expect(await ledger.verify()).toMatchObject({ ok: false, first_bad_index: 77, reason: 'indexed columns disagree with the event data' });
  });

  it('a forged stored subtree is found', async () => {
    await storage.db.updateTable('audit_nodes').set({ hash: Buffer.alloc(32, 7) }).where('level', '=', 8).where('idx', '=', 2).execute();
    try {
      expect(await ledger.verify()).toMatchObject({ ok: false, reason: 'stored subtree 8/2 does not match the leaves' });
    } finally {
      const leaves = pristine.slice(512, 768).map((r) => r.leaf_hash as Buffer);
      await storage.db.updateTable('audit_nodes').set({ hash: rootFromLeafHashes(leaves) }).where('level', '=', 8).where('idx', '=', 2).execute();
    }
  });

  it('personal fields are encrypted per subject; erasing the subject leaves every proof valid', async () => {
    const [e] = await storage.transact((tx) => ledger.appendMany(tx, [{ ...ev(-1), subject: 'user:alice', personal_fields: { email: 'alice@example.com' } }]));
    expect(JSON.stringify(e)).not.toContain('alice@example.com');
    expect(await ledger.personal(e!.index)).toEqual({ email: 'alice@example.com' });
    const size = await ledger.size();
    const before = await ledger.tree.root(size);
    await storage.transact((tx) => ledger.subjects.erase(tx, 'user:alice', new Date()));
    expect(await ledger.personal(e!.index)).toBeNull();
    expect((await ledger.tree.root(size)).equals(before)).toBe(true);
    const p = await ledger.inclusionProof(e!.index, size);
    expect(verifyInclusion(e!.index, size, p.leaf_hash, p.hashes, before)).toBe(true);
    await expect(storage.transact((tx) => ledger.appendMany(tx, [{ ...ev(-2), subject: 'user:alice', personal_fields: { email: 'x' } }]))).rejects.toMatchObject({ code: 'PAL_AUDIT_SUBJECT_ERASED' });
    pristine = await storage.db.selectFrom('audit_events').selectAll().orderBy('idx').execute();
    expect((await ledger.verify()).ok).toBe(true);
  });
});
