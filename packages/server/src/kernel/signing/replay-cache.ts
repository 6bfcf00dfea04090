// Nonces of accepted signed requests, remembered for as long as their timestamp could still be accepted.
import type { Redis } from 'ioredis';
import { RedisConnection } from '../../storage/redis.js';
import { PalisadeError } from '@palisade/core';

/** Where accepted nonces are remembered. */
export interface ReplayCache {
  /**
   * Records (keyId, nonce) for `ttlSeconds` and answers whether it was already there, in one atomic step: of two
   * concurrent calls with the same pair exactly one answers false. Throws PAL_UNAVAILABLE when it cannot answer
   * (the verifier then refuses the request: fail closed).
   */
  seen(keyId: string, nonce: string, ttlSeconds: number): Promise<boolean>;
  close(): Promise<void>;
}

export interface MemoryReplayCacheOptions {
  /** Most nonces held at once (default 250,000); when full of live nonces, seen() throws PAL_UNAVAILABLE. */
  maxEntries?: number;
  /** Milliseconds since the epoch (default Date.now). */
  now?: () => number;
}

/**
 * One process's nonces in a Map (insertion order ≈ expiry order, as the verifier always passes the same TTL), swept
 * as it goes. Good for one node: behind a load balancer a replay sent to another node is not seen (use Redis).
 * When it is full of nonces that have not expired, it refuses rather than forgetting one early, since a forgotten
 * nonce is a replay let through; size it at least (signed requests per second) × 2 × skew.
 */
export class MemoryReplayCache implements ReplayCache {
  readonly #entries = new Map<string, number>();
  readonly #max: number;
  readonly #now: () => number;

  constructor(opts: MemoryReplayCacheOptions = {}) {
    this.#max = opts.maxEntries ?? 250_000;
    if (!Number.isInteger(this.#max) || this.#max < 1) throw new RangeError('MemoryReplayCache: maxEntries must be a positive integer');
    this.#now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.#entries.size;
  }

  async seen(keyId: string, nonce: string, ttlSeconds: number): Promise<boolean> {
    const now = this.#now();
    const key = `${keyId}\n${nonce}`;
    this.#sweep(now, 32);
    const expiry = this.#entries.get(key);
    if (expiry !== undefined && expiry > now) return true;
    if (expiry !== undefined) this.#entries.delete(key);
    if (this.#entries.size >= this.#max) {
      this.#sweep(now, Infinity);
      if (this.#entries.size >= this.#max) throw new PalisadeError('PAL_UNAVAILABLE', 'the replay cache is full', { cause: new Error(`MemoryReplayCache holds ${this.#max} live nonces`) });
    }
    this.#entries.set(key, now + ttlSeconds * 1000);
    return false;
  }

  /** Drops expired entries from the oldest on, looking at no more than `budget` of them (all with Infinity). */
  #sweep(now: number, budget: number): void {
    let looked = 0;
    for (const [key, expiry] of this.#entries) {
      if (looked++ >= budget) return;
      if (expiry <= now) this.#entries.delete(key);
      else if (budget !== Infinity) return; // the rest are younger
    }
  }

  async close(): Promise<void> {
    this.#entries.clear();
  }
}

export interface RedisReplayCacheOptions {
  /** Prepended to every key (default `palisade:`), as the session store does. */
  prefix?: string;
}

/**
 * Nonces in Redis, shared by every node: `SET <prefix>sig-nonce:<keyId>:<nonce> 1 NX EX <ttl>` is the atomic
 * record-and-test, and Redis expires the key by itself. Either a URL (this cache owns the connection) or an ioredis
 * client (the caller owns it).
 */
export class RedisReplayCache implements ReplayCache {
  readonly #conn: RedisConnection;
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: string | Redis, opts: RedisReplayCacheOptions = {}) {
    this.#prefix = opts.prefix ?? 'palisade:';
    this.#conn = new RedisConnection(redis);
    this.#redis = this.#conn.redis;
  }

  async seen(keyId: string, nonce: string, ttlSeconds: number): Promise<boolean> {
    const ttl = Math.max(1, Math.ceil(ttlSeconds));
    let reply: string | null;
    try {
      reply = await this.#redis.set(`${this.#prefix}sig-nonce:${keyId}:${nonce}`, '1', 'EX', ttl, 'NX');
    } catch (e) {
      throw new PalisadeError('PAL_UNAVAILABLE', 'the replay cache (Redis) is unavailable', { cause: e });
    }
    return reply !== 'OK'; // null: the key was there
  }

  async close(): Promise<void> {
    await this.#conn.close();
  }
}
