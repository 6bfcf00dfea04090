import { CompactRange, constantTimeEqual, leafHash } from '@palisade/core';
import type { Executor } from '../../storage/database.js';
import type { Barrier } from '../seal/barrier.js';
import { STORED_LEVEL } from './tree-store.js';
import { retentionDays, type RetentionConfig } from './retention.js';

/** Bytes the per-entry MAC covers: the tree size (8 bytes, big-endian) and its root. */
export function headBytes(size: number, root: Uint8Array): Buffer {
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
  | { ok: true; size: number; root: string; purged: number; checkpoints: number }
  | { ok: false; size: number; first_bad_index: number; reason: string };

export interface VerifyOptions {
  onProgress?: (p: VerifyProgress) => void;
  /** Rows read per query. */
  batch?: number;
  /** Roots and MACs are compared every `sample` entries; a disagreement is then located entry by entry. */
  sample?: number;
  /** When given, a payload purged before its retention period ended is reported (someone with database access hid it). */
  retention?: RetentionConfig;
}

interface Row {
  idx: number;
  ts: string;
  type: string;
  data: string;
  leaf_hash: Buffer;
  tree_root: Buffer;
  mac: Buffer;
  purged_at: string | null;
}

/**
 * Recompute the log from storage: every leaf from its event, the tree from the leaves, the stored subtrees, the roots
 * and their MACs (keyed from the seal, so a party with only the database cannot forge them), the signed checkpoints'
 * roots, the dense index sequence and the head. Names the first index where anything disagrees.
 *
 * Cost: one SHA-256 per entry plus one node hash (amortised); roots and MACs are checked every `sample` entries and at
 * every checkpoint, and only a window that disagrees is re-checked entry by entry to locate the first bad one. A purged
 * entry has no payload: its stored leaf hash stands in, and the roots around it still have to match.
 */
export async function verifyLedger(db: Executor, barrier: Barrier, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const batch = opts.batch ?? 5000;
  const sample = opts.sample ?? 256;
  const headRow = await db.selectFrom('audit_head').select(['size', 'range']).where('id', '=', 1).executeTakeFirst();
  const total = headRow ? Number(headRow.size) : 0;
  const fail = (i: number, reason: string): VerifyResult => ({ ok: false, size: total, first_bad_index: i, reason });
  const checkpoints = new Map((await db.selectFrom('audit_checkpoints').select(['size', 'root']).execute()).map((c) => [Number(c.size), Buffer.from(c.root)]));
  const nodes = new Map((await db.selectFrom('audit_nodes').select(['level', 'idx', 'hash']).execute()).map((n) => [`${n.level}/${Number(n.idx)}`, Buffer.from(n.hash)]));

  const range = new CompactRange();
  let windowStart = 0;
  let windowRange = CompactRange.fromJSON(range.toJSON());
  let expected = 0;
  let purged = 0;

  // The leaf of a row, or a reason it is not what was appended.
  const leafOf = (row: Row): Buffer | string => {
    if (row.purged_at) {
      if (row.data !== '') return 'a purged entry still holds a payload';
      if (opts.retention && Date.parse(row.purged_at) < Date.parse(row.ts) + retentionDays(opts.retention, row.type) * 86_400_000) return 'the payload was removed before its retention period ended';
      return Buffer.from(row.leaf_hash);
    }
    const leaf = leafHash(Buffer.from(row.data, 'utf8'));
    if (!constantTimeEqual(leaf, row.leaf_hash)) return 'leaf hash does not match the event data';
    let e: { index?: unknown; type?: unknown; time?: unknown };
    try {
      e = JSON.parse(row.data) as typeof e;
    } catch {
      return 'event data is not JSON';
    }
    if (e.index !== row.idx || e.type !== row.type || e.time !== row.ts) return 'indexed columns disagree with the event data';
    return leaf;
  };
  const rootOk = (row: Row, root: Buffer): string | null => {
    if (!constantTimeEqual(barrier.auditMac(headBytes(row.idx + 1, row.tree_root)), row.mac)) return 'tree head MAC is invalid';
    if (!constantTimeEqual(root, row.tree_root)) return 'tree root does not match the recomputed tree';
    const cp = checkpoints.get(row.idx + 1);
    if (cp && !constantTimeEqual(cp, root)) return `the signed checkpoint of size ${row.idx + 1} has another root`;
    return null;
  };
  const readRows = async (from: number, to: number): Promise<Row[]> =>
    (await db.selectFrom('audit_events').selectAll().where('idx', '>=', from).where('idx', '<', to).orderBy('idx').execute()).map((r) => ({ ...r, idx: Number(r.idx) }));
  // Entry by entry from the last good sample point: the first row whose MAC or root disagrees.
  const locate = async (end: number, fallback: string): Promise<VerifyResult> => {
    const r = CompactRange.fromJSON(windowRange.toJSON());
    for (const row of await readRows(windowStart, end)) {
      const leaf = leafOf(row);
      if (typeof leaf === 'string') return fail(row.idx, leaf);
      r.append(leaf);
      const bad = rootOk(row, r.root());
      if (bad) return fail(row.idx, bad);
    }
    return fail(end - 1, fallback);
  };

  for (;;) {
    const rows = await readRows(expected, expected + batch);
    if (rows.length === 0) {
      const next = await db.selectFrom('audit_events').select('idx').where('idx', '>=', expected).orderBy('idx').limit(1).executeTakeFirst();
      if (next) return fail(expected, `entry ${expected} is missing`);
      break;
    }
    for (const row of rows) {
      if (row.idx !== expected) return fail(expected, `entry ${expected} is missing`);
      const leaf = leafOf(row);
      if (typeof leaf === 'string') return fail(row.idx, leaf);
      if (row.purged_at) purged++;
      let badNode: string | null = null;
      range.append(leaf, (level, idx, hash) => {
        const stored = level >= STORED_LEVEL ? nodes.get(`${level}/${idx}`) : undefined;
        if (stored && !constantTimeEqual(stored, hash)) badNode ??= `stored subtree ${level}/${idx} does not match the leaves`;
      });
      const size = row.idx + 1;
      if (size % sample === 0 || size === total || checkpoints.has(size) || badNode) {
        const bad = rootOk(row, range.root());
        if (bad || badNode) return locate(size, bad ?? badNode!);
        windowStart = size;
        windowRange = CompactRange.fromJSON(range.toJSON());
      }
      expected++;
    }
    opts.onProgress?.({ checked: expected, total });
  }
  if (expected !== total) return fail(Math.min(expected, total), `log holds ${expected} entries but the head says ${total}`);
  const latest = Math.max(0, ...checkpoints.keys());
  if (latest > total) return fail(total, `a signed checkpoint covers ${latest} entries but the log holds ${total}: entries were removed`);
  if (headRow && !constantTimeEqual(CompactRange.fromJSON(JSON.parse(headRow.range)).root(), range.root())) return fail(total - 1, 'the stored head disagrees with the log');
  return { ok: true, size: total, root: range.root().toString('hex'), purged, checkpoints: checkpoints.size };
}
