// The DEK cache, with the AWS Encryption SDK's caching semantics (max age, max messages, max bytes per data key),
// and what its Node users missed (aws-encryption-sdk-javascript#421, #1665): requests that run concurrently against
// an empty or used-up entry share ONE data-key call instead of each making their own. Usage is reserved
// synchronously before the key is handed out, so concurrent encryptions never overshoot a limit.
import type { EncryptedData } from '@palisade/core';

export interface DekCacheLimits {
  /** A DEK encrypts no new field once it is this old (ms). Default 10 minutes. */
  maxAgeMs?: number;
  /** Fields one DEK encrypts before a fresh one is fetched. Default 1,000,000 (see field-encryptor.ts on why no GCM bound applies). */
  maxMessages?: number;
  /** Plaintext bytes one DEK encrypts before a fresh one is fetched. Default 1 GiB. */
  maxBytes?: number;
  /** An unwrapped DEK (for decryption) is kept this long (ms). Default 10 minutes. */
  decryptMaxAgeMs?: number;
  /** At most this many unwrapped DEKs are kept (least recently used go first). Default 1,000. */
  decryptMaxEntries?: number;
}

export const DEFAULT_LIMITS: Required<DekCacheLimits> = {
  maxAgeMs: 10 * 60_000,
  maxMessages: 1_000_000,
  maxBytes: 2 ** 30,
  decryptMaxAgeMs: 10 * 60_000,
  decryptMaxEntries: 1_000,
};

/** A data key: its plaintext and the KMS's wrapped form. */
export interface DataKey {
  dek: Buffer;
  wrapped: EncryptedData;
}

interface EncryptEntry {
  key: DataKey;
  createdAt: number;
  messages: number;
  bytes: number;
}

interface DecryptEntry {
  dek: Buffer;
  createdAt: number;
}

function positive(name: string, v: number): number {
  if (!(typeof v === 'number' && v > 0 && (Number.isInteger(v) || v === Infinity))) throw new RangeError(`DEK cache: ${name} must be a positive integer`);
  return v;
}

/**
 * Encryption entries are per DEK name (`{data_type}_{classification}_{YYYYMM}`): a name maps to the data key in use,
 * replaced (same name) once a limit is reached. Decryption entries are per wrapped key (its hash). Keys handed out
 * are copies: the caller zeroes its copy after use, and the cache zeroes its own when it drops an entry.
 */
export class DekCache {
  readonly limits: Required<DekCacheLimits>;
  readonly #now: () => number;
  readonly #enc = new Map<string, EncryptEntry>();
  readonly #encPending = new Map<string, Promise<void>>();
  readonly #dec = new Map<string, DecryptEntry>();
  readonly #decPending = new Map<string, Promise<Buffer>>();

  constructor(limits: DekCacheLimits = {}, now: () => number = Date.now) {
    const l = { ...DEFAULT_LIMITS, ...limits };
    for (const [k, v] of Object.entries(l)) positive(k, v);
    this.limits = l;
    this.#now = now;
  }

