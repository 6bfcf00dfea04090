/**
 * Format version 2 of encrypted fields, without a server (an in-memory KMS):
 * - golden vectors (testdata/field-envelope-v2.json) made by an independent implementation of the documented format
 *   (compact: `pf2.<key>.<commitment ‖ encrypted_at ‖ iv ‖ tag>.<ciphertext>`)
 *   (ADR 0013, envelope.ts, field-key.ts), written here with node:crypto only: the SDK opens them, the independent
 *   code reproduces them byte for byte and opens what the SDK writes;
 * - every JSON type round-trips with its type (strings as UTF-8, the rest as canonical JSON);
 * - the cached path (warm cache) and the full path (cold cache) give the same answer for every tampered envelope.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PalisadeError, type EncryptedData } from '@palisade/core';
import { FieldEncryptor, type FieldKms } from './field-encryptor.js';
import { envelopeToCompact, envelopeToJson, type FieldEnvelope } from './envelope.js';
import type { FieldClassification } from './schema.js';

// ------------------------------------------------------------------------------------------------ an in-memory KMS

/** AES-256-GCM wrapping under one KEK, the encryption context (JSON) as AAD; failures carry the server's codes. */
function memoryKms(kekBytes: Buffer, kekId: string, opts: { dek?: () => Buffer } = {}) {
  const calls = { dataKey: 0, decrypt: 0, getKey: 0 };
  const aad = (ctx?: Record<string, unknown>) => Buffer.from(JSON.stringify(ctx ?? {}));
  const kms: FieldKms = {
    dataKey: async (keyId, o) => {
      calls.dataKey++;
      if (keyId !== kekId) throw new PalisadeError('PAL_KMS_KEY_NOT_FOUND', 'no such key');
      const plaintext = opts.dek?.() ?? randomBytes(32);
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', kekBytes, iv);
      c.setAAD(aad(o.context));
      const ct = c.update(plaintext);
      c.final();
      const ciphertext: EncryptedData = { key_id: keyId, key_version: 1, algorithm: 'AES-256-GCM', iv: iv.toString('base64'), ciphertext: ct.toString('base64'), tag: c.getAuthTag().toString('base64') };
      return { plaintext: Buffer.from(plaintext), ciphertext };
    },
    decrypt: async (keyId, data, ctx) => {
      calls.decrypt++;
      if (keyId !== kekId || keyId !== data.key_id) throw new PalisadeError('PAL_KMS_KEY_NOT_FOUND', 'no such key');
      if (keyId !== data.key_id || data.key_version !== 1 || data.algorithm !== 'AES-256-GCM') throw new PalisadeError('PAL_KMS_VERSION_NOT_FOUND', 'no such key version');
      try {
        const d = createDecipheriv('aes-256-gcm', kekBytes, Buffer.from(data.iv, 'base64'), { authTagLength: 16 });
        d.setAAD(aad(ctx));
        d.setAuthTag(Buffer.from(data.tag, 'base64'));
        const pt = d.update(Buffer.from(data.ciphertext, 'base64'));
        d.final();
        return pt;
      } catch {
        throw new PalisadeError('PAL_KMS_DECRYPT_FAILED', 'decryption failed');
      }
    },
    getKey: async () => (calls.getKey++, { version: 1 }),
  };
  return { kms, calls };
}

// ------------------------------------------------------------------------------------------------ the format, independently

const u8 = (n: number) => Buffer.of(n);
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const u48 = (n: number) => {
  const b = Buffer.alloc(6);
  b.writeUIntBE(n, 0, 6);
  return b;
};
const lp8 = (s: string) => Buffer.concat([u8(Buffer.byteLength(s)), Buffer.from(s)]);
const lp32 = (s: string) => Buffer.concat([u32(Buffer.byteLength(s)), Buffer.from(s)]);

interface Spec {
  dek: Buffer;
  name: string;
  kekId: string;
  wrapped: Buffer;
  ms: number;
  iv: Buffer;
  recordId: string;
  path: string;
  value: unknown;
}

