import { sql, type ControlledTransaction, type Kysely } from 'kysely';
import type { Database } from './schema.js';
import type { Tx } from './database.js';

interface Job {
  fn: (tx: Tx) => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit for SQLite, which runs one write transaction at a time anyway: transactions that arrive while one
 * is running are queued, then run one after the other inside a single database transaction, each in a SAVEPOINT
 * of its own, and committed together — one fsync for the batch instead of one per request. A job that fails rolls
 * back to its savepoint and fails alone; a commit that fails fails every job of the batch. No job's promise
 * settles before its writes are durable (or known not to be).
 */
export class GroupCommit {
  readonly #queue: Job[] = [];
  #draining = false;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly maxBatch = 128,
  ) {}

  run<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.#draining) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#draining = true;
    try {
      while (this.#queue.length > 0) {
        // better-sqlite3 is synchronous: a whole batch runs without yielding to I/O. Yield once first, so the
        // requests already read from their sockets reach the queue and join this batch.
        await new Promise((r) => setImmediate(r));
        await this.#batch(this.#queue.splice(0, this.maxBatch));
      }
    } finally {
      this.#draining = false;
    }
  }

  async #batch(jobs: Job[]): Promise<void> {
    let trx: ControlledTransaction<Database>;
    try {
      trx = await this.db.startTransaction().execute();
      // Take the write lock first, as BEGIN IMMEDIATE would: another process's writer (the backup CLI) is then
      // waited for (busy_timeout) here, instead of failing this batch later when it writes on a stale snapshot.
      await sql`update settings set name = name where 0`.execute(trx);
    } catch (e) {
      for (const j of jobs) j.reject(e);
      return;
    }
    const done: Array<{ job: Job; value: unknown }> = [];
    for (let i = 0; i < jobs.length; i++) {
      const job = jobs[i]!;
      let sp: ControlledTransaction<Database, ['job']>;
      try {
        sp = await trx.savepoint('job').execute();
      } catch (e) {
        return this.#abort(trx, done, jobs.slice(i), e);
      }
      try {
        const value = await job.fn(sp);
        await sp.releaseSavepoint('job').execute();
        done.push({ job, value });
      } catch (e) {
        job.reject(e);
        try {
          await (await sp.rollbackToSavepoint('job').execute()).releaseSavepoint('job').execute();
        } catch (undo) {
          return this.#abort(trx, done, jobs.slice(i + 1), undo);
        }
      }
    }
    try {
      await trx.commit().execute();
    } catch (e) {
      return this.#abort(trx, done, [], e);
    }
    for (const { job, value } of done) job.resolve(value);
  }

  /** The transaction can no longer be trusted: roll it all back and fail every job of the batch. */
  async #abort(trx: ControlledTransaction<Database>, done: Array<{ job: Job }>, rest: Job[], e: unknown): Promise<void> {
    await trx.rollback().execute().catch(() => undefined);
    for (const { job } of done) job.reject(e);
    for (const job of rest) job.reject(e);
  }
}