  /**
   * A data key for one message of `bytes` plaintext bytes under `name`: the cached one while it is within every
   * limit (its use is counted here), otherwise a fresh one from `fetch`, fetched once for all concurrent callers.
   * A message larger than maxBytes gets a key of its own that is not cached. `onFresh` sees every fetched key.
   * `accept` can refuse a cached key (wrapped under another KMS key, or an older version of it): it is replaced.
   */
  async acquire(name: string, bytes: number, fetch: () => Promise<DataKey>, opts: { onFresh?: (k: DataKey) => void; accept?: (k: DataKey) => boolean } = {}): Promise<DataKey> {
    const { onFresh, accept } = opts;
    if (bytes > this.limits.maxBytes) {
      const k = await fetch();
      onFresh?.(k);
      return k;
    }
    let mine: EncryptEntry | undefined; // a key this call fetched is taken as it is (no loop on a refusing `accept`)
    for (;;) {
      const e = this.#enc.get(name);
      if (e && accept && e !== mine && !accept(e.key)) this.#dropEnc(name, e);
      else if (e) {
        if (this.#usable(e, bytes)) {
          e.messages += 1;
          e.bytes += bytes;
          return { dek: Buffer.from(e.key.dek), wrapped: e.key.wrapped };
        }
        if (this.#expired(e) || e.messages >= this.limits.maxMessages || e.bytes >= this.limits.maxBytes) this.#dropEnc(name, e);
      }
      const pending = this.#encPending.get(name);
      if (pending) {
        await pending;
        continue;
      }
      // This message does not fit the current entry (or there is none): replace it with a fresh key.
      const p = (async () => {
        try {
          const k = await fetch();
          onFresh?.(k);
          const old = this.#enc.get(name);
          if (old) this.#dropEnc(name, old);
          mine = { key: { dek: Buffer.from(k.dek), wrapped: k.wrapped }, createdAt: this.#now(), messages: 0, bytes: 0 };
          this.#enc.set(name, mine);
          k.dek.fill(0);
        } finally {
          this.#encPending.delete(name);
        }
      })();
      this.#encPending.set(name, p);
      await p;
    }
  }

  /** The unwrapped DEK of a wrapped key (by its hash), unwrapping once for all concurrent callers. A copy. */
  async unwrap(hash: string, unwrapKey: () => Promise<Buffer>): Promise<Buffer> {
    const e = this.#dec.get(hash);
    if (e) {
      if (this.#now() - e.createdAt < this.limits.decryptMaxAgeMs) {
        this.#dec.delete(hash); // re-insert: Map order is the LRU order
        this.#dec.set(hash, e);
        return Buffer.from(e.dek);
      }
      this.#dropDec(hash, e);
    }
    let p = this.#decPending.get(hash);
    if (!p) {
      p = (async () => {
        try {
          const dek = await unwrapKey();
          this.putDecryption(hash, dek);
          return dek;
        } finally {
          this.#decPending.delete(hash);
        }
      })();
      this.#decPending.set(hash, p);
    }
    return Buffer.from(await p);
  }

  /** Remember a DEK for decryption (e.g. one just fetched for encryption, so reading back needs no unwrap). */
  putDecryption(hash: string, dek: Buffer): void {
    const old = this.#dec.get(hash);
    if (old) this.#dropDec(hash, old);
    this.#dec.set(hash, { dek: Buffer.from(dek), createdAt: this.#now() });
    while (this.#dec.size > this.limits.decryptMaxEntries) {
      const [oldest, entry] = this.#dec.entries().next().value as [string, DecryptEntry];
      this.#dropDec(oldest, entry);
    }
  }

  /** What the cache holds (for tests and metrics): per name, the uses of the current data key. */
  stats(): { encrypt: Record<string, { messages: number; bytes: number; ageMs: number }>; decryptEntries: number } {
    const encrypt: Record<string, { messages: number; bytes: number; ageMs: number }> = {};
    for (const [name, e] of this.#enc) encrypt[name] = { messages: e.messages, bytes: e.bytes, ageMs: this.#now() - e.createdAt };
    return { encrypt, decryptEntries: this.#dec.size };
  }

  /** Forget (and zero) every cached key. */
  clear(): void {
    for (const [name, e] of [...this.#enc]) this.#dropEnc(name, e);
    for (const [hash, e] of [...this.#dec]) this.#dropDec(hash, e);
  }

  #expired(e: EncryptEntry): boolean {
    return this.#now() - e.createdAt >= this.limits.maxAgeMs;
  }
  #usable(e: EncryptEntry, bytes: number): boolean {
    return !this.#expired(e) && e.messages + 1 <= this.limits.maxMessages && e.bytes + bytes <= this.limits.maxBytes;
  }
  #dropEnc(name: string, e: EncryptEntry): void {
    if (this.#enc.get(name) === e) this.#enc.delete(name);
    e.key.dek.fill(0);
  }
  #dropDec(hash: string, e: DecryptEntry): void {
    if (this.#dec.get(hash) === e) this.#dec.delete(hash);
    e.dek.fill(0);
  }
}
