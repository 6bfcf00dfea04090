import type { Classification, KeyType } from '@palisade/core';

export interface RotationPolicy {
  frequencyDays: number;
  /** Days the previous version stays active after a rotation before it is deactivated (decrypt-only). */
  overlapDays: number;
  /** A second, different principal must approve each rotation. */
  approval: boolean;
}

export interface KmsConfig {
  /** Default rotation period by classification (the seed's encryption_levels: standard 90, enhanced 30, maximum 7). */
  rotationDays: Record<Classification, number>;
  /** Encryptions per key version before it is retired (NIST SP 800-38D: 2^32 for random 96-bit nonces). */
  maxEncryptionsPerVersion: number;
  /** Invocations a node reserves at once. */
  nonceBlock: number;
  /** How often the scheduler looks for due rotations and destructions. */
  schedulerIntervalSeconds: number;
  /** The seed's key_rotation_policies, by key type. */
  policies: Record<KeyType, RotationPolicy>;
  /** Algorithm of the identity engine's access-token key (EdDSA tokens: ED25519; ES256: ECDSA-P256). */
  tokenSigningAlgorithm?: 'ED25519' | 'ECDSA-P256';
}

export const DEFAULT_KMS_CONFIG: KmsConfig = {
  rotationDays: { internal: 90, confidential: 30, restricted: 7 },
  maxEncryptionsPerVersion: 2 ** 32,
  nonceBlock: 1024,
  schedulerIntervalSeconds: 60,
  policies: {
    DEK: { frequencyDays: 30, overlapDays: 7, approval: false },
    KEK: { frequencyDays: 90, overlapDays: 30, approval: true },
    signing: { frequencyDays: 180, overlapDays: 90, approval: true },
    TLS: { frequencyDays: 90, overlapDays: 30, approval: false },
    hmac: { frequencyDays: 30, overlapDays: 7, approval: false },
  },
};
