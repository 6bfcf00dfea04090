import type { Executor } from '../storage/database.js';

/**
 * Single-writer jobs hold a lease row, so two nodes never run them at once. Taking the lease is one atomic upsert:
 * it succeeds when the lease is free, expired, or already ours.
 */
export async function acquireLease(db: Executor, name: string, holder: string, ttlMs: number, now: Date): Promise<boolean> {
  const expires_at = new Date(now.getTime() + ttlMs).toISOString();
  const row = await db
    .insertInto('leases')
    .values({ name, holder, expires_at })
    .onConflict((oc) =>
      oc
        .column('name')
        .doUpdateSet({ holder, expires_at })
        .where((eb) => eb.or([eb('leases.holder', '=', holder), eb('leases.expires_at', '<', now.toISOString())])),
    )
    .returning('holder')
    .executeTakeFirst();
  return row?.holder === holder;
}

export async function releaseLease(db: Executor, name: string, holder: string): Promise<void> {
  await db.deleteFrom('leases').where('name', '=', name).where('holder', '=', holder).execute();
}
