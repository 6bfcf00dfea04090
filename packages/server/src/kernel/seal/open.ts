import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { PalisadeError } from '@palisade/core';
import type { Config } from '../../config/config.js';
import type { Storage } from '../../storage/database.js';
import { FILE_SEAL_WARNING, openFileProvider } from './file-provider.js';
import { SealManager } from './manager.js';
import type { ProviderObserver } from './provider.js';

async function readPin(cfg: Config['seal']['pkcs11']): Promise<string> {
  if (cfg.pin !== undefined) return cfg.pin;
  try {
    return (await readFile(cfg.pin_file!, 'utf8')).trim();
  } catch (e) {
    throw new PalisadeError('PAL_CONFIG_INVALID', `invalid setting seal.pkcs11.pin_file: cannot read ${cfg.pin_file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { extensions: { setting: 'seal.pkcs11.pin_file' } });
  }
}

/** The seal manager for the configured provider, started: unsealed (file, pkcs11), or sealed / uninitialized (passphrase). */
export async function openSeal(config: Config, storage: Storage, log: Logger, observe?: ProviderObserver): Promise<SealManager> {
  const { provider } = config.seal;
  let open: (() => ReturnType<typeof openFileProvider>) | undefined;
  if (provider === 'file') {
    log.warn(FILE_SEAL_WARNING);
    open = () => openFileProvider(config.data_dir);
  } else if (provider === 'pkcs11') {
    const cfg = config.seal.pkcs11;
    const pin = await readPin(cfg);
    open = async () => {
      const { openPkcs11Provider } = await import('./pkcs11-provider.js');
      const opened = await openPkcs11Provider(
        { module: cfg.module!, pin, keyLabel: cfg.key_label, ...(cfg.token !== undefined ? { token: cfg.token } : {}), ...(cfg.slot !== undefined ? { slot: cfg.slot } : {}) },
        observe ? { observe } : {},
      );
      if (opened.created) log.warn({ token: cfg.token ?? cfg.slot, key_label: cfg.key_label }, 'generated the root key inside the PKCS#11 token (sensitive, non-extractable)');
      return opened;
    };
  }
  const seal = new SealManager(storage, { provider, argon2: config.seal.argon2, ...(open ? { open } : {}) });
  await seal.start();
  if (seal.state !== 'unsealed') log.warn({ seal: provider, state: seal.state }, seal.state === 'uninitialized' ? 'the seal is not initialised: run `palisade operator init`' : 'sealed: run `palisade operator unseal`');
  return seal;
}
