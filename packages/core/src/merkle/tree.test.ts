import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { emptyRoot, leafHash, nodeHash } from './hash.js';
import { CompactRange, rootFromLeafHashes } from './tree.js';

interface ReferenceTree {
  leafInputsHex: string[];
  rootHashesBySize: string[];
  nodeHashesByLevel: string[][];
}
const ref = JSON.parse(
  readFileSync(new URL('../../../../test-vectors/merkle/rfc6962_reference_tree.json', import.meta.url), 'utf8'),
) as ReferenceTree;
const refLeaves = ref.leafInputsHex.map((h) => leafHash(Buffer.from(h, 'hex')));
const hexOf = (b: Uint8Array): string => Buffer.from(b).toString('hex');
// Distinct, deterministic leaf hashes for property tests.
const leaves = Array.from({ length: 71 }, (_, i) => leafHash(Buffer.from(`entry ${i}`)));

describe('rootFromLeafHashes', () => {
  it('matches the RFC 6962 reference roots for sizes 0..8', () => {
    expect(ref.rootHashesBySize).toHaveLength(9);
    ref.rootHashesBySize.forEach((want, n) => expect(hexOf(rootFromLeafHashes(refLeaves.slice(0, n))), `size ${n}`).toBe(want));
  });

  it('matches every complete-subtree hash of the reference tree', () => {
    ref.nodeHashesByLevel.forEach((level, l) =>
      level.forEach((want, i) => {
        const width = 2 ** l;
        expect(hexOf(rootFromLeafHashes(refLeaves.slice(i * width, (i + 1) * width))), `level ${l} index ${i}`).toBe(want);
      }),
    );
  });

  it('follows the RFC 9162 recursion (split at the largest power of two below n)', () => {
    expect(rootFromLeafHashes([])).toEqual(emptyRoot());
    expect(rootFromLeafHashes(leaves.slice(0, 1))).toEqual(leaves[0]);
    const [a, b, c] = leaves as [Buffer, Buffer, Buffer];
    expect(rootFromLeafHashes([a, b, c])).toEqual(nodeHash(nodeHash(a, b), c));
  });

  it('rejects leaf hashes that are not 32 bytes', () => {
    expect(() => rootFromLeafHashes([Buffer.alloc(31)])).toThrow(TypeError);
    expect(() => rootFromLeafHashes([leaves[0]!, Buffer.alloc(33)])).toThrow(TypeError);
  });
});

describe('CompactRange', () => {
  it('root() after n appends equals rootFromLeafHashes of those n leaves, n = 0..70', () => {
    const range = new CompactRange();
    for (let n = 0; n <= 70; n++) {
      expect(range.size).toBe(n);
      expect(hexOf(range.root()), `size ${n}`).toBe(hexOf(rootFromLeafHashes(leaves.slice(0, n))));
      // Serialized and restored at every size, the restored copy continues identically.
      const json = range.toJSON();
      expect(json.hashes).toHaveLength(n.toString(2).split('1').length - 1);
      const copy = CompactRange.fromJSON(JSON.parse(JSON.stringify(json)));
      expect(copy.size).toBe(n);
      expect(copy.root()).toEqual(range.root());
      copy.append(leaves[70]!);
      expect(copy.root()).toEqual(rootFromLeafHashes([...leaves.slice(0, n), leaves[70]!]));
      if (n < 70) range.append(leaves[n]!);
    }
  });

  it('matches the reference roots and keeps its state private', () => {
    const range = new CompactRange();
    ref.rootHashesBySize.forEach((want, n) => {
      expect(hexOf(range.root())).toBe(want);
      const root = range.root();
      root.fill(0); // mutating a returned root must not corrupt the range
      if (n < refLeaves.length) range.append(refLeaves[n]!);
    });
    expect(hexOf(range.root())).toBe(ref.rootHashesBySize[8]);
  });

  it('holds one hash per set bit of size (O(log n) state)', () => {
    const range = new CompactRange();
    for (let i = 0; i < 64; i++) range.append(leaves[i % 70]!);
    expect(range.toJSON().hashes).toHaveLength(1);
    range.append(leaves[0]!);
    expect(range.toJSON().hashes).toHaveLength(2);
  });

  it('rejects bad leaf hashes and malformed JSON', () => {
    const range = new CompactRange();
    expect(() => range.append(Buffer.alloc(16))).toThrow(TypeError);
    range.append(leaves[0]!);
    range.append(leaves[1]!);
    range.append(leaves[2]!);
    const good = range.toJSON();
    const h = good.hashes[0]!;
    const bad: unknown[] = [
      null,
      'x',
      {},
      { size: 3 },
      { size: -1, hashes: [] },
      { size: 1.5, hashes: [h] },
      { size: '3', hashes: good.hashes },
      { size: 2 ** 53, hashes: [h] },
      { size: 3, hashes: [h] }, // popcount(3) = 2
      { size: 2, hashes: [h, h] },
      { size: 1, hashes: [h.slice(0, -4)] }, // 29 bytes
      { size: 1, hashes: [`${h}AAAA`] },
      { size: 1, hashes: [h.replace(/=$/, '')] }, // non-canonical base64
      { size: 1, hashes: [42] },
    ];
    for (const j of bad) expect(() => CompactRange.fromJSON(j), JSON.stringify(j)).toThrow(TypeError);
    expect(CompactRange.fromJSON(good).root()).toEqual(range.root());
    expect(CompactRange.fromJSON({ size: 0, hashes: [] }).root()).toEqual(emptyRoot());
  });
});

describe('CompactRange onNode', () => {
  it('reports every perfect subtree once, with the hash of its leaves', () => {
    const leaves = Array.from({ length: 37 }, (_, i) => leafHash(Buffer.from(`n${i}`)));
    const seen = new Map<string, Buffer>();
    const r = new CompactRange();
    for (const l of leaves) r.append(l, (level, index, hash) => seen.set(`${level}/${index}`, hash));
    expect(seen.size).toBe(37 - 3); // n - popcount(n) internal nodes of the perfect subtrees (37 = 32 + 4 + 1)
    for (const [k, h] of seen) {
      const [level, index] = k.split('/').map(Number) as [number, number];
      const w = 2 ** level;
      expect(h.equals(rootFromLeafHashes(leaves.slice(index * w, (index + 1) * w))), k).toBe(true);
    }
  });
});
