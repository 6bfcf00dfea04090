/**
 * Blind indexes: unit properties (deterministic, unrelated across index names and index sets, normalisers, truncation,
 * compound framing), then end to end: keys from a real server's KMS, the seed's `users` table in SQLite
 * (better-sqlite3) and in real PostgreSQL, encrypted emails and last names found by their blind indexes, false
 * positives of a narrow index removed by decrypting and comparing, and the same index values after a restart.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { PalisadeError, type EncryptedData } from '@palisade/core';
import { dialects, startServer, type TestServer } from '../../../server/src/testing/harness.js';
import { BlindIndexer, FieldEncryptor, normaliseForIndex, type BlindIndexDefinition, type BlindIndexKms, type PalisadeClient } from '../index.js';

/** An in-memory KMS for the unit tests: AES-256-GCM wrapping with the context as AAD. */
function fakeKms(): BlindIndexKms & { calls: { dataKey: number; decrypt: number } } {
  const kek = randomBytes(32);
  const calls = { dataKey: 0, decrypt: 0 };
  const aad = (c?: Record<string, unknown>) => Buffer.from(JSON.stringify(c ?? {}));
  return {
    calls,
    async dataKey(keyId, opts) {
      calls.dataKey++;
      const plaintext = randomBytes(32);
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', kek, iv).setAAD(aad(opts.context));
      const ct = Buffer.concat([c.update(plaintext), c.final()]);
      return { plaintext, ciphertext: { key_id: keyId, key_version: 1, algorithm: 'AES-256-GCM', iv: iv.toString('base64'), ciphertext: ct.toString('base64'), tag: c.getAuthTag().toString('base64') } };
    },
    async decrypt(_keyId, d: EncryptedData, context) {
      calls.decrypt++;
      try {
        const dc = createDecipheriv('aes-256-gcm', kek, Buffer.from(d.iv, 'base64')).setAAD(aad(context));
        dc.setAuthTag(Buffer.from(d.tag, 'base64'));
        return Buffer.concat([dc.update(Buffer.from(d.ciphertext, 'base64')), dc.final()]);
      } catch {
        throw Object.assign(new Error('decrypt failed'), { code: 'PAL_KMS_DECRYPT_FAILED' });
      }
    },
  };
}

const DEFS: BlindIndexDefinition[] = [
  { name: 'email', fields: ['email'], normalise: 'email', bits: 32 },
  { name: 'email_narrow', fields: ['email'], normalise: 'email', bits: 16, column: 'email_bidx16' },
  { name: 'name_year', fields: ['last_name', 'birth_year'], normalise: ['lowercase', 'exact'], bits: 32 },
];

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return (e as PalisadeError).code;
  }
  return undefined;
}
async function asyncCodeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    return (e as PalisadeError).code;
  }
  return undefined;
}

