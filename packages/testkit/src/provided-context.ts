/**
 * Keys the test kit's Vitest globalSetup provides to every test file:
 *
 *   import { inject } from 'vitest';
 *   const pgUrl = inject('pgUrl');       // postgres://palisade@127.0.0.1:<port>/postgres, or null
 *   const redisUrl = inject('redisUrl'); // redis://127.0.0.1:<port>, or null
 *
 *   const hsm = inject('softhsm');       // { module, conf, label, pin } of a fresh SoftHSM2 token, or null
 *
 * null means the service is not installed (only possible outside CI).
 */
import type {} from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    pgUrl: string | null;
    redisUrl: string | null;
    /** A SoftHSM2 token for the pkcs11 seal: set SOFTHSM2_CONF=conf before the module is loaded. */
    softhsm: { module: string; conf: string; label: string; pin: string } | null;
  }
}
