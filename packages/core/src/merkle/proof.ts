// RFC 9162 §2.1.3 / §2.1.4: inclusion and consistency proofs, their generation and verification.
import { HASH_BYTES, nodeHash } from './hash.js';
import { splitPoint } from './tree.js';

/** Returns the leaf hash (32 bytes) at an index, e.g. from the log's storage. */
export type LeafHashSource = (index: number) => Uint8Array;

const isSize = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;
const isHash = (h: unknown): h is Uint8Array => h instanceof Uint8Array && h.length === HASH_BYTES;
const isProof = (p: unknown): p is Uint8Array[] => Array.isArray(p) && p.every(isHash);
const same = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.compare(a, b) === 0;
const half = (n: number): number => Math.floor(n / 2); // `>> 1` would truncate sizes above 2^31
const isOdd = (n: number): boolean => n % 2 === 1;

function isPowerOfTwo(n: number): boolean {
  while (n > 1 && n % 2 === 0) n /= 2;
  return n === 1;
}

/** A proof node: the MTH of leaves [start, end). */
export type LeafRange = readonly [start: number, end: number];

// MTH of leaves [start, end), end > start, read through `get`.
function subtreeHash(get: LeafHashSource, start: number, end: number): Buffer {
  if (end - start === 1) {
    const h = get(start);
    if (!isHash(h)) throw new TypeError(`leaf hash ${start} must be ${HASH_BYTES} bytes`);
    return Buffer.from(h);
  }
  const k = splitPoint(end - start);
  return nodeHash(subtreeHash(get, start, start + k), subtreeHash(get, start + k, end));
}

/**
 * The leaf ranges whose MTHs make up PATH(index, D[size]) (RFC 9162 §2.1.3.1), nearest sibling first. A store that
 * keeps subtree hashes answers a proof with O(log n) reads: see `perfectSubtrees`. Throws RangeError unless
 * 0 <= index < size.
 */
export function inclusionRanges(index: number, size: number): LeafRange[] {
  if (!isSize(index) || !isSize(size) || index >= size) throw new RangeError('inclusionProof: need 0 <= index < size');
  const out: LeafRange[] = [];
  const path = (m: number, start: number, end: number): void => {
    if (end - start === 1) return;
    const k = splitPoint(end - start);
    if (m < k) {
      path(m, start, start + k);
      out.push([start + k, end]);
    } else {
      path(m - k, start + k, end);
      out.push([start, start + k]);
    }
  };
  path(index, 0, size);
  return out;
}

/** The leaf ranges whose MTHs make up PROOF(size1, D[size2]) (RFC 9162 §2.1.4.1). Throws RangeError unless 0 < size1 <= size2. */
export function consistencyRanges(size1: number, size2: number): LeafRange[] {
  if (!isSize(size1) || !isSize(size2) || size1 === 0 || size1 > size2) {
    throw new RangeError('consistencyProof: need 0 < size1 <= size2');
  }
  const out: LeafRange[] = [];
  const subproof = (m: number, start: number, end: number, b: boolean): void => {
    if (m === end - start) {
      if (!b) out.push([start, end]);
      return;
    }
    const k = splitPoint(end - start);
    if (m <= k) {
      subproof(m, start, start + k, b);
      out.push([start + k, end]);
    } else {
      subproof(m - k, start + k, end, false);
      out.push([start, start + k]);
    }
  };
  subproof(size1, 0, size2, true);
  return out;
}

/**
 * The perfect, aligned subtrees that [start, end) splits into, left to right, as [level, index] (the subtree
 * covers leaves [index * 2^level, (index + 1) * 2^level)). For every range a proof names, its MTH is the right-to-left
 * fold of these subtrees' hashes with nodeHash (`foldSubtrees`), because RFC 9162 splits at the largest power of two.
 */
export function perfectSubtrees(start: number, end: number): Array<[level: number, index: number]> {
  const out: Array<[number, number]> = [];
  while (start < end) {
    let size = 1;
    while (start % (size * 2) === 0 && start + size * 2 <= end) size *= 2;
    let level = 0;
    for (let s = size; s > 1; s /= 2) level++;
    out.push([level, start / size]);
    start += size;
  }
  return out;
}

