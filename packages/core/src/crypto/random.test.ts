import * as nodeCrypto from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { constantTimeEqual, hkdfSha256, hmacSha256, randomBytes, randomId, sha256 } from './random.js';

// Lets one test pin the CSPRNG output to check the base32 encoding; every other call goes to node:crypto.
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof nodeCrypto>();
  return { ...actual, randomBytes: vi.fn(actual.randomBytes) };
});

const hex = (s: string): Buffer => Buffer.from(s, 'hex');

afterEach(() => {
  vi.mocked(nodeCrypto.randomBytes).mockClear();
});

describe('randomBytes', () => {
  it('returns n fresh bytes', () => {
    expect(randomBytes(32)).toHaveLength(32);
    expect(randomBytes(0)).toHaveLength(0);
    expect(randomBytes(32).equals(randomBytes(32))).toBe(false);
  });
});

describe('randomId', () => {
  it('is prefix_ + 26 lower-case base32 characters by default', () => {
    const ids = new Set(Array.from({ length: 2000 }, () => randomId('key')));
    expect(ids.size).toBe(2000);
    for (const id of ids) expect(id).toMatch(/^key_[a-z2-7]{26}$/);
  });

  it('encodes the random bytes as RFC 4648 base32 without padding', () => {
    // RFC 4648 §10 vectors, lower-cased and unpadded.
    const vectors: [string, string][] = [
      ['f', 'my'],
      ['fo', 'mzxq'],
      ['foo', 'mzxw6'],
      ['foob', 'mzxw6yq'],
      ['fooba', 'mzxw6ytb'],
      ['foobar', 'mzxw6ytboi'],
    ];
    for (const [input, want] of vectors) {
      vi.mocked(nodeCrypto.randomBytes).mockReturnValueOnce(Buffer.from(input) as never);
      expect(randomId('t', input.length)).toBe(`t_${want}`);
    }
    vi.mocked(nodeCrypto.randomBytes).mockReturnValueOnce(Buffer.alloc(16, 0xff) as never);
    expect(randomId('t')).toBe(`t_${'7'.repeat(25)}4`);
  });

  it('validates prefix and size', () => {
    expect(randomId('tok_live', 5)).toMatch(/^tok_live_[a-z2-7]{8}$/);
    for (const bad of ['', 'Key', '1key', 'a b', 'a/b', 'ключ']) expect(() => randomId(bad)).toThrow(TypeError);
    for (const n of [0, -1, 1.5, 65, Number.NaN]) expect(() => randomId('k', n)).toThrow(RangeError);
  });
});

describe('constantTimeEqual', () => {
  it('compares content and length', () => {
    expect(constantTimeEqual(hex('00112233'), hex('00112233'))).toBe(true);
    expect(constantTimeEqual(new Uint8Array(0), new Uint8Array(0))).toBe(true);
    expect(constantTimeEqual(hex('00112233'), hex('00112234'))).toBe(false);
    expect(constantTimeEqual(hex('00112233'), hex('001122'))).toBe(false);
    expect(constantTimeEqual(hex('001122'), hex('00112233'))).toBe(false);
  });
});

describe('hashes and KDF (published vectors)', () => {
  it('SHA-256 (FIPS 180-2 "abc")', () => {
    expect(sha256('abc').toString('hex')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256(Buffer.from('abc')).equals(sha256('abc'))).toBe(true);
  });

  it('HMAC-SHA-256 (RFC 4231 test case 2)', () => {
    expect(hmacSha256(Buffer.from('Jefe'), 'what do ya want for nothing?').toString('hex')).toBe(
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    );
  });

  it('HKDF-SHA-256 (RFC 5869 test cases 1 and 3)', () => {
    const ikm = Buffer.alloc(22, 0x0b);
    expect(hkdfSha256(ikm, hex('000102030405060708090a0b0c'), hex('f0f1f2f3f4f5f6f7f8f9'), 42).toString('hex')).toBe(
      '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
    );
    expect(hkdfSha256(ikm, Buffer.alloc(0), Buffer.alloc(0), 42).toString('hex')).toBe(
      '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8',
    );
    expect(() => hkdfSha256(ikm, Buffer.alloc(0), '', 255 * 32 + 1)).toThrow();
  });
});
