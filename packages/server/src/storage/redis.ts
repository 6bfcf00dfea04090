/**
 * Redis connections for the shared stores (sessions, signed-request nonces, gateway rate limits): few retries, so a
 * Redis outage is a failed command (the store answers 503 PAL_UNAVAILABLE) rather than a request that hangs, and a
 * connection error is never an unhandled 'error' event that crashes the process.
 */
import { Redis, type RedisOptions } from 'ioredis';

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
