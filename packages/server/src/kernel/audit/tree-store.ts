import { consistencyRanges, foldSubtrees, inclusionRanges, perfectSubtrees, PalisadeError, rootFromLeafHashes, type LeafRange } from '@palisade/core';
import type { Executor } from '../../storage/database.js';

/** Perfect subtrees from this level up are stored in `audit_nodes` (one row per 256 leaves, amortised). */
export const STORED_LEVEL = 8;

/**
 * Proofs from storage. A proof names O(log n) leaf ranges; each splits into aligned perfect subtrees (RFC 9162 splits at
 * powers of two), which are read from `audit_nodes` when they are at least 2^STORED_LEVEL leaves and hashed from the
 * leaves otherwise (at most 255 leaves per range). A missing stored node (logs written before migration 0006) is
 * rebuilt from its children, so every proof is answerable, just slower for old entries.
 */
export class TreeStore {
  constructor(private readonly db: () => Executor) {}

  async inclusionProof(index: number, size: number): Promise<Buffer[]> {
    return this.#hashes(inclusionRanges(index, size));
  }

  async consistencyProof(from: number, to: number): Promise<Buffer[]> {
    return this.#hashes(consistencyRanges(from, to));
  }

  /** Root of the tree of `size` leaves (size >= 1), from the stored subtrees. */
  async root(size: number): Promise<Buffer> {
    return (await this.#hashes([[0, size]]))[0]!;
  }

  async #hashes(ranges: LeafRange[]): Promise<Buffer[]> {
    const out: Buffer[] = [];
    for (const [a, b] of ranges) out.push(foldSubtrees(await Promise.all(perfectSubtrees(a, b).map(([level, idx]) => this.#subtree(level, idx)))));
    return out;
  }

  async #subtree(level: number, idx: number): Promise<Buffer> {
    if (level < STORED_LEVEL) return rootFromLeafHashes(await this.#leaves(idx * 2 ** level, (idx + 1) * 2 ** level));
    const row = await this.db().selectFrom('audit_nodes').select('hash').where('level', '=', level).where('idx', '=', idx).executeTakeFirst();
    if (row) return Buffer.from(row.hash);
    const [l, r] = await Promise.all([this.#subtree(level - 1, idx * 2), this.#subtree(level - 1, idx * 2 + 1)]);
    return foldSubtrees([l, r]);
  }

  async #leaves(start: number, end: number): Promise<Buffer[]> {
    const rows = await this.db().selectFrom('audit_events').select(['idx', 'leaf_hash']).where('idx', '>=', start).where('idx', '<', end).orderBy('idx').execute();
    if (rows.length !== end - start || rows.some((r, i) => Number(r.idx) !== start + i)) {
      throw new PalisadeError('PAL_INTERNAL', `audit log entries ${start}..${end - 1} are not all present`);
    }
    return rows.map((r) => Buffer.from(r.leaf_hash));
  }
}
