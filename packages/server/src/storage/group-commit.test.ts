import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStorage, type Storage } from './database.js';

describe('SQLite group commit', () => {
  let dir: string;
  let storage: Storage;
  const put = (name: string, value: string) => storage.transact(async (tx) => {
    await tx.insertInto('settings').values({ name, value }).execute();
    return name;
  });
  const get = async (name: string) => (await storage.db.selectFrom('settings').select('value').where('name', '=', name).executeTakeFirst())?.value;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'palisade-gc-'));
    storage = await openStorage({ url: join(dir, 'db.sqlite') });
  });
  afterAll(async () => {
    await storage.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('concurrent transactions commit together; a failing one rolls back alone', async () => {
    const results = await Promise.allSettled([
      put('a', '1'),
      put('b', '2'),
      storage.transact(async (tx) => {
        await tx.insertInto('settings').values({ name: 'c', value: '3' }).execute();
        throw new Error('handler failed after writing');
      }),
      put('a', 'duplicate'), // unique violation: fails alone
      put('d', '4'),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'rejected', 'fulfilled']);
    expect((results[2] as PromiseRejectedResult).reason.message).toBe('handler failed after writing');
    expect([await get('a'), await get('b'), await get('c'), await get('d')]).toEqual(['1', '2', undefined, '4']);
  });

  it('each transaction sees the writes of those before it in the batch', async () => {
    const seen = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        storage.transact(async (tx) => {
          const n = (await tx.selectFrom('settings').select('name').where('name', 'like', 'seq-%').execute()).length;
          await tx.insertInto('settings').values({ name: `seq-${i}`, value: String(n) }).execute();
          return n;
        }),
      ),
    );
    expect([...seen].sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('a transaction that fails to commit fails every job of its batch, and nothing of it is written', async () => {
    // A deferred foreign-key violation is only detected at COMMIT: the whole batch must fail.
    await sql`create table parent (id integer primary key)`.execute(storage.db);
    await sql`create table child (pid integer references parent(id) deferrable initially deferred)`.execute(storage.db);
    const results = await Promise.allSettled([
      put('batch-ok', 'x'),
      storage.transact(async (tx) => {
        await sql`insert into child (pid) values (42)`.execute(tx);
      }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(await get('batch-ok')).toBeUndefined();
    expect(await put('after', 'y')).toBe('after');
  });
});
