import { hashRaw } from '@node-rs/argon2';

const ARGON2ID = 2; // @node-rs/argon2's Algorithm.Argon2id (a const enum, which isolated modules cannot read)
import { combineShares, PalisadeError, randomBytes, splitSecret } from '@palisade/core';
import { softwareUnwrap, softwareWrap } from './software-provider.js';

export interface Argon2Params {
  memory_kib: number;
  iterations: number;
  parallelism: number;
}

/** What the passphrase seal stores (in the database, so every node reads the same): no key in clear. */
export interface PassphraseSealRecord {
  format: 'palisade-passphrase-seal/v1';
  kdf: Argon2Params & { algorithm: 'argon2id'; salt: string };
  /** The root key wrapped by the Argon2id-derived key. */
  by_passphrase: string;
  /** The root key wrapped by the recovery key, which exists only as Shamir shares. */
  by_recovery: string;
  recovery: { shares: number; threshold: number };
}

export const MIN_PASSPHRASE = 12;

function checkPassphrase(p: string): void {
  if ([...p].length < MIN_PASSPHRASE) throw new PalisadeError('PAL_VALIDATION_FAILED', `the passphrase must be at least ${MIN_PASSPHRASE} characters`);
}

async function derive(passphrase: string, kdf: PassphraseSealRecord['kdf']): Promise<Buffer> {
  return hashRaw(passphrase.normalize('NFKC'), {
    algorithm: ARGON2ID,
    memoryCost: kdf.memory_kib,
    timeCost: kdf.iterations,
    parallelism: kdf.parallelism,
    outputLen: 32,
    salt: Buffer.from(kdf.salt, 'base64'),
  });
}

async function wrapRoot(rootKey: Buffer, passphrase: string, params: Argon2Params, shares: number, threshold: number): Promise<{ record: PassphraseSealRecord; shares: string[] }> {
  checkPassphrase(passphrase);
  const kdf = { algorithm: 'argon2id' as const, ...params, salt: randomBytes(16).toString('base64') };
  const recoveryKey = randomBytes(32);
  const recoveryShares = splitSecret(recoveryKey, shares, threshold);
  const record: PassphraseSealRecord = {
    format: 'palisade-passphrase-seal/v1',
    kdf,
    by_passphrase: softwareWrap(await derive(passphrase, kdf), rootKey).toString('base64'),
    by_recovery: softwareWrap(recoveryKey, rootKey).toString('base64'),
    recovery: { shares, threshold },
  };
  recoveryKey.fill(0);
  return { record, shares: recoveryShares };
}

/** A new root key, wrapped by the passphrase and by a recovery key split into `shares` with `threshold`. */
export async function createPassphraseSeal(passphrase: string, params: Argon2Params, shares: number, threshold: number): Promise<{ record: PassphraseSealRecord; rootKey: Buffer; shares: string[] }> {
  const rootKey = randomBytes(32);
  return { rootKey, ...(await wrapRoot(rootKey, passphrase, params, shares, threshold)) };
}

function unwrapOrFail(key: Buffer, wrapped: string, what: string): Buffer {
  try {
    return softwareUnwrap(key, Buffer.from(wrapped, 'base64'));
  } catch (e) {
    if (e instanceof PalisadeError && e.code === 'PAL_SEAL_CORRUPT') throw new PalisadeError('PAL_SEAL_UNSEAL_FAILED', `${what} does not open the root key`);
    throw e;
  }
}

export async function openWithPassphrase(record: PassphraseSealRecord, passphrase: string): Promise<Buffer> {
  return unwrapOrFail(await derive(passphrase, record.kdf), record.by_passphrase, 'the passphrase');
}

/** Opens the root key with at least `threshold` recovery shares (PAL_SEAL_SHARE_INVALID for a bad or missing share). */
export function openWithShares(record: PassphraseSealRecord, shares: string[]): Buffer {
  const recoveryKey = combineShares(shares);
  try {
    return unwrapOrFail(recoveryKey, record.by_recovery, 'the recovery shares');
  } finally {
    recoveryKey.fill(0);
  }
}

/** Re-key: a new recovery split (and a new passphrase) over the same root key. Callers prove possession first. */
export function rewrapPassphraseSeal(rootKey: Buffer, passphrase: string, params: Argon2Params, shares: number, threshold: number): Promise<{ record: PassphraseSealRecord; shares: string[] }> {
  return wrapRoot(rootKey, passphrase, params, shares, threshold);
}
