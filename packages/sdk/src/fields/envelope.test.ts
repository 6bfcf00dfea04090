import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { dekName, envelopeToCompact, envelopeToJson, fromCompact, fromJsonEnvelope, parseEnvelope, toCompact, toJsonEnvelope, type SealedField } from './envelope.js';

const sample = (): SealedField => ({
  dek: 'ssn_restricted_202501',
  classification: 'restricted',
  data_type: 'ssn',
  encrypted_at: '2025-01-15T10:20:30.456Z',
  kek_id: 'key_abcdefghijklmnopqrstuvwxyz',
  kek_version: 3,
  kek_algorithm: 'AES-256-GCM',
  wrapped_key: randomBytes(60),
  salt: randomBytes(16),
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
      expect(compact).toMatch(/^pf1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+$/);
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
    expect(codeOf(() => fromCompact(parts.slice(0, 4).join('.')))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => fromCompact(`${compact}.x`))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => fromCompact(compact.replace(parts[2]!, parts[2]!.slice(0, -1))))).toBe('PAL_FIELD_ENVELOPE_INVALID'); // iv 11 bytes
    expect(codeOf(() => fromCompact(compact.replace(parts[4]!, parts[4]!.slice(0, -3))))).toBe('PAL_FIELD_ENVELOPE_INVALID'); // short tag
    expect(codeOf(() => fromCompact(compact.replace(parts[1]!, `${parts[1]!}AA`)))).toBe('PAL_FIELD_ENVELOPE_INVALID'); // trailing header bytes
    expect(codeOf(() => fromJsonEnvelope({ ...json, tag: json.tag.slice(0, -4) }))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => fromJsonEnvelope({ ...json, iv: `${json.iv}=` }))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => fromJsonEnvelope({ ...json, classification: 'confidential' }))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => fromJsonEnvelope({ ...json, data_type: 'pan' }))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => fromJsonEnvelope({ ...json, encrypted_at: '2025-01-15T10:20:30Z' }))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => fromJsonEnvelope({ ...json, v: 2 }))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => fromJsonEnvelope({ ...json, extra: 1 }))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => fromJsonEnvelope({ ...json, algorithm: 'AES-128-GCM' }))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    const { salt: _salt, ...noSalt } = json;
    expect(codeOf(() => fromJsonEnvelope(noSalt))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => parseEnvelope('123-45-6789', 'ssn'))).toBe('PAL_FIELD_ENVELOPE_INVALID');
    expect(codeOf(() => parseEnvelope({ n: 1 }, 'ssn'))).toBe('PAL_FIELD_ENVELOPE_INVALID');
  });
});
