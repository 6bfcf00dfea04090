import { createPrivateKey, createPublicKey, generateKeyPair as generateKeyPairCb, createHmac, sign as cryptoSign, verify as cryptoVerify, constants, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { PalisadeError, randomBytes, type Algorithm, type KeyType, type Usage } from '@palisade/core';
import { rsa4096Pool } from './keygen-pool.js';

const generateKeyPair = promisify(generateKeyPairCb);

export type Family = 'aead' | 'signature' | 'hmac';

export interface AlgorithmSpec {
  family: Family;
  keyTypes: readonly KeyType[];
  usages: readonly Usage[];
}

const AEAD_USAGES = ['encrypt', 'decrypt'] as const;
const SIGN_USAGES = ['sign', 'verify'] as const;
const SIGNATURE_KEY_TYPES = ['signing', 'TLS'] as const;

export const ALGORITHM_SPECS: Record<Algorithm, AlgorithmSpec> = {
  'AES-256-GCM': { family: 'aead', keyTypes: ['DEK', 'KEK'], usages: AEAD_USAGES },
  'CHACHA20-POLY1305': { family: 'aead', keyTypes: ['DEK', 'KEK'], usages: AEAD_USAGES },
  'ECDSA-P256': { family: 'signature', keyTypes: SIGNATURE_KEY_TYPES, usages: SIGN_USAGES },
  'ECDSA-P384': { family: 'signature', keyTypes: SIGNATURE_KEY_TYPES, usages: SIGN_USAGES },
  ED25519: { family: 'signature', keyTypes: SIGNATURE_KEY_TYPES, usages: SIGN_USAGES },
  'RSA-4096': { family: 'signature', keyTypes: SIGNATURE_KEY_TYPES, usages: SIGN_USAGES },
  'HMAC-SHA256': { family: 'hmac', keyTypes: ['hmac'], usages: SIGN_USAGES },
};

/** Check key_type/algorithm/usage fit together; returns the usage list to store. */
export function resolveUsage(keyType: KeyType, algorithm: Algorithm, usage: readonly Usage[] | undefined): Usage[] {
  const spec = ALGORITHM_SPECS[algorithm];
  if (!spec.keyTypes.includes(keyType)) {
    throw new PalisadeError('PAL_KMS_INVALID_ALGORITHM', `${algorithm} cannot be used for a ${keyType} key (allowed: ${spec.keyTypes.join(', ')})`);
  }
  const wanted = usage ?? spec.usages;
  const bad = wanted.filter((u) => !spec.usages.includes(u));
  if (bad.length > 0) {
    throw new PalisadeError('PAL_KMS_INVALID_USAGE', `usage ${bad.join(', ')} is not possible with ${algorithm} (allowed: ${spec.usages.join(', ')})`, {
      extensions: { allowed_usage: spec.usages },
    });
  }
  return [...wanted];
}

export interface GeneratedMaterial {
  /** Secret material: raw key bytes (AEAD, HMAC) or PKCS#8 DER (signature keys). Sealed before storage. */
  secret: Buffer;
  /** SPKI DER of signature keys. */
  publicKey: Buffer | null;
}

export async function generateMaterial(algorithm: Algorithm): Promise<GeneratedMaterial> {
  const der = { privateKeyEncoding: { type: 'pkcs8', format: 'der' }, publicKeyEncoding: { type: 'spki', format: 'der' } } as const;
  switch (algorithm) {
    case 'AES-256-GCM':
    case 'CHACHA20-POLY1305':
    case 'HMAC-SHA256':
      return { secret: randomBytes(32), publicKey: null };
    case 'ECDSA-P256':
    case 'ECDSA-P384': {
      const kp = await generateKeyPair('ec', { namedCurve: algorithm === 'ECDSA-P256' ? 'P-256' : 'P-384', ...der });
      return { secret: kp.privateKey as unknown as Buffer, publicKey: kp.publicKey as unknown as Buffer };
    }
    case 'ED25519': {
      const kp = await generateKeyPair('ed25519', der);
      return { secret: kp.privateKey as unknown as Buffer, publicKey: kp.publicKey as unknown as Buffer };
    }
    case 'RSA-4096': {
      const kp = await rsa4096Pool.take(); // pre-generated in the background when one is ready, else generated now
      return { secret: kp.privateKey, publicKey: kp.publicKey };
    }
  }
}

/** The signature scheme behind each algorithm name (documented in the API schema). */
function signParams(algorithm: Algorithm): { digest: string | null; options: Record<string, unknown> } {
  switch (algorithm) {
    case 'ECDSA-P256':
      return { digest: 'sha256', options: { dsaEncoding: 'der' } };
    case 'ECDSA-P384':
      return { digest: 'sha384', options: { dsaEncoding: 'der' } };
    case 'ED25519':
      return { digest: null, options: {} };
    case 'RSA-4096':
      return { digest: 'sha256', options: { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } };
    default:
      throw new PalisadeError('PAL_KMS_OPERATION_NOT_PERMITTED', `${algorithm} does not sign`);
  }
}

export function privateKeyFrom(der: Buffer): KeyObject {
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
}

export function publicKeyFrom(der: Buffer): KeyObject {
  return createPublicKey({ key: der, format: 'der', type: 'spki' });
}

export function signMessage(algorithm: Algorithm, key: KeyObject, message: Buffer): Buffer {
  const p = signParams(algorithm);
  return cryptoSign(p.digest, message, { key, ...p.options } as never);
}

export function verifyMessage(algorithm: Algorithm, key: KeyObject, message: Buffer, signature: Buffer): boolean {
  const p = signParams(algorithm);
  try {
    return cryptoVerify(p.digest, message, { key, ...p.options } as never, signature);
  } catch {
    return false; // malformed DER etc. is simply not a valid signature
  }
}

export function hmac(key: Buffer, data: Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}
