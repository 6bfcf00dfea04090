import { sql } from 'kysely';
import type { Storage } from '../storage/database.js';
import { Barrier } from '../kernel/seal/barrier.js';
import type { SealManager } from '../kernel/seal/manager.js';

const TABLES = ['audit_events', 'audit_head', 'api_keys', 'kms_keys', 'kms_key_versions', 'leases', 'settings'] as const;

/**
 * Every row of every table as one string, with binary columns in hex, base64 and latin1, so that a test can grep
 * the whole database for a secret in any of the forms it could have been stored in.
 */
export async function allTables(storage: Storage): Promise<string> {
  const parts: string[] = [];
  for (const t of TABLES) {
    const rows = (await sql`select * from ${sql.table(t)}`.execute(storage.db)).rows as Array<Record<string, unknown>>;
    for (const row of rows) {
      for (const v of Object.values(row)) {
        if (Buffer.isBuffer(v) || v instanceof Uint8Array) {
          const b = Buffer.from(v);
          parts.push(b.toString('hex'), b.toString('base64'), b.toString('latin1'));
        } else parts.push(String(v));
      }
    }
  }
  return parts.join('\n');
}

/**
 * The unwrapped material of every KMS key version, unwrapped here independently of the KMS service (the root
 * provider for system KEKs, the KEK for other keys), for tests that check it is stored nowhere in clear.
 */
export async function kmsMaterials(storage: Storage, seal: Pick<SealManager, 'barrier' | 'root'>): Promise<Buffer[]> {
  const rows = await storage.db.selectFrom('kms_key_versions').selectAll().where('material', 'is not', null).execute();
  const byKey = new Map(rows.map((r) => [`${r.key_id}:${r.version}`, r]));
  const open = async (r: (typeof rows)[number]): Promise<Buffer> => {
    const purpose = `kms/${r.key_id}/${r.version}`;
    if (r.wrapping === 'root') return seal.root!.unwrap(r.material!);
    if (r.wrapping === 'kek') return new Barrier(await open(byKey.get(`${r.kek_id}:${r.kek_version}`)!)).open(purpose, r.material!);
    return seal.barrier().open(purpose, r.material!);
  };
  return Promise.all(rows.map(open));
}
