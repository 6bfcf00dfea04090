// The DEK cache, with the AWS Encryption SDK's caching semantics (max age, max messages, max bytes per data key),
// and what its Node users missed (aws-encryption-sdk-javascript#421, #1665): requests that run concurrently against
// an empty or used-up entry share ONE data-key call instead of each making their own. Usage is reserved
// synchronously before the key is used, so concurrent encryptions never overshoot a limit.
//
// What is cached is the key as it is used (for fields: the AES key and commitment derived from the DEK when it
// enters the cache, see field-key.ts), so a hit costs a map lookup. A cached key is only ever used synchronously,
// in the same turn as the lookup that returned it (take/get, or the `use` callback of acquire/unwrap): when the cache
// drops an entry it destroys (zeroes) the key, and no caller can still hold it across an await.

export interface DekCacheLimits {
  /** A DEK encrypts no new field once it is this old (ms). Default 10 minutes. */
  maxAgeMs?: number;
  /**
   * Fields one DEK encrypts before a fresh one is fetched. Default 1,000,000; at most 2^32, NIST SP 800-38D §8.3's
   * bound for random 96-bit IVs under one AES-GCM key (a DEK's field key is one key for all its fields; ADR 0013).
   */
  maxMessages?: number;
  /** Plaintext bytes one DEK encrypts before a fresh one is fetched. Default 1 GiB. */
  maxBytes?: number;
  /** An unwrapped DEK (for decryption) is kept this long (ms). Default 10 minutes. */
  decryptMaxAgeMs?: number;
  /** At most this many unwrapped DEKs are kept (least recently used go first). Default 1,000. */
  decryptMaxEntries?: number;
}

/** NIST SP 800-38D §8.3: at most 2^32 invocations of the authenticated encryption with random IVs per key. */
export const GCM_RANDOM_IV_LIMIT = 2 ** 32;

export const DEFAULT_LIMITS: Required<DekCacheLimits> = {
  maxAgeMs: 10 * 60_000,
  maxMessages: 1_000_000,
  maxBytes: 2 ** 30,
  decryptMaxAgeMs: 10 * 60_000,
  decryptMaxEntries: 1_000,
};

/** What the cache holds: destroyed (its secrets zeroed) when the cache drops it, and never used after that. */
export interface CachedKey {
  readonly destroyed: boolean;
  destroy(): void;
}

interface EncryptEntry<K> {
  key: K;
  createdAt: number;
  messages: number;
  bytes: number;
}

interface DecryptEntry<K> {
  key: K;
  createdAt: number;
  /** The ids it is found by, one per index (e.g. by its compact key part, and by its JSON wrapped_key). */
  ids: readonly string[];
}

function positive(name: string, v: number): number {
  if (!(typeof v === 'number' && v > 0 && (Number.isInteger(v) || v === Infinity))) throw new RangeError(`DEK cache: ${name} must be a positive integer`);
  return v;
}

/**
 * Encryption entries are per DEK name (`{data_type}_{classification}_{YYYYMM}`): a name maps to the data key in use,
 * replaced (same name) once a limit is reached. Decryption entries are per wrapped key, found by any of their ids.
 */
export class DekCache<K extends CachedKey> {
  readonly limits: Required<DekCacheLimits>;
  readonly #now: () => number;
  readonly #enc = new Map<string, EncryptEntry<K>>();
  readonly #encPending = new Map<string, Promise<EncryptEntry<K>>>();
  /** One map per id index; every entry is in each (under its id of that index). */
  readonly #dec: Array<Map<string, DecryptEntry<K>>> = [];
  /** Decryption entries, least recently used first. */
  readonly #lru = new Set<DecryptEntry<K>>();
  /** The last entry of #lru (a hit on it needs no re-insertion). */
  #mru: DecryptEntry<K> | undefined;
  readonly #decPending = new Map<string, Promise<K>>();

  constructor(limits: DekCacheLimits = {}, now: () => number = Date.now) {
    const l = { ...DEFAULT_LIMITS, ...limits };
    for (const [k, v] of Object.entries(l)) positive(k, v);
    if (l.maxMessages > GCM_RANDOM_IV_LIMIT) throw new RangeError(`DEK cache: maxMessages must be at most 2^32 (NIST SP 800-38D's limit for random IVs under one AES-GCM key)`);
    this.limits = l;
    this.#now = now;
  }

  /**
   * The cached key of `name` for one message of `bytes` plaintext bytes, its use counted; undefined when there is
   * none within every limit (or `accept` refuses it: it is dropped). Synchronous: use the key before any await.
   */
  take(name: string, bytes: number, accept?: (k: K) => boolean): K | undefined {
    return this.#take(name, bytes, accept, undefined);
  }

