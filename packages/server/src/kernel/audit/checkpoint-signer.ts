import { createPublicKey } from 'node:crypto';
import { sha256 } from '@palisade/core';
import type { Storage } from '../../storage/database.js';
import type { CheckpointSigner } from './checkpointer.js';

/** What the signer needs of the KMS: the system key's id, signatures and public keys. */
export interface SigningKms {
  systemSign(db: Storage['db'], name: string, message: Buffer): Promise<{ key_id: string; key_version: number; signature: Buffer }>;
  publicKey(db: Storage['db'], keyId: string, version?: number): Promise<{ key_version: number; public_key_pem: string }>;
}

const ED25519 = 0x01; // C2SP signed-note signature type for Ed25519

function rawEd25519(pem: string): Buffer {
  const der = createPublicKey(pem).export({ type: 'spki', format: 'der' });
  return der.subarray(der.length - 32);
}

/** The C2SP signed-note key hash: the first 4 bytes of SHA-256(name || "\n" || type || public key). */
export function noteKeyHash(name: string, rawKey: Buffer): Buffer {
  return sha256(Buffer.concat([Buffer.from(`${name}\n`), Buffer.of(ED25519), rawKey])).subarray(0, 4);
}

/** The checkpoint key of the log lives in the KMS (`system/audit/checkpoint`, Ed25519); the note key name is the origin. */
export function kmsCheckpointSigner(deps: { storage: Storage; kms: SigningKms; keyName: string; origin: () => Promise<string> }): CheckpointSigner {
  const { storage, kms } = deps;
  const keyId = async () => (await storage.db.selectFrom('kms_keys').select('key_id').where('name', '=', deps.keyName).executeTakeFirstOrThrow()).key_id;
  return {
    async sign(body) {
      const name = await deps.origin();
      const sig = await kms.systemSign(storage.db, deps.keyName, Buffer.from(body, 'utf8'));
      const pub = await kms.publicKey(storage.db, sig.key_id, sig.key_version);
      const hash = noteKeyHash(name, rawEd25519(pub.public_key_pem));
      return `${body}\n\u2014 ${name} ${Buffer.concat([hash, sig.signature]).toString('base64')}\n`;
    },
    async verifierKeys() {
      const [id, name] = await Promise.all([keyId(), deps.origin()]);
      const current = await kms.publicKey(storage.db, id);
      const keys: string[] = [];
      for (let v = 1; v <= current.key_version; v++) {
        const pub = await kms.publicKey(storage.db, id, v).catch(() => null); // destroyed versions sign nothing any more
        if (!pub) continue;
        const raw = rawEd25519(pub.public_key_pem);
        keys.push(`${name}+${noteKeyHash(name, raw).toString('hex')}+${Buffer.concat([Buffer.of(ED25519), raw]).toString('base64')}`);
      }
      return keys;
    },
  };
}