function derive(dek: Buffer, name: string) {
  const info = (label: string) => Buffer.concat([Buffer.from(label), u8(0), Buffer.from(name)]);
  const salt = Buffer.from('palisade field keys v2');
  return {
    key: Buffer.from(hkdfSync('sha512', dek, salt, info('palisade field key v2'), 32)),
    commitment: Buffer.from(hkdfSync('sha512', dek, salt, info('palisade field key commitment v2'), 32)),
  };
}
const aadOf = (name: string, ms: number, recordId: string, path: string) => Buffer.concat([u8(2), lp8(name), u48(ms), lp32(recordId), lp32(path)]);
const plaintextOf = (v: unknown) => (typeof v === 'string' ? Buffer.concat([u8(1), Buffer.from(v)]) : Buffer.concat([u8(2), Buffer.from(JSON.stringify(v))])); // (the vectors' JSON values are canonical as JSON.stringify writes them)

function independentSeal(s: Spec): { compact: string; json: FieldEnvelope } {
  const { key, commitment } = derive(s.dek, s.name);
  const c = createCipheriv('aes-256-gcm', key, s.iv);
  c.setAAD(aadOf(s.name, s.ms, s.recordId, s.path));
  const ct = c.update(plaintextOf(s.value));
  c.final();
  const tag = c.getAuthTag();
  const [dataType, classification] = [s.name.split('_')[0]!, s.name.split('_')[1]!];
  const keyPart = Buffer.concat([lp8(s.name), lp8(s.kekId), u32(1), lp8('AES-256-GCM'), u8(s.wrapped.length), s.wrapped]);
  const b64u = (b: Buffer) => b.toString('base64url');
  return {
    compact: `pf2.${b64u(keyPart)}.${b64u(Buffer.concat([commitment, u48(s.ms), s.iv, tag]))}.${b64u(ct)}`,
    json: {
      v: 2,
      ciphertext: ct.toString('base64'),
      iv: s.iv.toString('base64'),
      tag: tag.toString('base64'),
      key_id: s.name,
      algorithm: 'AES-256-GCM',
      classification: classification as 'confidential',
      data_type: dataType,
      encrypted_at: new Date(s.ms).toISOString(),
      kek_id: s.kekId,
      kek_version: 1,
      kek_algorithm: 'AES-256-GCM',
      wrapped_key: s.wrapped.toString('base64'),
      commitment: commitment.toString('base64'),
    },
  };
}

/** Opens a compact envelope given its DEK, by the documented layout alone. */
function independentOpen(compact: string, dek: Buffer, recordId: string, path: string): unknown {
  const [prefix, keyPart, seal, ct] = compact.split('.').map((p, i) => (i === 0 ? p : Buffer.from(p, 'base64url'))) as [string, Buffer, Buffer, Buffer];
  expect(prefix).toBe('pf2');
  expect(seal.length).toBe(66);
  const name = keyPart.subarray(1, 1 + keyPart[0]!).toString('latin1');
  const d = derive(dek, name);
  expect(seal.subarray(0, 32).equals(d.commitment)).toBe(true);
  const decipher = createDecipheriv('aes-256-gcm', d.key, seal.subarray(38, 50), { authTagLength: 16 });
  decipher.setAAD(aadOf(name, seal.readUIntBE(32, 6), recordId, path));
  decipher.setAuthTag(seal.subarray(50, 66));
  const pt = decipher.update(ct);
  decipher.final();
  return pt[0] === 1 ? pt.toString('utf8', 1) : JSON.parse(pt.toString('utf8', 1));
}

// ------------------------------------------------------------------------------------------------ golden vectors