describe('blind indexes (unit)', () => {
  it('are deterministic, differ per index name and per index set, and survive open() from the wrapped key', async () => {
    const kms = fakeKms();
    const { indexer, wrappedKey } = await BlindIndexer.create(kms, 'kek_1', 'customers', DEFS);
    expect(wrappedKey).toMatch(/^pbik1\./);
    expect(kms.calls.dataKey).toBe(1);
    const a = indexer.index('email', 'alice@example.com');
    expect(a).toMatch(/^[0-9a-f]{8}$/);
    expect(indexer.index('email', 'alice@example.com')).toBe(a);
    expect(indexer.index('email', 'bob@example.com')).not.toBe(a);

    // same value, same bits, another index name: an unrelated value (cannot link the two columns)
    indexer.define({ name: 'backup_email', fields: ['email'], normalise: 'email', bits: 32 });
    expect(indexer.index('backup_email', 'alice@example.com')).not.toBe(a);
    // another index set (another root key): unrelated
    const other = (await BlindIndexer.create(kms, 'kek_1', 'customers', DEFS)).indexer;
    expect(other.index('email', 'alice@example.com')).not.toBe(a);

    const reopened = await BlindIndexer.open(kms, 'kek_1', 'customers', wrappedKey, DEFS);
    expect(reopened.index('email', 'alice@example.com')).toBe(a);
    expect(reopened.compound('name_year', ['Liddell', 1990])).toBe(indexer.compound('name_year', ['Liddell', 1990]));

    // the wrapped key opens only for its set name and KEK, and not tampered
    expect(await asyncCodeOf(BlindIndexer.open(kms, 'kek_1', 'suppliers', wrappedKey))).toBe('PAL_FIELD_INDEX_KEY_INVALID');
    expect(await asyncCodeOf(BlindIndexer.open(kms, 'kek_2', 'customers', wrappedKey))).toBe('PAL_FIELD_INDEX_KEY_INVALID');
    expect(await asyncCodeOf(BlindIndexer.open(kms, 'kek_1', 'customers', 'pbik1.e30'))).toBe('PAL_FIELD_INDEX_KEY_INVALID');
    expect(await asyncCodeOf(BlindIndexer.open(kms, 'kek_1', 'customers', 'not a key'))).toBe('PAL_FIELD_INDEX_KEY_INVALID');
    const w = JSON.parse(Buffer.from(wrappedKey.slice(6), 'base64url').toString()) as EncryptedData;
    const ct = Buffer.from(w.ciphertext, 'base64');
    ct[0]! ^= 1;
    const tampered = `pbik1.${Buffer.from(JSON.stringify({ ...w, ciphertext: ct.toString('base64') })).toString('base64url')}`;
    expect(await asyncCodeOf(BlindIndexer.open(kms, 'kek_1', 'customers', tampered))).toBe('PAL_FIELD_INDEX_KEY_INVALID');
  });

  it('normalise explicitly per index', async () => {
    const { indexer } = await BlindIndexer.create(fakeKms(), 'k', 'set', [
      { name: 'email', fields: ['e'], normalise: 'email' },
      { name: 'lower', fields: ['e'], normalise: 'lowercase' },
      { name: 'exact', fields: ['e'] },
      { name: 'phone', fields: ['p'], normalise: 'digits' },
      { name: 'custom', fields: ['p'], normalise: (v) => (typeof v === 'string' ? v.replace(/^\+33/, '0').replace(/\D/g, '') : null) },
    ]);
    expect(indexer.index('email', '  Alice@Example.COM\n')).toBe(indexer.index('email', 'alice@example.com'));
    expect(indexer.index('lower', 'Alice@Example.com')).toBe(indexer.index('lower', 'alice@example.com'));
    expect(indexer.index('lower', ' alice@example.com')).not.toBe(indexer.index('lower', 'alice@example.com')); // lowercase does not trim
    expect(indexer.index('lower', 'E\u0301')).toBe(indexer.index('lower', '\u00e9')); // NFC
    expect(indexer.index('exact', 'Alice')).not.toBe(indexer.index('exact', 'alice'));
    expect(indexer.index('exact', '1')).not.toBe(indexer.index('exact', 1));
    expect(indexer.index('exact', { b: 1, a: [2] })).toBe(indexer.index('exact', { a: [2], b: 1 })); // canonical JSON
    expect(indexer.index('phone', '+1 (555) 010-0199')).toBe(indexer.index('phone', '15550100199'));
    expect(indexer.index('phone', 15550100199)).toBe(indexer.index('phone', '1-555-010-0199'));
    expect(indexer.index('custom', '+33 6 12 34 56 78')).toBe(indexer.index('custom', '06.12.34.56.78'));
    expect(indexer.index('custom', 612)).toBeNull();
    expect(indexer.index('email', null)).toBeNull();
    expect(indexer.index('email', undefined)).toBeNull();
    expect(codeOf(() => indexer.index('email', 42))).toBe('PAL_FIELD_INDEX_INVALID');
    expect(codeOf(() => indexer.index('phone', -1))).toBe('PAL_FIELD_INDEX_INVALID');
    expect(codeOf(() => indexer.index('exact', 1n))).toBe('PAL_FIELD_INDEX_INVALID');
    expect(codeOf(() => indexer.index('nope', 'x'))).toBe('PAL_FIELD_INDEX_INVALID');
    expect(normaliseForIndex('digits', 'SSN 078-05-1120')?.toString()).toBe('078051120');
    expect(indexer.matches('email', ' ALICE@example.com', 'alice@example.com')).toBe(true);
    expect(indexer.matches('email', 'alicia@example.com', 'alice@example.com')).toBe(false);
  });

  it('truncate to the configured bits (16..256), in hex or base64url', async () => {
    const { indexer } = await BlindIndexer.create(fakeKms(), 'k', 'set');
    const full = indexer.define({ name: 'v', fields: ['v'], bits: 256 }).index('v', 'x')!;
    expect(full).toMatch(/^[0-9a-f]{64}$/);
    for (const bits of [16, 20, 32, 64, 100, 255]) {
      const v = indexer.define({ name: 'v', fields: ['v'], bits }).index('v', 'x')!;
      expect(v.length).toBe(Math.ceil(bits / 8) * 2);
      const bytes = Buffer.from(v, 'hex');
      const spare = bytes.length * 8 - bits;
      expect(bytes[bytes.length - 1]! & ((1 << spare) - 1)).toBe(0); // bits past the length are zero
      expect(full.startsWith(v.slice(0, Math.floor(bits / 8) * 2))).toBe(true); // a prefix of the same HMAC
    }
    const b64 = indexer.define({ name: 'v', fields: ['v'], bits: 32, encoding: 'base64url' }).index('v', 'x')!;
    expect(Buffer.from(b64, 'base64url').toString('hex')).toBe(full.slice(0, 8));
    expect(indexer.define({ name: 'd', fields: ['v'] }).index('d', 'x')).toMatch(/^[0-9a-f]{8}$/); // default 32 bits
    for (const bits of [0, 8, 15, 257, 32.5, Number.NaN]) expect(codeOf(() => indexer.define({ name: 'v', fields: ['v'], bits }))).toBe('PAL_FIELD_INDEX_INVALID');
    expect(codeOf(() => indexer.define({ name: 'Bad-Name', fields: ['v'] }))).toBe('PAL_FIELD_INDEX_INVALID');
    expect(codeOf(() => indexer.define({ name: 'v', fields: [] }))).toBe('PAL_FIELD_INDEX_INVALID');
    expect(codeOf(() => indexer.define({ name: 'v', fields: ['a', 'b'], normalise: ['email'] }))).toBe('PAL_FIELD_INDEX_INVALID');
    expect(codeOf(() => indexer.define({ name: 'v', fields: ['a'], normalise: 'upper' as never }))).toBe('PAL_FIELD_INDEX_INVALID');
    expect(await asyncCodeOf(BlindIndexer.create(fakeKms(), 'k', 'Bad Set'))).toBe('PAL_FIELD_INDEX_INVALID');
  });

  it('compound: order matters, parts are framed unambiguously, and columns() computes every index of a row', async () => {
    const { indexer } = await BlindIndexer.create(fakeKms(), 'k', 'set', [
      ...DEFS,
      { name: 'pair', fields: ['a', 'b'], normalise: 'exact' },
      { name: 'pair_raw', fields: ['a', 'b'], normalise: (v) => String(v) },
      { name: 'triple', fields: ['a', 'b', 'c'], normalise: (v) => String(v) },
      { name: 'single', fields: ['a'], normalise: (v) => String(v) },
    ]);
    expect(indexer.compound('name_year', ['LIDDELL', 1990])).toBe(indexer.compound('name_year', ['liddell', 1990]));
    expect(indexer.compound('name_year', ['Liddell', 1990])).not.toBe(indexer.compound('name_year', ['Liddell', 1991]));
    expect(indexer.compound('name_year', ['Liddell', 1990])).not.toBe(indexer.compound('name_year', ['Liddell', '1990'])); // exact
    expect(indexer.compound('pair', ['x', 'y'])).not.toBe(indexer.compound('pair', ['y', 'x']));
    // with raw strings (no JSON quoting) the framing alone keeps ('ab','c') from ('a','bc') and ('abc','')
    const raw = ['ab', 'c'];
    expect(indexer.compound('pair_raw', raw)).not.toBe(indexer.compound('pair_raw', ['a', 'bc']));
    expect(indexer.compound('pair_raw', raw)).not.toBe(indexer.compound('pair_raw', ['abc', '']));
    expect(indexer.compound('pair_raw', raw)).not.toBe(indexer.compound('pair_raw', ['', 'abc']));
    expect(indexer.compound('triple', ['ab', 'c', ''])).not.toBe(indexer.compound('triple', ['a', 'b', 'c']));
    expect(indexer.compound('name_year', ['Liddell', null])).toBeNull();
    expect(codeOf(() => indexer.compound('name_year', ['Liddell']))).toBe('PAL_FIELD_INDEX_INVALID');
    expect(codeOf(() => indexer.index('name_year', 'Liddell'))).toBe('PAL_FIELD_INDEX_INVALID');
    expect(indexer.matches('name_year', ['LIDDELL', 1990], ['liddell', 1990])).toBe(true);
    expect(indexer.matches('name_year', ['Liddell', 1991], ['Liddell', 1990])).toBe(false);

    const row = { id: 'u1', email: ' Alice@Example.com', last_name: 'Liddell', birth_year: 1990 };
    expect(indexer.columns(row, DEFS)).toEqual({
      email_bidx: indexer.index('email', 'alice@example.com'),
      email_bidx16: indexer.index('email_narrow', 'alice@example.com'),
      name_year_bidx: indexer.compound('name_year', ['liddell', 1990]),
    });
    expect(Object.keys(indexer.columns(row))).toEqual(['email_bidx', 'email_bidx16', 'name_year_bidx', 'pair_bidx', 'pair_raw_bidx', 'triple_bidx', 'single_bidx']);
    expect(indexer.columns({ email: null, last_name: 'X' }, DEFS)).toEqual({ email_bidx: null, email_bidx16: null, name_year_bidx: null });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// End to end: a real server's KMS, the seed's users table in SQLite and in PostgreSQL.

interface UsersTable {
  id: string;
  email: string;
  email_bidx: string | null;
  email_bidx16: string | null;
  last_name: string;
  birth_year: number;
  name_year_bidx: string | null;
}
interface SettingsTable {
  name: string;
  value: string;
}
interface Db {
  users: UsersTable;
  settings: SettingsTable;
}

interface Store {
  name: string;
  available: boolean;
  open(): Promise<{ db: Kysely<Db>; close(): Promise<void> }>;
}

const stores: Store[] = [
  {
    name: 'SQLite',
    available: true,
    async open() {
      const dir = await mkdtemp(join(tmpdir(), 'palisade-bidx-'));
      const db = new Kysely<Db>({ dialect: new SqliteDialect({ database: new Database(join(dir, 'app.db')) }) });
      return { db, close: async () => (await db.destroy(), await rm(dir, { recursive: true, force: true })) };
    },
  },
  {
    name: 'PostgreSQL',
    available: dialects().find((d) => d.name === 'postgres')!.available,
    async open() {
      const root = new Kysely<Db>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: inject('pgUrl')!, max: 4 }) }) });
      const schema = `bidx_${randomBytes(6).toString('hex')}`; // a throwaway schema on the shared test cluster
      await sql`create schema ${sql.id(schema)}`.execute(root);
      return { db: root.withSchema(schema), close: async () => (await sql`drop schema ${sql.id(schema)} cascade`.execute(root), await root.destroy()) };
    },
  },
];

