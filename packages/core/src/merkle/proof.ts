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

/** PATH(m, D[n]) of RFC 9162 §2.1.3.1, nearest sibling first. Throws RangeError unless 0 <= index < size. */
export function inclusionProof(index: number, size: number, getLeafHash: LeafHashSource): Buffer[] {
  if (!isSize(index) || !isSize(size) || index >= size) throw new RangeError('inclusionProof: need 0 <= index < size');
  const path = (m: number, start: number, end: number): Buffer[] => {
    if (end - start === 1) return [];
    const k = splitPoint(end - start);
    return m < k
      ? [...path(m, start, start + k), subtreeHash(getLeafHash, start + k, end)]
      : [...path(m - k, start + k, end), subtreeHash(getLeafHash, start, start + k)];
  };
  return path(index, 0, size);
}

/** PROOF(m, D[n]) of RFC 9162 §2.1.4.1. Throws RangeError unless 0 < size1 <= size2; equal sizes give []. */
export function consistencyProof(size1: number, size2: number, getLeafHash: LeafHashSource): Buffer[] {
  if (!isSize(size1) || !isSize(size2) || size1 === 0 || size1 > size2) {
    throw new RangeError('consistencyProof: need 0 < size1 <= size2');
  }
  const subproof = (m: number, start: number, end: number, b: boolean): Buffer[] => {
    if (m === end - start) return b ? [] : [subtreeHash(getLeafHash, start, end)];
    const k = splitPoint(end - start);
    return m <= k
      ? [...subproof(m, start, start + k, b), subtreeHash(getLeafHash, start + k, end)]
      : [...subproof(m - k, start + k, end, false), subtreeHash(getLeafHash, start, start + k)];
  };
  return subproof(size1, 0, size2, true);
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
