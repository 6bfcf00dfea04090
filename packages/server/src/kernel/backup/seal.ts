/**
 * Opening the root of trust for a backup, from the seal records the backup carries (the keyring wrapped by the
 * root, and the passphrase seal's record) rather than from a database: a restore proves that the configured root
 * opens the backup before it writes anything, and no backup command ever creates a root key (a fresh seal.key,
 * an HSM key) or a keyring as a side effect. The records go into a scratch in-memory SQLite `settings` table, so
 * the SealManager (its provider checks, passphrase and recovery-share logic) is reused as it is.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PalisadeError } from '@palisade/core';
import type { Config } from '../../config/config.js';
import { openStorage, type Executor } from '../../storage/database.js';
import type { Barrier } from '../seal/barrier.js';
import { openFileProvider } from '../seal/file-provider.js';
import { SealManager } from '../seal/manager.js';
import type { RootKeyProvider } from '../seal/provider.js';
import type { SealRecords } from './format.js';

/** How the passphrase seal is opened offline: the passphrase, or at least `threshold` recovery shares. */
export interface SealSecrets {
  passphrase?: string;
  shares?: string[];
}

export interface OpenedSeal {
  barrier: Barrier;
  close(): Promise<void>;
}

const KEYRING = 'seal.keyring';
const PASSPHRASE = 'seal.passphrase';

/** The seal records as stored in `settings` (read inside the snapshot); PAL_SEAL_NOT_INITIALIZED when there is no keyring yet. */
export async function readSealRecords(db: Executor, config: Config): Promise<SealRecords> {
  const rows = await db.selectFrom('settings').select(['name', 'value']).where('name', 'in', [KEYRING, PASSPHRASE]).execute();
  const keyring = rows.find((r) => r.name === KEYRING)?.value;
  if (!keyring) throw new PalisadeError('PAL_SEAL_NOT_INITIALIZED', 'the database has no keyring yet: start the server (and, for the passphrase seal, run `palisade operator init`) before backing it up');
  const provider = (JSON.parse(keyring) as { provider: SealRecords['provider'] }).provider;
  const p = config.seal.pkcs11;
  return {
    provider,
    keyring,
    passphrase: rows.find((r) => r.name === PASSPHRASE)?.value ?? null,
    pkcs11: provider === 'pkcs11' ? { token: p.token ?? null, slot: p.slot ?? null, key_label: p.key_label } : null,
  };
}

const mismatch = (message: string, cause?: unknown) => new PalisadeError('PAL_BACKUP_ROOT_MISMATCH', message, cause === undefined ? {} : { cause });

async function pin(cfg: Config['seal']['pkcs11']): Promise<string> {
  if (cfg.pin !== undefined) return cfg.pin;
  if (cfg.pin_file === undefined) throw new PalisadeError('PAL_CONFIG_INVALID', 'seal.pkcs11 needs a PIN (seal.pkcs11.pin_file or PALISADE_PKCS11_PIN)', { extensions: { setting: 'seal.pkcs11.pin_file' } });
  try {
    return (await readFile(cfg.pin_file, 'utf8')).trim();
  } catch (e) {
    throw new PalisadeError('PAL_CONFIG_INVALID', `invalid setting seal.pkcs11.pin_file: cannot read ${cfg.pin_file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { extensions: { setting: 'seal.pkcs11.pin_file' } });
  }
}

/** Opens the configured root over `records` and returns the barrier of the backup's keyring. */
export async function openBackupSeal(config: Config, records: SealRecords, secrets: SealSecrets = {}): Promise<OpenedSeal> {
  const provider = config.seal.provider;
  if (records.provider !== provider) throw mismatch(`the backup was sealed with the "${records.provider}" provider; this configuration uses "${provider}" (set seal.provider: ${records.provider} and bring the same root)`);
  let open: (() => Promise<{ provider: RootKeyProvider; created: boolean }>) | undefined;
  if (provider === 'file') {
    const file = join(config.data_dir, 'seal.key');
    if (!existsSync(file)) throw mismatch(`${file} does not exist: copy the seal.key of the server the backup was made on into the data directory (the file seal's root key is not in the backup)`);
    open = () => openFileProvider(config.data_dir);
  } else if (provider === 'pkcs11') {
    const cfg = config.seal.pkcs11;
    if (!cfg.module) throw new PalisadeError('PAL_CONFIG_INVALID', 'seal.pkcs11.module is not set', { extensions: { setting: 'seal.pkcs11.module' } });
    const module = cfg.module;
    const userPin = await pin(cfg);
    open = async () => {
      const { openPkcs11Provider } = await import('../seal/pkcs11-provider.js');
      try {
        return await openPkcs11Provider({ module, pin: userPin, keyLabel: cfg.key_label, ...(cfg.token !== undefined ? { token: cfg.token } : {}), ...(cfg.slot !== undefined ? { slot: cfg.slot } : {}) }, { create: false });
      } catch (e) {
        if (e instanceof PalisadeError && e.code === 'PAL_SEAL_NOT_INITIALIZED') {
          const hint = records.pkcs11 ? ` (the backup was made with key label "${records.pkcs11.key_label}" on token ${records.pkcs11.token ?? `slot ${records.pkcs11.slot}`})` : '';
          throw mismatch(`${e.message}${hint}`, e);
        }
        throw e;
      }
    };
  }

  const scratch = await openStorage({ url: ':memory:' });
  let seal: SealManager | null = null;
  try {
    const values = [{ name: KEYRING, value: records.keyring }, ...(records.passphrase !== null ? [{ name: PASSPHRASE, value: records.passphrase }] : [])];
    await scratch.db.insertInto('settings').values(values).execute();
    seal = new SealManager(scratch, { provider, argon2: config.seal.argon2, ...(open ? { open } : {}) });
    try {
      await seal.start();
      if (provider === 'passphrase') {
        if (secrets.passphrase !== undefined) await seal.unseal({ passphrase: secrets.passphrase });
        else if (secrets.shares?.length) await seal.unseal({ shares: secrets.shares });
        else throw new PalisadeError('PAL_SEAL_SEALED', 'the backup is under the passphrase seal: give its passphrase (--passphrase-file) or recovery shares (--share)');
        if (seal.state !== 'unsealed') {
          const st = await seal.status();
          throw new PalisadeError('PAL_SEAL_SHARE_INVALID', `${st.recovery?.threshold ?? '?'} recovery shares are needed, ${secrets.shares?.length ?? 0} were given`);
        }
      }
    } catch (e) {
      // The root opened, but did not unwrap the backup's keyring: another seal.key, HSM key or passphrase record.
      if (e instanceof PalisadeError && e.code === 'PAL_SEAL_CORRUPT') {
        throw mismatch(`the configured ${provider} root does not open this backup's keyring: ${e.message}. Restore and verify need the root of the server the backup came from`, e);
      }
      throw e;
    }
    const barrier = seal.barrier();
    const opened = seal;
    return {
      barrier,
      async close() {
        await opened.close();
        await scratch.close();
      },
    };
  } catch (e) {
    await seal?.close().catch(() => undefined);
    await scratch.close();
    throw e;
  }
}
