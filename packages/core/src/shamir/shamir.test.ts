import { createHash, randomBytes, randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PalisadeError } from '../errors/index.js';
import { GF256_POLY, gfInv, gfMul } from './gf256.js';
import { combineShares, parseShare, splitSecret } from './index.js';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
const PREFIX = 'pal-share-v1-';

function caught(fn: () => unknown): PalisadeError {
  try {
    fn();
  } catch (e) {
    if (e instanceof PalisadeError) return e;
    throw e;
  }
  throw new Error('expected a PalisadeError, nothing was thrown');
}

function subsets<T>(items: T[], k: number): T[][] {
  if (k === 0) return [[]];
  const out: T[][] = [];
  items.forEach((item, i) => {
    for (const rest of subsets(items.slice(i + 1), k - 1)) out.push([item, ...rest]);
  });
  return out;
}

function shuffle<T>(items: T[]): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [a[i], a[j]] = [a[j] as T, a[i] as T];
  }
  return a;
}

// Reference GF(2^8) product, written differently from gf256.ts: carry-less multiply, then polynomial long division.
function refMul(a: number, b: number): number {
  let p = 0;
  for (let i = 0; i < 8; i++) if ((b >> i) & 1) p ^= a << i;
  for (let bit = 14; bit >= 8; bit--) if ((p >> bit) & 1) p ^= GF256_POLY << (bit - 8);
  return p;
}

// Test-only codec, to forge shares whose checksum is valid but whose fields are not.
function toBytes(share: string): Buffer {
  const text = share.slice(PREFIX.length).replace(/-/g, '');
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const ch of text) {
    acc = (acc << 5) | ALPHABET.indexOf(ch);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
    acc &= 0xff;
  }
  return Buffer.from(out);
}
function fromBytes(bytes: Buffer): string {
  let text = '';
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      text += ALPHABET[(acc >> bits) & 31];
    }
    acc &= 0xff;
  }
  if (bits > 0) text += ALPHABET[(acc << (5 - bits)) & 31];
  return PREFIX + text;
}
function reforge(share: string, edit: (body: Buffer) => void): string {
  const bytes = toBytes(share);
  const body = Buffer.from(bytes.subarray(0, bytes.length - 4));
  edit(body);
  return fromBytes(Buffer.concat([body, createHash('sha256').update(body).digest().subarray(0, 4)]));
}

describe('GF(2^8) with the AES polynomial 0x11b', () => {
  it('matches the FIPS 197 worked products', () => {
    expect(gfMul(0x57, 0x83)).toBe(0xc1);
    expect(gfMul(0x57, 0x13)).toBe(0xfe);
    expect(gfMul(0x57, 0x02)).toBe(0xae);
    expect(gfMul(0x57, 0x04)).toBe(0x47);
    expect(gfMul(0x57, 0x08)).toBe(0x8e);
    expect(gfMul(0x57, 0x10)).toBe(0x07);
  });

  it('matches a reference multiplication on all 65,536 pairs', () => {
    for (let a = 0; a < 256; a++) for (let b = 0; b < 256; b++) if (gfMul(a, b) !== refMul(a, b)) expect([a, b, gfMul(a, b)]).toEqual([a, b, refMul(a, b)]);
  });

  it('inverts every non-zero element and refuses 0', () => {
    expect(gfInv(0x53)).toBe(0xca); // FIPS 197 §5.1.1 / the S-box construction
    expect(gfInv(1)).toBe(1);
    for (let a = 1; a < 256; a++) expect(gfMul(a, gfInv(a))).toBe(1);
    expect(() => gfInv(0)).toThrow(RangeError);
  });
});

