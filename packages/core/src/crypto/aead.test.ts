import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  AeadError,
  KEY_BYTES,
  MAX_GCM_IV_BYTES,
  NONCE_BYTES,
  TAG_BYTES,
  aeadOpen,
  aeadOpenRaw,
  aeadSeal,
  aeadSealRaw,
} from './aead.js';
import type { AeadAlgorithm, RawAeadAlgorithm } from './aead.js';

interface WycheproofTest {
  tcId: number;
  comment: string;
  flags: string[];
  result: 'valid' | 'invalid' | 'acceptable';
  key: string;
  iv: string;
  aad: string;
  msg: string;
  ct: string;
  tag: string;
}
interface WycheproofFile {
  algorithm: string;
  numberOfTests: number;
  testGroups: { keySize: number; ivSize: number; tagSize: number; tests: WycheproofTest[] }[];
}

const load = (name: string): WycheproofFile =>
  JSON.parse(
    readFileSync(new URL(`../../../../test-vectors/wycheproof/${name}`, import.meta.url), 'utf8'),
  ) as WycheproofFile;
const hex = (s: string): Buffer => Buffer.from(s, 'hex');

// Flags whose vectors must be refused before any cryptography happens.
const UNSUPPORTED_PARAMS = new Set(['ZeroLengthIv', 'InvalidNonceSize']);

const suites: [string, RawAeadAlgorithm, AeadAlgorithm][] = [
  ['aes_gcm_test.json', 'AES-GCM', 'AES-256-GCM'],
  ['chacha20_poly1305_test.json', 'CHACHA20-POLY1305', 'CHACHA20-POLY1305'],
];

for (const [file, alg, productAlg] of suites) {
  const data = load(file);
  const cases = data.testGroups.flatMap((g) => g.tests.map((t) => ({ g, t })));

  describe(`Wycheproof ${data.algorithm} (${file})`, () => {
    it('holds every vector the file announces', () => {
      expect(cases).toHaveLength(data.numberOfTests);
    });

    it.each(cases.map(({ g, t }) => [t.tcId, t.result, t.comment || t.flags.join(','), g, t] as const))(
      'tcId %i (%s) %s',
      (_id, _result, _comment, g, t) => {
        const [key, iv, aad, msg, ct, tag] = [t.key, t.iv, t.aad, t.msg, t.ct, t.tag].map(hex) as Buffer[];
        const opts = { tagLength: g.tagSize / 8 };
        const open = () => aeadOpenRaw(alg, key!, iv!, ct!, tag!, aad, opts);
        // Product path applies only to 256-bit key / 96-bit nonce / 128-bit tag groups.
        const product = g.keySize === 256 && g.ivSize === 96 && g.tagSize === 128;

        if (t.result === 'valid' && iv!.length > MAX_GCM_IV_BYTES) {
          // Wycheproof 'LongIv' (257-byte IVs): OpenSSL 3 cannot do them, and the note on LongIv allows an
          // implementation to restrict IV sizes. Documented exception: they must be refused cleanly on both paths.
          expect(t.flags).toContain('LongIv');
          expect(() => aeadSealRaw(alg, key!, iv!, msg!, aad, opts)).toThrow(new AeadError('invalid nonce length'));
          expect(open).toThrow(new AeadError('authentication failed'));
        } else if (t.result === 'valid') {
          const sealed = aeadSealRaw(alg, key!, iv!, msg!, aad, opts);
          expect(sealed.ciphertext.toString('hex')).toBe(t.ct);
          expect(sealed.tag.toString('hex')).toBe(t.tag);
          expect(open().toString('hex')).toBe(t.msg);
          if (product) {
            const p = aeadSeal(productAlg, key!, iv!, msg!, aad);
            expect(Buffer.concat([p.ciphertext, p.tag]).toString('hex')).toBe(t.ct + t.tag);
            expect(aeadOpen(productAlg, key!, iv!, ct!, tag!, aad).toString('hex')).toBe(t.msg);
          }
        } else if (t.result === 'invalid') {
          expect(open).toThrow(AeadError);
          expect(open).toThrow('authentication failed');
          if (t.flags.some((f) => UNSUPPORTED_PARAMS.has(f))) {
            expect(() => aeadSealRaw(alg, key!, iv!, msg!, aad, opts)).toThrow(AeadError);
          }
          if (product) expect(() => aeadOpen(productAlg, key!, iv!, ct!, tag!, aad)).toThrow(AeadError);
        } else {
          // 'acceptable' (none in these files today): either outcome is allowed, but a success must be correct.
          let pt: Buffer | undefined;
          try {
            pt = open();
          } catch (err) {
            expect(err).toBeInstanceOf(AeadError);
          }
          if (pt) expect(pt.toString('hex')).toBe(t.msg);
        }
      },
    );
  });
}

