import { CompactRange, constantTimeEqual, leafHash } from '@palisade/core';
import type { Executor } from '../../storage/database.js';
import type { AuditEventTable } from '../../storage/schema.js';
import type { Barrier } from '../seal/barrier.js';
import { STORED_LEVEL } from './tree-store.js';
import { retentionDays, type RetentionConfig } from './retention.js';

/** Rows carry the tree root after them every ROOT_EVERY entries (and an empty root otherwise). */
export const ROOT_EVERY = 256;
export const NO_ROOT: Buffer = Buffer.alloc(0);

/**
 * Bytes an entry's MAC covers: a format byte, the index, the leaf hash, and the tree root after the entry when the
 * row stores one. The MAC is keyed from the seal: a party with only the database can neither forge nor move it.
 */
export function entryMacBytes(index: number, leaf: Uint8Array, root: Uint8Array): Buffer {
  const b = Buffer.alloc(1 + 8 + leaf.length + root.length);
  b[0] = 0x02;
  b.writeBigUInt64BE(BigInt(index), 1);
  Buffer.from(leaf).copy(b, 9);
  Buffer.from(root).copy(b, 9 + leaf.length);
  return b;
}

/** Rows written before entry MACs: the MAC covered (size, root after the entry), and every row stored its root. */
function legacyMacBytes(size: number, root: Uint8Array): Buffer {
  const b = Buffer.alloc(8 + root.length);
  b.writeBigUInt64BE(BigInt(size));
  Buffer.from(root).copy(b, 8);
  return b;
}

/**
 * Bytes a purge's MAC covers, written while the payload still hashed to the leaf: the index, the leaf, and the
 * columns retention decides on. Without it, anyone with database access could blank any event as "purged".
 */
export function purgeMacBytes(index: number, leaf: Uint8Array, ts: string, type: string, purgedAt: string): Buffer {
  const b = Buffer.alloc(1 + 8);
  b[0] = 0x03;
  b.writeBigUInt64BE(BigInt(index), 1);
  return Buffer.concat([b, leaf, Buffer.from(JSON.stringify([ts, type, purgedAt]), 'utf8')]);
}

/**
 * The leaf of a row, or a reason it is not what was appended. The canonical JSON of an event ends with its time and
 * type (the last keys in order), so the columns queries filter on are checked without parsing the event. A purged row
 * stands on its stored leaf, its purge MAC and, given the retention settings, its retention period.
 */
function rowLeaf(row: Row, barrier: Barrier, retention?: RetentionConfig): Buffer | string {
  if (row.purged_at) {
    if (row.data !== '') return 'a purged entry still holds a payload';
    if (!row.purge_mac || !constantTimeEqual(barrier.auditMac(purgeMacBytes(row.idx, row.leaf_hash, row.ts, row.type, row.purged_at)), row.purge_mac)) return 'the payload was removed without a valid purge record';
    if (retention && Date.parse(row.purged_at) < Date.parse(row.ts) + retentionDays(retention, row.type) * 86_400_000) return 'the payload was removed before its retention period ended';
    return row.leaf_hash;
  }
  const leaf = leafHash(Buffer.from(row.data, 'utf8'));
  if (!constantTimeEqual(leaf, row.leaf_hash)) return 'leaf hash does not match the event data';
  if (!row.data.endsWith(`,"time":${JSON.stringify(row.ts)},"type":${JSON.stringify(row.type)}}`)) return 'indexed columns disagree with the event data';
  return leaf;
}

/** The row's MAC (either format) and, when it stores one, its root against the recomputed one. */
function rowEntryOk(row: Row, leaf: Buffer, root: () => Buffer, barrier: Barrier): string | null {
  const macOk =
    constantTimeEqual(barrier.auditMac(entryMacBytes(row.idx, leaf, row.tree_root)), row.mac) ||
    (row.tree_root.length > 0 && constantTimeEqual(barrier.auditMac(legacyMacBytes(row.idx + 1, row.tree_root)), row.mac));
  if (!macOk) return 'entry MAC is invalid';
  if (row.tree_root.length > 0 && !constantTimeEqual(root(), row.tree_root)) return 'tree root does not match the recomputed tree';
  return null;
}

/**
 * Check entries [from, to) one by one (leaf, entry MAC, stored roots) on top of `frontier`, the tree of the first
 * `from` entries, and extend it. The checkpointer runs this over what it is about to sign, so a root forged in the
 * database between two checkpoints never gets the log's signature.
 */
export async function verifyEntries(db: Executor, barrier: Barrier, frontier: CompactRange, to: number): Promise<{ ok: true } | { ok: false; index: number; reason: string }> {
  for (let from = frontier.size; from < to; from = frontier.size) {
    const rows = (await db.selectFrom('audit_events').selectAll().where('idx', '>=', from).where('idx', '<', Math.min(to, from + 5000)).orderBy('idx').execute()) as Row[];
    if (rows.length === 0) return { ok: false, index: from, reason: `entry ${from} is missing` };
    for (const raw of rows) {
      const row = { ...raw, idx: Number(raw.idx) };
      if (row.idx !== frontier.size) return { ok: false, index: frontier.size, reason: `entry ${frontier.size} is missing` };
      const leaf = rowLeaf(row, barrier);
      if (typeof leaf === 'string') return { ok: false, index: row.idx, reason: leaf };
      frontier.append(leaf);
      const bad = rowEntryOk(row, leaf, () => frontier.root(), barrier);
      if (bad) return { ok: false, index: row.idx, reason: bad };
    }
  }
  return { ok: true };
}

export interface VerifyProgress {
  checked: number;
  total: number;
}

export type VerifyResult =
  | { ok: true; size: number; root: string; purged: number; checkpoints: number }
  | { ok: false; size: number; first_bad_index: number; reason: string };

