/**
 * Redis connections for the shared stores (sessions, signed-request nonces, gateway rate limits): few retries, so a
 * Redis outage is a failed command (the store answers 503 PAL_UNAVAILABLE) rather than a request that hangs, and a
 * connection error is never an unhandled 'error' event that crashes the process.
 */
import { keepWrapperPrototypesFast } from '@palisade/core';
import { Redis, type RedisOptions } from 'ioredis';

// ioredis 6 declares `class VerbatimString extends String` when it loads, which leaves String.prototype in V8's slow
// dictionary mode for the whole process (every string method call in optimized code a generic lookup): undone here,
// once, after it has loaded (core runtime/fast-prototypes.ts; fast-prototypes.test.ts checks the server's graph).
keepWrapperPrototypesFast();

export function connectRedis(url: string, opts: Pick<RedisOptions, 'keyPrefix'> = {}): Redis {
  const redis = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 2, enableOfflineQueue: true, ...opts });
  redis.on('error', () => {}); // surfaced as failed commands, not as a crash
  return redis;
}

/** A store's connection: from a URL (the store owns it and closes it) or a caller's client (left open). */
export class RedisConnection {
  readonly redis: Redis;
  readonly #owned: boolean;

  constructor(redis: string | Redis) {
    this.#owned = typeof redis === 'string';
    this.redis = typeof redis === 'string' ? connectRedis(redis) : redis;
  }

  async close(): Promise<void> {
    if (this.#owned) await closeRedis(this.redis);
  }
}

export async function closeRedis(redis: Redis): Promise<void> {
  await redis.quit().catch(() => redis.disconnect());
}
