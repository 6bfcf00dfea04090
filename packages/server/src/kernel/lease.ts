import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomId } from '@palisade/core';
import type { Executor } from '../storage/database.js';

/**
 * This node's lease holder id, kept in the data directory: a node restarted after a crash (kill -9, power loss)
 * takes its leases back at once instead of waiting for them to expire.
 */
export function nodeId(dataDir: string): string {
  const file = join(dataDir, 'node-id');
  try {
    const id = readFileSync(file, 'utf8').trim();
    if (/^node_[a-z0-9]{26}$/.test(id)) return id;
  } catch {
    // first start
  }
  const id = randomId('node');
  writeFileSync(file, id + '\n', { mode: 0o600 });
  return id;
}

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
