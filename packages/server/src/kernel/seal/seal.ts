import type { Barrier } from './barrier.js';

export type SealState = 'uninitialized' | 'sealed' | 'unsealed';

/**
 * The root of trust as the rest of the server sees it: a state, and the barrier while unsealed.
 * `SealManager` implements it over a provider (file, passphrase, pkcs11).
 */
export interface Seal {
  readonly provider: string;
  readonly state: SealState;
  /** Why the root of trust is unreachable (its last health check failed), or null. */
  readonly unavailable: string | null;
  /** The barrier over the keyring; throws PAL_SEAL_SEALED (or PAL_SEAL_NOT_INITIALIZED) otherwise. */
  barrier(): Barrier;
}
