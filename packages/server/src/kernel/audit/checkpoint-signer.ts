import { createPublicKey } from 'node:crypto';
import { encodeVerifierKey, formatNote, parseVerifierKey } from '@palisade/core';
import type { Storage } from '../../storage/database.js';
import type { CheckpointSigner } from './checkpointer.js';

/** What the signer needs of the KMS: signatures by a system key, and the public keys of its versions. */
export interface SigningKms {
  systemSign(db: Storage['db'], name: string, message: Buffer): Promise<{ signature: Buffer; public_key_pem: string }>;
  systemPublicKeys(db: Storage['db'], name: string): Promise<Array<{ public_key_pem: string }>>;
}

/** The C2SP verifier key of an Ed25519 public key (PEM) under a note key name. */
const verifierKey = (name: string, pem: string) => encodeVerifierKey(name, createPublicKey(pem));

/**
 * The log's checkpoint key lives in the KMS (`system/audit/checkpoint`, Ed25519) and the note key name is the log's
 * origin: a checkpoint is a C2SP signed note whose signature line names the key version that signed it.
 */
export function kmsCheckpointSigner(deps: { storage: Storage; kms: SigningKms; keyName: string; origin: () => Promise<string> }): CheckpointSigner {
  const { storage, kms } = deps;
  return {
    async sign(body) {
      const name = await deps.origin();
      const sig = await kms.systemSign(storage.db, deps.keyName, Buffer.from(body, 'utf8'));
      return formatNote(body, [{ name, keyHash: parseVerifierKey(verifierKey(name, sig.public_key_pem)).keyHash, signature: sig.signature }]);
    },
    async verifierKeys() {
      const name = await deps.origin();
      return (await kms.systemPublicKeys(storage.db, deps.keyName)).map((k) => verifierKey(name, k.public_key_pem));
    },
  };
}
