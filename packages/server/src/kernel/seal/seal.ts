import type { Barrier } from './barrier.js';
import { PalisadeError } from '@palisade/core';

export type SealState = 'sealed' | 'unsealed';

/**
 * The root of trust. A provider produces the root key (or refuses to); the server is usable only when unsealed.
 * Providers: `file` (development). `passphrase` and `pkcs11` arrive with the root-of-trust issue.
 */
export interface Seal {
  readonly provider: string;
  readonly state: SealState;
  /** The barrier over the root key; throws PAL_SEAL_SEALED when sealed. */
  barrier(): Barrier;
}

export class UnsealedSeal implements Seal {
  readonly state: SealState = 'unsealed';
  readonly #barrier: Barrier;
  constructor(
    readonly provider: string,
    barrier: Barrier,
  ) {
    this.#barrier = barrier;
  }
  barrier(): Barrier {
    return this.#barrier;
  }
}

export class SealedSeal implements Seal {
  readonly state: SealState = 'sealed';
  constructor(readonly provider: string) {}
  barrier(): Barrier {
    throw new PalisadeError('PAL_SEAL_SEALED');
  }
}
