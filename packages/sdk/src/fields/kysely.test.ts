/**
 * The Kysely plugin on real SQLite and real PostgreSQL, with a real Palisade server as the KMS: the seed's `users`
 * table with an encrypted email and last name, a blind index on the email and a compound one on last name + birth year.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { Kysely, PostgresDialect, SqliteDialect, sql, type Dialect } from 'kysely';
import { freshPostgresDatabase } from '@palisade/testkit';
import { dialects, startServer, type TestServer } from '../../../server/src/testing/harness.js';
import { BlindIndexer, FieldEncryptor } from '../index.js';
import { FieldEncryptionPlugin, type TableFields } from './kysely.js';

interface Users {
  id: string;
  email: string | null;
  email_bidx?: string | null;
  last_name: string | null;
  birth_year: number | null;
  name_year_bidx?: string | null;
}
/** The seed's `users` table (004, "Column-level encryption for sensitive fields"), its encrypted columns as text. */
interface SeedUsers {
  id: string;
  email: string;
  display_name: string | null;
  phone_number: string | null;
  phone_bidx?: string | null;
  api_keys: unknown;
  created_at: string;
}
interface DB {
  users: Users;
  seed_users: SeedUsers;
}

const USERS: TableFields = {
  id: 'id',
  encrypted: { email: { classification: 'confidential', data_type: 'pii' }, last_name: { classification: 'confidential', data_type: 'pii' } },
  indexes: { email_bidx: { name: 'email', from: ['email'] }, name_year_bidx: { name: 'name_year', from: ['last_name', 'birth_year'] } },
};

const SEED_USERS: TableFields = {
  id: 'id',
  encrypted: {
    display_name: { classification: 'confidential', data_type: 'pii' },
    phone_number: { classification: 'confidential', data_type: 'pii' },
    api_keys: { classification: 'restricted', data_type: 'secrets' },
  },
  indexes: { phone_bidx: { name: 'phone', from: ['phone_number'] } },
};

const codeOf = async (p: Promise<unknown>) => p.then(() => 'accepted', (e: unknown) => (e as { code?: string }).code ?? String(e));

let server: TestServer;
let fields: FieldEncryptionPlugin;
const dirs: string[] = [];

