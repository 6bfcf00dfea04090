import type { Command } from 'commander';
import { PalisadeError } from '@palisade/core';
import { loadConfig } from '../config/config.js';
import { createBackup, restoreBackup, verifyBackup, type BackupProgress } from '../kernel/backup/backup.js';
import { DEFAULT_RETENTION, pruneDirectory } from '../kernel/backup/retention.js';
import type { SealSecrets } from '../kernel/backup/seal.js';
import { CliError, readInput } from './client.js';
import { progressBar } from './progress.js';

const LABELS: Record<Parameters<BackupProgress>[0], string> = {
  dump: 'backing up rows',
  check: 'checking part hashes',
  decrypt: 'authenticating parts',
  restore: 'restoring rows',
  audit: 'verifying audit log',
};

/** One progress bar per phase, on stderr. */
function progress(): BackupProgress {
  const bars = new Map<string, (done: number, total: number) => void>();
  return (phase, done, total) => {
    let bar = bars.get(phase);
    if (!bar) bars.set(phase, (bar = progressBar(LABELS[phase])));
    bar(done, total);
  };
}

interface SecretOptions {
  passphraseFile?: string;
  share: string[];
}

async function secrets(o: SecretOptions): Promise<SealSecrets> {
  if (o.share.length) return { shares: o.share };
  if (o.passphraseFile) return { passphrase: (await readInput(o.passphraseFile)).toString('utf8').replace(/\r?\n$/, '') };
  return {};
}

const withSecrets = (c: Command): Command =>
  c
    .option('--passphrase-file <file>', 'passphrase seal: the file holding the passphrase')
    .option('--share <share>', 'passphrase seal: a recovery share instead of the passphrase (repeat up to the threshold)', (v: string, all: string[]) => [...all, v], [] as string[]);

const count = (name: string) => (v: string) => {
  if (!/^\d{1,4}$/.test(v)) throw new CliError(`${name} must be a whole number`, 2);
  return Number(v);
};

/** A corrupted backup is the answer of `verify`, not a usage error: exit 1 with the part named. */
async function corruptIsFailure<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof PalisadeError && e.code === 'PAL_BACKUP_CORRUPT') throw new CliError(`backup CORRUPT: ${e.message}`);
    throw e;
  }
}

/** `palisade backup create|verify|restore|prune`: offline, against the configuration (palisade.yaml / environment). */
export function backupCommands(program: Command): void {
  const backup = program
    .command('backup')
    .description('encrypted backups of the database: create, verify, restore, prune (run offline against the configuration; see docs/adr/0005-backups.md)');

  withSecrets(
    backup
      .command('create')
      .description('snapshot every table into <dir>/palisade-<UTC time>-<id>.pbak, sealed under the keyring; servers may keep running')
      .requiredOption('--dir <dir>', 'directory for backup files (keep it off this host)')
      .option('--json', 'print JSON'),
  ).action(async (o: SecretOptions & { dir: string; json?: boolean }) => {
    const r = await createBackup(loadConfig(), o.dir, { secrets: await secrets(o), onProgress: progress() });
    if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
    else process.stdout.write(`${r.file}\nbackup ${r.backup_id}: ${r.tables} tables, ${r.rows} rows in ${r.parts} parts, ${r.bytes} bytes; manifest sha256 ${r.manifest_sha256}\n`);
  });

  withSecrets(
    backup
      .command('verify <file>')
      .description('check a backup: every part against its SHA-256 and, with the seal, the manifest signature and every part decrypted and authenticated')
      .option('--hashes-only', 'check structure and hashes only (no seal needed; does not authenticate)')
      .option('--json', 'print JSON'),
  ).action(async (file: string, o: SecretOptions & { hashesOnly?: boolean; json?: boolean }) => {
    const config = o.hashesOnly ? undefined : loadConfig();
    const r = await corruptIsFailure(async () => verifyBackup(file, { ...(config ? { config } : {}), secrets: await secrets(o), onProgress: progress() }));
    if (o.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
    else {
      const how = r.authenticated ? `signature and every part authenticated with the ${r.provider} seal` : 'hashes only: not authenticated (run without --hashes-only, with the seal, to authenticate)';
      process.stdout.write(`backup OK: ${r.file}\n  ${r.backup_id}, taken ${r.created_at} on ${r.dialect}; ${r.parts} parts, ${r.rows} rows; ${how}\n`);
    }
  });

  withSecrets(
    backup
      .command('restore <file>')
      .description('replace the configured database with a backup (stop every server first); needs the same root of trust as the server it came from')
      .option('--force', 'replace a database that already holds data'),
  ).action(async (file: string, o: SecretOptions & { force?: boolean }) => {
    const r = await corruptIsFailure(async () => restoreBackup(loadConfig(), file, { force: o.force === true, secrets: await secrets(o), onProgress: progress() }));
    process.stdout.write(`restored backup ${r.backup_id} (taken ${r.created_at}): ${r.tables} tables, ${r.rows} rows\n`);
    if (!r.audit.ok) throw new CliError(`the restored audit log does NOT verify at entry ${r.audit.first_bad_index}: ${r.audit.reason} (log size ${r.audit.size})`);
    process.stdout.write(`audit log OK: ${r.audit.size} entries, root ${r.audit.root}\n`);
  });

  backup
    .command('prune')
    .description('delete backups outside the retention (grandfather-father-son over the UTC times in the file names)')
    .requiredOption('--dir <dir>', 'directory of backup files')
    .option('--dry-run', 'list what would be deleted, delete nothing')
    .option('--keep-daily <n>', 'newest backup of each of the last n days', count('--keep-daily'), DEFAULT_RETENTION.daily)
    .option('--keep-weekly <n>', 'newest of each of the last n ISO weeks', count('--keep-weekly'), DEFAULT_RETENTION.weekly)
    .option('--keep-monthly <n>', 'newest of each of the last n months', count('--keep-monthly'), DEFAULT_RETENTION.monthly)
    .option('--keep-yearly <n>', 'newest of each of the last n years', count('--keep-yearly'), DEFAULT_RETENTION.yearly)
    .option('--json', 'print JSON')
    .action(async (o: { dir: string; dryRun?: boolean; keepDaily: number; keepWeekly: number; keepMonthly: number; keepYearly: number; json?: boolean }) => {
      const plan = await pruneDirectory(o.dir, { dryRun: o.dryRun === true, policy: { daily: o.keepDaily, weekly: o.keepWeekly, monthly: o.keepMonthly, yearly: o.keepYearly } });
      if (o.json) {
        process.stdout.write(JSON.stringify({ dry_run: o.dryRun === true, keep: plan.keep.map((f) => ({ name: f.name, reasons: f.reasons })), remove: plan.remove.map((f) => f.name) }, null, 2) + '\n');
        return;
      }
      for (const f of plan.keep) process.stdout.write(`keep\t${f.name}\t${f.reasons.join(',')}\n`);
      for (const f of plan.remove) process.stdout.write(`${o.dryRun ? 'would remove' : 'removed'}\t${f.name}\n`);
      process.stderr.write(`${plan.keep.length} kept, ${plan.remove.length} ${o.dryRun ? 'would be removed (dry run)' : 'removed'}\n`);
    });
}
