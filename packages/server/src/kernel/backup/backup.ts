/**
 * Encrypted backups of the whole database (ADR 0005): `createBackup` takes a consistent snapshot of every
 * application table while servers keep running, `verifyBackup` checks a file (hashes without a key; with the
 * seal, the manifest's MAC and every part's GCM tag), and `restoreBackup` replaces the configured database with a
 * backup in one transaction, after proving the configured root opens it. All three run offline, against the
 * configuration, as `palisade audit verify` does.
 */
import { mkdir, unlink } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { sql, type MigrationProvider } from 'kysely';
import { CompactRange, PalisadeError, randomBytes, randomId } from '@palisade/core';
import type { Config } from '../../config/config.js';
import { openStorage, type Dialect, type Storage, type Tx } from '../../storage/database.js';
import { migrations as schemaMigrations } from '../../storage/migrations.js';
import { AuditLedger, type VerifyResult as LedgerVerifyResult } from '../audit/ledger.js';
import type { AuditEventInput } from '../audit/events.js';
import type { Barrier } from '../seal/barrier.js';
import { BackupWriter, checkManifestSignature, openBackupFile, openPart, partLabel, sealPart, signManifest, type BackupReader, type Manifest, type PartEntry, type UnsignedManifest } from './format.js';
import { backupFileName } from './retention.js';
import { openBackupSeal, readSealRecords, type SealSecrets } from './seal.js';
import { appliedMigrations, columnsOf, countRows, decodeRow, encodeRow, foreignKeys, insertRows, listTables, MIGRATION_TABLE, parentsFirst, primaryKeyOf, readTable, type Queryable, type Row } from './tables.js';

/** Plaintext (JSON lines) per part before it is compressed and sealed. */
const CHUNK_BYTES = 8 * 1024 * 1024;

/** Progress of a phase: `create` dumps rows; `check` hashes parts; `decrypt` authenticates parts; `restore` inserts rows; `audit` verifies the ledger. */
export type BackupProgress = (phase: 'dump' | 'check' | 'decrypt' | 'restore' | 'audit', done: number, total: number) => void;

export interface BackupOptions {
  /** Opens the passphrase seal (the other providers need nothing). */
  secrets?: SealSecrets;
  onProgress?: BackupProgress;
  clock?: () => Date;
}

const databaseUrl = (config: Config): string => config.database_url ?? join(config.data_dir, 'palisade.db');

/** Offline commands have no API principal: the event names the command and the operating-system user who ran it. */
const ACTOR = { principal_id: 'system:backup-cli', api_key_id: null, source_ip: null };
const osUser = (): string => {
  try {
    return userInfo().username;
  } catch {
    return 'unknown'; // no passwd entry (some containers)
  }
};

/** Append in a transaction of its own, retrying when another process's write got in first (SQLite: SQLITE_BUSY). */
async function appendWithRetry(ledger: AuditLedger, input: AuditEventInput, attempts = 5): Promise<void> {
  for (let i = 1; ; i++) {
    try {
      await ledger.appendStandalone(input);
      return;
    } catch (e) {
      const busy = /SQLITE_BUSY/.test(String((e as { cause?: { code?: string } }).cause?.code ?? ''));
      if (!busy || i >= attempts) throw e;
      await new Promise((r) => setTimeout(r, 50 * i));
    }
  }
}

// ---- create ----------------------------------------------------------------------------------------------------

export interface CreateResult {
  file: string;
  backup_id: string;
  created_at: string;
  parts: number;
  tables: number;
  rows: number;
  bytes: number;
  manifest_sha256: string;
  audit: { size: number; root: string | null };
}

/** A backup file written and durable, not yet recorded in the audit ledger. */
export interface WrittenBackup extends CreateResult {
  /** The barrier of the snapshot's keyring, for the audit event. */
  barrier: Barrier;
}

/** Snapshot and seal every application table into `<dir>/palisade-<UTC time>-<id>.pbak`, then audit `backup.create`. */
export async function createBackup(config: Config, dir: string, opts: BackupOptions = {}): Promise<CreateResult> {
  const storage = await openStorage({ url: databaseUrl(config), sqliteSynchronous: config.storage.sqlite_synchronous });
  try {
    return await recordBackup(storage, await writeBackup(storage, config, dir, opts), opts.clock);
  } finally {
    await storage.close();
  }
}

