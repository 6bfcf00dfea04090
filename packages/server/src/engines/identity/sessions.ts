import type { Redis } from 'ioredis';
import { closeRedis, connectRedis } from '../../storage/redis.js';
import { PalisadeError, randomBytes, sha256 } from '@palisade/core';
import type { Executor, Storage } from '../../storage/database.js';

/** What a session knows about its sign-in. */
export interface SessionData {
  user_id: string;
  created_at: string;
  /** Absolute expiry: the session ends then, used or not. */
  expires_at: string;
  /** When a second factor was last verified in this session (step-up refreshes it), and how. */
  mfa_at: string | null;
  mfa_method: string | null;
  /** How the user signed in: password, passkey, oidc:<provider>, saml:<provider>. */
  method: string;
  ip: string;
  user_agent: string | null;
  /** Policy requires MFA and the user had no factor at sign-in: the session may only enrol one until they do. */
  mfa_enrollment_required?: boolean;
}

export interface StoredSession {
  data: SessionData;
  last_seen_at: string;
}

/** Where sessions live: Redis when configured (shared by every node, expiring by itself), the database otherwise. */
export interface SessionStore {
  readonly kind: 'redis' | 'database';
  /** `db`: the caller's transaction, for the database store (on SQLite a write outside it would wait for it). */
  put(idHash: Buffer, data: SessionData, lastSeenAt: string, ttlSeconds: number, db?: Executor): Promise<void>;
  get(idHash: Buffer, db?: Executor): Promise<StoredSession | null>;
  /** Record activity (idle time-out restarts); `ttlSeconds` bounds the record's life. */
  touch(idHash: Buffer, lastSeenAt: string, ttlSeconds: number): Promise<void>;
  delete(idHash: Buffer, db?: Executor): Promise<void>;
  deleteForUser(userId: string, db?: Executor): Promise<number>;
  /** For /readyz: throws when the store cannot be reached. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

const SESSION_PREFIX = 'ps_';

/** A session id: 256 random bits; only its SHA-256 is stored, so a stolen store does not yield live cookies. */
export function newSessionId(): string {
  return SESSION_PREFIX + randomBytes(32).toString('base64url');
}

export function sessionHash(id: string): Buffer {
  return sha256(Buffer.from(id, 'utf8'));
}

export class DatabaseSessionStore implements SessionStore {
  readonly kind = 'database' as const;
  constructor(
    private readonly storage: Storage,
    private readonly clock: () => Date,
  ) {}

  async put(idHash: Buffer, data: SessionData, lastSeenAt: string, ttlSeconds: number, db: Executor = this.storage.db): Promise<void> {
    const expires_at = new Date(this.clock().getTime() + ttlSeconds * 1000).toISOString();
    const values = { id_hash: idHash, user_id: data.user_id, data: JSON.stringify(data), last_seen_at: lastSeenAt, expires_at };
    await db
      .insertInto('sessions')
      .values(values)
      .onConflict((oc) => oc.column('id_hash').doUpdateSet({ data: values.data, last_seen_at: lastSeenAt, expires_at }))
      .execute();
  }

  async get(idHash: Buffer, db: Executor = this.storage.db): Promise<StoredSession | null> {
    const row = await db.selectFrom('sessions').selectAll().where('id_hash', '=', idHash).executeTakeFirst();
    if (!row) return null;
    if (row.expires_at <= this.clock().toISOString()) return null;
    return { data: JSON.parse(row.data) as SessionData, last_seen_at: row.last_seen_at };
  }

  async touch(idHash: Buffer, lastSeenAt: string, ttlSeconds: number): Promise<void> {
    const expires_at = new Date(this.clock().getTime() + ttlSeconds * 1000).toISOString();
    await this.storage.db.updateTable('sessions').set({ last_seen_at: lastSeenAt, expires_at }).where('id_hash', '=', idHash).execute();
  }

  async delete(idHash: Buffer, db: Executor = this.storage.db): Promise<void> {
    await db.deleteFrom('sessions').where('id_hash', '=', idHash).execute();
  }

  async deleteForUser(userId: string, db: Executor = this.storage.db): Promise<number> {
    const r = await db.deleteFrom('sessions').where('user_id', '=', userId).executeTakeFirst();
    return Number(r.numDeletedRows);
  }

  async ping(): Promise<void> {} // the database is /readyz's storage check

  async close(): Promise<void> {}
}

/**
 * Sessions in Redis: one key per session with a TTL (Redis expires idle sessions by itself) and one set per user so
 * that deprovisioning ends all of a user's sessions at once, on every node.
 */
export class RedisSessionStore implements SessionStore {
  readonly kind = 'redis' as const;
  readonly #redis: Redis;
  constructor(url: string, prefix = 'palisade:') {
    this.#redis = connectRedis(url, { keyPrefix: prefix });
  }

  /** A Redis failure is the server's, not the client's: 503 PAL_UNAVAILABLE, never a 500 or a 401. */
  async #do<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw new PalisadeError('PAL_UNAVAILABLE', 'the session store (Redis) is unavailable', { cause: e });
    }
  }

  async ping(): Promise<void> {
    await this.#do(() => this.#redis.ping());
  }

  #key(idHash: Buffer): string {
    return `session:${idHash.toString('hex')}`;
  }

  async put(idHash: Buffer, data: SessionData, lastSeenAt: string, ttlSeconds: number): Promise<void> {
    const key = this.#key(idHash);
    await this.#do(() =>
      this.#redis
        .multi()
        .set(key, JSON.stringify({ data, last_seen_at: lastSeenAt }), 'EX', ttlSeconds)
        .sadd(`user-sessions:${data.user_id}`, key)
        .expire(`user-sessions:${data.user_id}`, Math.max(ttlSeconds, 86_400 * 31))
        .exec(),
    );
  }

  async get(idHash: Buffer): Promise<StoredSession | null> {
    const raw = await this.#do(() => this.#redis.get(this.#key(idHash)));
    return raw ? (JSON.parse(raw) as StoredSession) : null;
  }

  async touch(idHash: Buffer, lastSeenAt: string, ttlSeconds: number): Promise<void> {
    const key = this.#key(idHash);
    const raw = await this.#do(() => this.#redis.get(key));
    if (!raw) return;
    const s = JSON.parse(raw) as StoredSession;
    await this.#do(() => this.#redis.set(key, JSON.stringify({ ...s, last_seen_at: lastSeenAt }), 'EX', ttlSeconds, 'XX'));
  }

  async delete(idHash: Buffer): Promise<void> {
    await this.#do(() => this.#redis.del(this.#key(idHash)));
  }

  async deleteForUser(userId: string): Promise<number> {
    const set = `user-sessions:${userId}`;
    return this.#do(async () => {
      const keys = await this.#redis.smembers(set);
      if (keys.length === 0) return 0;
      const n = await this.#redis.del(...keys);
      await this.#redis.del(set);
      return n;
    });
  }

  async close(): Promise<void> {
    await closeRedis(this.#redis);
  }
}