beforeAll(async () => {
  server = await startServer('sqlite');
  const kek = (await server.client.kms.createKey({ key_type: 'KEK', algorithm: 'AES-256-GCM', name: 'app/users', classification: 'confidential' })).key_id;
  const encryptor = new FieldEncryptor({ kms: server.client.kms, keys: { confidential: kek, restricted: kek } });
  const { indexer } = await BlindIndexer.create(server.client.kms, kek, 'users', [
    { name: 'email', fields: ['email'], normalise: 'email', bits: 32 },
    { name: 'name_year', fields: ['last_name', 'birth_year'], normalise: ['lowercase', 'exact'], bits: 32 },
    { name: 'phone', fields: ['phone_number'], normalise: 'digits', bits: 32 },
  ]);
  fields = new FieldEncryptionPlugin({ encryptor, indexer, tables: { users: USERS, seed_users: SEED_USERS } });
});
afterAll(async () => {
  await server?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function open(name: 'sqlite' | 'postgres'): Promise<Kysely<DB>> {
  let inner: Dialect;
  if (name === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'palisade-kysely-'));
    dirs.push(dir);
    inner = new SqliteDialect({ database: new BetterSqlite3(join(dir, 'app.db')) });
  } else {
    inner = new PostgresDialect({ pool: new pg.Pool({ connectionString: await freshPostgresDatabase(inject('pgUrl')!), max: 4 }) });
  }
  const db = new Kysely<DB>({ dialect: fields.dialect(inner), plugins: [fields] });
  await db.schema
    .createTable('users')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('email', 'text')
    .addColumn('email_bidx', 'text')
    .addColumn('last_name', 'text')
    .addColumn('birth_year', 'integer')
    .addColumn('name_year_bidx', 'text')
    .execute();
  await db.schema.createIndex('users_email_bidx').on('users').column('email_bidx').execute();
  await db.schema
    .createTable('seed_users')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('email', 'text', (c) => c.notNull())
    .addColumn('display_name', 'text')
    .addColumn('phone_number', 'text')
    .addColumn('phone_bidx', 'text')
    .addColumn('api_keys', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute();
  return db;
}

for (const d of dialects()) {
  describe.skipIf(!d.available)(`field encryption plugin for Kysely (${d.name})`, () => {
    let db: Kysely<DB>;
    beforeAll(async () => {
      db = await open(d.name);
    });
    afterAll(async () => db?.destroy());

    it('encrypts on insert, keeps the blind indexes, decrypts on read; a query by blind index finds the right rows', async () => {
      const people = Array.from({ length: 60 }, (_, i) => ({ id: `u${i}`, email: `person${i % 20}@example.com`, last_name: i % 2 ? 'Lovelace' : 'Hopper', birth_year: 1900 + (i % 3) }));
      await db.insertInto('users').values(people).execute();
      // In the database: ciphertexts and index values, no plaintext.
      const raw = await db.withoutPlugins().selectFrom('users').selectAll().where('id', '=', 'u1').executeTakeFirstOrThrow();
      expect(raw.email).toMatch(/^pf2\./);
      expect(raw.last_name).toMatch(/^pf2\./);
      expect(raw.email_bidx).toMatch(/^[0-9a-f]{8}$/);
      expect(JSON.stringify(await db.withoutPlugins().selectFrom('users').selectAll().execute())).not.toContain('example.com');
      // Read back through the plugin: plaintext.
      expect(await db.selectFrom('users').selectAll().where('id', '=', 'u1').executeTakeFirstOrThrow()).toMatchObject({ id: 'u1', email: 'person1@example.com', last_name: 'Lovelace', birth_year: 1901 });
      // Equality search on the encrypted email (normalised: case and spaces do not matter).
      const hits = await db.selectFrom('users').select(['id', 'email']).where('email_bidx', '=', fields.index('users', 'email_bidx', '  Person7@EXAMPLE.com ')).orderBy('id').execute();
      expect(hits.filter((r) => r.email === 'person7@example.com').map((r) => r.id)).toEqual(['u27', 'u47', 'u7']);
      // Compound: last name + birth year.
      const both = await db.selectFrom('users').select(['id', 'last_name', 'birth_year']).where('name_year_bidx', '=', fields.index('users', 'name_year_bidx', 'LOVELACE', 1902)).execute();
      const expected = people.filter((p) => p.last_name === 'Lovelace' && p.birth_year === 1902).map((p) => p.id).sort();
      expect(both.filter((r) => r.last_name === 'Lovelace' && r.birth_year === 1902).map((r) => r.id).sort()).toEqual(expected);
    });

    it("the seed's users table: names, phone numbers and a JSON column of API keys encrypted; found by phone number", async () => {
      const now = new Date().toISOString();
      await db
        .insertInto('seed_users')
        .values([
          { id: '7d9f2c1e-0000-4000-8000-000000000001', email: 'ada@example.com', display_name: 'Ada Lovelace', phone_number: '+44 20 7946 0018', api_keys: { github: 'ghp_x', openai: 'sk-y' }, created_at: now },
          { id: '7d9f2c1e-0000-4000-8000-000000000002', email: 'grace@example.com', display_name: 'Grace Hopper', phone_number: null, api_keys: null, created_at: now },
        ])
        .execute();
      const raw = await db.withoutPlugins().selectFrom('seed_users').selectAll().orderBy('id').execute();
      expect(raw[0]).toMatchObject({ email: 'ada@example.com', display_name: expect.stringMatching(/^pf2\./), phone_number: expect.stringMatching(/^pf2\./), api_keys: expect.stringMatching(/^pf2\./) });
      expect(raw[1]).toMatchObject({ display_name: expect.stringMatching(/^pf2\./), phone_number: null, phone_bidx: null, api_keys: null });
      const found = await db.selectFrom('seed_users').selectAll().where('phone_bidx', '=', fields.index('seed_users', 'phone_bidx', '(+44) 2079460018')).execute();
      expect(found).toMatchObject([{ id: '7d9f2c1e-0000-4000-8000-000000000001', display_name: 'Ada Lovelace', phone_number: '+44 20 7946 0018', api_keys: { github: 'ghp_x', openai: 'sk-y' } }]);
      // Rows are decrypted by their own table's columns: `users.email` is encrypted, this `email` of seed_users is not.
      const aliased = await db.selectFrom('seed_users').select(['id', 'phone_number as email']).where('id', '=', '7d9f2c1e-0000-4000-8000-000000000001').executeTakeFirstOrThrow();
      expect(aliased.email).toMatch(/^pf2\./);
      // An expression may stand for a column that is neither encrypted nor indexed.
      await db.insertInto('seed_users').values({ id: '7d9f2c1e-0000-4000-8000-000000000003', email: 'kath@example.com', display_name: 'Katherine Johnson', phone_number: null, api_keys: null, created_at: sql<string>`'2026-01-01'` }).execute();
      expect((await db.selectFrom('seed_users').selectAll().where('id', '=', '7d9f2c1e-0000-4000-8000-000000000003').executeTakeFirstOrThrow()).display_name).toBe('Katherine Johnson');
    });

    it('updates by id re-encrypt and re-index; a ciphertext copied to another row does not decrypt', async () => {
      await db.insertInto('users').values([{ id: 'a', email: 'a@example.com', last_name: 'Turing', birth_year: 1912 }, { id: 'b', email: 'b@example.com', last_name: 'Noether', birth_year: 1882 }]).execute();
      await db.transaction().execute(async (tx) => {
        await tx.updateTable('users').set({ email: 'a.new@example.com' }).where('id', '=', 'a').execute();
      });
      expect((await db.selectFrom('users').select(['id', 'email']).where('email_bidx', '=', fields.index('users', 'email_bidx', 'a.new@example.com')).execute()).map((r) => r.id)).toEqual(['a']);
      expect(await db.selectFrom('users').select('id').where('email_bidx', '=', fields.index('users', 'email_bidx', 'a@example.com')).execute()).toEqual([]);
      // Refused: an update not by id, a compound index half updated, setting an index column by hand.
      expect(await codeOf(db.updateTable('users').set({ email: 'x@example.com' }).where('birth_year', '=', 1912).execute())).toBe('PAL_FIELD_SCHEMA_INVALID');
      expect(await codeOf(db.updateTable('users').set({ last_name: 'Hilbert' }).where('id', '=', 'b').execute())).toBe('PAL_FIELD_SCHEMA_INVALID');
      expect(await codeOf(db.insertInto('users').values({ id: 'c', email: 'c@example.com', email_bidx: 'x', last_name: null, birth_year: null }).execute())).toBe('PAL_FIELD_SCHEMA_INVALID');
      expect(await codeOf(db.insertInto('users').values({ email: 'no-id@example.com' } as never).execute())).toBe('PAL_FIELD_SCHEMA_INVALID');
      // An attacker with database access moves a's ciphertext into b's row: it is bound to a.
      const aEmail = (await db.withoutPlugins().selectFrom('users').select('email').where('id', '=', 'a').executeTakeFirstOrThrow()).email;
      await db.withoutPlugins().updateTable('users').set({ email: aEmail }).where('id', '=', 'b').execute();
      expect(await codeOf(db.selectFrom('users').selectAll().where('id', '=', 'b').execute())).toBe('PAL_FIELD_DECRYPT_FAILED');
      // Selecting an encrypted column without the id it is bound to is refused, not guessed.
      expect(await codeOf(db.selectFrom('users').select('email').where('id', '=', 'a').execute())).toBe('PAL_FIELD_SCHEMA_INVALID');
      await sql`delete from users where id in ('a', 'b')`.execute(db.withoutPlugins());
    });
  });
}