const LAST_NAMES = ['Martin', 'Bernard', 'Dubois', 'Thomas', 'Robert', 'Richard', 'Petit', 'Durand'];

for (const store of stores) {
  describe.skipIf(!store.available)(`blind indexes end to end: a real server's KMS, the users table in ${store.name}`, () => {
    let s: TestServer;
    let c: PalisadeClient;
    let db: Kysely<Db>;
    let closeDb: () => Promise<void>;
    let kek: string;
    let fe: FieldEncryptor;
    let indexer: BlindIndexer;
    /** The rows in clear, as the application knows them. */
    const plain: Array<{ id: string; email: string; last_name: string; birth_year: number }> = [];
    const colliders: string[] = [];

    const encrypted = async (r: (typeof plain)[number]) => ({
      id: r.id,
      email: (await fe.encryptField(r.email, { recordId: r.id, path: 'email', classification: 'confidential', data_type: 'email', form: 'compact' })) as string,
      last_name: (await fe.encryptField(r.last_name, { recordId: r.id, path: 'last_name', classification: 'confidential', data_type: 'name', form: 'compact' })) as string,
      birth_year: r.birth_year,
      ...(indexer.columns(r) as Pick<UsersTable, 'email_bidx' | 'email_bidx16' | 'name_year_bidx'>),
    });

    /** Filter by the index, then decrypt each candidate and compare: the query the docs describe. */
    async function findByEmail(column: 'email_bidx' | 'email_bidx16', index: string, email: string) {
      const candidates = await db.selectFrom('users').select(['id', 'email']).where(column, '=', indexer.index(index, email)).execute();
      const hits: string[] = [];
      for (const row of candidates) {
        const value = await fe.decryptField(row.email, { recordId: row.id, path: 'email', classification: 'confidential', data_type: 'email' });
        if (indexer.matches(index, value, email)) hits.push(row.id);
      }
      return { candidates: candidates.map((r) => r.id).sort(), hits: hits.sort() };
    }
    const expected = (email: string) =>
      plain
        .filter((r) => r.email.trim().toLowerCase() === email.trim().toLowerCase())
        .map((r) => r.id)
        .sort();

    beforeAll(async () => {
      s = await startServer('sqlite');
      c = s.client;
      kek = (await c.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', classification: 'confidential' })).key_id;
      fe = c.fields({ keys: { confidential: kek } });
      ({ db, close: closeDb } = await store.open());
      await db.schema.createTable('settings').addColumn('name', 'text', (col) => col.primaryKey()).addColumn('value', 'text', (col) => col.notNull()).execute();
      await db.schema
        .createTable('users')
        .addColumn('id', 'text', (col) => col.primaryKey())
        .addColumn('email', 'text', (col) => col.notNull())
        .addColumn('email_bidx', 'text')
        .addColumn('email_bidx16', 'text')
        .addColumn('last_name', 'text', (col) => col.notNull())
        .addColumn('birth_year', 'integer', (col) => col.notNull())
        .addColumn('name_year_bidx', 'text')
        .execute();
      for (const col of ['email_bidx', 'email_bidx16', 'name_year_bidx'] as const) await db.schema.createIndex(`users_${col}`).on('users').column(col).execute();

      // The index set's root key: created once, its wrapped form kept in a settings row.
      const created = await BlindIndexer.create(c.kms, kek, 'users', DEFS);
      indexer = created.indexer;
      await db.insertInto('settings').values({ name: 'blind_index_key.users', value: created.wrappedKey }).execute();

      // ~200 users: unique emails, duplicates (same address in different case and spacing, and exact repeats),
      // and emails chosen to collide with alice's 16-bit index but not with her 32-bit one.
      const alice = 'alice@example.com';
      const target16 = indexer.index('email_narrow', alice);
      for (let j = 0; colliders.length < 3; j++) {
        const e = `collider${j}@example.net`;
        if (indexer.index('email_narrow', e) === target16) colliders.push(e);
      }
      const emails = [
        ...Array.from({ length: 180 }, (_, i) => `user${i}@example.com`),
        'alice@example.com', 'ALICE@example.com', ' Alice@Example.com ', 'alice@example.com',
        'bob@example.com', 'bob@example.com', 'bob@example.com', 'Bob@Example.com',
        'alicia@example.com', 'alice@example.org', 'alice.smith@example.com',
        ...colliders,
        'carol@example.com', 'dave@example.com', 'erin@example.com', 'frank@example.com', 'grace@example.com', 'heidi@example.com',
      ];
      emails.forEach((email, i) => plain.push({ id: `usr_${String(i).padStart(4, '0')}`, email, last_name: LAST_NAMES[i % LAST_NAMES.length]!, birth_year: 1950 + (i % 50) }));
      plain.push({ id: 'usr_liddell_1', email: 'lewis@example.com', last_name: 'Liddell', birth_year: 1990 }, { id: 'usr_liddell_2', email: 'lorina@example.com', last_name: 'LIDDELL', birth_year: 1990 }, { id: 'usr_liddell_3', email: 'edith@example.com', last_name: 'Liddell', birth_year: 1991 });
      const rows = [];
      for (const r of plain) rows.push(await encrypted(r));
      await db.insertInto('users').values(rows).execute();
    });
    afterAll(async () => {
      await closeDb?.();
      await s?.close();
    });

    it('the table holds ciphertexts and blind indexes, no email or name in clear', async () => {
      const rows = await db.selectFrom('users').selectAll().execute();
      expect(rows.length).toBe(plain.length);
      expect(rows.length).toBeGreaterThanOrEqual(200);
      const dump = JSON.stringify(rows);
      expect(dump).not.toMatch(/example\.(com|org|net)|Liddell|LIDDELL|Martin/);
      expect(rows.every((r) => r.email.startsWith('pf2.') && /^[0-9a-f]{8}$/.test(r.email_bidx!) && /^[0-9a-f]{4}$/.test(r.email_bidx16!))).toBe(true);
      // equal (normalised) emails have equal indexes: the leak the docs state
      const aliceRows = rows.filter((r) => expected('alice@example.com').includes(r.id));
      expect(new Set(aliceRows.map((r) => r.email_bidx)).size).toBe(1);
    });

    it('a query by blind index finds exactly the right encrypted rows', async () => {
      const alice = await findByEmail('email_bidx', 'email', 'Alice@Example.com');
      expect(alice.hits).toEqual(expected('alice@example.com'));
      expect(alice.hits.length).toBe(4); // four spellings of one address; not alicia, alice@example.org, alice.smith or the colliders
      const bob = await findByEmail('email_bidx', 'email', 'bob@example.com');
      expect(bob.hits).toEqual(expected('bob@example.com'));
      expect(bob.hits.length).toBe(4);
      expect((await findByEmail('email_bidx', 'email', 'user42@example.com')).hits).toEqual(['usr_0042']);
      expect(await findByEmail('email_bidx', 'email', 'nobody@example.com')).toEqual({ candidates: [], hits: [] });
      // an exact comparison (no normalisation) is the application's choice after decrypting
      const exactly = [];
      for (const row of await db.selectFrom('users').select(['id', 'email']).where('email_bidx', '=', indexer.index('email', 'alice@example.com')).execute()) {
        if ((await fe.decryptField(row.email, { recordId: row.id, path: 'email' })) === 'alice@example.com') exactly.push(row.id);
      }
      expect(exactly.sort()).toEqual(plain.filter((r) => r.email === 'alice@example.com').map((r) => r.id).sort());
      expect(exactly.length).toBe(2);
    });

    it('a narrow (16-bit) index returns false positives, which decrypt-and-compare removes', async () => {
      const narrow = await findByEmail('email_bidx16', 'email_narrow', 'alice@example.com');
      const colliderIds = plain.filter((r) => colliders.includes(r.email)).map((r) => r.id);
      expect(colliderIds.length).toBe(3);
      expect(narrow.candidates).toEqual(expect.arrayContaining([...expected('alice@example.com'), ...colliderIds]));
      expect(narrow.candidates.length).toBeGreaterThanOrEqual(7);
      expect(narrow.hits).toEqual(expected('alice@example.com'));
      // the 32-bit index does not confuse them
      const wide = await findByEmail('email_bidx', 'email', 'alice@example.com');
      expect(wide.candidates.filter((id) => colliderIds.includes(id))).toEqual([]);
    });

    it('a compound index (last_name + birth_year) finds the rows with both equal', async () => {
      const candidates = await db.selectFrom('users').select(['id', 'last_name', 'birth_year']).where('name_year_bidx', '=', indexer.compound('name_year', ['liddell', 1990])).execute();
      const hits = [];
      for (const r of candidates) {
        const last = await fe.decryptField(r.last_name, { recordId: r.id, path: 'last_name', classification: 'confidential', data_type: 'name' });
        if (indexer.matches('name_year', [last, r.birth_year], ['liddell', 1990])) hits.push(r.id);
      }
      expect(hits.sort()).toEqual(['usr_liddell_1', 'usr_liddell_2']);
      const martin = await db.selectFrom('users').select('id').where('name_year_bidx', '=', indexer.compound('name_year', ['Martin', 1950])).execute();
      expect(martin.map((r) => r.id).sort()).toEqual(plain.filter((r) => r.last_name === 'Martin' && r.birth_year === 1950).map((r) => r.id).sort());
    });

    it('after a restart, the wrapped key from the settings row gives the same index values', async () => {
      const before = indexer.columns(plain[0]!);
      await s.restart();
      c = s.client;
      fe = c.fields({ keys: { confidential: kek } });
      const { value } = await db.selectFrom('settings').select('value').where('name', '=', 'blind_index_key.users').executeTakeFirstOrThrow();
      const reopened = await BlindIndexer.open(c.kms, kek, 'users', value, DEFS);
      expect(reopened.columns(plain[0]!)).toEqual(before);
      indexer = reopened;
      expect((await findByEmail('email_bidx', 'email', 'ALICE@EXAMPLE.COM')).hits).toEqual(expected('alice@example.com'));
      // the wrapped key opens only for its own index set name
      expect(await asyncCodeOf(BlindIndexer.open(c.kms, kek, 'orders', value))).toBe('PAL_FIELD_INDEX_KEY_INVALID');
      // and a new index set is another key: none of the stored indexes match under it
      const fresh = (await BlindIndexer.create(c.kms, kek, 'users', DEFS)).indexer;
      expect(await db.selectFrom('users').select('id').where('email_bidx', '=', fresh.index('email', 'alice@example.com')).execute()).toEqual([]);
    });
  });
}
