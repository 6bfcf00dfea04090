import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { HASH_BYTES, emptyRoot, leafHash, nodeHash } from './hash.js';

interface HasherVectors {
  emptyRoot: { want: string };
  emptyLeaf: { leafInputHex: string; want: string };
  leaf: { leafInputHex: string; want: string };
  node: { leftHex: string; rightHex: string; want: string };
}
const ref = JSON.parse(
  readFileSync(new URL('../../../../test-vectors/merkle/rfc6962_reference_tree.json', import.meta.url), 'utf8'),
) as { hasherVectors: HasherVectors };
const v = ref.hasherVectors;
const hex = (s: string): Buffer => Buffer.from(s, 'hex');

describe('RFC 6962 hasher vectors (transparency-dev/merkle)', () => {
  it('empty tree root is SHA-256("")', () => {
    expect(emptyRoot().toString('hex')).toBe(v.emptyRoot.want);
  });

  it('leaf hashes carry the 0x00 prefix', () => {
    expect(leafHash(hex(v.emptyLeaf.leafInputHex)).toString('hex')).toBe(v.emptyLeaf.want);
    expect(leafHash(hex(v.leaf.leafInputHex)).toString('hex')).toBe(v.leaf.want);
  });

  it('node hashes carry the 0x01 prefix', () => {
    expect(nodeHash(hex(v.node.leftHex), hex(v.node.rightHex)).toString('hex')).toBe(v.node.want);
  });

  it('separates leaves from nodes (second-preimage resistance of the encoding)', () => {
    const l = leafHash(Buffer.from('a'));
    const r = leafHash(Buffer.from('b'));
    expect(leafHash(Buffer.concat([l, r])).equals(nodeHash(l, r))).toBe(false);
    expect(nodeHash(l, r)).toHaveLength(HASH_BYTES);
  });
});
