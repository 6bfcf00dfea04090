/**
 * A root of trust. It holds the root key — in a file (development), in memory after a passphrase or recovery
 * shares opened it, or inside a PKCS#11 token that never releases it — and wraps the key material one level below
 * (the barrier keyring, KEKs) under it. Nothing above this interface ever sees the root key.
 */
export interface RootKeyProvider {
  readonly name: 'file' | 'passphrase' | 'pkcs11';
  /** Which root key: the key label in the token (pkcs11), or a fingerprint of the root (file, passphrase). */
  readonly id: string;
  /** Wrap key material (16 to 64 bytes) under the root key. */
  wrap(keyMaterial: Buffer): Promise<Buffer>;
  /** Unwrap what `wrap` produced; PAL_SEAL_CORRUPT when it does not authenticate, PAL_SEAL_UNAVAILABLE when the root cannot be reached. */
  unwrap(wrapped: Buffer): Promise<Buffer>;
  /** Resolves when the root is reachable (an HSM session is alive); throws PAL_SEAL_UNAVAILABLE with the reason otherwise. */
  check(): Promise<void>;
  close(): Promise<void>;
}

/** Counts token operations (the seal's, and `sign` by CA keys held in the token) for `hsm_operations_total{operation,status}`. */
export type ProviderObserver = (operation: 'wrap' | 'unwrap' | 'generate' | 'check' | 'login' | 'sign', status: 'success' | 'failure', seconds: number) => void;