/** MTH of a proof range from the hashes of its `perfectSubtrees`, in the same order. */
export function foldSubtrees(hashes: readonly Uint8Array[]): Buffer {
  if (hashes.length === 0) throw new RangeError('foldSubtrees: no subtrees');
  let acc: Buffer = Buffer.from(hashes[hashes.length - 1]!);
  for (let i = hashes.length - 2; i >= 0; i--) acc = nodeHash(hashes[i]!, acc);
  return acc;
}

/** PATH(m, D[n]) of RFC 9162 §2.1.3.1, nearest sibling first. Throws RangeError unless 0 <= index < size. */
export function inclusionProof(index: number, size: number, getLeafHash: LeafHashSource): Buffer[] {
  return inclusionRanges(index, size).map(([a, b]) => subtreeHash(getLeafHash, a, b));
}

/** PROOF(m, D[n]) of RFC 9162 §2.1.4.1. Throws RangeError unless 0 < size1 <= size2; equal sizes give []. */
export function consistencyProof(size1: number, size2: number, getLeafHash: LeafHashSource): Buffer[] {
  return consistencyRanges(size1, size2).map(([a, b]) => subtreeHash(getLeafHash, a, b));
}

/**
 * RFC 9162 §2.1.3.2. False (never a throw) for any malformed input: indices that are not safe integers,
 * leafIdx >= treeSize, or a leaf hash, root or proof node that is not 32 bytes.
 */
export function verifyInclusion(
  leafIdx: number,
  treeSize: number,
  leafHash: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  try {
    if (!isSize(leafIdx) || !isSize(treeSize) || leafIdx >= treeSize) return false;
    if (!isHash(leafHash) || !isHash(root) || !isProof(proof)) return false;
    let fn = leafIdx;
    let sn = treeSize - 1;
    let r: Uint8Array = leafHash;
    for (const p of proof) {
      if (sn === 0) return false; // proof too long
      if (isOdd(fn) || fn === sn) {
        r = nodeHash(p, r);
        // Skip the levels where this node has no right sibling (right edge of an unbalanced tree).
        while (!isOdd(fn) && fn !== 0) [fn, sn] = [half(fn), half(sn)];
      } else {
        r = nodeHash(r, p);
      }
      [fn, sn] = [half(fn), half(sn)];
    }
    return sn === 0 && same(r, root);
  } catch {
    return false;
  }
}

/**
 * RFC 9162 §2.1.4.2, with the conventions of the transparency-dev test data: size1 = 0 is always rejected;
 * size1 == size2 holds only with an empty proof and root1 == root2 (compared as given); otherwise both roots and every
 * proof node must be 32 bytes. Returns false (never throws) on malformed input.
 */
export function verifyConsistency(
  size1: number,
  size2: number,
  root1: Uint8Array,
  root2: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  try {
    if (!isSize(size1) || !isSize(size2) || size1 === 0 || size1 > size2 || !Array.isArray(proof)) return false;
    if (size1 === size2) {
      return proof.length === 0 && root1 instanceof Uint8Array && root2 instanceof Uint8Array && same(root1, root2);
    }
    if (!isHash(root1) || !isHash(root2) || !isProof(proof) || proof.length === 0) return false;
    // If size1 is a power of two its tree is a complete subtree of the new one, and its root starts the path.
    const path = isPowerOfTwo(size1) ? [root1, ...proof] : proof;
    let fn = size1 - 1;
    let sn = size2 - 1;
    while (isOdd(fn)) [fn, sn] = [half(fn), half(sn)];
    let fr: Uint8Array = path[0]!;
    let sr: Uint8Array = path[0]!;
    for (const c of path.slice(1)) {
      if (sn === 0) return false; // proof too long
      if (isOdd(fn) || fn === sn) {
        fr = nodeHash(c, fr);
        sr = nodeHash(c, sr);
        while (!isOdd(fn) && fn !== 0) [fn, sn] = [half(fn), half(sn)];
      } else {
        sr = nodeHash(sr, c);
      }
      [fn, sn] = [half(fn), half(sn)];
    }
    return sn === 0 && same(fr, root1) && same(sr, root2);
  } catch {
    return false;
  }
}
