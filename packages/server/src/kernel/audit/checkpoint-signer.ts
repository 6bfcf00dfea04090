import { createPublicKey } from 'node:crypto';
import { encodeVerifierKey, formatNote, NOTE_ED25519, noteKeyHash } from '@palisade/core';
import type { Storage } from '../../storage/database.js';
import type { CheckpointSigner } from './checkpointer.js';

/** What the signer needs of the KMS: signatures by a system key, and the public key of each version. */
export interface SigningKms {
  systemSign(db: Storage['db'], name: string, message: Buffer): Promise<{ key_id: string; key_version: number; signature: Buffer }>;
  publicKey(db: Storage['db'], keyId: string, version?: number): Promise<{ key_version: number; public_key_pem: string }>;
}

const rawKey = (pem: string) => createPublicKey(pem);

/**
 * The log's checkpoint key lives in the KMS (`system/audit/checkpoint`, Ed25519) and the note key name is the log's
 * origin: a checkpoint is a C2SP signed note whose signature line names the key version that signed it.
 */
export function kmsCheckpointSigner(deps: { storage: Storage; kms: SigningKms; keyName: string; origin: () => Promise<string> }): CheckpointSigner {
  const { storage, kms } = deps;
  const keyId = async () => (await storage.db.selectFrom('kms_keys').select('key_id').where('name', '=', deps.keyName).executeTakeFirstOrThrow()).key_id;
  return {
    async sign(body) {
      const name = await deps.origin();
      const sig = await kms.systemSign(storage.db, deps.keyName, Buffer.from(body, 'utf8'));
      const pub = rawKey((await kms.publicKey(storage.db, sig.key_id, sig.key_version)).public_key_pem);
      const raw = pub.export({ type: 'spki', format: 'der' }).subarray(-32);
      return formatNote(body, [{ name, keyHash: noteKeyHash(name, NOTE_ED25519, raw), signature: sig.signature }]);
    },
    async verifierKeys() {
      const [id, name] = await Promise.all([keyId(), deps.origin()]);
      const current = await kms.publicKey(storage.db, id);
      const keys: string[] = [];
      for (let v = 1; v <= current.key_version; v++) {
        const pub = await kms.publicKey(storage.db, id, v).catch(() => null); // destroyed versions sign nothing any more
        if (pub) keys.push(encodeVerifierKey(name, rawKey(pub.public_key_pem)));
      }
      return keys;
    },
  };
}