interface Vector {
  what: string;
  kek: string;
  dek: string;
  dek_name: string;
  kek_id: string;
  wrap_iv: string;
  wrapped_key: string;
  field_key: string;
  commitment: string;
  encrypted_at_ms: number;
  iv: string;
  record_id: string;
  path: string;
  value: unknown;
  compact: string;
  json: FieldEnvelope;
  tampered: Array<{ what: string; compact?: string; json?: Record<string, unknown>; record_id?: string; path?: string; code: string }>;
}
const vectors = JSON.parse(readFileSync(new URL('./testdata/field-envelope-v2.json', import.meta.url), 'utf8')) as { vectors: Vector[] };

async function outcome(p: Promise<unknown>): Promise<unknown> {
  try {
    return { value: await p };
  } catch (e) {
    return { code: (e as { code?: string }).code ?? 'no code', message: (e as Error).message };
  }
}

describe('encrypted fields, format version 2', () => {
  it('golden vectors: the independent implementation reproduces them, the SDK opens them (both forms), tampered ones fail', async () => {
    expect(vectors.vectors.length).toBeGreaterThanOrEqual(2);
    for (const v of vectors.vectors) {
      const dek = Buffer.from(v.dek, 'hex');
      const d = derive(dek, v.dek_name);
      expect(d.key.toString('hex'), v.what).toBe(v.field_key);
      expect(d.commitment.toString('hex'), v.what).toBe(v.commitment);
      const again = independentSeal({ dek, name: v.dek_name, kekId: v.kek_id, wrapped: Buffer.from(v.wrapped_key, 'hex'), ms: v.encrypted_at_ms, iv: Buffer.from(v.iv, 'hex'), recordId: v.record_id, path: v.path, value: v.value });
      expect(again.compact, v.what).toBe(v.compact);
      expect(again.json, v.what).toEqual(v.json);
      expect(envelopeToJson(v.compact)).toEqual(v.json);
      expect(envelopeToCompact(v.json)).toBe(v.compact);

      const { kms, calls } = memoryKms(Buffer.from(v.kek, 'hex'), v.kek_id);
      const fe = new FieldEncryptor({ kms, keys: { confidential: v.kek_id } });
      const at = { recordId: v.record_id, path: v.path };
      expect(await fe.decryptField(v.compact, at), v.what).toEqual(v.value);
      expect(await fe.decryptField(v.json, at), v.what).toEqual(v.value);
      expect(calls.decrypt).toBe(1);
      for (const t of v.tampered) {
        const got = (await outcome(fe.decryptField(t.compact ?? { ...v.json, ...t.json }, { recordId: t.record_id ?? v.record_id, path: t.path ?? v.path }))) as { code?: string };
        expect(got.code, `${v.what}, ${t.what}`).toBe(t.code);
      }
    }
  });

  it('what the SDK writes, the independent implementation opens (both forms)', async () => {
    const dek = randomBytes(32);
    const { kms } = memoryKms(randomBytes(32), 'key_x', { dek: () => Buffer.from(dek) });
    const fe = new FieldEncryptor({ kms, keys: { restricted: 'key_x' } });
    for (const value of ['123-45-6789', '', 'ünïcödé ✓ 😀', 42, -1.5e300, true, null, [1, 'a', { b: [] }], { z: 1, a: { é: 'ü' } }]) {
      const compact = (await fe.encryptField(value, { recordId: 'cust_1', path: 'a.b', classification: 'restricted', data_type: 'ssn', form: 'compact' })) as string;
      expect(independentOpen(compact, dek, 'cust_1', 'a.b')).toEqual(value);
      const json = (await fe.encryptField(value, { recordId: 'cust_1', path: 'a.b', classification: 'restricted', data_type: 'ssn' })) as FieldEnvelope;
      expect(independentOpen(envelopeToCompact(json), dek, 'cust_1', 'a.b')).toEqual(value);
      // a plain object (made by a constructor, not a literal: envelope.ts), its members in the seed's order first
      expect(Object.getPrototypeOf(json)).toBe(Object.prototype);
      expect(Object.keys(json)).toEqual(['v', 'ciphertext', 'iv', 'tag', 'key_id', 'algorithm', 'classification', 'data_type', 'encrypted_at', 'kek_id', 'kek_version', 'kek_algorithm', 'wrapped_key', 'commitment']);
      expect(Object.keys(envelopeToJson(compact))).toEqual(Object.keys(json));
      expect(JSON.parse(JSON.stringify(json))).toStrictEqual({ ...json });
    }
  });

  it('every JSON type round-trips with its type; strings are not JSON (1 and "1" stay apart); lone surrogates are refused', async () => {
    const { kms } = memoryKms(randomBytes(32), 'key_x');
    const fe = new FieldEncryptor({ kms, keys: { internal: 'key_x' } });
    const reader = new FieldEncryptor({ kms, keys: {} });
    const opts = { recordId: 'r', path: 'v', classification: 'internal' as const, data_type: 'misc' };
    const values: unknown[] = ['1', 1, 'true', true, 'null', null, '', '""', '"x"', '{"a":1}', { a: 1 }, '[]', [], [1, 'a', null, { b: [true] }], 0, -0.5, 1e21, 'x'.repeat(70_000), '😀', 'a\u0000b\n'];
    for (const form of ['json', 'compact'] as const) {
      for (const v of values) {
        const e = await fe.encryptField(v, { ...opts, form });
        for (const who of [fe, reader]) {
          const back = await who.decryptField(e, opts);
          expect(typeof back).toBe(typeof v);
          expect(back).toEqual(v);
        }
      }
    }
    const schemaInvalid = async (p: Promise<unknown>) => ((await outcome(p)) as { code?: string }).code;
    expect(await schemaInvalid(fe.encryptField('a\ud800b', opts))).toBe('PAL_FIELD_SCHEMA_INVALID');
    expect(await schemaInvalid(fe.encryptField({ k: '\udc00' }, opts))).toBe('PAL_FIELD_SCHEMA_INVALID');
    expect(await schemaInvalid(fe.encryptField('x', { ...opts, recordId: 'r\ud800' }))).toBe('PAL_FIELD_SCHEMA_INVALID');
    expect(await schemaInvalid(fe.encryptField('x', { ...opts, path: 'a\ud800' }))).toBe('PAL_FIELD_SCHEMA_INVALID');
    // ids and paths are bound by their UTF-8: non-ASCII ones work, and differ from their neighbours
    const e = await fe.encryptField('x', { ...opts, recordId: 'zoë', path: 'straße' });
    expect(await reader.decryptField(e, { ...opts, recordId: 'zoë', path: 'straße' })).toBe('x');
    expect(await schemaInvalid(reader.decryptField(e, { ...opts, recordId: 'zoe', path: 'straße' }))).toBe('PAL_FIELD_DECRYPT_FAILED');
  });

  it('the cached path and the full path answer alike, for every change of every character of both forms', async () => {
    const { kms, calls } = memoryKms(randomBytes(32), 'key_warm');
    const warm = new FieldEncryptor({ kms, keys: { confidential: 'key_warm' } });
    const cold = new FieldEncryptor({ kms, keys: { confidential: 'key_warm' } });
    const at: { recordId: string; path: string; classification: FieldClassification; data_type: string } = { recordId: 'cust_7', path: 'profile.email', classification: 'confidential', data_type: 'email' };
    const compact = (await warm.encryptField('ada@example.com', { ...at, form: 'compact' })) as string;
    const json = envelopeToJson(compact);
    const both = async (e: unknown, where = at) => {
      const w = await outcome(warm.decryptField(e, where));
      cold.cache.clear(); // nothing cached: the full path, with an unwrap
      const c = await outcome(cold.decryptField(e, where));
      return { w, c };
    };
    const alphabet = 'AQgw_-+/=.9z';
    let compared = 0;
    const hist: Record<string, number> = {};
    for (let i = 0; i < compact.length; i += 1) {
      for (const ch of [alphabet[i % alphabet.length]!, alphabet[(i * 7 + 3) % alphabet.length]!]) {
        if (compact[i] === ch) continue;
        const { w, c } = await both(compact.slice(0, i) + ch + compact.slice(i + 1));
        expect(w, `compact char ${i} → ${ch}`).toEqual(c);
        const key = (w as { code?: string }).code ?? 'value';
        hist[key] = (hist[key] ?? 0) + 1;
        compared++;
      }
    }
    for (const cut of [1, 2, 5, 22, 23, 40, 300]) {
      const { w, c } = await both(compact.slice(0, compact.length - cut));
      expect(w, `compact cut ${cut}`).toEqual(c);
    }
    const first = (x: string) => (x[0] === 'B' ? 'C' : 'B') + x.slice(1); // another first character
    const members: Array<[string, unknown[]]> = [
      ['v', [1, 3, '2', null]],
      ['ciphertext', [`${json.ciphertext.slice(0, -2)}A=`, `${json.ciphertext} `, json.ciphertext.replace(/[A-Z]/, 'a'), '', 7]],
      ['iv', [first(json.iv), `${json.iv}=`, json.iv.slice(4), json.iv.replace(/[+/]|[A-Z]/, '-')]],
      ['tag', [first(json.tag), json.tag.slice(0, 20), json.tag.replace('==', 'A=')]],
      ['commitment', [first(json.commitment), json.commitment.slice(4), `${json.commitment.slice(0, -2)}B=`]],
      ['encrypted_at', [new Date(Date.parse(json.encrypted_at) + 1).toISOString(), json.encrypted_at.replace('Z', '+00:00'), '2025-02-29T00:00:00.000Z', 0]],
      ['key_id', [json.key_id.replace('email', 'phone'), `${json.key_id}x`]],
      ['classification', ['restricted', 'public']],
      ['data_type', ['phone']],
      ['kek_id', ['key_other']],
      ['kek_version', [2, '1', 1.5]],
      ['kek_algorithm', ['AES-128-GCM', 'aes-256-gcm']],
      ['algorithm', ['AES-128-GCM']],
      ['wrapped_key', [first(json.wrapped_key), json.wrapped_key.slice(4)]],
      ['extra', ['x']],
    ];
    for (const [k, vs] of members) {
      for (const v of vs) {
        const { w, c } = await both({ ...json, [k]: v });
        expect(w, `json ${k} = ${JSON.stringify(v)}`).toEqual(c);
        const key = `${k}:${(w as { code?: string }).code ?? 'value'}`;
        hist[key] = (hist[key] ?? 0) + 1;
        compared++;
      }
    }
    const { commitment: _commitment, ...withoutCommitment } = json;
    const missing = await both(withoutCommitment);
    expect(missing.w).toEqual(missing.c);
    // other bindings, and expectations the envelope does not meet
    for (const where of [{ ...at, recordId: 'cust_8' }, { ...at, path: 'profile.backup' }, { ...at, classification: 'restricted' as const }, { ...at, data_type: 'phone' }]) {
      for (const e of [compact, json]) {
        const { w, c } = await both(e, where);
        expect(w, JSON.stringify(where)).toEqual(c);
        expect((w as { code?: string }).code).toBe('PAL_FIELD_DECRYPT_FAILED');
      }
    }
    expect(compared).toBeGreaterThan(400);
    // and no changed envelope decrypted (a changed KMS key id fails at the KMS, as on a server)
    expect(Object.keys(hist).filter((k) => k.endsWith('value'))).toEqual([]);
    expect(hist.PAL_FIELD_DECRYPT_FAILED).toBeGreaterThan(100);
    expect(hist.PAL_FIELD_ENVELOPE_INVALID).toBeGreaterThan(100);
    // the warm encryptor never needed the KMS to read: its answers came from the cached path (or from the envelope's own faults)
    expect(calls.dataKey).toBe(1);
  });
});