describe('Wycheproof exceptions', () => {
  it('refuses exactly the three AES-GCM vectors with a 2056-bit IV (tcId 268, 272, 276)', () => {
    const tooLong = load('aes_gcm_test.json')
      .testGroups.filter((g) => g.ivSize / 8 > MAX_GCM_IV_BYTES)
      .flatMap((g) => g.tests.map((t) => `${t.tcId}:${t.result}:${g.ivSize}`));
    expect(tooLong).toEqual(['268:valid:2056', '272:valid:2056', '276:valid:2056']);
  });
});

const ALGS: AeadAlgorithm[] = ['AES-256-GCM', 'CHACHA20-POLY1305'];

// Every single-bit flip of `buf`, as fresh copies.
function* bitFlips(buf: Buffer): Generator<Buffer> {
  for (let i = 0; i < buf.length * 8; i++) {
    const c = Buffer.from(buf);
    c[i >> 3]! ^= 1 << (i & 7);
    yield c;
  }
}

describe.each(ALGS)('product path %s', (alg) => {
  const key = Buffer.alloc(KEY_BYTES, 7);
  const nonce = Buffer.alloc(NONCE_BYTES, 9);
  const aad = Buffer.from('tenant=acme;key=k1;v=3');
  const pt = Buffer.from('attack at dawn');
  const { ciphertext, tag } = aeadSeal(alg, key, nonce, pt, aad);

  it('round-trips, with and without AAD, including an empty plaintext', () => {
    expect(ciphertext).toHaveLength(pt.length);
    expect(tag).toHaveLength(TAG_BYTES);
    expect(aeadOpen(alg, key, nonce, ciphertext, tag, aad)).toEqual(pt);
    const noAad = aeadSeal(alg, key, nonce, pt);
    expect(aeadOpen(alg, key, nonce, noAad.ciphertext, noAad.tag)).toEqual(pt);
    // An absent AAD and an empty AAD are the same input to the AEAD.
    expect(aeadOpen(alg, key, nonce, noAad.ciphertext, noAad.tag, Buffer.alloc(0))).toEqual(pt);
    const empty = aeadSeal(alg, key, nonce, Buffer.alloc(0), aad);
    expect(aeadOpen(alg, key, nonce, empty.ciphertext, empty.tag, aad)).toHaveLength(0);
  });

  it('rejects every single-bit change of ciphertext, tag, nonce, AAD and key', () => {
    const attempts: (() => Buffer)[] = [
      ...[...bitFlips(ciphertext)].map((c) => () => aeadOpen(alg, key, nonce, c, tag, aad)),
      ...[...bitFlips(tag)].map((t) => () => aeadOpen(alg, key, nonce, ciphertext, t, aad)),
      ...[...bitFlips(nonce)].map((n) => () => aeadOpen(alg, key, n, ciphertext, tag, aad)),
      ...[...bitFlips(aad)].map((a) => () => aeadOpen(alg, key, nonce, ciphertext, tag, a)),
      ...[...bitFlips(key)].map((k) => () => aeadOpen(alg, k, nonce, ciphertext, tag, aad)),
    ];
    expect(attempts).toHaveLength((pt.length + TAG_BYTES + NONCE_BYTES + aad.length + KEY_BYTES) * 8);
    for (const attempt of attempts) expect(attempt).toThrow(new AeadError('authentication failed'));
  });

  it('rejects truncated, extended or reordered messages and missing AAD', () => {
    const fail = (f: () => unknown) => expect(f).toThrow(new AeadError('authentication failed'));
    fail(() => aeadOpen(alg, key, nonce, ciphertext.subarray(1), tag, aad));
    fail(() => aeadOpen(alg, key, nonce, ciphertext.subarray(0, -1), tag, aad));
    fail(() => aeadOpen(alg, key, nonce, Buffer.concat([ciphertext, Buffer.of(0)]), tag, aad));
    fail(() => aeadOpen(alg, key, nonce, ciphertext, tag));
    fail(() => aeadOpen(alg, key, nonce, ciphertext, tag, Buffer.concat([aad, Buffer.of(0)])));
    fail(() => aeadOpen(alg, key, nonce, Buffer.alloc(0), tag, aad));
    fail(() => aeadOpen(alg, key, nonce, tag, ciphertext, aad)); // swapped fields
  });

  it('rejects wrong sizes on both paths', () => {
    for (const n of [0, 16, 24, 31, 33, 64]) {
      expect(() => aeadSeal(alg, Buffer.alloc(n), nonce, pt)).toThrow(new AeadError('invalid key length'));
      expect(() => aeadOpen(alg, Buffer.alloc(n), nonce, ciphertext, tag)).toThrow(new AeadError('invalid key length'));
    }
    for (const n of [0, 1, 8, 11, 13, 16, 24]) {
      expect(() => aeadSeal(alg, key, Buffer.alloc(n), pt)).toThrow(new AeadError('invalid nonce length'));
      expect(() => aeadOpen(alg, key, Buffer.alloc(n), ciphertext, tag, aad)).toThrow(AeadError);
    }
    for (const n of [0, 4, 8, 12, 15, 17, 32]) {
      expect(() => aeadOpen(alg, key, nonce, ciphertext, Buffer.alloc(n), aad)).toThrow(AeadError);
    }
  });

  it('rejects unknown algorithms', () => {
    const bogus = 'AES-128-CBC' as AeadAlgorithm;
    expect(() => aeadSeal(bogus, key, nonce, pt)).toThrow(new AeadError('unsupported algorithm'));
    expect(() => aeadOpen(bogus, key, nonce, ciphertext, tag)).toThrow(new AeadError('unsupported algorithm'));
  });

  it('uses a fresh output for every call (no shared buffers)', () => {
    const a = aeadOpen(alg, key, nonce, ciphertext, tag, aad);
    a.fill(0);
    expect(aeadOpen(alg, key, nonce, ciphertext, tag, aad)).toEqual(pt);
  });
});

