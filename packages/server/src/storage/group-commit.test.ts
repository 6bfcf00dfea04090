import { spawnSync } from 'node:child_process';
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

describe('SQLite group commit with another writing process', () => {
  it('holds the write lock from the start of a batch: a writer that commits mid-batch cannot make it fail', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'palisade-gc2-'));
    const file = join(dir, 'db.sqlite');
    const storage = await openStorage({ url: file });
    try {
      const otherWriter = () =>
        spawnSync(process.execPath, ['-e', `const D = require('better-sqlite3'); const d = new D(${JSON.stringify(file)}); d.pragma('busy_timeout = 100'); try { d.prepare("insert into settings (name, value) values ('other', 'x')").run(); console.log('wrote') } catch (e) { console.log(e.code) }`], {
          encoding: 'utf8',
          cwd: join(process.cwd(), 'packages/server'),
        }).stdout.trim();
      const seen = await storage.transact(async (tx) => {
        const before = await tx.selectFrom('settings').selectAll().execute(); // a read snapshot
        const other = otherWriter(); // another process tries to write while this transaction is open
        await tx.insertInto('settings').values({ name: 'mine', value: String(before.length) }).execute();
        return other;
      });
      expect(seen).toBe('SQLITE_BUSY'); // it waited for our lock and gave up; without the lock-first it would have won
      expect(await storage.db.selectFrom('settings').select('name').where('name', '=', 'mine').executeTakeFirst()).toBeDefined();
    } finally {
      await storage.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
