import { canonicalJson, CompactRange, constantTimeEqual, leafHash, PalisadeError, type AuditEventPage, type AuditQuery } from '@palisade/core';
import type { Executor, Storage, Tx } from '../../storage/database.js';
import type { Barrier } from '../seal/barrier.js';
import type { AuditEvent, AuditEventInput } from './events.js';

/** Bytes the head MAC covers: the tree size (8 bytes, big-endian) and its root. */
function headBytes(size: number, root: Uint8Array): Buffer {
  const b = Buffer.alloc(8 + root.length);
  b.writeBigUInt64BE(BigInt(size));
  Buffer.from(root).copy(b, 8);
  return b;
}

export interface VerifyProgress {
  checked: number;
  total: number;
}

export type VerifyResult =
  | { ok: true; size: number; root: string }
  | { ok: false; size: number; first_bad_index: number; reason: string };

/**
 * The append-only audit log: each event is a leaf of an RFC 9162 Merkle tree, appended in the caller's
 * transaction, so a state change and its audit event commit together or not at all. Each row stores the tree
 * root after it and a MAC of (size, root) keyed from the seal.
 */
export class AuditLedger {
  constructor(
    private readonly storage: Storage,
    private readonly barrier: () => Barrier,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  /** Append inside an open transaction. Any failure throws PAL_AUDIT_WRITE_FAILED, which must roll the transaction back. */
  async append(tx: Tx, input: AuditEventInput): Promise<AuditEvent> {
    try {
      let q = tx.selectFrom('audit_head').selectAll().where('id', '=', 1);
      if (this.storage.rowLocks) q = q.forUpdate();
      const head = await q.executeTakeFirst();
      const range = head ? CompactRange.fromJSON(JSON.parse(head.range)) : new CompactRange();
      const index = head ? Number(head.size) : 0;
      const event: AuditEvent = { index, time: this.clock().toISOString(), ...input };
      const data = canonicalJson(event);
      const leaf = leafHash(Buffer.from(data, 'utf8'));
      range.append(leaf);
      const root = range.root();
      const mac = this.barrier().auditMac(headBytes(index + 1, root));
      await tx.insertInto('audit_events').values({ idx: index, ts: event.time, type: event.type, data, leaf_hash: leaf, tree_root: root, mac }).execute();
      const rangeJson = JSON.stringify(range.toJSON());
      if (head) await tx.updateTable('audit_head').set({ size: index + 1, range: rangeJson }).where('id', '=', 1).execute();
      else await tx.insertInto('audit_head').values({ id: 1, size: 1, range: rangeJson }).execute();
      return event;
    } catch (e) {
      if (e instanceof PalisadeError && e.code === 'PAL_AUDIT_WRITE_FAILED') throw e;
      throw new PalisadeError('PAL_AUDIT_WRITE_FAILED', undefined, { cause: e });
    }
  }

  /** Append in a transaction of its own (for outcomes recorded after the main transaction rolled back). */
  async appendStandalone(input: AuditEventInput): Promise<AuditEvent> {
    return this.storage.transact((tx) => this.append(tx, input));
  }

  async size(db: Executor = this.storage.db): Promise<number> {
    const head = await db.selectFrom('audit_head').select('size').where('id', '=', 1).executeTakeFirst();
    return head ? Number(head.size) : 0;
  }

  async get(index: number): Promise<AuditEvent | undefined> {
    const row = await this.storage.db.selectFrom('audit_events').select('data').where('idx', '=', index).executeTakeFirst();
    return row ? (JSON.parse(row.data) as AuditEvent) : undefined;
  }

  /**
   * Events matching `q`, newest first by default. Type, time and cursor narrow the SQL scan; the other fields are
   * matched on the decoded events. One page reads at most `scanBudget` rows, so a rare match costs bounded work per
   * request: the answer then carries a cursor to continue from, possibly with fewer events than asked for.
   */
  async query(q: AuditQuery, scanBudget = 10_000, db: Executor = this.storage.db): Promise<AuditEventPage> {
    const limit = q.limit ?? 100;
    const desc = (q.order ?? 'desc') === 'desc';
    const prefix = q.type?.endsWith('*') ? q.type.slice(0, -1) : null;
    const want = (e: AuditEvent) =>
      (prefix === null || e.type.startsWith(prefix)) &&
      (!q.outcome || e.outcome === q.outcome) &&
      (!q.principal || e.actor.principal_id === q.principal) &&
      (!q.action || e.action === q.action) &&
      (!q.resource || e.resource?.id === q.resource) &&
      (!q.request_id || e.request_id === q.request_id);
    const events: AuditEvent[] = [];
    let cursor = q.cursor === undefined ? null : Number(q.cursor);
    let scanned = 0;
    for (;;) {
      const batch = Math.min(500, scanBudget - scanned);
      let sel = db.selectFrom('audit_events').select(['idx', 'data']);
      if (prefix !== null) sel = sel.where('type', 'like', `${prefix}%`); // '_' may match any character here: want() checks the prefix
      else if (q.type) sel = sel.where('type', '=', q.type);
      if (q.since) sel = sel.where('ts', '>=', new Date(q.since).toISOString());
      if (q.until) sel = sel.where('ts', '<', new Date(q.until).toISOString());
      if (cursor !== null) sel = sel.where('idx', desc ? '<' : '>', cursor);
      const rows = await sel.orderBy('idx', desc ? 'desc' : 'asc').limit(batch).execute();
      for (const row of rows) {
        scanned++;
        cursor = Number(row.idx);
        const e = JSON.parse(row.data) as AuditEvent;
        if (want(e)) events.push(e);
        if (events.length === limit) return { events, next_cursor: String(cursor) };
      }
      if (rows.length < batch) return { events, next_cursor: null };
      if (scanned >= scanBudget) return { events, next_cursor: String(cursor) };
    }
  }

  /** Writable = a transaction can lock and read the head (used by /readyz; writes nothing). */
  async checkWritable(): Promise<void> {
    await this.storage.transact(async (tx) => {
      let q = tx.selectFrom('audit_head').select('size').where('id', '=', 1);
      if (this.storage.rowLocks) q = q.forUpdate();
      await q.executeTakeFirst();
    });
    this.barrier();
  }

  /**
   * Recompute the whole log from storage: every leaf from its data, every root from the leaves, every MAC, the
   * dense index sequence and the head. Names the first index where anything disagrees.
   */
  async verify(onProgress?: (p: VerifyProgress) => void, batch = 2000): Promise<VerifyResult> {
    const db = this.storage.db;
    const total = await this.size();
    const range = new CompactRange();
    const barrier = this.barrier();
    let expected = 0;
    const fail = (i: number, reason: string): VerifyResult => ({ ok: false, size: total, first_bad_index: i, reason });
    for (;;) {
      const rows = await db.selectFrom('audit_events').selectAll().where('idx', '>=', expected).orderBy('idx').limit(batch).execute();
      if (rows.length === 0) break;
      for (const row of rows) {
        const idx = Number(row.idx);
        if (idx !== expected) return fail(expected, `entry ${expected} is missing`);
        let parsed: AuditEvent;
        try {
          parsed = JSON.parse(row.data) as AuditEvent;
        } catch {
          return fail(idx, 'event data is not JSON');
        }
        if (parsed.index !== idx || parsed.type !== row.type || parsed.time !== row.ts) return fail(idx, 'indexed columns disagree with the event data');
        const leaf = leafHash(Buffer.from(row.data, 'utf8'));
        if (!constantTimeEqual(leaf, row.leaf_hash)) return fail(idx, 'leaf hash does not match the event data');
        range.append(leaf);
        const root = range.root();
        if (!constantTimeEqual(root, row.tree_root)) return fail(idx, 'tree root does not match the recomputed tree');
        if (!constantTimeEqual(barrier.auditMac(headBytes(idx + 1, root)), row.mac)) return fail(idx, 'tree head MAC is invalid');
        expected++;
      }
      onProgress?.({ checked: expected, total });
    }
    if (expected !== total) return fail(expected, `log holds ${expected} entries but the head says ${total}`);
    return { ok: true, size: total, root: range.root().toString('hex') };
  }
}