export interface VerifyOptions {
  onProgress?: (p: VerifyProgress) => void;
  /** Rows read per query. */
  batch?: number;
  /** When given, a payload purged before its retention period ended is reported (someone with database access hid it). */
  retention?: RetentionConfig;
}

type Row = AuditEventTable;

/**
 * Recompute the log from storage: every leaf from its event, the tree from the leaves, the stored subtrees, the roots
 * and MACs (keyed from the seal, so a party with only the database cannot forge them), the signed checkpoints' roots,
 * the dense index sequence and the head. Names the first index where anything disagrees.
 *
 * Cost: one SHA-256 per entry plus one node hash (amortised). The stored roots and their MACs are checked every
 * ROOT_EVERY entries and the roots at every checkpoint; only a window that disagrees, and the tail after the last
 * stored root, are checked entry by entry (each entry's MAC) to name the first bad one. A purged entry has no payload:
 * its stored leaf hash stands in, and its MAC and the roots around it still have to match.
 */
export async function verifyLedger(db: Executor, barrier: Barrier, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const batch = opts.batch ?? 5000;
  const headRow = await db.selectFrom('audit_head').select(['size', 'range']).where('id', '=', 1).executeTakeFirst();
  const total = headRow ? Number(headRow.size) : 0;
  const fail = (i: number, reason: string): VerifyResult => ({ ok: false, size: total, first_bad_index: i, reason });
  const checkpoints = new Map((await db.selectFrom('audit_checkpoints').select(['size', 'root']).execute()).map((c) => [Number(c.size), Buffer.from(c.root)]));
  const nodes = new Map((await db.selectFrom('audit_nodes').select(['level', 'idx', 'hash']).execute()).map((n) => [`${n.level}/${Number(n.idx)}`, Buffer.from(n.hash)]));

  const range = new CompactRange();
  let windowStart = 0;
  let windowRange = range.clone();
  let expected = 0;
  let purged = 0;

  const leafOf = (row: Row) => rowLeaf(row, barrier, opts.retention);
  const entryOk = (row: Row, leaf: Buffer, root: () => Buffer) => rowEntryOk(row, leaf, root, barrier);
  const readRows = async (from: number, to: number): Promise<Row[]> =>
    db.selectFrom('audit_events').selectAll().where('idx', '>=', from).where('idx', '<', to).orderBy('idx').execute() as Promise<Row[]>;
  // Entry by entry from the last good sample point up to `end`: the first row whose leaf, MAC or root disagrees.
  const locate = async (end: number): Promise<VerifyResult | null> => {
    const r = windowRange.clone();
    for (const row of await readRows(windowStart, end)) {
      const idx = Number(row.idx);
      if (idx !== r.size) return fail(r.size, `entry ${r.size} is missing`);
      const leaf = leafOf(row);
      if (typeof leaf === 'string') return fail(idx, leaf);
      r.append(leaf);
      const bad = entryOk({ ...row, idx }, leaf, () => r.root());
      if (bad) return fail(idx, bad);
      const cp = checkpoints.get(idx + 1);
      if (cp && !constantTimeEqual(cp, r.root())) return fail(idx, `the signed checkpoint of size ${idx + 1} has another root`);
    }
    return null;
  };

  for (;;) {
    const rows = await readRows(expected, expected + batch);
    if (rows.length === 0) {
      const next = await db.selectFrom('audit_events').select('idx').where('idx', '>=', expected).orderBy('idx').limit(1).executeTakeFirst();
      if (next) return fail(expected, `entry ${expected} is missing`);
      break;
    }
    for (const row of rows) {
      const idx = Number(row.idx);
      if (idx !== expected) return fail(expected, `entry ${expected} is missing`);
      const leaf = leafOf(row);
      if (typeof leaf === 'string') return fail(idx, leaf);
      if (row.purged_at) purged++;
      let badNode: string | null = null;
      range.append(leaf, (level, i, hash) => {
        const stored = level >= STORED_LEVEL ? nodes.get(`${level}/${i}`) : undefined;
        if (stored && !constantTimeEqual(stored, hash)) badNode ??= `stored subtree ${level}/${i} does not match the leaves`;
      });
      const size = idx + 1;
      const cp = checkpoints.get(size);
      if (size % ROOT_EVERY === 0 || cp || badNode) {
        const root = range.root();
        const sampled = size % ROOT_EVERY === 0 ? (row.tree_root.length === 0 ? 'the stored tree root is missing' : entryOk({ ...row, idx }, leaf, () => root)) : null;
        const bad = sampled ?? (cp && !constantTimeEqual(cp, root) ? `the signed checkpoint of size ${size} has another root` : null) ?? badNode;
        if (bad) return (await locate(size)) ?? fail(idx, bad);
        if (size % ROOT_EVERY === 0) {
          windowStart = size;
          windowRange = range.clone();
        }
      }
      expected++;
    }
    opts.onProgress?.({ checked: expected, total });
  }
  if (expected !== total) return fail(Math.min(expected, total), `log holds ${expected} entries but the head says ${total}`);
  // The tail after the last stored root has no sampled root to compare: check its entries one by one.
  const tail = await locate(expected);
  if (tail) return tail;
  const latest = Math.max(0, ...checkpoints.keys());
  if (latest > total) return fail(total, `a signed checkpoint covers ${latest} entries but the log holds ${total}: entries were removed`);
  if (headRow && !constantTimeEqual(CompactRange.fromJSON(JSON.parse(headRow.range)).root(), range.root())) return fail(total - 1, 'the stored head disagrees with the log');
  return { ok: true, size: total, root: range.root().toString('hex'), purged, checkpoints: checkpoints.size };
}