/** The snapshot, sealed and written: fsynced under a temporary name, then renamed into place. */
export async function writeBackup(storage: Storage, config: Config, dir: string, opts: BackupOptions = {}): Promise<WrittenBackup> {
  const clock = opts.clock ?? (() => new Date());
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const createdAt = clock();
  const backupId = randomId('bak');
  const path = resolve(dir, backupFileName(createdAt, backupId));
  const writer = await BackupWriter.create(path);
  let manifest: Manifest;
  let barrier: Barrier;
  let done: Awaited<ReturnType<BackupWriter['finish']>>;
  try {
    // One read transaction: a consistent snapshot while servers write (SQLite WAL readers see the state at their
    // first read; PostgreSQL gets REPEATABLE READ, READ ONLY).
    const snapshot = storage.dialect === 'postgres' ? storage.db.transaction().setIsolationLevel('repeatable read').setAccessMode('read only') : storage.db.transaction();
    ({ manifest, barrier } = await snapshot.execute(async (tx) => {
      const records = await readSealRecords(tx, config);
      const seal = await openBackupSeal(config, records, opts.secrets);
      try {
        const key = randomBytes(32);
        try {
          const purpose = `backup/${backupId}`;
          const wrapped = seal.barrier.seal(purpose, key).toString('base64');
          const unsigned = await dumpTables(tx, storage.dialect, writer, key, backupId, opts.onProgress);
          const m: UnsignedManifest = {
            format: 'palisade-backup/v1',
            backup_id: backupId,
            created_at: createdAt.toISOString(),
            dialect: storage.dialect,
            migrations: await appliedMigrations(tx),
            seal: records,
            key: { purpose, wrapped },
            cipher: 'AES-256-GCM',
            compression: 'gzip',
            audit: await auditHead(tx),
            ...unsigned,
          };
          return { manifest: signManifest(m, key), barrier: seal.barrier };
        } finally {
          key.fill(0);
        }
      } finally {
        await seal.close();
      }
    }));
    done = await writer.finish(manifest);
  } catch (e) {
    await writer.abort();
    throw e;
  }
  return {
    file: done.path,
    backup_id: backupId,
    created_at: manifest.created_at,
    parts: manifest.parts.length,
    tables: manifest.tables.length,
    rows: manifest.tables.reduce((n, t) => n + t.rows, 0),
    bytes: done.bytes,
    manifest_sha256: done.manifestSha256,
    audit: manifest.audit,
    barrier,
  };
}

/**
 * Appends `backup.create` for a written backup. It comes after the file is durable so that it can carry the
 * manifest's hash (the backup's identity in the ledger); the backup therefore holds the log up to the entry before
 * its own. Fail closed: when the event cannot be written, the file is deleted and the error thrown.
 */
export async function recordBackup(storage: Storage, w: WrittenBackup, clock: () => Date = () => new Date()): Promise<CreateResult> {
  const { barrier, ...result } = w;
  try {
    await appendWithRetry(new AuditLedger(storage, () => barrier, { clock }), {
      type: 'backup.create',
      actor: ACTOR,
      outcome: 'success',
      action: 'backup:create',
      resource: { type: 'backup', id: w.backup_id },
      ...whoRan(),
      details: { file: w.file, parts: w.parts, tables: w.tables, rows: w.rows, bytes: w.bytes, manifest_sha256: w.manifest_sha256, audit_size: w.audit.size },
    });
  } catch (e) {
    await unlink(w.file).catch(() => undefined);
    throw e;
  }
  return result;
}

/** The audit log's size and root, from its stored frontier (rows keep a root only every 256 entries). */
async function auditHead(tx: Tx): Promise<Manifest['audit']> {
  const head = await tx.selectFrom('audit_head').select('range').where('id', '=', 1).executeTakeFirst();
  const range = head ? CompactRange.fromJSON(JSON.parse(head.range)) : new CompactRange();
  return range.size === 0 ? { size: 0, root: null } : { size: range.size, root: range.root().toString('hex') };
}

