import { mkdir, readFile, writeFile, chmod, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PalisadeError, randomBytes } from '@palisade/core';
import type { RootKeyProvider } from './provider.js';
import { softwareProvider } from './software-provider.js';

const FILE = 'seal.key';

export const FILE_SEAL_WARNING =
  'SEAL PROVIDER "file" IS FOR DEVELOPMENT ONLY: the root key sits unencrypted in <data>/seal.key next to the data it protects. ' +
  'Use the passphrase or pkcs11 (HSM) provider in production.';

/** Development root of trust: a random 256-bit root key in `<data>/seal.key` (mode 0600), created on first start. */
export async function openFileProvider(dataDir: string): Promise<{ provider: RootKeyProvider; created: boolean }> {
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
  let key: Buffer;
  try {
    const parsed = JSON.parse(raw) as { format?: string; root_key?: string };
    if (parsed.format !== 'palisade-file-seal/v1' || typeof parsed.root_key !== 'string') throw new Error('unknown format');
    key = Buffer.from(parsed.root_key, 'base64');
    if (key.length !== 32) throw new Error('root key is not 256 bits');
  } catch (e) {
    throw new PalisadeError('PAL_SEAL_CORRUPT', `${path} is not a valid file seal: ${(e as Error).message}`, { cause: e });
  }
  const provider = softwareProvider('file', key);
  key.fill(0);
  return { provider, created };
}
