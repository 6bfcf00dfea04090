import type { Executor } from '../../storage/database.js';

/**
 * Counts AES-GCM/ChaCha20 invocations per key version so a version retires before NIST SP 800-38D's 2^32 limit for
 * random 96-bit nonces. Each node reserves blocks of invocations with an atomic conditional UPDATE and spends them
 * in memory, so the stored count is always an upper bound of what was used (a crashed node's unspent block counts as
 * spent).
 */
export class NonceBudget {
  readonly #blocks = new Map<string, { remaining: number }>();

  constructor(
    readonly limit: number,
    readonly blockSize: number,
  ) {}

  /**
   * Take one invocation of (keyId, version). Returns false when the version's budget is exhausted.
   * `onRollback` is called with an undo function when the reservation was written in a transaction that may roll back.
   */
  async take(db: Executor, keyId: string, version: number, onRollback?: (undo: () => void) => void): Promise<boolean> {
    const k = `${keyId}:${version}`;
    const b = this.#blocks.get(k);
    if (b && b.remaining > 0) {
      b.remaining--;
      return true;
    }
    const granted = await this.#reserve(db, keyId, version);
    if (granted === 0) return false;
    const block = { remaining: granted - 1 };
    this.#blocks.set(k, block);
    onRollback?.(() => {
      if (this.#blocks.get(k) === block) this.#blocks.delete(k);
    });
    return true;
  }

  async #reserve(db: Executor, keyId: string, version: number): Promise<number> {
    for (let want = this.blockSize; want > 0; ) {
      const row = await db
        .updateTable('kms_key_versions')
        .set((eb) => ({ nonces_reserved: eb('nonces_reserved', '+', want) }))
        .where('key_id', '=', keyId)
        .where('version', '=', version)
        .where((eb) => eb(eb('nonces_reserved', '+', want), '<=', this.limit))
        .returning('nonces_reserved')
        .executeTakeFirst();
      if (row) return want;
      const cur = await db.selectFrom('kms_key_versions').select('nonces_reserved').where('key_id', '=', keyId).where('version', '=', version).executeTakeFirst();
      const left = cur ? this.limit - Number(cur.nonces_reserved) : 0;
      if (left <= 0) return 0;
      want = Math.min(want, left);
    }
    return 0;
  }

  forget(keyId: string): void {
    for (const k of this.#blocks.keys()) if (k.startsWith(`${keyId}:`)) this.#blocks.delete(k);
  }
}
