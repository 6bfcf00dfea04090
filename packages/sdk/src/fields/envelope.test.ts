import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { dekName, envelopeToCompact, envelopeToJson, fromCompact, fromJsonEnvelope, isoMs, parseEnvelope, strictDecode, toCompact, toJsonEnvelope, type SealedField } from './envelope.js';

const sample = (): SealedField => ({
  dek: 'ssn_restricted_202501',
  classification: 'restricted',
  data_type: 'ssn',
  encrypted_at: '2025-01-15T10:20:30.456Z',
  kek_id: 'key_abcdefghijklmnopqrstuvwxyz',
  kek_version: 3,
  kek_algorithm: 'AES-256-GCM',
  wrapped_key: randomBytes(60),
  commitment: randomBytes(32),
  iv: randomBytes(12),
  ciphertext: randomBytes(11),
  tag: randomBytes(16),
});
const codeOf = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return 'no error';
};

describe('field envelopes: the JSON form and the compact form', () => {
  it('DEK names are {data_type}_{classification}_{YYYYMM} in UTC', () => {
    expect(dekName('ssn', 'restricted', new Date('2025-01-31T23:59:59.999Z'))).toBe('ssn_restricted_202501');
    expect(dekName('ssn', 'restricted', new Date('2025-02-01T00:00:00.000Z'))).toBe('ssn_restricted_202502');
  });

  it('carry the seed shape, and convert into each other losslessly (also with an empty ciphertext)', () => {
    for (const f of [sample(), { ...sample(), ciphertext: Buffer.alloc(0) }]) {
      const json = toJsonEnvelope(f);
      expect(Object.keys(json)).toEqual(expect.arrayContaining(['ciphertext', 'iv', 'tag', 'key_id', 'algorithm', 'classification', 'encrypted_at']));
      expect(json).toMatchObject({ key_id: 'ssn_restricted_202501', algorithm: 'AES-256-GCM', classification: 'restricted' });
      const compact = toCompact(f);
      expect(compact).toMatch(/^pf2\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{88}\.[A-Za-z0-9_-]*$/);
      expect(fromCompact(compact)).toEqual(f);
      expect(fromJsonEnvelope(json)).toEqual(f);
      expect(envelopeToJson(compact)).toEqual(json);
      expect(envelopeToCompact(json)).toBe(compact);
      expect(envelopeToCompact(envelopeToJson(compact))).toBe(compact);
      expect(fromJsonEnvelope(JSON.parse(JSON.stringify(json)))).toEqual(f);
      expect(parseEnvelope(compact).form).toBe('compact');
      expect(parseEnvelope(json).form).toBe('json');
    }
  });

  it('refuse truncated, padded and inconsistent envelopes with PAL_FIELD_ENVELOPE_INVALID', () => {
    const f = sample();
    const compact = toCompact(f);
    const json = toJsonEnvelope(f);
    for (let n = 1; n < compact.length; n += 7) {
      const cut = compact.slice(0, compact.length - n);
      // a cut inside the base64url ciphertext can still decode: decrypting it fails (PAL_FIELD_DECRYPT_FAILED)
      if (codeOf(() => fromCompact(cut)) === 'no error') expect(fromCompact(cut)).not.toEqual(f);
      else expect(codeOf(() => fromCompact(cut)), cut).toBe('PAL_FIELD_ENVELOPE_INVALID');
    }
    const parts = compact.split('.');
    const withPart = (i: number, v: string) => parts.map((p, j) => (j === i ? v : p)).join('.');
    expect(codeOf(() => fromCompact(parts.slice(0, 3).join('.')))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => fromCompact(`${compact}.x`))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => fromCompact(withPart(2, parts[2]!.slice(0, -4))))).toBe('PAL_FIELD_ENVELOPE_INVALID'); // seal 63 bytes (a short tag)
    expect(codeOf(() => fromCompact(withPart(2, `${parts[2]!}AAAA`)))).toBe('PAL_FIELD_ENVELOPE_INVALID'); // seal 69 bytes
    expect(codeOf(() => fromCompact(withPart(1, `${parts[1]!}AA`)))).toBe('PAL_FIELD_ENVELOPE_INVALID'); // trailing key-part bytes
    expect(codeOf(() => fromCompact(withPart(3, `${parts[3]!}=`)))).toBe('PAL_FIELD_ENVELOPE_INVALID'); // padding
    expect(codeOf(() => fromCompact(withPart(3, `${parts[3]!.slice(0, -1)}+`)))).toBe('PAL_FIELD_ENVELOPE_INVALID'); // the other alphabet
    expect(codeOf(() => fromJsonEnvelope({ ...json, tag: json.tag.slice(0, -4) }))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => fromJsonEnvelope({ ...json, iv: `${json.iv}=` }))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => fromJsonEnvelope({ ...json, classification: 'confidential' }))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => fromJsonEnvelope({ ...json, data_type: 'pan' }))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => fromJsonEnvelope({ ...json, encrypted_at: '2025-01-15T10:20:30Z' }))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => fromJsonEnvelope({ ...json, v: 3 }))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => fromJsonEnvelope({ ...json, encrypted_at: '2025-01-15T24:00:00.000Z' }))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => fromJsonEnvelope({ ...json, ciphertext: `${json.ciphertext} ` }))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => fromJsonEnvelope({ ...json, extra: 1 }))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => fromJsonEnvelope({ ...json, algorithm: 'AES-128-GCM' }))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    const { commitment: _commitment, ...noCommitment } = json;
    expect(codeOf(() => fromJsonEnvelope(noCommitment))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => fromJsonEnvelope({ ...json, salt: 'AAAAAAAAAAAAAAAAAAAAAA==' }))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => parseEnvelope('123-45-6789', 'ssn'))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => parseEnvelope({ n: 1 }, 'ssn'))).toBe('PAL_FIELD_ENVELOPE_INVALID');
  });

  it('refuse format version 1 (never released) as an unknown version, in both forms', () => {
    const message = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return `${(e as { code?: string }).code}: ${(e as Error).message}`;
      }
      return 'no error';
    };
    const v1Compact = 'pf1.FXNzbl9yZXN0cmljdGVkXzIwMjUwMQ.AAAAAAAAAAAAAAAA.AA.AAAAAAAAAAAAAAAAAAAAAA';
    expect(message(() => parseEnvelope(v1Compact, 'ssn'))).toBe('PAL_FIELD_ENVELOPE_INVALID: field ssn: unknown version 1 (this SDK reads format version 2; version 1 was never released and is not read)');
    expect(message(() => parseEnvelope({ ...toJsonEnvelope(sample()), v: 1, salt: 'AAAAAAAAAAAAAAAAAAAAAA==' }, 'ssn'))).toBe('PAL_FIELD_ENVELOPE_INVALID: field ssn: unknown version 1 (this SDK reads format version 2; version 1 was never released and is not read)');
    expect(message(() => parseEnvelope('pf9.x', 'ssn'))).toMatch(/unknown version 9/);
  });

  it('strict base64 and base64url accept exactly the canonical encodings (against the round trip), short and long, into a buffer or not', () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_=  \n#.\u00e9\u0000A=';
    const into = Buffer.alloc(200);
    let accepted = 0;
    const wrong: string[] = [];
    for (let i = 0; i < 200_000; i++) {
      let s: string;
      if (i % 3 !== 2) {
        // a valid encoding (short, or long enough for Buffer's decoder), perhaps mutated
        const n = i % 3 === 0 ? Math.floor(rnd() * 10) : 40 + Math.floor(rnd() * 100);
        const b = Buffer.from(Array.from({ length: n }, () => Math.floor(rnd() * 256)));
        s = b.toString(i % 2 === 0 ? 'base64url' : 'base64');
        for (let j = Math.floor(rnd() * 3); j > 0; j--) {
          const p = rnd() < 0.5 ? s.length - Math.floor(rnd() * 4) : Math.floor(rnd() * (s.length + 1));
          const c = alphabet[Math.floor(rnd() * alphabet.length)]!;
          const op = rnd();
          s = op < 0.4 ? s.slice(0, p) + c + s.slice(p + 1) : op < 0.7 ? s.slice(0, p) + c + s.slice(p) : s.slice(0, p) + s.slice(p + 1);
        }
      } else {
        s = Array.from({ length: Math.floor(rnd() * 12) }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join('');
      }
      for (const enc of ['base64', 'base64url'] as const) {
        const canonical = Buffer.from(s, enc).toString(enc) === s;
        for (const target of [undefined, into]) {
          const got = strictDecode(s, enc === 'base64url', target);
          if ((got !== undefined) !== canonical || (got && !got.equals(Buffer.from(s, enc)))) wrong.push(`${enc}${target ? ' into' : ''} ${JSON.stringify(s)}`);
          if (got) accepted++;
        }
      }
    }
    expect(wrong).toEqual([]);
    expect(accepted).toBeGreaterThan(100_000);
  });

  it('encrypted_at: exactly the toISOString() of a millisecond in [0, 2^48)', () => {
    let seed = 11;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const oracle = (s: string) => {
      const t = Date.parse(s);
      return Number.isFinite(t) && t >= 0 && t < 2 ** 48 && new Date(t).toISOString() === s ? t : NaN;
    };
    const samples = ['1970-01-01T00:00:00.000Z', '2024-02-29T23:59:59.999Z', '2023-02-29T00:00:00.000Z', '2100-02-29T00:00:00.000Z', '2000-02-29T12:00:00.000Z', '2025-01-15T24:00:00.000Z', '2025-13-01T00:00:00.000Z', '2025-04-31T00:00:00.000Z', '1969-12-31T23:59:59.999Z', '2025-01-15T10:20:30.456+00:00', '2025-01-15T10:20:30Z', '2025-01-15 10:20:30.456Z', '+010000-01-01T00:00:00.000Z', '+010889-01-01T00:00:00.000Z', new Date(2 ** 48 - 1).toISOString(), '9999-12-31T23:59:59.999Z', '2025-1-15T10:20:30.4567Z', '２025-01-15T10:20:30.456Z'];
    for (let i = 0; i < 20_000; i++) {
      const t = Math.floor(rnd() * 2 ** 48);
      const iso = new Date(t).toISOString();
      samples.push(iso);
      const p = Math.floor(rnd() * iso.length);
      samples.push(iso.slice(0, p) + String.fromCharCode(0x2b + Math.floor(rnd() * 0x50)) + iso.slice(p + 1));
    }
    expect(samples.filter((s) => !Object.is(isoMs(s), oracle(s)))).toEqual([]);
    expect(samples.filter((s) => !Number.isNaN(isoMs(s))).length).toBeGreaterThan(20_000);
  });
});
