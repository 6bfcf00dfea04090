import BetterSqlite3 from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql, type Transaction } from 'kysely';
import pg from 'pg';
import { PalisadeError } from '@palisade/core';
import { GroupCommit } from './group-commit.js';
import { migrations } from './migrations.js';
import type { Database } from './schema.js';

export type Dialect = 'sqlite' | 'postgres';
export type Db = Kysely<Database>;
export type Tx = Transaction<Database>;
/** Anything that can run queries: the database or a transaction. */
export type Executor = Kysely<Database> | Transaction<Database>;

export interface Storage {
  readonly db: Db;
  readonly dialect: Dialect;
  /** True when row locks (`FOR UPDATE`) are needed to serialize writers (PostgreSQL); SQLite serializes writes itself. */
  readonly rowLocks: boolean;
  /**
   * Run `fn` in a write transaction. On SQLite concurrent transactions are group-committed (one fsync per batch,
   * see GroupCommit); on PostgreSQL each is its own transaction. Never call storage.db inside `fn`: use `tx`.
   */
  transact<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
  ping(): Promise<void>;
  /**
   * PostgreSQL: call `fn` for every NOTIFY on `channel` (sent with pg_notify in a transaction, delivered when it
   * commits) on a connection of its own; returns the function that stops listening. SQLite: null (one process).
   */
  listen(channel: string, fn: () => void, onError: (e: Error) => void): Promise<(() => Promise<void>) | null>;
  close(): Promise<void>;
}

// int8 (bigint) columns hold counters far below 2^53: read them as numbers, not strings.
pg.types.setTypeParser(20, (v) => Number(v));

export interface StorageOptions {
  /** `postgres://...` or a SQLite file path (or `:memory:`). */
  url: string;
  sqliteSynchronous?: 'full' | 'normal';
}

/**
 * Kysely prepares every query it runs; better-sqlite3's prepare() costs as much as a small query. Queries are
 * built from a few fixed shapes, so their prepared statements are kept (bounded) and reused.
 */
function cachePreparedStatements(sqlite: BetterSqlite3.Database, max = 1000): BetterSqlite3.Database {
  const prepare = sqlite.prepare.bind(sqlite);
  const cache = new Map<string, BetterSqlite3.Statement>();
  sqlite.prepare = ((source: string) => {
    let stmt = cache.get(source);
    if (!stmt) {
      stmt = prepare(source);
      if (cache.size >= max) cache.delete(cache.keys().next().value as string);
      cache.set(source, stmt);
    }
    return stmt;
  }) as typeof sqlite.prepare;
  return sqlite;
}

export async function openStorage(opts: StorageOptions): Promise<Storage> {
  const isPg = /^postgres(ql)?:\/\//.test(opts.url);
  let db: Db;
  if (isPg) {
    const pool = new pg.Pool({ connectionString: opts.url, max: 10 });
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  } else {
    const file = opts.url.replace(/^sqlite:(\/\/)?/, '');
    const sqlite = new BetterSqlite3(file);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma(`synchronous = ${opts.sqliteSynchronous ?? 'full'}`);
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('busy_timeout = 5000');
    db = new Kysely<Database>({ dialect: new SqliteDialect({ database: cachePreparedStatements(sqlite) }) });
  }
  const dialect: Dialect = isPg ? 'postgres' : 'sqlite';
  const storage: Storage = {
    db,
    dialect,
    rowLocks: isPg,
    transact: isPg ? (fn) => db.transaction().execute(fn) : (() => {
      const group = new GroupCommit(db);
      return <T>(fn: (tx: Tx) => Promise<T>) => group.run(fn);
    })(),
    async ping() {
      await sql`select 1`.execute(db);
    },
    async listen(channel, fn, onError) {
      if (!isPg) return null;
      const client = new pg.Client({ connectionString: opts.url });
      client.on('error', onError);
      client.on('notification', (m) => {
        if (m.channel === channel) fn();
      });
      await client.connect();
      await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      return async () => {
        await client.end().catch(() => undefined);
      };
    },
    async close() {
      await db.destroy();
    },
  };
  try {
    await migrate(storage);
  } catch (e) {
    await db.destroy();
    throw new PalisadeError('PAL_UNAVAILABLE', `database migration failed: ${(e as Error).message}`, { cause: e });
  }
  return storage;
}

async function migrate(storage: Storage): Promise<void> {
  // PostgreSQL: N nodes may start at once; an advisory lock makes one of them migrate.
  const run = async (db: Kysely<Database>) => {
    const { error, results } = await new Migrator({ db, provider: migrations(storage.dialect) }).migrateToLatest();
    if (error) throw error instanceof Error ? error : new Error(String(error));
    return results;
  };
  if (storage.dialect === 'postgres') {
    await storage.db.connection().execute(async (conn) => {
      await sql`select pg_advisory_lock(7418391)`.execute(conn);
      try {
        await run(conn);
      } finally {
        await sql`select pg_advisory_unlock(7418391)`.execute(conn);
      }
    });
  } else {
    await run(storage.db);
  }
}
