/**
 * Field-level encryption against a real server (SQLite and PostgreSQL): nested records round-trip; moved (other field,
 * other record), truncated and tampered ciphertexts fail with PAL_FIELD_DECRYPT_FAILED / PAL_FIELD_ENVELOPE_INVALID;
 * the compact and JSON forms decrypt each other's data; the KMS calls are counted (client side and in the audit log);
 * a month boundary names a new DEK while old fields stay readable, and reencrypt moves them with progress.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dialects, startServer, type TestServer } from '../../../server/src/testing/harness.js';
import { FieldEncryptor, envelopeToCompact, envelopeToJson, type ClassificationSchema, type FieldEnvelope, type FieldKms, type KmsClient, type PalisadeClient, type ReencryptProgress } from '../index.js';

const MOVED = 'does not decrypt for this record and field (moved from another record or field, or tampered)';

const schema: ClassificationSchema = {
  fields: {
    name: { classification: 'public', data_type: 'name' },
    ssn: { classification: 'restricted', data_type: 'ssn' },
    'profile.email': { classification: 'confidential', data_type: 'email' },
    'profile.backup_email': { classification: 'confidential', data_type: 'email' },
    'profile.dob': { classification: 'confidential', data_type: 'dob' },
    score: { classification: 'confidential', data_type: 'score' },
    'cards[*].pan': { classification: 'restricted', data_type: 'pan' },
    'cards[].meta': { classification: 'internal', data_type: 'card_meta' },
    'notes[*]': { classification: 'internal', data_type: 'note' },
  },
};

const record = (n: number) => ({
  id: `cust_${n}`,
  name: `Customer ${n}`,
  ssn: `123-45-${String(n).padStart(4, '0')}`,
  profile: { email: `c${n}@example.com`, backup_email: `backup${n}@example.com`, dob: null, city: 'Lyon' },
  score: 712.5 + n,
  cards: [
    { pan: '4111111111111111', meta: { brand: 'visa', exp: [12, 2030], primary: true } },
    { pan: '5500000000000004', meta: { brand: 'mc', exp: [1, 2029], primary: false }, label: 'travel' },
    { label: 'no pan here' },
  ],
  notes: ['first', 'zweite – ünïcödé ✓', ''],
});
type Rec = ReturnType<typeof record>;

function counting(kms: KmsClient) {
  const n = { dataKey: 0, decrypt: 0, getKey: 0 };
  const k: FieldKms = {
    dataKey: (id, o) => (n.dataKey++, kms.dataKey(id, o)),
    decrypt: (id, d, c) => (n.decrypt++, kms.decrypt(id, d, c)),
    getKey: (id) => (n.getKey++, kms.getKey(id)),
  };
  return { kms: k, n };
}

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string; path?: unknown }> {
  try {
    await p;
  } catch (e) {
    const err = e as { code?: string; message: string; extensions?: Record<string, unknown> };
    return { code: err.code ?? err.message, message: err.message, path: err.extensions?.path };
  }
  throw new Error('expected a failure, got a value');
}

for (const d of dialects()) {
  describe.skipIf(!d.available)(`SDK: field-level encryption against a real server (${d.name})`, () => {
    let s: TestServer;
    let c: PalisadeClient;
    const keys = { internal: '', confidential: '', restricted: '' };
    const newKek = async (classification: 'internal' | 'confidential' | 'restricted') => (await c.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', classification })).key_id;
    const audited = async (type: string, keyId: string) => {
      let n = 0;
      for await (const _e of c.audit.events({ type, resource: keyId }, 100_000)) n++;
      return n;
    };

    beforeAll(async () => {
      s = await startServer(d.name);
      c = s.client;
      for (const cl of ['internal', 'confidential', 'restricted'] as const) keys[cl] = await newKek(cl);
    });
    afterAll(async () => s?.close());

    it('nested records with arrays round-trip in both forms; public fields stay in clear; the seed\'s envelope shape', async () => {
      const fe = c.fields({ keys });
      const r = record(1);
      const enc = await fe.encryptFields(r, schema, { recordId: r.id });
      expect(enc.name).toBe(r.name);
      expect(enc.profile.city).toBe('Lyon');
      expect(enc.cards[2]).toEqual({ label: 'no pan here' });
      expect(enc.cards[1]!.label).toBe('travel');
      const ssn = enc.ssn as unknown as FieldEnvelope;
      expect(ssn).toMatchObject({ algorithm: 'AES-256-GCM', classification: 'restricted', data_type: 'ssn', kek_id: keys.restricted, kek_version: 1 });
      expect(ssn.key_id).toMatch(/^ssn_restricted_\d{6}$/);
      expect(Object.keys(ssn)).toEqual(expect.arrayContaining(['ciphertext', 'iv', 'tag', 'key_id', 'algorithm', 'classification', 'encrypted_at']));
      expect(JSON.stringify(enc)).not.toContain('123-45-');
      expect(JSON.stringify(enc)).not.toContain('4111111111111111');
      expect((enc.cards[0]!.meta as unknown as FieldEnvelope).classification).toBe('internal');
      expect(await fe.decryptFields(enc, schema, { recordId: r.id })).toEqual(r);
      // a record stored as JSON text and read back by another process (a fresh encryptor, empty cache)
      const other = new FieldEncryptor({ kms: c.kms, keys });
      expect(await other.decryptFields(JSON.parse(JSON.stringify(enc)), schema, { recordId: r.id })).toEqual(r);

      const compact = await fe.encryptFields(r, schema, { recordId: r.id, form: 'compact' });
      expect(compact.ssn).toMatch(/^pf2\./);
      expect(compact.notes.every((n) => n.startsWith('pf2.'))).toBe(true);
      expect(await other.decryptFields(compact, schema, { recordId: r.id })).toEqual(r);

      // single fields, any JSON type
      for (const v of ['x', '', 0, -1.5e300, true, null, [1, 'a', { b: [] }], { z: 1, a: { 'é': 'ü' } }]) {
        const e = await fe.encryptField(v, { recordId: 'r', path: 'v', classification: 'confidential', data_type: 'misc' });
        expect(await other.decryptField(e, { recordId: 'r', path: 'v' })).toEqual(v);
      }
      expect((await failure(fe.encryptField(1n, { recordId: 'r', path: 'v', classification: 'confidential', data_type: 'misc' }))).code).toBe('PAL_FIELD_SCHEMA_INVALID');
      expect((await failure(fe.encryptField('x', { recordId: 'r', path: 'v', classification: 'public', data_type: 'misc' }))).code).toBe('PAL_FIELD_SCHEMA_INVALID');
      const noInternal = c.fields({ keys: { confidential: keys.confidential, restricted: keys.restricted } });
      expect(await failure(noInternal.encryptFields(r, schema, { recordId: r.id }))).toMatchObject({ code: 'PAL_FIELD_SCHEMA_INVALID', message: 'no KMS key is configured for classification internal' });
    });

    it('a field moved to another field or another record, or replaced by clear text, does not decrypt', async () => {
      const fe = c.fields({ keys });
      const a = record(1);
      const b = record(2);
      const ea = await fe.encryptFields(a, schema, { recordId: a.id });
      const eb = await fe.encryptFields(b, schema, { recordId: b.id });

      // the whole record under another record id
      expect(await failure(fe.decryptFields(ea, schema, { recordId: b.id }))).toEqual({ code: 'PAL_FIELD_DECRYPT_FAILED', message: `field ssn of record "cust_2" ${MOVED}`, path: 'ssn' });
      // one field copied from record b into record a (same path, same DEK)
      const mixed = structuredClone(ea);
      mixed.profile.email = eb.profile.email;
      expect(await failure(fe.decryptFields(mixed, schema, { recordId: a.id }))).toEqual({ code: 'PAL_FIELD_DECRYPT_FAILED', message: `field profile.email of record "cust_1" ${MOVED}`, path: 'profile.email' });
      // swapped between two fields of the same data type and classification (only the AAD tells them apart)
      const swapped = structuredClone(ea);
      [swapped.profile.email, swapped.profile.backup_email] = [ea.profile.backup_email, ea.profile.email];
      expect(await failure(fe.decryptFields(swapped, schema, { recordId: a.id }))).toMatchObject({ code: 'PAL_FIELD_DECRYPT_FAILED', message: expect.stringContaining(MOVED) });
      // moved into a field of another data type or classification: said as such
      const moved = structuredClone(ea);
      moved.ssn = ea.cards[0]!.pan!;
      expect(await failure(fe.decryptFields(moved, schema, { recordId: a.id }))).toEqual({ code: 'PAL_FIELD_DECRYPT_FAILED', message: 'field ssn of record "cust_1" holds data type pan, the schema says ssn (moved from another field, or tampered)', path: 'ssn' });
      const moved2 = structuredClone(ea);
      moved2.profile.dob = ea.cards[0]!.meta as never;
      expect((await failure(fe.decryptFields(moved2, schema, { recordId: a.id }))).message).toBe('field profile.dob of record "cust_1" is classified internal, the schema says confidential (moved from another field, or tampered)');
      // single-field API: another path, another record
      expect((await failure(fe.decryptField(ea.ssn, { recordId: a.id, path: 'tax_id' }))).message).toBe(`field tax_id of record "cust_1" ${MOVED}`);
      expect((await failure(fe.decryptField(ea.ssn, { recordId: b.id, path: 'ssn' }))).code).toBe('PAL_FIELD_DECRYPT_FAILED');
      // clear text where the schema wants an envelope
      const clear = structuredClone(ea);
      clear.ssn = '123-45-0001';
      expect(await failure(fe.decryptFields(clear, schema, { recordId: a.id }))).toEqual({ code: 'PAL_FIELD_ENVELOPE_INVALID', message: 'field ssn: does not hold an encrypted field (neither the JSON envelope nor the pf2. compact form)', path: 'ssn' });
      // By design, array elements are bound to the schema path (cards[*].pan), not their index: reordering or
      // deleting elements keeps every element readable. Moving between elements of one record is not detected.
      const reordered = structuredClone(ea);
      reordered.cards.reverse();
      expect((await fe.decryptFields(reordered, schema, { recordId: a.id })).cards.map((x) => x.pan)).toEqual([undefined, '5500000000000004', '4111111111111111']);
    });

    it('truncated and tampered ciphertexts fail with a clear error, in every byte region of both forms', async () => {
      const fe = c.fields({ keys });
      const compact = (await fe.encryptField('123-45-6789', { recordId: 'r1', path: 'ssn', classification: 'restricted', data_type: 'ssn', form: 'compact' })) as string;
      const json = envelopeToJson(compact);
      const open = (e: unknown) => fe.decryptField(e, { recordId: 'r1', path: 'ssn', classification: 'restricted', data_type: 'ssn' });
      expect(await open(compact)).toBe('123-45-6789');
      expect(await open(json)).toBe('123-45-6789');

      // compact: flip one bit in every byte of the key part, the seal (commitment, time, iv, tag) and the ciphertext
      const [prefix, ...parts] = compact.split('.');
      const names = ['key', 'seal', 'ciphertext'];
      const seen: Record<string, Set<string>> = {};
      for (let p = 0; p < parts.length; p++) {
        const bytes = Buffer.from(parts[p]!, 'base64url');
        for (let i = 0; i < bytes.length; i++) {
          const t = Buffer.from(bytes);
          t[i]! ^= 0x01;
          const tampered = [prefix, ...parts.map((x, j) => (j === p ? t.toString('base64url') : x))].join('.');
          const f = await failure(open(tampered));
          expect(['PAL_FIELD_DECRYPT_FAILED', 'PAL_FIELD_ENVELOPE_INVALID'], `${names[p]} byte ${i}: ${f.message}`).toContain(f.code);
          expect(f.path).toBe('ssn');
          (seen[names[p]!] ??= new Set()).add(f.code);
        }
      }
      // the seal (commitment, time, iv, tag) and the ciphertext only fail authentication; the key part's lengths and names can also fail to parse
      expect([...seen.seal!, ...seen.ciphertext!].every((x) => x === 'PAL_FIELD_DECRYPT_FAILED')).toBe(true);
      expect(seen.key).toEqual(new Set(['PAL_FIELD_DECRYPT_FAILED', 'PAL_FIELD_ENVELOPE_INVALID']));

      // JSON: each member changed (a bit of each byte field; the others to another valid value)
      const flip = (b64: string, i = 0) => {
        const b = Buffer.from(b64, 'base64');
        b[i]! ^= 0x80;
        return b.toString('base64');
      };
      // another DEK of the same name (another encryptor fetches its own); fields of one DEK share its wrapped key and commitment
      const other = envelopeToJson((await c.fields({ keys }).encryptField('x', { recordId: 'r1', path: 'ssn', classification: 'restricted', data_type: 'ssn', form: 'compact' })) as string);
      expect(other.key_id).toBe(json.key_id);
      expect(other.wrapped_key).not.toBe(json.wrapped_key);
      const variants: Array<[string, Partial<FieldEnvelope>, string]> = [
        ['ciphertext', { ciphertext: flip(json.ciphertext) }, 'PAL_FIELD_DECRYPT_FAILED'],
        ['iv', { iv: flip(json.iv) }, 'PAL_FIELD_DECRYPT_FAILED'],
        ['tag', { tag: flip(json.tag, 15) }, 'PAL_FIELD_DECRYPT_FAILED'],
        ['commitment', { commitment: flip(json.commitment, 31) }, 'PAL_FIELD_DECRYPT_FAILED'],
        ['wrapped_key', { wrapped_key: flip(json.wrapped_key, 20) }, 'PAL_FIELD_DECRYPT_FAILED'],
        ['wrapped_key and commitment of another DEK (same name)', { wrapped_key: other.wrapped_key, commitment: other.commitment }, 'PAL_FIELD_DECRYPT_FAILED'],
        ['wrapped_key of another DEK (same name)', { wrapped_key: other.wrapped_key }, 'PAL_FIELD_DECRYPT_FAILED'],
        ['commitment of another DEK (same name)', { commitment: other.commitment }, 'PAL_FIELD_DECRYPT_FAILED'],
        ['encrypted_at', { encrypted_at: new Date(Date.parse(json.encrypted_at) + 1).toISOString() }, 'PAL_FIELD_DECRYPT_FAILED'],
        ['key_id (another month)', { key_id: json.key_id.replace(/\d{2}$/, (m) => (m === '12' ? '11' : String(Number(m) + 1).padStart(2, '0'))) }, 'PAL_FIELD_DECRYPT_FAILED'],
        ['kek_version', { kek_version: 2 }, 'PAL_FIELD_DECRYPT_FAILED'],
        ['kek_id', { kek_id: keys.confidential }, 'PAL_FIELD_DECRYPT_FAILED'],
        ['kek_algorithm', { kek_algorithm: 'CHACHA20-POLY1305' }, 'PAL_FIELD_DECRYPT_FAILED'],
        ['classification', { classification: 'confidential' }, 'PAL_FIELD_ENVELOPE_INVALID'],
        ['algorithm', { algorithm: 'AES-128-GCM' as 'AES-256-GCM' }, 'PAL_FIELD_ENVELOPE_INVALID'],
      ];
      for (const [what, change, code] of variants) {
        const f = await failure(open({ ...json, ...change }));
        expect(f.code, `${what}: ${f.message}`).toBe(code);
        if (code === 'PAL_FIELD_DECRYPT_FAILED') expect(f.message, what).toMatch(/^field ssn of record "r1" (does not decrypt for this record and field \(moved from another record or field, or tampered\)|does not decrypt: its data key does not unwrap under KMS key key_\w+ v\d \(PAL_KMS_\w+; tampered, or the key is gone\))$/);
      }

      // truncated: the compact string cut anywhere, the JSON ciphertext or tag shortened
      for (let n = 1; n < compact.length - 4; n += 3) {
        const f = await failure(open(compact.slice(0, n)));
        expect(['PAL_FIELD_DECRYPT_FAILED', 'PAL_FIELD_ENVELOPE_INVALID'], `cut at ${n}: ${f.message}`).toContain(f.code);
      }
      const ct = Buffer.from(json.ciphertext, 'base64');
      expect((await failure(open({ ...json, ciphertext: ct.subarray(0, ct.length - 1).toString('base64') }))).message).toBe(`field ssn of record "r1" ${MOVED}`);
      expect(await failure(open({ ...json, tag: Buffer.from(json.tag, 'base64').subarray(0, 12).toString('base64') }))).toMatchObject({ code: 'PAL_FIELD_ENVELOPE_INVALID', message: 'field ssn: tag has the wrong length (truncated?)' });
    });

    it('the compact and the JSON form decrypt each other\'s data (and a record may mix them)', async () => {
      const fe = c.fields({ keys });
      const reader = c.fields({ keys });
      const r = record(7);
      const asJson = await fe.encryptFields(r, schema, { recordId: r.id });
      const asCompact = await fe.encryptFields(r, schema, { recordId: r.id, form: 'compact' });
      const conv = (x: unknown): unknown => (typeof x === 'string' && x.startsWith('pf2.') ? envelopeToJson(x) : x && typeof x === 'object' && 'key_id' in x ? envelopeToCompact(x as FieldEnvelope) : x);
      const jsonToCompact = structuredClone(asJson) as Record<string, unknown>;
      jsonToCompact.ssn = conv(asJson.ssn);
      (jsonToCompact.cards as Rec['cards'])[0]!.pan = conv(asJson.cards[0]!.pan) as string;
      expect(jsonToCompact.ssn).toMatch(/^pf2\./);
      expect(await reader.decryptFields(jsonToCompact, schema, { recordId: r.id })).toEqual(r);
      const compactToJson = structuredClone(asCompact) as Record<string, unknown>;
      compactToJson.ssn = conv(asCompact.ssn);
      (compactToJson.profile as Rec['profile']).email = conv(asCompact.profile.email) as string;
      expect(await reader.decryptFields(compactToJson, schema, { recordId: r.id })).toEqual(r);
      // converting there and back is the identity
      expect(envelopeToCompact(envelopeToJson(asCompact.ssn))).toBe(asCompact.ssn);
      expect(envelopeToJson(envelopeToCompact(asJson.ssn as unknown as FieldEnvelope))).toEqual(asJson.ssn);
    });

    it('KMS calls: 1,000 fields → one data-key call; crossing maxMessages → exactly one more; decrypting 1,000 → one unwrap', async () => {
      const kek = await newKek('restricted');
      const one: ClassificationSchema = { fields: { ssn: { classification: 'restricted', data_type: 'ssn' } } };
      const recs = Array.from({ length: 1000 }, (_, i) => ({ id: `r${i}`, ssn: `ssn-${i}` }));
      const w = counting(c.kms);
      const fe = new FieldEncryptor({ kms: w.kms, keys: { restricted: kek }, cache: { maxMessages: 1000 } });
      // half one after the other, half all at once (concurrent callers share the one data-key call)
      const enc: Array<{ id: string; ssn: string }> = [];
      for (const r of recs.slice(0, 500)) enc.push(await fe.encryptFields(r, one, { recordId: r.id }));
      enc.push(...(await Promise.all(recs.slice(500).map((r) => fe.encryptFields(r, one, { recordId: r.id })))));
      const after1000 = { ...w.n, audited: await audited('kms.data_key', kek) };
      expect(w.n).toEqual({ dataKey: 1, decrypt: 0, getKey: 0 });
      expect(after1000.audited).toBe(1);
      expect(new Set(enc.map((e) => (e.ssn as unknown as FieldEnvelope).wrapped_key)).size).toBe(1);
      expect(fe.cache.stats().encrypt).toMatchObject({ [fe.currentDekName('ssn', 'restricted')]: { messages: 1000 } });
      // field 1,001 crosses maxMessages: one more data key, same DEK name
      const extra = await fe.encryptFields({ id: 'r1000', ssn: 'ssn-1000' }, one, { recordId: 'r1000' });
      expect(w.n.dataKey).toBe(2);
      expect(await audited('kms.data_key', kek)).toBe(2);
      expect((extra.ssn as unknown as FieldEnvelope).key_id).toBe((enc[0]!.ssn as unknown as FieldEnvelope).key_id);
      expect((extra.ssn as unknown as FieldEnvelope).wrapped_key).not.toBe((enc[0]!.ssn as unknown as FieldEnvelope).wrapped_key);
      // the encryptor reads back what it wrapped without an unwrap call
      expect(await fe.decryptFields(enc[3]!, one, { recordId: 'r3' })).toEqual(recs[3]);
      expect(w.n.decrypt).toBe(0);

      // another process decrypts the 1,000 fields (half in sequence, half at once): one unwrap
      const w2 = counting(c.kms);
      const reader = new FieldEncryptor({ kms: w2.kms, keys: { restricted: kek } });
      const dec: unknown[] = [];
      for (let i = 0; i < 500; i++) dec.push(await reader.decryptFields(enc[i]!, one, { recordId: `r${i}` }));
      dec.push(...(await Promise.all(enc.slice(500).map((e, i) => reader.decryptFields(e, one, { recordId: `r${500 + i}` })))));
      expect(dec).toEqual(recs);
      const unwraps1000 = { ...w2.n, audited: await audited('kms.decrypt', kek) };
      expect(w2.n).toEqual({ dataKey: 0, decrypt: 1, getKey: 0 });
      expect(unwraps1000.audited).toBe(1);
      // the second data key is another wrapped key: one more unwrap
      await reader.decryptFields(extra, one, { recordId: 'r1000' });
      expect(w2.n.decrypt).toBe(2);
      expect(await audited('kms.decrypt', kek)).toBe(2);
      console.log(
        `[fields ${d.name}] KMS calls: encrypting 1,000 fields → ${after1000.dataKey} data-key (audited ${after1000.audited}); field 1,001 → ${w.n.dataKey} in all (audited ${await audited('kms.data_key', kek)}); ` +
          `decrypting the 1,000 in another encryptor → ${unwraps1000.decrypt} unwrap (audited ${unwraps1000.audited}); plus the 1,001st → ${w2.n.decrypt} (audited ${await audited('kms.decrypt', kek)})`,
      );
    });

    it('a month boundary names a new DEK, old fields stay readable; a rotated KMS key too; reencrypt moves them with progress', async () => {
      let now = new Date('2025-01-31T23:59:00.000Z');
      const clock = () => now;
      const kekConf = await newKek('confidential');
      const ks = { internal: keys.internal, confidential: kekConf, restricted: keys.restricted };
      const fe = new FieldEncryptor({ kms: c.kms, keys: ks, clock });
      const old = [record(10), record(11)];
      const oldEnc = [await fe.encryptFields(old[0]!, schema, { recordId: old[0]!.id }), await fe.encryptFields(old[1]!, schema, { recordId: old[1]!.id, form: 'compact' })];
      expect((oldEnc[0]!.ssn as unknown as FieldEnvelope).key_id).toBe('ssn_restricted_202501');
      expect((oldEnc[0]!.ssn as unknown as FieldEnvelope).encrypted_at).toBe('2025-01-31T23:59:00.000Z');

      now = new Date('2025-02-01T00:01:00.000Z');
      expect(fe.currentDekName('ssn', 'restricted')).toBe('ssn_restricted_202502');
      const fresh = record(12);
      const freshEnc = await fe.encryptFields(fresh, schema, { recordId: fresh.id });
      expect((freshEnc.ssn as unknown as FieldEnvelope).key_id).toBe('ssn_restricted_202502');
      expect((freshEnc.profile.email as unknown as FieldEnvelope).kek_version).toBe(1);
      const reader = new FieldEncryptor({ kms: c.kms, keys: ks, clock });
      expect(await reader.decryptFields(oldEnc[0]!, schema, { recordId: old[0]!.id })).toEqual(old[0]);
      expect(await reader.decryptFields(oldEnc[1]!, schema, { recordId: old[1]!.id })).toEqual(old[1]);

      // the confidential KMS key is rotated: its fields (also this month's) are under an older version now
      expect(await c.kms.rotateKey(kekConf)).toMatchObject({ version: 2 });
      expect(await reader.decryptFields(freshEnc, schema, { recordId: fresh.id })).toEqual(fresh);

      const all = [...oldEnc, freshEnc];
      const progress: ReencryptProgress[] = [];
      const fieldsOf = (e: object) => JSON.stringify(e).match(/"key_id"|pf2\./g)!.length;
      const confidentialOf = 4; // profile.email, profile.backup_email, profile.dob, score
      const moved = await fe.reencrypt(all, schema, { recordId: (r) => r.id, onProgress: (p) => progress.push(p) });
      const total = all.reduce((n, e) => n + fieldsOf(e), 0);
      expect(moved.reencrypted).toBe(fieldsOf(oldEnc[0]!) + fieldsOf(oldEnc[1]!) + confidentialOf);
      expect(moved.current).toBe(total - moved.reencrypted);
      expect(progress.map((p) => [p.done, p.total])).toEqual([[1, 3], [2, 3], [3, 3]]);
      expect(progress[2]).toMatchObject({ reencrypted: moved.reencrypted, current: moved.current });
      // every field now under this month's DEK and the current KMS key version; each kept its form
      for (const e of moved.records) {
        for (const env of [e.ssn, e.profile.email, e.cards[0]!.pan, e.notes[1]!]) {
          const j = envelopeToJson(env as unknown as FieldEnvelope);
          expect(j.key_id).toMatch(/_202502$/);
          expect(j.kek_version).toBe(j.kek_id === kekConf ? 2 : 1);
        }
      }
      expect(moved.records[1]!.ssn).toMatch(/^pf2\./);
      expect(typeof moved.records[0]!.ssn).toBe('object');
      expect(moved.records[2]!.ssn).toEqual(freshEnc.ssn); // current fields are left as they were
      for (let i = 0; i < 3; i++) expect(await reader.decryptFields(moved.records[i]!, schema, { recordId: all[i]!.id })).toEqual([...old, fresh][i]);
      // a second run finds nothing to do
      const again = await fe.reencrypt(moved.records, schema, { recordId: (r) => r.id });
      expect(again).toMatchObject({ reencrypted: 0, current: total });

      // another KMS key configured for a classification: its fields move to it, new fields use it at once
      const kekConf2 = await newKek('confidential');
      const fe2 = new FieldEncryptor({ kms: c.kms, keys: { ...ks, confidential: kekConf2 }, clock });
      const switched = await fe2.reencrypt(moved.records, schema, { recordId: (r) => r.id });
      expect(switched.reencrypted).toBe(3 * confidentialOf);
      expect(envelopeToJson(switched.records[1]!.profile.email as never).kek_id).toBe(kekConf2);
      expect(await reader.decryptFields(switched.records[1]!, schema, { recordId: old[1]!.id })).toEqual(old[1]);
    });
  });
}
