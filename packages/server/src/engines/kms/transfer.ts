import { createPrivateKey, createPublicKey, generateKeyPair as generateKeyPairCb, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { PalisadeError, type Algorithm } from '@palisade/core';

// Import and export checks around the transfer format (wrapForTransfer/unwrapTransfer in @palisade/core).

const generateKeyPair = promisify(generateKeyPairCb);

/** The receiver's public key for an export: RSA of at least 3072 bits. */
export function receiverKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new PalisadeError('PAL_VALIDATION_FAILED', 'public_key_pem is not a PEM public key');
  }
  if (key.asymmetricKeyType !== 'rsa' || (key.asymmetricKeyDetails?.modulusLength ?? 0) < 3072) {
    throw new PalisadeError('PAL_VALIDATION_FAILED', 'the receiver key must be RSA with at least 3072 bits');
  }
  return key;
}

export async function newWrappingKey(): Promise<{ privateKey: Buffer; publicKeyPem: string }> {
  const kp = await generateKeyPair('rsa', { modulusLength: 4096, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } });
  return { privateKey: kp.privateKey as unknown as Buffer, publicKeyPem: kp.publicKey as unknown as string };
}

const CURVES: Partial<Record<Algorithm, string>> = { 'ECDSA-P256': 'prime256v1', 'ECDSA-P384': 'secp384r1' };

/** Check imported material against the algorithm; returns the secret and (asymmetric) the SPKI public key to store. */
export function checkImported(algorithm: Algorithm, material: Buffer): { secret: Buffer; publicKey: Buffer | null } {
  const bad = (why: string) => new PalisadeError('PAL_KMS_IMPORT_INVALID', `the imported material is not a valid ${algorithm} key: ${why}`);
  if (algorithm === 'AES-256-GCM' || algorithm === 'CHACHA20-POLY1305') {
    if (material.length !== 32) throw bad(`expected 32 bytes, got ${material.length}`);
    return { secret: material, publicKey: null };
  }
  if (algorithm === 'HMAC-SHA256') {
    if (material.length < 32 || material.length > 64) throw bad(`expected 32 to 64 bytes, got ${material.length}`);
    return { secret: material, publicKey: null };
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: material, format: 'der', type: 'pkcs8' });
  } catch {
    throw bad('expected a PKCS#8 DER private key');
  }
  const d = key.asymmetricKeyDetails ?? {};
  const fits =
    algorithm === 'ED25519'
      ? key.asymmetricKeyType === 'ed25519'
      : algorithm === 'RSA-4096'
        ? key.asymmetricKeyType === 'rsa' && d.modulusLength === 4096
        : key.asymmetricKeyType === 'ec' && d.namedCurve === CURVES[algorithm];
  if (!fits) throw bad(`got a ${key.asymmetricKeyType}${d.namedCurve ? ` ${d.namedCurve}` : ''}${d.modulusLength ? ` ${d.modulusLength}-bit` : ''} key`);
  return { secret: key.export({ format: 'der', type: 'pkcs8' }), publicKey: createPublicKey(key).export({ format: 'der', type: 'spki' }) };
}