describe('splitSecret / combineShares, 3 of 5', () => {
  const secret = randomBytes(32);
  const shares = splitSecret(secret, 5, 3);

  it('makes self-describing, hand-copyable shares', () => {
    expect(shares).toHaveLength(5);
    const infos = shares.map(parseShare);
    const setId = infos[0]?.setId;
    expect(setId).toMatch(/^[0-9a-f]{16}$/);
    infos.forEach((info, i) => expect(info).toEqual({ setId, threshold: 3, index: i + 1 }));
    for (const s of shares) expect(s).toMatch(/^pal-share-v1-[a-z2-7]{5}(-[a-z2-7]{5})*(-[a-z2-7]{1,4})?$/);
    expect(parseShare(splitSecret(secret, 5, 3)[0] as string).setId).not.toBe(setId);
  });

  it('reconstructs from every one of the 10 three-share subsets, in any order', () => {
    const triples = subsets(shares, 3);
    expect(triples).toHaveLength(10);
    for (const t of triples) {
      expect(combineShares(t).equals(secret)).toBe(true);
      expect(combineShares(shuffle(t)).equals(secret)).toBe(true);
    }
  });

  it('reconstructs from 4 and 5 shares', () => {
    for (const t of subsets(shares, 4)) expect(combineShares(t).equals(secret)).toBe(true);
    expect(combineShares(shuffle(shares)).equals(secret)).toBe(true);
  });

  it('refuses every one of the 10 two-share subsets, and a single share', () => {
    const pairs = subsets(shares, 2);
    expect(pairs).toHaveLength(10);
    for (const p of pairs) {
      const e = caught(() => combineShares(p));
      expect(e.code).toBe('PAL_SEAL_SHARE_INVALID');
      expect(e.message).toMatch(/only 2 of 3 required shares/);
      expect(e.extensions).toMatchObject({ given: 2, required: 3 });
    }
    expect(caught(() => combineShares([shares[4] as string])).message).toMatch(/only 1 of 3 required shares/);
    expect(caught(() => combineShares([])).code).toBe('PAL_SEAL_SHARE_INVALID');
  });

  it('ignores case, whitespace and dashes', () => {
    const [a, b, c] = shares as [string, string, string];
    const messy = [a.toUpperCase(), b.replace(/-/g, ''), ` ${c.replace(/-/g, ' ').replace(/(.{20})/g, '$1\n')}\t`];
    expect(combineShares(messy).equals(secret)).toBe(true);
    expect(parseShare(a.toUpperCase()).index).toBe(1);
  });

  it('detects every single-character substitution in a share and names that share', () => {
    const victim = shares[1] as string; // position 2 in the list below
    let tried = 0;
    for (let i = PREFIX.length; i < victim.length; i++) {
      const original = victim[i] as string;
      if (original === '-') continue;
      for (const ch of ALPHABET) {
        if (ch === original) continue;
        const bad = victim.slice(0, i) + ch + victim.slice(i + 1);
        const e = caught(() => combineShares([shares[0] as string, bad, shares[2] as string]));
        expect(e.code).toBe('PAL_SEAL_SHARE_INVALID');
        expect(e.message).toMatch(/^recovery share 2[: ]/);
        expect(e.extensions.position).toBe(2);
        tried++;
      }
    }
    expect(tried).toBeGreaterThan(60 * 31);
    const oneFlip = victim.slice(0, -1) + (victim.endsWith('a') ? 'b' : 'a');
    expect(caught(() => parseShare(oneFlip)).code).toBe('PAL_SEAL_SHARE_INVALID');
  });

  it('reports characters outside the alphabet, truncation and foreign prefixes', () => {
    const [a, b, c] = shares as [string, string, string];
    const typo = c.slice(0, 20) + '0' + c.slice(21);
    const e = caught(() => combineShares([a, b, typo]));
    expect(e.message).toMatch(/^recovery share 3: character "0" is not in the share alphabet/);
    expect(e.extensions.position).toBe(3);

    const truncated = caught(() => combineShares([a, b.slice(0, -6), c]));
    expect(truncated.code).toBe('PAL_SEAL_SHARE_INVALID');
    expect(truncated.message).toMatch(/^recovery share 2: /);

    expect(caught(() => combineShares([a.replace('pal-share-v1-', 'pal-share-v2-'), b, c])).message).toMatch(/^recovery share 1: version v2 is not supported/);
    expect(caught(() => combineShares(['hello', b, c])).message).toMatch(/^recovery share 1: does not start with/);
    expect(caught(() => combineShares([a, b, 42 as unknown as string])).message).toMatch(/^recovery share 3: not a string/);
    expect(caught(() => combineShares([a, b, c + 'x'.repeat(600)])).extensions.position).toBe(3);
  });

  it('refuses shares of two different splits, naming the foreign one', () => {
    const other = splitSecret(secret, 5, 3);
    const e = caught(() => combineShares([shares[0] as string, shares[1] as string, other[2] as string]));
    expect(e.code).toBe('PAL_SEAL_SHARE_INVALID');
    expect(e.message).toMatch(/^recovery share 3 \(index 3\) belongs to share set [0-9a-f]{16}, but recovery share 1 belongs to/);
    expect(e.extensions).toEqual({ position: 3, index: 3 });
  });

  it('refuses duplicates, even when enough distinct shares are present', () => {
    const [a, b, c] = shares as [string, string, string];
    const e = caught(() => combineShares([a, b, a]));
    expect(e.code).toBe('PAL_SEAL_SHARE_INVALID');
    expect(e.message).toMatch(/^recovery share 3 \(index 1\) duplicates recovery share 1/);
    expect(caught(() => combineShares([a, b, c, b.toUpperCase()])).extensions).toEqual({ position: 4, index: 2 });
  });

  it('refuses shares whose checksum is valid but whose fields are inconsistent (forged)', () => {
    const [a, b, c] = shares as [string, string, string];
    expect(combineShares([a, reforge(b, () => undefined), c]).equals(secret)).toBe(true); // the test codec is faithful
    const lowered = reforge(c, (body) => (body[9] = 2)); // threshold byte
    expect(caught(() => combineShares([a, b, lowered])).message).toMatch(/^recovery share 3 \(index 3\) says threshold 2, but recovery share 1 says 3/);
    expect(caught(() => combineShares([reforge(a, (body) => (body[10] = 0)), b, c])).message).toMatch(/^recovery share 1: index 0 is invalid/);
    expect(caught(() => combineShares([reforge(a, (body) => (body[9] = 1)), b, c])).message).toMatch(/^recovery share 1: threshold 1 is invalid/);
    expect(caught(() => combineShares([reforge(a, (body) => (body[0] = 2)), b, c])).message).toMatch(/^recovery share 1: format version 2/);
    const shortBody = toBytes(b).subarray(0, 11 + 16); // header and 16 of the 32 y bytes, with a fresh checksum
    const short = fromBytes(Buffer.concat([shortBody, createHash('sha256').update(shortBody).digest().subarray(0, 4)]));
    expect(parseShare(short).index).toBe(2);
    expect(caught(() => combineShares([a, short, c])).message).toMatch(/^recovery share 2 \(index 2\) holds 16 secret bytes, but recovery share 1 holds 32/);
  });
});

