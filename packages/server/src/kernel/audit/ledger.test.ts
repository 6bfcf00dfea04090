import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CompactRange, leafHash, randomBytes } from '@palisade/core';
import { openStorage, type Storage } from '../../storage/database.js';
import { Barrier } from '../seal/barrier.js';
import { AuditLedger } from './ledger.js';

describe('audit ledger', () => {
  let dir: string;
  let storage: Storage;
  let ledger: AuditLedger;
  let barrierRef: Barrier;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'palisade-ledger-'));
    storage = await openStorage({ url: join(dir, 'db.sqlite') });
    const barrier = new Barrier(randomBytes(32));
    barrierRef = barrier;
    ledger = new AuditLedger(storage, () => barrier, { check: () => null }); // synthetic events, outside the catalogue
    for (let i = 0; i < 40; i++) await ledger.appendStandalone({ type: 'test.event', actor: { principal_id: 'tester' }, outcome: 'success', details: { i } });
  });
  afterAll(async () => {
    await storage.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('stores an RFC 9162 tree: every leaf, and every 256th row the root of the tree up to it', async () => {
    const rows = await storage.db.selectFrom('audit_events').selectAll().orderBy('idx').execute();
    const range = new CompactRange();
    for (const r of rows) {
      expect(Buffer.compare(leafHash(Buffer.from(r.data)), r.leaf_hash)).toBe(0);
      range.append(r.leaf_hash);
      expect(r.tree_root.length).toBe(range.size % 256 === 0 ? 32 : 0);
    }
    expect(await ledger.verify()).toMatchObject({ ok: true, size: 40 });
  });

  it('reports progress', async () => {
    const seen: number[] = [];
    await ledger.verify((p) => seen.push(p.checked), 16);
    expect(seen).toEqual([16, 32, 40]);
  });

  it('an attacker with only the database who rewrites an entry and recomputes its leaf is caught by the entry MAC', async () => {
    const rows = await storage.db.selectFrom('audit_events').selectAll().orderBy('idx').execute();
    const target = 25;
    const forged = rows[target]!.data.replace('"outcome":"success"', '"outcome":"failure"');
    await storage.db.updateTable('audit_events').set({ data: forged, leaf_hash: leafHash(Buffer.from(forged)) }).where('idx', '=', target).execute();
    expect(await ledger.verify()).toEqual({ ok: false, size: 40, first_bad_index: target, reason: 'entry MAC is invalid' });
    await storage.db.updateTable('audit_events').set({ data: rows[target]!.data, leaf_hash: rows[target]!.leaf_hash }).where('idx', '=', target).execute();
    expect((await ledger.verify()).ok).toBe(true);
  });

  it('still verifies rows written before entry MACs (a root and a MAC of (size, root) on every row), and locates a change in them', async () => {
    const rows = await storage.db.selectFrom('audit_events').selectAll().orderBy('idx').execute();
    const range = new CompactRange();
    const legacy = (size: number, root: Buffer) => barrierRef.auditMac(Buffer.concat([Buffer.from(BigInt(size).toString(16).padStart(16, '0'), 'hex'), root]));
    for (const r of rows) {
      range.append(r.leaf_hash);
      await storage.db.updateTable('audit_events').set({ tree_root: range.root(), mac: legacy(r.idx + 1, range.root()) }).where('idx', '=', r.idx).execute();
    }
    expect(await ledger.verify()).toMatchObject({ ok: true, size: 40 });
    const forged = rows[30]!.data.replace('"outcome":"success"', '"outcome":"failure"');
    await storage.db.updateTable('audit_events').set({ data: forged, leaf_hash: leafHash(Buffer.from(forged)) }).where('idx', '=', 30).execute();
    expect(await ledger.verify()).toMatchObject({ ok: false, first_bad_index: 30, reason: 'tree root does not match the recomputed tree' });
  });
});
