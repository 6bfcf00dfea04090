import { sql } from 'kysely';
import type { Storage } from '../storage/database.js';

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

/** The unwrapped material of every KMS key version (for tests that check it is stored nowhere in clear). */
export async function kmsMaterials(storage: Storage, open: (purpose: string, blob: Buffer) => Buffer): Promise<Buffer[]> {
  const rows = await storage.db.selectFrom('kms_key_versions').select(['key_id', 'version', 'material']).execute();
  return rows.filter((r) => r.material).map((r) => open(`kms/${r.key_id}/${r.version}`, r.material!));
}
