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
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'palisade-ledger-'));
    storage = await openStorage({ url: join(dir, 'db.sqlite') });
    const barrier = new Barrier(randomBytes(32));
    ledger = new AuditLedger(storage, () => barrier, { check: () => null }); // synthetic events, outside the catalogue
    for (let i = 0; i < 40; i++) await ledger.appendStandalone({ type: 'test.event', actor: { principal_id: 'tester' }, outcome: 'success', details: { i } });
  });
  afterAll(async () => {
    await storage.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('stores an RFC 9162 tree: each row holds the root of the tree up to it', async () => {
    const rows = await storage.db.selectFrom('audit_events').selectAll().orderBy('idx').execute();
    const range = new CompactRange();
    for (const r of rows) {
      expect(Buffer.compare(leafHash(Buffer.from(r.data)), r.leaf_hash)).toBe(0);
      range.append(r.leaf_hash);
      expect(Buffer.compare(range.root(), r.tree_root)).toBe(0);
    }
    expect(await ledger.verify()).toMatchObject({ ok: true, size: 40 });
  });

  it('reports progress', async () => {
    const seen: number[] = [];
    await ledger.verify((p) => seen.push(p.checked), 16);
    expect(seen).toEqual([16, 32, 40]);
  });

  it('an attacker with only the database who rewrites an entry and recomputes every hash is caught by the head MAC', async () => {
    const rows = await storage.db.selectFrom('audit_events').selectAll().orderBy('idx').execute();
    const target = 25;
    const forged = rows[target]!.data.replace('"outcome":"success"', '"outcome":"failure"');
    const range = new CompactRange();
    for (const r of rows) {
      const data = r.idx === target ? forged : r.data;
      const leaf = leafHash(Buffer.from(data));
      range.append(leaf);
      if (r.idx >= target) await storage.db.updateTable('audit_events').set({ data, leaf_hash: leaf, tree_root: range.root() }).where('idx', '=', r.idx).execute();
    }
    expect(await ledger.verify()).toEqual({ ok: false, size: 40, first_bad_index: target, reason: 'tree head MAC is invalid' });
    for (const r of rows.slice(target)) await storage.db.updateTable('audit_events').set({ data: r.data, leaf_hash: r.leaf_hash, tree_root: r.tree_root }).where('idx', '=', r.idx).execute();
    expect((await ledger.verify()).ok).toBe(true);
  });
});