describe('parameters', () => {
  const secret = randomBytes(32);

  it('refuses thresholds below 2 (including 1 of 1), above the share count, and share counts outside 2..255', () => {
    for (const [n, t] of [[1, 1], [5, 1], [3, 4], [256, 3], [0, 0], [5, 2.5], [Number.NaN, 2], [5, 0]] as const) {
      const e = caught(() => splitSecret(secret, n, t));
      expect(e.code).toBe('PAL_VALIDATION_FAILED');
    }
    expect(caught(() => splitSecret(secret, 5, 1)).message).toMatch(/threshold must be an integer from 2 to shares \(5\), got 1/);
  });

  it('takes secrets of 1 to 64 bytes', () => {
    expect(caught(() => splitSecret(new Uint8Array(0), 3, 2)).code).toBe('PAL_VALIDATION_FAILED');
    expect(caught(() => splitSecret(new Uint8Array(65), 3, 2)).code).toBe('PAL_VALIDATION_FAILED');
    expect(() => splitSecret('secret' as unknown as Uint8Array, 3, 2)).toThrow(TypeError);
    const one = Uint8Array.of(0x42);
    expect([...combineShares(splitSecret(one, 3, 2).slice(1))]).toEqual([0x42]);
    const big = randomBytes(64);
    expect(combineShares(splitSecret(big, 3, 2).slice(0, 2)).equals(big)).toBe(true);
  });

  it('handles 255 shares with threshold 255 on a 32-byte secret', () => {
    const shares = splitSecret(secret, 255, 255);
    expect(shares).toHaveLength(255);
    expect(parseShare(shares[254] as string)).toMatchObject({ threshold: 255, index: 255 });
    expect(combineShares(shuffle(shares)).equals(secret)).toBe(true);
    expect(caught(() => combineShares(shares.slice(1))).message).toMatch(/only 254 of 255 required shares/);
  });
});

describe('property: any threshold-sized subset reconstructs', () => {
  it('holds over 200 random secrets and parameter sets', () => {
    for (let iter = 0; iter < 200; iter++) {
      const secret = randomBytes(randomInt(1, 65));
      const n = randomInt(2, 21);
      const t = randomInt(2, n + 1);
      const shares = splitSecret(secret, n, t);
      const pick = shuffle(shares).slice(0, randomInt(t, n + 1));
      const got = combineShares(pick);
      if (!got.equals(secret)) expect({ iter, n, t, got: got.toString('hex') }).toEqual({ iter, n, t, got: secret.toString('hex') });
      if (t > 2) expect(caught(() => combineShares(pick.slice(0, t - 1))).code).toBe('PAL_SEAL_SHARE_INVALID');
    }
  });
});
