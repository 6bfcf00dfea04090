import { aeadOpen, aeadSeal, AeadError, hmacSha256, PalisadeError, randomBytes } from '@palisade/core';
import type { RootKeyProvider } from './provider.js';

const FORMAT = 0x01;
const AAD = Buffer.from('palisade/root-wrap/v1');

/** Wrap under a root key held in this process (file and passphrase providers): 0x01 | nonce(12) | tag(16) | ciphertext, AES-256-GCM. */
export function softwareWrap(rootKey: Buffer, material: Buffer): Buffer {
  const nonce = randomBytes(12);
  const { ciphertext, tag } = aeadSeal('AES-256-GCM', rootKey, nonce, material, AAD);
  return Buffer.concat([Buffer.of(FORMAT), nonce, tag, ciphertext]);
}

export function softwareUnwrap(rootKey: Buffer, wrapped: Buffer): Buffer {
  if (wrapped.length < 29 || wrapped[0] !== FORMAT) throw new PalisadeError('PAL_SEAL_CORRUPT', 'wrapped key material is malformed');
  try {
    return aeadOpen('AES-256-GCM', rootKey, wrapped.subarray(1, 13), wrapped.subarray(29), wrapped.subarray(13, 29), AAD);
  } catch (e) {
    if (e instanceof AeadError) throw new PalisadeError('PAL_SEAL_CORRUPT', 'wrapped key material does not authenticate under this root key');
    throw e;
  }
}

/** A public fingerprint of a root key (which root a keyring record was wrapped by), revealing nothing of it. */
export function rootFingerprint(rootKey: Buffer): string {
  return hmacSha256(rootKey, Buffer.from('palisade/root-id/v1')).subarray(0, 8).toString('hex');
}

/** A provider over a root key in memory. `close()` zeroes it. */
export function softwareProvider(name: 'file' | 'passphrase', rootKey: Buffer): RootKeyProvider {
  const key = Buffer.from(rootKey);
  return {
    name,
    id: rootFingerprint(key),
    wrap: async (m) => softwareWrap(key, m),
    unwrap: async (w) => softwareUnwrap(key, w),
    check: async () => undefined,
    close: async () => {
      key.fill(0);
    },
  };
}