async function dumpTables(tx: Tx, dialect: Dialect, writer: BackupWriter, key: Buffer, backupId: string, onProgress?: BackupProgress): Promise<Pick<Manifest, 'tables' | 'parts'>> {
  const tables = parentsFirst(await listTables(tx, dialect), await foreignKeys(tx, dialect));
  const counts = new Map<string, number>();
  for (const t of tables) counts.set(t, await countRows(tx, t));
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  let done = 0;
  onProgress?.('dump', 0, total);
  const out: Manifest['tables'] = [];
  for (const table of tables) {
    const columns = await columnsOf(tx, dialect, table);
    let lines: string[] = [];
    let size = 0;
    let chunk = 0;
    let rows = 0;
    const flush = async () => {
      const name = `${table}#${chunk}`;
      const plain = Buffer.from(lines.length ? lines.join('\n') + '\n' : '', 'utf8');
      await writer.addPart({ name, table, chunk, rows: lines.length }, sealPart(key, backupId, { index: writer.parts.length, name }, plain));
      chunk++;
      lines = [];
      size = 0;
    };
    for await (const page of readTable(tx, table, await primaryKeyOf(tx, dialect, table))) {
      for (const row of page) {
        const line = encodeRow(table, row);
        lines.push(line);
        size += Buffer.byteLength(line) + 1;
        rows++;
        if (size >= CHUNK_BYTES) await flush();
      }
      done += page.length;
      onProgress?.('dump', done, total);
    }
    if (lines.length || chunk === 0) await flush(); // every table has at least one part, even when empty
    out.push({ name: table, columns, rows });
  }
  return { tables: out, parts: writer.parts };
}

// ---- verify ----------------------------------------------------------------------------------------------------

export interface VerifyBackupResult {
  file: string;
  backup_id: string;
  created_at: string;
  dialect: Dialect;
  provider: string;
  parts: number;
  rows: number;
  manifest_sha256: string;
  /** True when the manifest's MAC and every part were authenticated with the seal; false for hashes only. */
  authenticated: boolean;
}

/** Every part's hash; PAL_BACKUP_CORRUPT naming the first part that does not match. */
async function checkHashes(reader: BackupReader, onProgress?: BackupProgress): Promise<void> {
  const parts = reader.manifest.parts;
  onProgress?.('check', 0, parts.length);
  for (const p of parts) {
    await reader.readCheckedPart(p);
    onProgress?.('check', p.index + 1, parts.length);
  }
}

/** Opens the backup's key with the configured root and checks the manifest's MAC. The caller zeroes the key. */
async function unlock(reader: BackupReader, config: Config, secrets?: SealSecrets): Promise<{ key: Buffer; barrier: Barrier }> {
  const m = reader.manifest;
  const seal = await openBackupSeal(config, m.seal, secrets);
  try {
    if (m.key.purpose !== `backup/${m.backup_id}`) throw new PalisadeError('PAL_BACKUP_CORRUPT', 'the manifest binds its key to another backup');
    let key: Buffer;
    try {
      key = seal.barrier.open(m.key.purpose, Buffer.from(m.key.wrapped, 'base64'));
    } catch (e) {
      throw new PalisadeError('PAL_BACKUP_CORRUPT', 'the backup key does not unwrap: the manifest was altered', { cause: e });
    }
    checkManifestSignature(m, key);
    return { key, barrier: seal.barrier };
  } finally {
    await seal.close();
  }
}

/** Decrypted rows of a part, checked against the manifest's row count. */
function partRows(key: Buffer, m: Manifest, p: PartEntry, blob: Buffer): Row[] {
  const text = openPart(key, m.backup_id, p, blob).toString('utf8');
  const lines = text ? text.replace(/\n$/, '').split('\n') : [];
  if (lines.length !== p.rows) throw new PalisadeError('PAL_BACKUP_CORRUPT', `${partLabel(p)} holds ${lines.length} rows, the manifest says ${p.rows}`);
  return lines.map((l, i) => {
    try {
      return decodeRow(l);
    } catch (e) {
      throw new PalisadeError('PAL_BACKUP_CORRUPT', `${partLabel(p)}: row ${i} does not decode`, { cause: e });
    }
  });
}

/**
 * Check a backup file. Without `config`, only what needs no key: the structure, the manifest's hash and every
 * part's SHA-256. With `config` (the seal available), also the manifest's MAC, then every part is decrypted and
 * authenticated. Throws PAL_BACKUP_CORRUPT naming the first bad part.
 */
