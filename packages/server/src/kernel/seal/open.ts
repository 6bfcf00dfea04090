import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { PalisadeError } from '@palisade/core';
import type { Config } from '../../config/config.js';
import type { Storage } from '../../storage/database.js';
import { FILE_SEAL_WARNING, openFileProvider, prepareFileRoot } from './file-provider.js';
import { SealManager, type SealManagerOptions } from './manager.js';
import type { Pkcs11CaKeys } from './pkcs11-ca-keys.js';
import type { Pkcs11Config } from './pkcs11-provider.js';
import type { ProviderObserver } from './provider.js';

async function readPin(cfg: Config['seal']['pkcs11']): Promise<string> {
  if (cfg.pin !== undefined) return cfg.pin;
  try {
    return (await readFile(cfg.pin_file!, 'utf8')).trim();
  } catch (e) {
    throw new PalisadeError('PAL_CONFIG_INVALID', `invalid setting seal.pkcs11.pin_file: cannot read ${cfg.pin_file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { extensions: { setting: 'seal.pkcs11.pin_file' } });
  }
}

/** The configured token (`seal.pkcs11`) and its PIN, as the pkcs11 seal and the CA keys held in the token open it. */
async function pkcs11Token(config: Config): Promise<Omit<Pkcs11Config, 'keyLabel'>> {
  const cfg = config.seal.pkcs11;
  const pin = await readPin(cfg);
  return { module: cfg.module!, pin, ...(cfg.token !== undefined ? { token: cfg.token } : {}), ...(cfg.slot !== undefined ? { slot: cfg.slot } : {}) };
}

/** With the pkcs11 seal, the PKI's `hsm` key store: CA keys generated and used in the seal's token (session opened on first use). */
export async function openPkcs11CaKeys(config: Config, observe?: ProviderObserver): Promise<Pkcs11CaKeys | undefined> {
  if (config.seal.provider !== 'pkcs11') return undefined;
  const { Pkcs11CaKeys } = await import('./pkcs11-ca-keys.js');
  return new Pkcs11CaKeys(await pkcs11Token(config), observe);
}

/** The seal manager for the configured provider, started: unsealed (file, pkcs11), or sealed / uninitialized (passphrase). */
export async function openSeal(config: Config, storage: Storage, log: Logger, observe?: ProviderObserver): Promise<SealManager> {
  const { provider } = config.seal;
  let open: SealManagerOptions['open'];
  let nextRoot: SealManagerOptions['nextRoot'];
  if (provider === 'file') {
    log.warn(FILE_SEAL_WARNING);
    open = (rootId) => openFileProvider(config.data_dir, rootId);
    nextRoot = () => prepareFileRoot(config.data_dir);
  } else if (provider === 'pkcs11') {
    const cfg = config.seal.pkcs11;
    const token = await pkcs11Token(config);
    const { openPkcs11Provider } = await import('./pkcs11-provider.js');
    open = async (rootId) => {
      // the database names the current root (after a rotation, a later label); only the very first start creates one
      const opened = await openPkcs11Provider({ ...token, keyLabel: rootId ?? cfg.key_label }, { ...(observe ? { observe } : {}), create: rootId === undefined });
      if (opened.created) log.warn({ token: cfg.token ?? cfg.slot, key_label: cfg.key_label }, 'generated the root key inside the PKCS#11 token (sensitive, non-extractable)');
      return opened;
    };
    nextRoot = async () => {
      const keyLabel = `${cfg.key_label}.${new Date().toISOString().replace(/[-:.]/g, '').slice(0, 15)}`;
      const { provider: next } = await openPkcs11Provider({ ...token, keyLabel }, { ...(observe ? { observe } : {}), create: true });
      return { provider: next, commit: async () => undefined };
    };
  }
  const seal = new SealManager(storage, { provider, argon2: config.seal.argon2, ...(open ? { open } : {}), ...(nextRoot ? { nextRoot } : {}) });
  await seal.start();
  if (seal.state !== 'unsealed') log.warn({ seal: provider, state: seal.state }, seal.state === 'uninitialized' ? 'the seal is not initialised: run `palisade operator init`' : 'sealed: run `palisade operator unseal`');
  return seal;
}
