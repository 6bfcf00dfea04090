// Merkle Tree Hash (RFC 9162 §2.1.1) and an incremental compact range for append-only logs.
import { HASH_BYTES, emptyRoot, nodeHash } from './hash.js';

/** Largest power of two strictly less than n (n >= 2): the size of the left subtree. */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function checkHash(h: unknown, what: string): asserts h is Uint8Array {
  if (!(h instanceof Uint8Array) || h.length !== HASH_BYTES) throw new TypeError(`${what} must be ${HASH_BYTES} bytes`);
}

function mth(hashes: readonly Uint8Array[], start: number, end: number): Buffer {
  const n = end - start;
  if (n === 1) return Buffer.from(hashes[start]!);
  const k = splitPoint(n);
  return nodeHash(mth(hashes, start, start + k), mth(hashes, start + k, end));
}

/** MTH over already-hashed leaves (32 bytes each); the empty list gives `emptyRoot()`. */
export function rootFromLeafHashes(hashes: readonly Uint8Array[]): Buffer {
  hashes.forEach((h, i) => checkHash(h, `leaf hash ${i}`));
  return hashes.length === 0 ? emptyRoot() : mth(hashes, 0, hashes.length);
}

export interface CompactRangeJSON {
  size: number;
  /** Roots of the perfect subtrees covering [0, size), largest (leftmost) first, standard base64. */
  hashes: string[];
}

function popcount(n: number): number {
  let c = 0;
  for (; n > 0; n = Math.floor(n / 2)) c += n % 2;
  return c;
}

/**
 * The frontier of an append-only Merkle tree (`new CompactRange()` is empty): one perfect-subtree root per set bit
 * of `size`, largest first.
 * `append` and `root` are O(log n) in time and space; `root()` equals `rootFromLeafHashes` of all appended leaves.
 */
export class CompactRange {
  #size = 0;
  #hashes: Buffer[] = [];

  get size(): number {
    return this.#size;
  }

  /**
   * Append one leaf. `onNode` sees each perfect subtree the leaf completes: its level (>= 1), its index at that level
   * (it covers leaves [index * 2^level, (index + 1) * 2^level)) and its hash, so a store can keep them for proofs.
   */
  append(leafHash: Uint8Array, onNode?: (level: number, index: number, hash: Buffer) => void): void {
    checkHash(leafHash, 'leaf hash');
    if (this.#size >= Number.MAX_SAFE_INTEGER) throw new RangeError('tree size limit reached');
    let node: Buffer = Buffer.from(leafHash);
    let level = 0;
    let index = this.#size;
    // Each trailing 1-bit of the old size is a perfect subtree of the new leaf's size: merge it in.
    for (let s = this.#size; s % 2 === 1; s = Math.floor(s / 2)) {
      node = nodeHash(this.#hashes.pop()!, node);
      level++;
      index = Math.floor(index / 2);
      onNode?.(level, index, node);
    }
    this.#hashes.push(node);
    this.#size += 1;
  }

  /** MTH of the first `size` leaves: fold the subtree roots from the right. */
  root(): Buffer {
    const hs = this.#hashes;
    if (hs.length === 0) return emptyRoot();
    let acc = hs[hs.length - 1]!;
    for (let i = hs.length - 2; i >= 0; i--) acc = nodeHash(hs[i]!, acc);
    return Buffer.from(acc);
  }

  /** An independent copy (the hashes are never mutated, so they are shared). */
  clone(): CompactRange {
    const c = new CompactRange();
    c.#size = this.#size;
    c.#hashes = [...this.#hashes];
    return c;
  }

  toJSON(): CompactRangeJSON {
    return { size: this.#size, hashes: this.#hashes.map((h) => h.toString('base64')) };
  }

  /** Inverse of `toJSON`; throws TypeError unless the shape, sizes and canonical base64 all check out. */
  static fromJSON(json: unknown): CompactRange {
    const j = json as Partial<CompactRangeJSON> | null;
    const ok = typeof j === 'object' && j !== null && Number.isSafeInteger(j.size) && j.size! >= 0;
    if (!ok || !Array.isArray(j.hashes)) throw new TypeError('CompactRange JSON: expected { size, hashes[] }');
    if (j.hashes.length !== popcount(j.size!)) throw new TypeError('CompactRange JSON: hash count does not match size');
    const hashes = j.hashes.map((s: unknown) => {
      const b = typeof s === 'string' ? Buffer.from(s, 'base64') : Buffer.alloc(0);
      if (b.length !== HASH_BYTES || b.toString('base64') !== s) throw new TypeError('CompactRange JSON: bad hash');
      return b;
    });
    const range = new CompactRange();
    range.#size = j.size!;
    range.#hashes = hashes;
    return range;
  }
}