export async function verifyBackup(file: string, opts: BackupOptions & { config?: Config } = {}): Promise<VerifyBackupResult> {
  const reader = await openBackupFile(file);
  try {
    const m = reader.manifest;
    await checkHashes(reader, opts.onProgress);
    if (opts.config) {
      const { key } = await unlock(reader, opts.config, opts.secrets);
      try {
        opts.onProgress?.('decrypt', 0, m.parts.length);
        for (const p of m.parts) {
          partRows(key, m, p, await reader.readCheckedPart(p));
          opts.onProgress?.('decrypt', p.index + 1, m.parts.length);
        }
      } finally {
        key.fill(0);
      }
    }
    return {
      file: reader.path,
      backup_id: m.backup_id,
      created_at: m.created_at,
      dialect: m.dialect,
      provider: m.seal.provider,
      parts: m.parts.length,
      rows: m.parts.reduce((n, p) => n + p.rows, 0),
      manifest_sha256: reader.manifestSha256,
      authenticated: opts.config !== undefined,
    };
  } finally {
    await reader.close();
  }
}

// ---- restore ---------------------------------------------------------------------------------------------------

export interface RestoreOptions extends BackupOptions {
  /** Replace a database that already holds data. */
  force?: boolean;
  /** The schema's migrations (tests inject more); default the server's own. */
  migrations?: MigrationProvider;
}

export interface RestoreResult {
  backup_id: string;
  created_at: string;
  tables: number;
  rows: number;
  /** The ledger's own verification after the restore (it includes the `backup.restore` event). */
  audit: LedgerVerifyResult;
}

/** Tables of `db` that hold rows, with their counts. */
async function nonEmpty(db: Queryable, dialect: Dialect): Promise<string[]> {
  const out: string[] = [];
  for (const t of await listTables(db, dialect)) {
    const n = await countRows(db, t);
    if (n > 0) out.push(`${t} (${n} rows)`);
  }
  return out;
}

/** The backup's migrations must be a prefix of ours (same names, same order); the rest run after the rows are in. */
function checkSchema(backup: string[], ours: string[]): void {
  const unknown = backup.filter((n) => !ours.includes(n));
  if (unknown.length) throw new PalisadeError('PAL_BACKUP_UNSUPPORTED', `the backup is from a newer schema (migrations ${unknown.join(', ')} are unknown here): restore it with the Palisade version that made it, or a newer one`);
  if (backup.some((n, i) => ours[i] !== n)) throw new PalisadeError('PAL_BACKUP_UNSUPPORTED', `the backup's migrations (${backup.join(', ')}) are not a prefix of this Palisade's (${ours.join(', ')})`);
}

/**
 * Restore `file` into the configured database (SQLite in the data directory, or `database_url`). The operator
 * brings the same root of trust. Order: structure and hashes; schema compatibility; the target must be empty
 * unless `force`; the root opens the backup's key and the manifest's MAC checks; then one transaction drops the
 * application tables, rebuilds the schema at the backup's migrations, inserts every part (each authenticated as
 * it is read), runs the migrations the backup predates over the restored rows, and appends `backup.restore`.
 * Finally the audit ledger is verified.
 */
