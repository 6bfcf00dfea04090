import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { leafHash } from './hash.js';
import { consistencyProof, consistencyRanges, foldSubtrees, inclusionProof, inclusionRanges, perfectSubtrees, verifyConsistency, verifyInclusion } from './proof.js';
import { rootFromLeafHashes } from './tree.js';

const VECTORS = new URL('../../../../test-vectors/merkle/', import.meta.url);
const b64 = (s: string): Buffer => Buffer.from(s, 'base64');
const hexOf = (b: Uint8Array): string => Buffer.from(b).toString('hex');

// Every probe file of a folder, as [relative path, parsed JSON], in a stable order.
function probes<T>(folder: string): [string, T][] {
  const dir = new URL(`${folder}/`, VECTORS);
  return readdirSync(fileURLToPath(dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => [`${folder}/${f}`, JSON.parse(readFileSync(new URL(f, dir), 'utf8')) as T]);
}

interface InclusionProbe {
  leafIdx: number;
  treeSize: number;
  root: string;
  leafHash: string;
  proof: string[] | null; // Go's nil slice: no proof nodes
  desc: string;
  wantErr: boolean;
}
interface ConsistencyProbe {
  size1: number;
  size2: number;
  root1: string;
  root2: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}

const inclusion = probes<InclusionProbe>('inclusion');
const consistency = probes<ConsistencyProbe>('consistency');

const ref = JSON.parse(readFileSync(new URL('rfc6962_reference_tree.json', VECTORS), 'utf8')) as {
  leafInputsHex: string[];
  rootHashesBySize: string[];
  nodeHashesByLevel: string[][];
};
const refLeaves = ref.leafInputsHex.map((h) => leafHash(Buffer.from(h, 'hex')));
const refRoot = (n: number): Buffer => Buffer.from(ref.rootHashesBySize[n]!, 'hex');
const fromArray =
  (hashes: readonly Uint8Array[]) =>
  (i: number): Uint8Array => {
    if (i < 0 || i >= hashes.length) throw new RangeError(`leaf ${i} read outside the tree`);
    return hashes[i]!;
  };

describe('transparency-dev inclusion probes', () => {
  it('has all 98 probes', () => expect(inclusion).toHaveLength(98));

  it.each(inclusion)('%s', (_file, p) => {
    const proof = (p.proof ?? []).map(b64);
    expect(verifyInclusion(p.leafIdx, p.treeSize, b64(p.leafHash), proof, b64(p.root))).toBe(!p.wantErr);
  });
});

describe('transparency-dev consistency probes', () => {
  it('has all 98 probes', () => expect(consistency).toHaveLength(98));

  it.each(consistency)('%s', (_file, p) => {
    const proof = (p.proof ?? []).map(b64);
    expect(verifyConsistency(p.size1, p.size2, b64(p.root1), b64(p.root2), proof)).toBe(!p.wantErr);
  });
});

describe('generators against the RFC 6962 reference tree', () => {
  const get = fromArray(refLeaves);

  it('reproduces the proofs of every happy-path probe', () => {
    let matched = 0;
    for (const [file, p] of inclusion) {
      if (p.wantErr || p.treeSize > 8 || p.root !== refRoot(p.treeSize).toString('base64')) continue;
      expect(b64(p.leafHash), file).toEqual(refLeaves[p.leafIdx]);
      expect(inclusionProof(p.leafIdx, p.treeSize, get).map((b) => b.toString('base64')), file).toEqual(p.proof ?? []);
      matched++;
    }
    for (const [file, p] of consistency) {
      if (p.wantErr || p.size2 > 8 || p.root2 !== refRoot(p.size2).toString('base64')) continue;
      expect(b64(p.root1), file).toEqual(refRoot(p.size1));
      expect(consistencyProof(p.size1, p.size2, get).map((b) => b.toString('base64')), file).toEqual(p.proof ?? []);
      matched++;
    }
    expect(matched).toBe(10); // 5 inclusion + 5 consistency happy paths are over the reference tree
  });

  it('builds size-8 inclusion paths from the listed subtree hashes', () => {
    const [l0, l1, l2] = ref.nodeHashesByLevel as [string[], string[], string[]];
    for (let i = 0; i < 8; i++) {
      expect(inclusionProof(i, 8, get).map(hexOf)).toEqual([l0[i ^ 1], l1[(i >> 1) ^ 1], l2[(i >> 2) ^ 1]]);
    }
  });

  it('all inclusion and consistency proofs within the reference tree verify against its roots', () => {
    for (let n = 1; n <= 8; n++) {
      for (let i = 0; i < n; i++) {
        expect(verifyInclusion(i, n, refLeaves[i]!, inclusionProof(i, n, get), refRoot(n)), `${i}/${n}`).toBe(true);
      }
      for (let m = 1; m <= n; m++) {
        expect(verifyConsistency(m, n, refRoot(m), refRoot(n), consistencyProof(m, n, get)), `${m}->${n}`).toBe(true);
      }
    }
  });
});

describe('generated proofs, exhaustive for trees up to 70 leaves', () => {
  const leaves = Array.from({ length: 70 }, (_, i) => leafHash(Buffer.from(`log entry ${i}`)));
  const get = fromArray(leaves);
  const roots = Array.from({ length: 71 }, (_, n) => rootFromLeafHashes(leaves.slice(0, n)));
  const flip = (b: Uint8Array): Buffer => {
    const c = Buffer.from(b);
    c[c.length - 1]! ^= 1;
    return c;
  };

  it('every inclusion proof verifies, and no neighbouring statement does', () => {
    for (let n = 1; n <= 70; n++) {
      for (let i = 0; i < n; i++) {
        const proof = inclusionProof(i, n, get);
        expect(verifyInclusion(i, n, leaves[i]!, proof, roots[n]!)).toBe(true);
        expect(verifyInclusion(i, n, flip(leaves[i]!), proof, roots[n]!)).toBe(false);
        expect(verifyInclusion(i, n, leaves[i]!, proof, flip(roots[n]!))).toBe(false);
        if (i + 1 < n) expect(verifyInclusion(i + 1, n, leaves[i]!, proof, roots[n]!)).toBe(false);
        expect(verifyInclusion(i, n, leaves[i]!, [...proof, roots[n]!], roots[n]!)).toBe(false);
        if (proof.length > 0) {
          expect(verifyInclusion(i, n, leaves[i]!, proof.slice(1), roots[n]!)).toBe(false);
          for (let k = 0; k < proof.length; k++) {
            const bad = proof.map((p, j) => (j === k ? flip(p) : p));
            expect(verifyInclusion(i, n, leaves[i]!, bad, roots[n]!)).toBe(false);
          }
        }
      }
    }
  });

  it('every consistency proof verifies, and tampered ones do not', () => {
    for (let n = 1; n <= 70; n++) {
      for (let m = 1; m <= n; m++) {
        const proof = consistencyProof(m, n, get);
        expect(verifyConsistency(m, n, roots[m]!, roots[n]!, proof), `${m}->${n}`).toBe(true);
        expect(verifyConsistency(m, n, flip(roots[m]!), roots[n]!, proof)).toBe(false);
        expect(verifyConsistency(m, n, roots[m]!, flip(roots[n]!), proof)).toBe(false);
        expect(verifyConsistency(m, n, roots[m]!, roots[n]!, [...proof, roots[n]!])).toBe(false);
        if (m < n) {
          expect(proof.length).toBeGreaterThan(0);
          expect(verifyConsistency(m, n, roots[m]!, roots[n]!, proof.slice(0, -1))).toBe(false);
          if (m > 1) expect(verifyConsistency(m - 1, n, roots[m]!, roots[n]!, proof)).toBe(false);
          for (let k = 0; k < proof.length; k++) {
            const bad = proof.map((p, j) => (j === k ? flip(p) : p));
            expect(verifyConsistency(m, n, roots[m]!, roots[n]!, bad)).toBe(false);
          }
        } else {
          expect(proof).toEqual([]);
        }
      }
    }
  });

  it('proof sizes are logarithmic', () => {
    expect(inclusionProof(0, 64, get)).toHaveLength(6);
    expect(inclusionProof(69, 70, get)).toHaveLength(3); // 70 = 64 + 4 + 2
    expect(consistencyProof(1, 64, get)).toHaveLength(6);
  });
});

describe('robustness', () => {
  const h = leafHash(Buffer.from('x'));

  it('generators refuse impossible arguments', () => {
    const get = fromArray([h, h]);
    for (const [i, n] of [[-1, 2], [2, 2], [0, 0], [0.5, 2], [0, Number.NaN]] as const) {
      expect(() => inclusionProof(i, n, get)).toThrow(RangeError);
    }
    for (const [m, n] of [[0, 2], [3, 2], [-1, 2], [1, 1.5]] as const) {
      expect(() => consistencyProof(m, n, get)).toThrow(RangeError);
    }
    expect(() => inclusionProof(0, 2, () => Buffer.alloc(31))).toThrow(TypeError);
  });

  it('verifiers return false instead of throwing on garbage', () => {
    const junk: unknown[] = [undefined, null, 'x', 1.5, {}, [1], [null], Buffer.alloc(31), Number.NaN, -1, 2 ** 60];
    for (const a of junk) {
      for (const b of junk) {
        const anyA = a as never;
        const anyB = b as never;
        expect(verifyInclusion(anyA, 1, h, [], h)).toBe(false);
        expect(verifyInclusion(0, anyA, h, [], h)).toBe(false);
        expect(verifyInclusion(0, 1, anyA, anyB, h)).toBe(false);
        expect(verifyInclusion(0, 1, h, anyA, anyB)).toBe(false);
        expect(verifyConsistency(anyA, 2, h, h, [h])).toBe(false);
        expect(verifyConsistency(1, anyA, h, h, [h])).toBe(false);
        expect(verifyConsistency(1, 2, anyA, anyB, [h])).toBe(false);
        expect(verifyConsistency(1, 2, h, h, anyA)).toBe(false);
        // Equal sizes compare the roots as given (test-data convention), so only identical byte strings pass.
        expect(verifyConsistency(1, 1, anyA, anyB, [])).toBe(a instanceof Uint8Array && a === b);
      }
    }
    expect(verifyInclusion(0, 1, h, [], h)).toBe(true);
  });

  it('handles sizes beyond 2^32 without truncation', () => {
    // A right-edge leaf of a 2^32 + 1 tree: proof = [root of the left 2^32 subtree].
    const left = Buffer.alloc(32, 0xab);
    const size = 2 ** 32 + 1;
    const root = rootFromLeafHashes([left, h]); // node(left, h) with left standing in for the subtree root
    expect(verifyInclusion(size - 1, size, h, [left], root)).toBe(true);
    expect(verifyInclusion(size - 1, size + 1, h, [left], root)).toBe(false);
  });
});

describe('proofs from stored perfect subtrees', () => {
  const leaves = Array.from({ length: 70 }, (_, i) => leafHash(Buffer.from(`stored ${i}`)));
  const perfect = ([level, index]: [number, number]): Buffer => rootFromLeafHashes(leaves.slice(index * 2 ** level, (index + 1) * 2 ** level));
  const viaSubtrees = ([a, b]: readonly [number, number]): Buffer => foldSubtrees(perfectSubtrees(a, b).map(perfect));

  it('every proof range folds from its aligned perfect subtrees to the same proof', () => {
    const get = fromArray(leaves);
    for (let n = 1; n <= 70; n++) {
      for (let i = 0; i < n; i++) expect(inclusionRanges(i, n).map(viaSubtrees), `${i}/${n}`).toEqual(inclusionProof(i, n, get));
      for (let m = 1; m <= n; m++) expect(consistencyRanges(m, n).map(viaSubtrees), `${m}->${n}`).toEqual(consistencyProof(m, n, get));
    }
  });

  it('splits ranges into aligned powers of two', () => {
    expect(perfectSubtrees(0, 70)).toEqual([[6, 0], [2, 16], [1, 34]]);
    expect(perfectSubtrees(64, 70)).toEqual([[2, 16], [1, 34]]);
    expect(perfectSubtrees(5, 6)).toEqual([[0, 5]]);
    expect(() => foldSubtrees([])).toThrow(RangeError);
  });
});
