import { randomBytes } from 'node:crypto';
import type { Storage } from '../../storage/database.js';

const NONCE = /^[A-Za-z0-9_-]{22}$/;
const SWEEP_EVERY = 256;

/**
 * Replay nonces (RFC 8555 §6.5) in the database, so that any node accepts a nonce any other node issued: each is
 * usable once (consumed by deleting it) until it expires. Expired rows are swept every few hundred issues.
 */
export class NonceStore {
  #issued = 0;

  constructor(
    private readonly storage: Storage,
    private readonly clock: () => Date,
    private readonly ttlSeconds: number,
  ) {}

  async issue(): Promise<string> {
    const nonce = randomBytes(16).toString('base64url');
    const now = this.clock();
    const sweep = ++this.#issued % SWEEP_EVERY === 0;
    await this.storage.transact(async (tx) => {
      await tx.insertInto('acme_nonces').values({ nonce, expires_at: new Date(now.getTime() + this.ttlSeconds * 1000).toISOString() }).execute();
      if (sweep) await tx.deleteFrom('acme_nonces').where('expires_at', '<', now.toISOString()).execute();
    });
    return nonce;
  }

  /** True when the nonce was issued here, has not expired and was not used before; it cannot be used again. */
  async consume(nonce: string): Promise<boolean> {
    if (!NONCE.test(nonce)) return false;
    const now = this.clock().toISOString();
    const r = await this.storage.transact((tx) => tx.deleteFrom('acme_nonces').where('nonce', '=', nonce).where('expires_at', '>', now).executeTakeFirst());
    return r.numDeletedRows === 1n;
  }
}
