import { aeadOpen, aeadSeal, AeadError, hkdfSha256, hmacSha256, PalisadeError, randomBytes } from '@palisade/core';

const FORMAT_V1 = 0x01;
const NONCE = 12;
const TAG = 16;

/**
 * The barrier encrypts everything Palisade stores that is secret (key material, TLS keys) under a key derived
 * from the root key, binding each blob to its purpose (`kms/key_x/3`) as AAD so blobs cannot be swapped.
 * Blob: 0x01 | nonce(12) | tag(16) | ciphertext.
 */
export class Barrier {
  readonly #key: Buffer;
  readonly #auditMacKey: Buffer;
  readonly #auditHmacKey: Buffer;

  constructor(rootKey: Uint8Array) {
    this.#key = hkdfSha256(rootKey, Buffer.alloc(0), Buffer.from('palisade/barrier/v1'), 32);
    this.#auditMacKey = hkdfSha256(rootKey, Buffer.alloc(0), Buffer.from('palisade/audit-mac/v1'), 32);
    this.#auditHmacKey = hkdfSha256(rootKey, Buffer.alloc(0), Buffer.from('palisade/audit-hmac/v1'), 32);
  }

  seal(purpose: string, plaintext: Uint8Array): Buffer {
    const nonce = randomBytes(NONCE);
    const { ciphertext, tag } = aeadSeal('AES-256-GCM', this.#key, nonce, plaintext, Buffer.from(purpose));
    return Buffer.concat([Buffer.of(FORMAT_V1), nonce, tag, ciphertext]);
  }

  open(purpose: string, blob: Uint8Array): Buffer {
    const b = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
    if (b.length < 1 + NONCE + TAG || b[0] !== FORMAT_V1) throw new PalisadeError('PAL_SEAL_CORRUPT', `sealed blob for ${purpose} is malformed`);
    try {
      return aeadOpen('AES-256-GCM', this.#key, b.subarray(1, 1 + NONCE), b.subarray(1 + NONCE + TAG), b.subarray(1 + NONCE, 1 + NONCE + TAG), Buffer.from(purpose));
    } catch (e) {
      if (e instanceof AeadError) throw new PalisadeError('PAL_SEAL_CORRUPT', `sealed blob for ${purpose} failed authentication`);
      throw e;
    }
  }

  /** MAC for audit-log tree heads: a party with only database access cannot recompute it. */
  auditMac(data: Uint8Array): Buffer {
    return hmacSha256(this.#auditMacKey, data);
  }

  /**
   * How a sensitive value appears in an audit event: `hmac-sha256:<hex>` under a key of its own, so the log shows
   * that two events carried the same value without revealing it (Vault's audit devices do the same).
   */
  auditHmac(value: string | Uint8Array): string {
    return `hmac-sha256:${hmacSha256(this.#auditHmacKey, typeof value === 'string' ? Buffer.from(value, 'utf8') : value).toString('hex')}`;
  }
}
