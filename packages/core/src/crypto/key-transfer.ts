// Key transfer in the RSA-AES key wrap format of Vault transit, AWS KMS and PKCS#11 (CKM_RSA_AES_KEY_WRAP):
//   RSA-OAEP(SHA-256, the receiver's public key, a one-time AES-256 key) || AES-256 key wrap with padding (RFC 5649)
//   of the key material under that one-time key.
// Material is the raw key for symmetric algorithms and PKCS#8 DER for asymmetric ones.
import { constants, createCipheriv, createDecipheriv, createPublicKey, privateDecrypt, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';
import { PalisadeError } from '../errors/index.js';

export const TRANSFER_FORMAT = 'RSA_AES_KEY_WRAP_SHA_256';
const KWP_IV = Buffer.from('A65959A6', 'hex'); // RFC 5649 alternative initial value

/** Wrap `material` for the holder of `receiver` (an RSA public key, PEM or KeyObject). */
export function wrapForTransfer(receiver: KeyObject | string, material: Uint8Array): Buffer {
  const key = typeof receiver === 'string' ? createPublicKey(receiver) : receiver;
  const ephemeral = randomBytes(32);
  try {
    const head = publicEncrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, ephemeral);
    const kwp = createCipheriv('id-aes256-wrap-pad', ephemeral, KWP_IV);
    return Buffer.concat([head, kwp.update(material), kwp.final()]);
  } finally {
    ephemeral.fill(0);
  }
}

/** Unwrap with the RSA private key; PAL_KMS_IMPORT_INVALID when anything does not authenticate. */
export function unwrapTransfer(privateKey: KeyObject, wrapped: Uint8Array): Buffer {
  const w = Buffer.from(wrapped);
  const rsaBytes = (privateKey.asymmetricKeyDetails?.modulusLength ?? 4096) / 8;
  if (w.length < rsaBytes + 24) throw new PalisadeError('PAL_KMS_IMPORT_INVALID', `the wrapped key is too short for ${TRANSFER_FORMAT} (${w.length} bytes)`);
  let ephemeral: Buffer | undefined;
  try {
    ephemeral = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, w.subarray(0, rsaBytes));
    const kwp = createDecipheriv('id-aes256-wrap-pad', ephemeral, KWP_IV);
    return Buffer.concat([kwp.update(w.subarray(rsaBytes)), kwp.final()]);
  } catch {
    throw new PalisadeError('PAL_KMS_IMPORT_INVALID', `the wrapped key does not unwrap with this private key (${TRANSFER_FORMAT})`);
  } finally {
    ephemeral?.fill(0);
  }
}
