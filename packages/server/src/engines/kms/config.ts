import type { Classification } from '@palisade/core';

export interface KmsConfig {
  /** Default rotation period by classification (the seed's encryption_levels: standard 90, enhanced 30, maximum 7). */
  rotationDays: Record<Classification, number>;
  /** Encryptions per key version before it is retired (NIST SP 800-38D: 2^32 for random 96-bit nonces). */
  maxEncryptionsPerVersion: number;
  /** Invocations a node reserves at once. */
  nonceBlock: number;
  /** How often the scheduler looks for due rotations and destructions. */
  schedulerIntervalSeconds: number;
  /** Rotation period of the system KEKs (the seed's key_rotation_policies: KEK 90 days). */
  kekRotationDays: number;
}

export const DEFAULT_KMS_CONFIG: KmsConfig = {
  rotationDays: { internal: 90, confidential: 30, restricted: 7 },
  maxEncryptionsPerVersion: 2 ** 32,
  nonceBlock: 1024,
  schedulerIntervalSeconds: 60,
  kekRotationDays: 90,
};