export async function restoreBackup(config: Config, file: string, opts: RestoreOptions = {}): Promise<RestoreResult> {
  const clock = opts.clock ?? (() => new Date());
  const reader = await openBackupFile(file);
  let storage: Storage | null = null;
  let key: Buffer | null = null;
  try {
    const m = reader.manifest;
    await checkHashes(reader, opts.onProgress);
    await mkdir(config.data_dir, { recursive: true, mode: 0o700 });
    storage = await openStorage({ url: databaseUrl(config), sqliteSynchronous: config.storage.sqlite_synchronous });
    const dialect = storage.dialect;
    const provider = opts.migrations ?? schemaMigrations(dialect);
    const all = await provider.getMigrations();
    const ours = Object.keys(all).sort();
    checkSchema(m.migrations, ours);
    const refuse = (tables: string[]) => new PalisadeError('PAL_BACKUP_TARGET_NOT_EMPTY', `the target database is not empty (${tables.join(', ')}); restore replaces everything in it only with --force`);
    if (!opts.force) {
      const full = await nonEmpty(storage.db, dialect);
      if (full.length) throw refuse(full);
    }
    const unlocked = await unlock(reader, config, opts.secrets);
    key = unlocked.key;
    const barrier = unlocked.barrier;
    const totalRows = m.parts.reduce((n, p) => n + p.rows, 0);
    const s = storage;
    const k = key;
    await s.db.transaction().execute(async (tx) => {
      if (!opts.force) {
        const full = await nonEmpty(tx, dialect);
        if (full.length) throw refuse(full);
      }
      if (dialect === 'sqlite') await sql`pragma defer_foreign_keys = on`.execute(tx);
      // Replace the schema by the backup's: drop every application table (children first), rebuild up to its migrations.
      for (const t of parentsFirst(await listTables(tx, dialect), await foreignKeys(tx, dialect)).reverse()) await sql`drop table ${sql.id(t)}`.execute(tx);
      await sql`delete from ${sql.id(MIGRATION_TABLE)}`.execute(tx);
      for (const name of m.migrations) await all[name]!.up(tx);

      const byTable = new Map(m.tables.map((t) => [t.name, t]));
      const present = await listTables(tx, dialect);
      for (const t of m.tables) {
        if (!present.includes(t.name)) throw new PalisadeError('PAL_BACKUP_UNSUPPORTED', `the backup has a table ${t.name} that its migrations do not create here`);
        const cols = await columnsOf(tx, dialect, t.name);
        const missing = t.columns.filter((c) => !cols.includes(c));
        if (missing.length) throw new PalisadeError('PAL_BACKUP_UNSUPPORTED', `the backup's table ${t.name} has columns (${missing.join(', ')}) that its migrations do not create here`);
      }
      let done = 0;
      opts.onProgress?.('restore', 0, totalRows);
      for (const table of parentsFirst([...byTable.keys()], await foreignKeys(tx, dialect))) {
        const columns = byTable.get(table)!.columns;
        let inserted = 0;
        for (const p of m.parts.filter((x) => x.table === table)) {
          const rows = partRows(k, m, p, await reader.readCheckedPart(p));
          await insertRows(tx, table, columns, rows);
          inserted += rows.length;
          done += rows.length;
          opts.onProgress?.('restore', done, totalRows);
        }
        if (inserted !== byTable.get(table)!.rows) throw new PalisadeError('PAL_BACKUP_CORRUPT', `table ${table}: the parts hold ${inserted} rows, the manifest says ${byTable.get(table)!.rows}`);
      }
      const head = await auditHead(tx);
      if (head.size !== m.audit.size || head.root !== m.audit.root) throw new PalisadeError('PAL_BACKUP_CORRUPT', `the restored audit log (size ${head.size}) does not end where the manifest says (size ${m.audit.size})`);

      // The migrations this backup predates run over the restored rows, as they ran over the live ones.
      for (const name of ours.slice(m.migrations.length)) await all[name]!.up(tx);
      const at = clock().toISOString();
      await insertRows(tx, MIGRATION_TABLE, ['name', 'timestamp'], ours.map((name) => ({ name, timestamp: at })));

      await new AuditLedger(s, () => barrier, { clock }).append(tx, {
        type: 'backup.restore',
        actor: ACTOR,
        outcome: 'success',
        action: 'backup:restore',
        resource: { type: 'backup', id: m.backup_id },
        ...whoRan(),
        details: { file: reader.path, backup_created_at: m.created_at, manifest_sha256: reader.manifestSha256, source_dialect: m.dialect, rows: totalRows, audit_size_at_backup: m.audit.size, forced: opts.force === true },
      });
    });
    const audit = await new AuditLedger(s, () => barrier, { clock }).verify((p) => opts.onProgress?.('audit', p.checked, p.total));
    return { backup_id: m.backup_id, created_at: m.created_at, tables: m.tables.length, rows: totalRows, audit };
  } finally {
    key?.fill(0);
    await reader.close();
    await storage?.close();
  }
}

/** The operating-system account that ran a backup command: personal data, so encrypted under its subject's key. */
function whoRan(): { subject: string; personal_fields: { os_user: string } } {
  const user = osUser();
  return { subject: `os_user:${user}`, personal_fields: { os_user: user } };
}
