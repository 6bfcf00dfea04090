import { CompactRange, consistencyRanges, foldSubtrees, inclusionRanges, perfectSubtrees, PalisadeError, rootFromLeafHashes, type LeafRange } from '@palisade/core';
import type { Executor } from '../../storage/database.js';

/** Perfect subtrees from this level up are stored in `audit_nodes` (one row per 256 leaves, amortised). */
export const STORED_LEVEL = 8;

type Subtree = readonly [level: number, index: number];

/**
 * Proofs from storage. A proof names O(log n) leaf ranges; each splits into aligned perfect subtrees (RFC 9162 splits at
 * powers of two). Subtrees of at least 2^STORED_LEVEL leaves are read from `audit_nodes` in one query, smaller ones are
 * hashed from their leaf hashes, read in one more query (at most 255 leaves per range). A missing stored node (logs
 * written before migration 0006) is rebuilt from its children, so every proof is answerable, just slower for old entries.
 */
export class TreeStore {
  constructor(private readonly db: () => Executor) {}

  async inclusionProof(index: number, size: number): Promise<Buffer[]> {
    return this.#hashes(inclusionRanges(index, size));
  }

  async consistencyProof(from: number, to: number): Promise<Buffer[]> {
    return this.#hashes(consistencyRanges(from, to));
  }

  /** The compact range (frontier) of the tree of `size` leaves, from the stored subtrees. */
  async frontier(size: number): Promise<CompactRange> {
    const ranges = perfectSubtrees(0, size).map(([level, idx]) => [idx * 2 ** level, (idx + 1) * 2 ** level] as const);
    const hashes = ranges.length > 0 ? await this.#hashes(ranges) : [];
    return CompactRange.fromJSON({ size, hashes: hashes.map((h) => h.toString('base64')) });
  }

  /** Root of the tree of `size` leaves (size >= 1), from the stored subtrees. */
  async root(size: number): Promise<Buffer> {
    return (await this.#hashes([[0, size]]))[0]!;
  }

  async #hashes(ranges: LeafRange[]): Promise<Buffer[]> {
    const parts = ranges.map(([a, b]) => perfectSubtrees(a, b));
    const all = parts.flat();
    const stored = await this.#stored(all.filter(([level]) => level >= STORED_LEVEL));
    const leaves = await this.#leaves(all.filter(([level]) => level < STORED_LEVEL));
    const hashOf = async ([level, idx]: Subtree): Promise<Buffer> => {
      if (level < STORED_LEVEL) return rootFromLeafHashes(leaves(idx * 2 ** level, (idx + 1) * 2 ** level));
      const h = stored.get(`${level}/${idx}`);
      if (h) return h;
      return this.#rebuild(level, idx);
    };
    const out: Buffer[] = [];
    for (const p of parts) out.push(foldSubtrees(await Promise.all(p.map(hashOf))));
    return out;
  }

  // A stored subtree that is missing: rebuilt from its two children (recursively, down to the leaves).
  async #rebuild(level: number, idx: number): Promise<Buffer> {
    const [l, r] = await this.#hashes([
      [idx * 2 * 2 ** (level - 1), (idx * 2 + 1) * 2 ** (level - 1)],
      [(idx * 2 + 1) * 2 ** (level - 1), (idx * 2 + 2) * 2 ** (level - 1)],
    ]);
    return foldSubtrees([l!, r!]);
  }

  async #stored(subtrees: Subtree[]): Promise<Map<string, Buffer>> {
    if (subtrees.length === 0) return new Map();
    const rows = await this.db()
      .selectFrom('audit_nodes')
      .select(['level', 'idx', 'hash'])
      .where((eb) => eb.or(subtrees.map(([level, idx]) => eb.and([eb('level', '=', level), eb('idx', '=', idx)]))))
      .execute();
    return new Map(rows.map((r) => [`${r.level}/${Number(r.idx)}`, Buffer.from(r.hash)]));
  }

  /** The leaf hashes under the given small subtrees, in one query; returns a reader of [start, end). */
  async #leaves(subtrees: Subtree[]): Promise<(start: number, end: number) => Buffer[]> {
    const spans = subtrees.map(([level, idx]) => [idx * 2 ** level, (idx + 1) * 2 ** level] as const);
    const byIndex = new Map<number, Buffer>();
    if (spans.length > 0) {
      const rows = await this.db()
        .selectFrom('audit_events')
        .select(['idx', 'leaf_hash'])
        .where((eb) => eb.or(spans.map(([a, b]) => eb.and([eb('idx', '>=', a), eb('idx', '<', b)]))))
        .execute();
      for (const r of rows) byIndex.set(Number(r.idx), Buffer.from(r.leaf_hash));
    }
    return (start, end) => {
      const out: Buffer[] = [];
      for (let i = start; i < end; i++) {
        const h = byIndex.get(i);
        if (!h) throw new PalisadeError('PAL_INTERNAL', `audit log entry ${i} is missing`);
        out.push(h);
      }
      return out;
    };
  }
}