  /**
   * `use` with a key for one message of `bytes` bytes under `name`: the cached one while it is within every limit,
   * otherwise a fresh one from `fetch`, fetched once for all concurrent callers (and cached). A message larger than
   * maxBytes gets a key of its own, not cached (destroyed after `use`). `accept` can refuse a cached key (wrapped
   * under another KMS key, or an older version of it): it is replaced; a key this call fetched is used as it is.
   * `use` runs synchronously with the key; its result is returned.
   */
  async acquire<R>(name: string, bytes: number, fetch: () => Promise<K>, use: (k: K) => R, accept?: (k: K) => boolean): Promise<R> {
    if (bytes > this.limits.maxBytes) {
      const k = await fetch();
      try {
        return use(k);
      } finally {
        k.destroy();
      }
    }
    let mine: EncryptEntry<K> | undefined;
    for (;;) {
      const k = this.#take(name, bytes, accept, mine);
      if (k) return use(k);
      let pending = this.#encPending.get(name);
      if (!pending) {
        // This message does not fit the current entry (or there is none): replace it with a fresh key.
        pending = (async () => {
          try {
            const key = await fetch();
            const old = this.#enc.get(name);
            if (old) this.#dropEnc(name, old);
            const entry = { key, createdAt: this.#now(), messages: 0, bytes: 0 };
            this.#enc.set(name, entry);
            return entry;
          } finally {
            this.#encPending.delete(name);
          }
        })();
        this.#encPending.set(name, pending);
        mine = await pending;
      } else {
        await pending;
      }
    }
  }

  /** The decryption key found by `id` in index `index` (0 by default), within decryptMaxAgeMs; synchronous like take. */
  get(id: string, index = 0): K | undefined {
    const e = this.#dec[index]?.get(id);
    if (!e) return undefined;
    if (this.#now() - e.createdAt >= this.limits.decryptMaxAgeMs) {
      this.#dropDec(e);
      return undefined;
    }
    if (this.#mru !== e) {
      this.#lru.delete(e); // re-insert: Set order is the LRU order
      this.#lru.add(e);
      this.#mru = e;
    }
    return e.key;
  }

  /**
   * `use` with the decryption key of `ids` (ids[0] in index 0, ...): the cached one, or one from `unwrapKey`, called
   * once for all concurrent callers and cached under every id. A failure is not cached.
   */
  async unwrap<R>(ids: readonly string[], unwrapKey: () => Promise<K>, use: (k: K) => R): Promise<R> {
    for (;;) {
      const hit = this.get(ids[0]!);
      if (hit) return use(hit);
      let p = this.#decPending.get(ids[0]!);
      if (!p) {
        p = (async () => {
          try {
            const k = await unwrapKey();
            this.put(ids, k);
            return k;
          } finally {
            this.#decPending.delete(ids[0]!);
          }
        })();
        this.#decPending.set(ids[0]!, p);
      }
      const k = await p;
      if (!k.destroyed) return use(k);
      // dropped (and destroyed) between the unwrap and this caller's turn: look again
    }
  }

  /** Remember a decryption key under its ids (e.g. one just fetched for encryption, so reading back needs no unwrap). The cache owns it. */
  put(ids: readonly string[], key: K): void {
    for (let i = 0; i < ids.length; i++) {
      const old = this.#dec[i]?.get(ids[i]!);
      if (old) this.#unlinkDec(old, old.key !== key); // the same key put again is kept (it is in use), not destroyed
    }
    const e: DecryptEntry<K> = { key, createdAt: this.#now(), ids: [...ids] };
    ids.forEach((id, i) => (this.#dec[i] ??= new Map()).set(id, e));
    this.#lru.add(e);
    this.#mru = e;
    while (this.#lru.size > this.limits.decryptMaxEntries) this.#dropDec(this.#lru.values().next().value as DecryptEntry<K>);
  }

  /** What the cache holds (for tests and metrics): per name, the uses of the current data key. */
  stats(): { encrypt: Record<string, { messages: number; bytes: number; ageMs: number }>; decryptEntries: number } {
    const encrypt: Record<string, { messages: number; bytes: number; ageMs: number }> = {};
    for (const [name, e] of this.#enc) encrypt[name] = { messages: e.messages, bytes: e.bytes, ageMs: this.#now() - e.createdAt };
    return { encrypt, decryptEntries: this.#lru.size };
  }

  /** Forget (and destroy) every cached key. */
  clear(): void {
    for (const [name, e] of [...this.#enc]) this.#dropEnc(name, e);
    for (const e of [...this.#lru]) this.#dropDec(e);
  }

  #take(name: string, bytes: number, accept: ((k: K) => boolean) | undefined, mine: EncryptEntry<K> | undefined): K | undefined {
    const e = this.#enc.get(name);
    if (!e) return undefined;
    if (accept && e !== mine && !accept(e.key)) {
      this.#dropEnc(name, e);
      return undefined;
    }
    const age = this.#now() - e.createdAt;
    if (age < this.limits.maxAgeMs && e.messages < this.limits.maxMessages && e.bytes + bytes <= this.limits.maxBytes) {
      e.messages += 1;
      e.bytes += bytes;
      return e.key;
    }
    if (age >= this.limits.maxAgeMs || e.messages >= this.limits.maxMessages || e.bytes >= this.limits.maxBytes) this.#dropEnc(name, e);
    return undefined;
  }
  #dropEnc(name: string, e: EncryptEntry<K>): void {
    if (this.#enc.get(name) === e) this.#enc.delete(name);
    e.key.destroy();
  }
  #dropDec(e: DecryptEntry<K>): void {
    this.#unlinkDec(e, true);
  }
  #unlinkDec(e: DecryptEntry<K>, destroy: boolean): void {
    e.ids.forEach((id, i) => {
      if (this.#dec[i]?.get(id) === e) this.#dec[i]!.delete(id);
    });
    this.#lru.delete(e);
    if (this.#mru === e) this.#mru = undefined;
    if (destroy) e.key.destroy();
  }
}
