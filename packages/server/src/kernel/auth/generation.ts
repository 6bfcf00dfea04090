import { sql } from 'kysely';
import type { Executor, Storage } from '../../storage/database.js';

const CHANNEL = 'palisade_auth';

/**
 * One counter for "who may do what changed": bumped in the transaction of every change to roles, bindings, grants,
 * policies, a principal's roles or groups, and credential revocation. Every node drops what it cached (decisions,
 * principal states, API keys) when the counter moves:
 * - on this node at once, and again after the change committed (a read between the bump and the commit may have
 *   cached the old state);
 * - on other PostgreSQL nodes by NOTIFY, which PostgreSQL delivers when (and only if) the transaction commits;
 * - everywhere by a poll of the counter, which bounds staleness if a notification is lost (a dropped connection).
 */
export class AuthGeneration {
  readonly #listeners: Array<() => void> = [];
  #seen = -1;
  #stopListening: (() => Promise<void>) | null = null;
  #timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly storage: Storage,
    private readonly opts: { pollMs?: number; onError?: (e: Error) => void } = {},
  ) {}

  onChange(fn: () => void): void {
    this.#listeners.push(fn);
  }

  /** Record a change in `db` (the changing transaction). */
  async bump(db: Executor): Promise<void> {
    // An upsert: the row appears with the first change (a fresh database stays empty for a backup restore).
    await db
      .insertInto('auth_generation')
      .values({ id: 1, generation: 1 })
      .onConflict((oc) => oc.column('id').doUpdateSet({ generation: sql<number>`auth_generation.generation + 1` }))
      .execute();
    if (this.storage.dialect === 'postgres') await sql`select pg_notify(${CHANNEL}, '')`.execute(db);
    this.#fire();
    // After the caller's transaction: its commit is queued before this timer on SQLite; on PostgreSQL NOTIFY follows.
    setTimeout(() => this.#fire(), 0).unref();
  }

  async start(): Promise<void> {
    this.#seen = await this.#read();
    const onError = (e: Error) => {
      this.opts.onError?.(e);
      this.#fire();
    };
    this.#stopListening = await this.storage.listen(CHANNEL, () => this.#fire(), onError).catch((e: unknown) => {
      onError(e as Error);
      return null;
    });
    this.#timer = setInterval(() => {
      this.#read().then(
        (g) => {
          if (g !== this.#seen) {
            this.#seen = g;
            this.#fire();
          }
        },
        () => undefined,
      );
    }, this.opts.pollMs ?? 1000);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#stopListening?.();
    this.#stopListening = null;
  }

  async #read(): Promise<number> {
    const row = await this.storage.db.selectFrom('auth_generation').select('generation').where('id', '=', 1).executeTakeFirst();
    return Number(row?.generation ?? 0);
  }

  #fire(): void {
    for (const fn of this.#listeners) fn();
  }
}
