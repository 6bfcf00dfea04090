/**
 * Backups end to end against real servers: SQLite and PostgreSQL, the file seal and the pkcs11 seal (SoftHSM2),
 * the passphrase seal with recovery shares, and SQLite <-> PostgreSQL. The backup functions run in this process
 * against the servers' configuration, as the CLI runs them against palisade.yaml.
 */
import { copyFile, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { sql, type Kysely, type MigrationProvider } from 'kysely';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { sha256, type EncryptedData } from '@palisade/core';
import { freshPostgresDatabase } from '@palisade/testkit';
import type { Config } from '../../config/config.js';
import { openStorage } from '../../storage/database.js';
import { migrations } from '../../storage/migrations.js';
import { buildCli } from '../../cli/commands.js';
import { dialects, serverCases, startServer, type DialectName, type SealName, type TestServer } from '../../testing/harness.js';
import { createBackup, recordBackup, restoreBackup, verifyBackup, writeBackup, type BackupProgress, type CreateResult } from './backup.js';
import { openBackupFile, signManifest, type Manifest } from './format.js';
import { openBackupSeal } from './seal.js';

const END = Buffer.from('PBAKEND\n', 'latin1');

/** Rewrite a backup's manifest (and parts) as an attacker or a bit flip would, with a consistent trailer. */
async function rewrite(src: string, dst: string, edit: (m: Manifest, body: Buffer) => Manifest | void): Promise<void> {
  const buf = await readFile(src);
  const mlen = buf.readUInt32BE(buf.length - 44);
  const start = buf.length - 44 - mlen;
  const body = Buffer.from(buf.subarray(0, start));
  const m = JSON.parse(buf.subarray(start, start + mlen).toString('utf8')) as Manifest;
  const out = Buffer.from(JSON.stringify(edit(m, body) ?? m), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(out.length);
  await writeFile(dst, Buffer.concat([body, out, len, sha256(out), END]));
}

async function flipByte(file: string, at: number): Promise<void> {
  const buf = await readFile(file);
  buf[at] = buf[at]! ^ 0x40;
  await writeFile(file, buf);
}

interface Target {
  config: Config;
  dir: string;
}

/** A fresh data directory (with the file seal's root copied in, as the operator must) and, on PostgreSQL, a fresh database. */
async function freshTarget(src: Config, dialect: DialectName, seal: SealName): Promise<Target> {
  const dir = await mkdtemp(join(tmpdir(), 'palisade-restore-'));
  if (seal === 'file') await copyFile(join(src.data_dir, 'seal.key'), join(dir, 'seal.key'));
  const config = structuredClone(src);
  config.data_dir = dir;
  if (dialect === 'postgres') config.database_url = await freshPostgresDatabase(inject('pgUrl')!);
  else delete config.database_url;
  return { config, dir };
}

/** A server on a restored data directory / database, with the same root. */
function serverOn(t: Target, dialect: DialectName, seal: SealName): Promise<TestServer> {
  return startServer(dialect, {
    seal,
    mutate: (c) => {
      c.data_dir = t.config.data_dir;
      if (t.config.database_url) c.database_url = t.config.database_url;
      else delete c.database_url;
      c.seal.pkcs11.key_label = t.config.seal.pkcs11.key_label;
    },
  });
}

function recorder(): { fn: BackupProgress; phases: Map<string, Array<[number, number]>> } {
  const phases = new Map<string, Array<[number, number]>>();
  return { phases, fn: (phase, done, total) => phases.set(phase, [...(phases.get(phase) ?? []), [done, total]]) };
}

describe.each(serverCases())('backups ($name)', ({ dialect, seal, available }) => {
  let s: TestServer;
  const cleanup: Array<() => Promise<unknown>> = [];
  let backupDir = '';
  let aes = '';
  let signer = '';
  let ct1: EncryptedData;
  let ct2: EncryptedData;
  let backup: CreateResult;
  const keyName = `backup-test-${Math.random().toString(36).slice(2)}`;

  beforeAll(async () => {
    if (!available) return;
    s = await startServer(dialect, { seal });
    cleanup.push(() => s.close());
    backupDir = await mkdtemp(join(tmpdir(), 'palisade-backups-'));
    cleanup.push(() => rm(backupDir, { recursive: true, force: true }));
    aes = (await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', name: keyName })).key_id;
    ct1 = await s.client.kms.encrypt(aes, 'encrypted under version 1', { tenant: 'acme' });
    await s.client.kms.rotateKey(aes);
    ct2 = await s.client.kms.encrypt(aes, 'encrypted under version 2');
    signer = (await s.client.kms.createKey({ key_type: 'signing', algorithm: 'ED25519' })).key_id;
  });
  afterAll(async () => {
    for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
  });

  describe.skipIf(!available)('', () => {
    it('backs up while the server keeps writing: one consistent snapshot, progress, audited with the manifest hash', async () => {
      const storage = await openStorage({ url: s.rt.config.database_url ?? join(s.rt.config.data_dir, 'palisade.db') });
      try {
        const progress = recorder();
        const load: Array<Promise<unknown>> = [];
        const written = await writeBackup(storage, s.rt.config, backupDir, {
          onProgress: (phase, done, total) => {
            progress.fn(phase, done, total);
            if (load.length < 20) for (let i = 0; i < 10; i++) load.push(s.client.kms.encrypt(aes, `during the backup ${i}`));
          },
        });
        await Promise.all(load); // writes ran while the snapshot was read (SQLite: let them finish before this process writes)
        backup = await recordBackup(storage, written);
        expect(progress.phases.get('dump')!.at(-1)).toEqual([backup.rows, backup.rows]);
      } finally {
        await storage.close();
      }
      expect(basename(backup.file)).toMatch(/^palisade-\d{8}T\d{6}Z-bak_[a-z2-7]+\.pbak$/);
      expect(((await stat(backup.file)).mode & 0o777).toString(8)).toBe('600');
      expect(backup.audit.size).toBeGreaterThan(0);
      const events = (await s.rt.ledger.query({ type: 'backup.create' })).events;
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ actor: { principal_id: 'system:backup-cli' }, resource: { type: 'backup', id: backup.backup_id }, details: { manifest_sha256: backup.manifest_sha256, parts: backup.parts } });

      // Nothing of the data is in clear: not the key's name, not its id (both are in rows and audit events).
      const bytes = (await readFile(backup.file)).toString('latin1');
      expect(bytes).not.toContain(keyName);
      expect(bytes).not.toContain(aes);
      const r = await openBackupFile(backup.file);
      expect(r.manifest.tables.map((t) => t.name)).toEqual(expect.arrayContaining(['audit_events', 'kms_keys', 'kms_key_versions', 'settings', 'api_keys']));
      expect(r.manifest.tables.map((t) => t.name)).not.toContain('kysely_migration');
      expect(r.manifest.migrations).toContain('0001_foundation');
      expect(r.manifest.dialect).toBe(dialect);
      await r.close();
    });

    it('verify: hashes without a key, and with the seal the signature and every part', async () => {
      const p = recorder();
      expect(await verifyBackup(backup.file, { onProgress: p.fn })).toMatchObject({ backup_id: backup.backup_id, authenticated: false, parts: backup.parts, rows: backup.rows });
      expect(await verifyBackup(backup.file, { config: s.rt.config, onProgress: p.fn })).toMatchObject({ authenticated: true, manifest_sha256: backup.manifest_sha256 });
      expect(p.phases.get('decrypt')!.at(-1)).toEqual([backup.parts, backup.parts]);
    });

    it('restore on a fresh data dir: old ciphertexts decrypt, signatures verify, the audit log verifies', async () => {
      const t = await freshTarget(s.rt.config, dialect, seal);
      cleanup.push(() => rm(t.dir, { recursive: true, force: true }));
      const p = recorder();
      const r = await restoreBackup(t.config, backup.file, { onProgress: p.fn });
      expect(r).toMatchObject({ backup_id: backup.backup_id, rows: backup.rows, audit: { ok: true, size: backup.audit.size + 1 } });
      expect(p.phases.get('restore')!.at(-1)).toEqual([backup.rows, backup.rows]);

      const s2 = await serverOn(t, dialect, seal);
      cleanup.push(() => s2.close());
      expect((await s2.client.kms.decrypt(aes, ct1, { tenant: 'acme' })).toString()).toBe('encrypted under version 1');
      expect((await s2.client.kms.decrypt(aes, ct2)).toString()).toBe('encrypted under version 2');
      const sig = await s.client.kms.sign(signer, 'signed before the backup');
      expect((await s2.client.kms.verify(signer, 'signed before the backup', sig.signature)).valid).toBe(true);
      expect((await s2.client.kms.getKey(aes)).name).toBe(keyName);
      const ledger = await s2.rt.ledger.verify();
      expect(ledger.ok).toBe(true);
      const restoreEvent = (await s2.rt.ledger.query({ type: 'backup.restore' })).events[0];
      expect(restoreEvent).toMatchObject({ index: backup.audit.size, details: { manifest_sha256: backup.manifest_sha256, source_dialect: dialect } });
      // The restored node keeps working: new writes are audited onto the restored log.
      await s2.client.kms.encrypt(aes, 'after the restore');
      expect((await s2.rt.ledger.verify()).ok).toBe(true);
    });

    it('a flipped byte in part N fails verify naming part N, with or without the seal; restore refuses it and writes nothing', async () => {
      const r = await openBackupFile(backup.file);
      const part = r.manifest.parts.find((p) => p.table === 'kms_key_versions')!;
      await r.close();
      const bad = join(backupDir, 'flipped.pbak');
      await copyFile(backup.file, bad);
      await flipByte(bad, part.offset + Math.floor(part.bytes / 2));
      const named = new RegExp(`part ${part.index} \\(kms_key_versions#0\\) does not match its SHA-256`);
      await expect(verifyBackup(bad)).rejects.toMatchObject({ code: 'PAL_BACKUP_CORRUPT', message: expect.stringMatching(named), extensions: { part: part.index } });
      await expect(verifyBackup(bad, { config: s.rt.config })).rejects.toMatchObject({ code: 'PAL_BACKUP_CORRUPT', message: expect.stringMatching(named) });
      const t = await freshTarget(s.rt.config, dialect, seal);
      cleanup.push(() => rm(t.dir, { recursive: true, force: true }));
      await expect(restoreBackup(t.config, bad)).rejects.toMatchObject({ code: 'PAL_BACKUP_CORRUPT', message: expect.stringMatching(named) });
    });

    it('a truncated file, a damaged manifest, and consistent-looking forgeries all fail', async () => {
      const size = (await stat(backup.file)).size;
      for (const cut of [1, 44, Math.floor(size / 2), size - 9]) {
        const f = join(backupDir, `cut-${cut}.pbak`);
        await copyFile(backup.file, f);
        await truncate(f, cut);
        await expect(verifyBackup(f)).rejects.toMatchObject({ code: 'PAL_BACKUP_CORRUPT', message: expect.stringMatching(/truncated|not a Palisade backup/) });
      }
      const damaged = join(backupDir, 'manifest.pbak');
      await copyFile(backup.file, damaged);
      await flipByte(damaged, size - 44 - 20);
      await expect(verifyBackup(damaged)).rejects.toMatchObject({ code: 'PAL_BACKUP_CORRUPT', message: expect.stringMatching(/manifest does not match its SHA-256/) });

      // An attacker edits the manifest (more rows) and fixes the trailer: hashes pass, the signature does not.
      const forged = join(backupDir, 'forged.pbak');
      await rewrite(backup.file, forged, (m) => void (m.parts[0]!.rows += 1));
      await expect(verifyBackup(forged)).resolves.toMatchObject({ authenticated: false });
      await expect(verifyBackup(forged, { config: s.rt.config })).rejects.toMatchObject({ code: 'PAL_BACKUP_CORRUPT', message: expect.stringMatching(/signature is invalid/) });

      // Even with the key (re-signed) and matching hashes, a changed part fails its authentication tag, by name.
      const m0 = (await openBackupFile(backup.file).then(async (r) => (await r.close(), r.manifest)));
      const opened = await openBackupSeal(s.rt.config, m0.seal);
      const key = opened.barrier.open(m0.key.purpose, Buffer.from(m0.key.wrapped, 'base64'));
      await opened.close();
      const target = m0.parts[2]!;
      const resealed = join(backupDir, 'resealed.pbak');
      await rewrite(backup.file, resealed, (m, body) => {
        body[target.offset + 20] = body[target.offset + 20]! ^ 1; // inside the tag
        m.parts[2]!.sha256 = sha256(body.subarray(target.offset, target.offset + target.bytes)).toString('hex');
        const { signature: _drop, ...rest } = m;
        return signManifest(rest, key);
      });
      await expect(verifyBackup(resealed)).resolves.toMatchObject({ authenticated: false });
      await expect(verifyBackup(resealed, { config: s.rt.config })).rejects.toMatchObject({ code: 'PAL_BACKUP_CORRUPT', message: `part 2 (${target.name}) fails authentication: the file is damaged or was altered` });
    });

    it('restore refuses a non-empty target without --force; with --force it rewinds the database to the backup', async () => {
      const s3 = await startServer(dialect, { seal });
      let s3Open = true;
      cleanup.push(async () => {
        if (s3Open) await s3.close();
        else await rm(s3.dataDir, { recursive: true, force: true });
      });
      const k1 = (await s3.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM' })).key_id;
      const c1 = await s3.client.kms.encrypt(k1, 'kept');
      const b = await createBackup(s3.rt.config, backupDir);
      const k2 = (await s3.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM' })).key_id;
      await expect(restoreBackup(s3.rt.config, b.file)).rejects.toMatchObject({ code: 'PAL_BACKUP_TARGET_NOT_EMPTY', message: expect.stringMatching(/kms_keys \(\d+ rows\).*--force/) });
      expect((await s3.client.kms.getKey(k2)).key_id).toBe(k2); // nothing was touched

      const config = s3.rt.config;
      await s3.rt.close(); // stop the server, then restore over its database
      s3Open = false;
      const r = await restoreBackup(config, b.file, { force: true });
      expect(r.audit.ok).toBe(true);
      const s4 = await serverOn({ config, dir: config.data_dir }, dialect, seal);
      cleanup.push(() => s4.close());
      expect((await s4.client.kms.decrypt(k1, c1)).toString()).toBe('kept');
      await expect(s4.client.kms.getKey(k2)).rejects.toMatchObject({ problem: { code: 'PAL_KMS_KEY_NOT_FOUND' } });
      expect((await s4.rt.ledger.query({ type: 'backup.restore' })).events[0]?.details).toMatchObject({ forced: true });
      expect((await s4.rt.ledger.verify()).ok).toBe(true);
    });

    it.runIf(seal === 'file')('restore needs the same root: no seal.key, or another one, is refused before anything is written', async () => {
      const t = await freshTarget(s.rt.config, dialect, 'passphrase'); // no seal.key copied
      cleanup.push(() => rm(t.dir, { recursive: true, force: true }));
      await expect(restoreBackup(t.config, backup.file)).rejects.toMatchObject({ code: 'PAL_BACKUP_ROOT_MISMATCH', message: expect.stringMatching(/seal\.key does not exist: copy the seal\.key/) });
      await writeFile(join(t.dir, 'seal.key'), JSON.stringify({ format: 'palisade-file-seal/v1', root_key: Buffer.alloc(32, 7).toString('base64') }), { mode: 0o600 });
      await expect(restoreBackup(t.config, backup.file)).rejects.toMatchObject({ code: 'PAL_BACKUP_ROOT_MISMATCH', message: expect.stringMatching(/does not open this backup's keyring/) });
      await expect(verifyBackup(backup.file, { config: t.config })).rejects.toMatchObject({ code: 'PAL_BACKUP_ROOT_MISMATCH' });
      const other = structuredClone(t.config);
      other.seal.provider = 'passphrase';
      await expect(verifyBackup(backup.file, { config: other })).rejects.toMatchObject({ code: 'PAL_BACKUP_ROOT_MISMATCH', message: expect.stringMatching(/sealed with the "file" provider/) });
      const storage = await openStorage({ url: t.config.database_url ?? join(t.dir, 'palisade.db') });
      try {
        expect(await storage.db.selectFrom('settings').selectAll().execute()).toEqual([]);
      } finally {
        await storage.close();
      }
    });

    it.runIf(seal === 'file')('a backup from a newer schema (a migration unknown here) is refused before anything is written', async () => {
      const real = await migrations(dialect).getMigrations();
      const names = Object.keys(real).sort();
      const older: MigrationProvider = { getMigrations: async () => Object.fromEntries(names.slice(0, -1).map((n) => [n, real[n]!])) };
      const t = await freshTarget(s.rt.config, dialect, seal);
      cleanup.push(() => rm(t.dir, { recursive: true, force: true }));
      await expect(restoreBackup(t.config, backup.file, { migrations: older })).rejects.toMatchObject({ code: 'PAL_BACKUP_UNSUPPORTED', message: expect.stringMatching(new RegExp(`newer schema \\(migrations ${names.at(-1)} are unknown here\\)`)) });
    });
  });
});

describe.each(dialects())('backups: the migrated rows of an older backup ($name)', ({ name: dialect, available }) => {
  it.skipIf(!available)('data migrations the backup predates are applied to the restored rows', async () => {
    const s = await startServer(dialect);
    const dir = await mkdtemp(join(tmpdir(), 'palisade-backups-'));
    try {
      const b = await createBackup(s.rt.config, dir);
      const real = await migrations(dialect).getMigrations();
      const newer: MigrationProvider = {
        getMigrations: async () => ({
          ...real,
          '9999_test_backfill': {
            async up(db: Kysely<unknown>) {
              await db.schema.alterTable('settings').addColumn('note', 'text').execute();
              await sql`update settings set note = ${'migrated:'} || name`.execute(db);
            },
          },
        }),
      };
      const t = await freshTarget(s.rt.config, dialect, 'file');
      try {
        await restoreBackup(t.config, b.file, { migrations: newer });
        // Read with Kysely directly: openStorage would (rightly) refuse the unknown test migration.
        const { Kysely: K, SqliteDialect, PostgresDialect } = await import('kysely');
        const db =
          dialect === 'sqlite'
            ? new K<Record<string, never>>({ dialect: new SqliteDialect({ database: new (await import('better-sqlite3')).default(join(t.dir, 'palisade.db')) }) })
            : new K<Record<string, never>>({ dialect: new PostgresDialect({ pool: new (await import('pg')).default.Pool({ connectionString: t.config.database_url }) }) });
        try {
          const rows = (await sql<{ name: string; note: string }>`select name, note from settings`.execute(db)).rows;
          expect(rows.length).toBeGreaterThan(0);
          for (const r of rows) expect(r.note).toBe(`migrated:${r.name}`);
          const applied = (await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db)).rows.map((r) => r.name);
          expect(applied).toEqual([...Object.keys(real).sort(), '9999_test_backfill']);
        } finally {
          await db.destroy();
        }
      } finally {
        await rm(t.dir, { recursive: true, force: true });
      }
    } finally {
      await s.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('backups across dialects', () => {
  const pg = dialects().find((d) => d.name === 'postgres')!.available;
  for (const [from, to] of [['sqlite', 'postgres'], ['postgres', 'sqlite']] as const) {
    it.skipIf(!pg)(`${from} -> ${to}: the restored server decrypts and its audit log verifies`, async () => {
      const s = await startServer(from);
      const dir = await mkdtemp(join(tmpdir(), 'palisade-backups-'));
      const done: Array<() => Promise<unknown>> = [() => s.close(), () => rm(dir, { recursive: true, force: true })];
      try {
        const k = (await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM' })).key_id;
        const ct = await s.client.kms.encrypt(k, `from ${from}`);
        const b = await createBackup(s.rt.config, dir);
        const t = await freshTarget(s.rt.config, to, 'file');
        done.push(() => rm(t.dir, { recursive: true, force: true }));
        expect((await restoreBackup(t.config, b.file)).audit.ok).toBe(true);
        const s2 = await serverOn(t, to, 'file');
        done.push(() => s2.close());
        expect((await s2.client.kms.decrypt(k, ct)).toString()).toBe(`from ${from}`);
        expect((await s2.rt.ledger.verify()).ok).toBe(true);
      } finally {
        for (const fn of done.reverse()) await fn().catch(() => undefined);
      }
    });
  }
});

describe('backups under the passphrase seal', () => {
  const PASS = 'correct horse battery staple';
  it('need the passphrase or threshold shares to be made, verified and restored', async () => {
    const s = await startServer('sqlite', { seal: 'passphrase' });
    const dir = await mkdtemp(join(tmpdir(), 'palisade-backups-'));
    const done: Array<() => Promise<unknown>> = [() => s.close(), () => rm(dir, { recursive: true, force: true })];
    try {
      const { shares } = await s.client.sys.init({ passphrase: PASS, shares: 5, threshold: 3 });
      const k = (await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM' })).key_id;
      const ct = await s.client.kms.encrypt(k, 'behind a passphrase');
      await expect(createBackup(s.rt.config, dir)).rejects.toMatchObject({ code: 'PAL_SEAL_SEALED', message: expect.stringMatching(/--passphrase-file/) });
      await expect(createBackup(s.rt.config, dir, { secrets: { passphrase: `${PASS}!` } })).rejects.toMatchObject({ code: 'PAL_SEAL_UNSEAL_FAILED' });
      const b = await createBackup(s.rt.config, dir, { secrets: { passphrase: PASS } });
      await expect(verifyBackup(b.file, { config: s.rt.config, secrets: { shares: shares.slice(0, 2) } })).rejects.toMatchObject({ code: 'PAL_SEAL_SHARE_INVALID', message: expect.stringMatching(/3 recovery shares are needed, 2 were given/) });
      expect((await verifyBackup(b.file, { config: s.rt.config, secrets: { shares: shares.slice(2) } })).authenticated).toBe(true);

      // A fresh data dir needs nothing from the old one: the backup carries the passphrase seal's record.
      const t = await freshTarget(s.rt.config, 'sqlite', 'passphrase');
      done.push(() => rm(t.dir, { recursive: true, force: true }));
      expect((await restoreBackup(t.config, b.file, { secrets: { shares: [shares[0]!, shares[2]!, shares[4]!] } })).audit.ok).toBe(true);
      const s2 = await serverOn(t, 'sqlite', 'passphrase');
      done.push(() => s2.close());
      expect((await s2.client.sys.sealStatus()).state).toBe('sealed');
      await s2.client.sys.unseal({ passphrase: PASS });
      expect((await s2.client.kms.decrypt(k, ct)).toString()).toBe('behind a passphrase');
      expect((await s2.rt.ledger.verify()).ok).toBe(true);
    } finally {
      for (const fn of done.reverse()) await fn().catch(() => undefined);
    }
  });
});

describe('palisade backup (CLI)', () => {
  it('verify prints progress on stderr and the result on stdout; a damaged part exits 1 naming it; prune --dry-run lists', async () => {
    const s = await startServer('sqlite');
    const dir = await mkdtemp(join(tmpdir(), 'palisade-backups-'));
    const out: string[] = [];
    const err: string[] = [];
    const o = vi.spyOn(process.stdout, 'write').mockImplementation((c) => (out.push(String(c)), true));
    const e = vi.spyOn(process.stderr, 'write').mockImplementation((c) => (err.push(String(c)), true));
    try {
      const b = await createBackup(s.rt.config, dir);
      await buildCli().parseAsync(['node', 'palisade', 'backup', 'verify', b.file, '--hashes-only']);
      expect(err.join('')).toMatch(/checking part hashes: \d+\/\d+ \(100%\)/);
      expect(out.join('')).toMatch(new RegExp(`backup OK: .*\\n  ${b.backup_id}, taken .* on sqlite; ${b.parts} parts, ${b.rows} rows; hashes only`));

      const r = await openBackupFile(b.file);
      const p = r.manifest.parts[1]!;
      await r.close();
      await flipByte(b.file, p.offset + 3);
      await expect(buildCli().parseAsync(['node', 'palisade', 'backup', 'verify', b.file, '--hashes-only'])).rejects.toThrow(`backup CORRUPT: part 1 (${p.name}) does not match its SHA-256`);

      out.length = 0;
      await buildCli().parseAsync(['node', 'palisade', 'backup', 'prune', '--dir', dir, '--dry-run', '--keep-daily', '0', '--keep-weekly', '0', '--keep-monthly', '0', '--keep-yearly', '0']);
      expect(out.join('')).toBe(`would remove\t${basename(b.file)}\n`);
      expect((await stat(b.file)).isFile()).toBe(true);
    } finally {
      o.mockRestore();
      e.mockRestore();
      await s.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