describe('raw path parameter rules', () => {
  const pt = Buffer.from('x');
  it('accepts AES-128/192/256-GCM, odd IV lengths and 12..16-byte tags', () => {
    for (const keyLen of [16, 24, 32]) {
      for (const ivLen of [1, 8, 12, 16, 64]) {
        for (const tagLength of [12, 13, 14, 15, 16]) {
          const key = Buffer.alloc(keyLen, 1);
          const iv = Buffer.alloc(ivLen, 2);
          const s = aeadSealRaw('AES-GCM', key, iv, pt, undefined, { tagLength });
          expect(s.tag).toHaveLength(tagLength);
          expect(aeadOpenRaw('AES-GCM', key, iv, s.ciphertext, s.tag, undefined, { tagLength })).toEqual(pt);
          // A tag of another length than agreed is refused, even if it is a prefix of the real one.
          const short = s.tag.subarray(0, tagLength - 1);
          expect(() => aeadOpenRaw('AES-GCM', key, iv, s.ciphertext, short, undefined, { tagLength })).toThrow(AeadError);
        }
      }
    }
  });

  it('refuses an empty GCM IV, short tags, and ChaCha20-Poly1305 variations', () => {
    const key = Buffer.alloc(32);
    expect(() => aeadSealRaw('AES-GCM', key, Buffer.alloc(0), pt)).toThrow(new AeadError('invalid nonce length'));
    for (const tagLength of [0, 4, 8, 11, 17, 12.5]) {
      expect(() => aeadSealRaw('AES-GCM', key, Buffer.alloc(12), pt, undefined, { tagLength })).toThrow(
        new AeadError('invalid tag length'),
      );
    }
    expect(() => aeadSealRaw('AES-GCM', Buffer.alloc(20), Buffer.alloc(12), pt)).toThrow(new AeadError('invalid key length'));
    expect(() => aeadSealRaw('CHACHA20-POLY1305', Buffer.alloc(16), Buffer.alloc(12), pt)).toThrow(
      new AeadError('invalid key length'),
    );
    expect(() => aeadSealRaw('CHACHA20-POLY1305', key, Buffer.alloc(8), pt)).toThrow(new AeadError('invalid nonce length'));
    expect(() => aeadSealRaw('CHACHA20-POLY1305', key, Buffer.alloc(12), pt, undefined, { tagLength: 12 })).toThrow(
      new AeadError('invalid tag length'),
    );
  });
});
