import { mkdir, readFile, writeFile, chmod, stat, rename, open as openFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PalisadeError, randomBytes } from '@palisade/core';
import type { RootKeyProvider } from './provider.js';
import { rootFingerprint, softwareProvider } from './software-provider.js';

const FILE = 'seal.key';

export const FILE_SEAL_WARNING =
  'SEAL PROVIDER "file" IS FOR DEVELOPMENT ONLY: the root key sits unencrypted in <data>/seal.key next to the data it protects. ' +
  'Use the passphrase or pkcs11 (HSM) provider in production.';

const NEXT = 'seal.key.next';

function parseSealFile(path: string, raw: string): Buffer {
  try {
    const parsed = JSON.parse(raw) as { format?: string; root_key?: string };
    if (parsed.format !== 'palisade-file-seal/v1' || typeof parsed.root_key !== 'string') throw new Error('unknown format');
    const key = Buffer.from(parsed.root_key, 'base64');
    if (key.length !== 32) throw new Error('root key is not 256 bits');
    return key;
  } catch (e) {
    throw new PalisadeError('PAL_SEAL_CORRUPT', `${path} is not a valid file seal: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * A new root for a root rotation: written to `<data>/seal.key.next` (0600, synced) before the database is
 * rewrapped; `commit()` renames it over seal.key once the rewrap committed. A crash in between is completed at the
 * next start, which finds the root the database names in seal.key.next.
 */
export async function prepareFileRoot(dataDir: string): Promise<{ provider: RootKeyProvider; commit: () => Promise<void> }> {
  const key = randomBytes(32);
  const path = join(dataDir, NEXT);
  const fh = await openFile(path, 'w', 0o600);
  try {
    await fh.writeFile(JSON.stringify({ format: 'palisade-file-seal/v1', root_key: key.toString('base64') }) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  const provider = softwareProvider('file', key);
  key.fill(0);
  return { provider, commit: () => rename(path, join(dataDir, FILE)) };
}

/**
 * Development root of trust: a random 256-bit root key in `<data>/seal.key` (mode 0600), created on first start.
 * `rootId` (from the database's keyring record) selects seal.key.next when a root rotation was interrupted.
 */
export async function openFileProvider(dataDir: string, rootId?: string): Promise<{ provider: RootKeyProvider; created: boolean }> {
  if (rootId !== undefined) {
    const next = join(dataDir, NEXT);
    const raw = await readFile(next, 'utf8').catch(() => null);
    if (raw !== null) {
      const key = parseSealFile(next, raw);
      if (rootFingerprint(key) === rootId) await rename(next, join(dataDir, FILE)); // finish the interrupted rotation
      key.fill(0);
    }
  }
  const path = join(dataDir, FILE);
  let created = false;
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    raw = JSON.stringify({ format: 'palisade-file-seal/v1', root_key: randomBytes(32).toString('base64') }) + '\n';
    await writeFile(path, raw, { mode: 0o600, flag: 'wx' });
    created = true;
  }
  const mode = (await stat(path)).mode & 0o777;
  if (mode & 0o077) await chmod(path, 0o600);
  const key = parseSealFile(path, raw);
  const provider = softwareProvider('file', key);
  key.fill(0);
  return { provider, created };
}
