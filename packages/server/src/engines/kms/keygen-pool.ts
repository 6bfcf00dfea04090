/**
 * A small pool of pre-generated key pairs for algorithms whose generation is slow (RSA-4096: 0.3 to 3 s of CPU). Pairs
 * are generated in the background with the async `generateKeyPair` (libuv threadpool, one at a time, so the event
 * loop never blocks and at most one pool thread is busy), kept only in this process's memory, handed out once each
 * and refilled after every take. When none is ready the caller generates one itself: correctness never depends on
 * the pool.
 *
 * The pool starts filling at the first take (or at `fill()`), never at import, so processes that never create an
 * RSA-4096 key spend nothing on it. It holds no timer or handle. A generation in flight cannot be cancelled: it
 * finishes in the threadpool (`await stop()` waits for it and wipes everything the pool held), and a process that
 * exits meanwhile, even with process.exit(), waits for it too (libuv joins its threads): at most one generation,
 * about 1 s here, measured with `palisade serve` and SIGTERM.
 */
import { generateKeyPair } from 'node:crypto';

export interface KeyPairDer {
  /** PKCS#8 DER. */
  privateKey: Buffer;
  /** SPKI DER. */
  publicKey: Buffer;
}

export class KeygenPool<T> {
  readonly #generate: () => Promise<T>;
  readonly #wipe: (item: T) => void;
  readonly #ready: T[] = [];
  #size: number;
  #filling: Promise<void> | null = null;
  #stopped = false;

  constructor(generate: () => Promise<T>, opts: { size: number; wipe?: (item: T) => void }) {
    this.#generate = generate;
    this.#wipe = opts.wipe ?? (() => undefined);
    this.#size = Math.max(0, Math.floor(opts.size));
  }

  /** Pairs ready to hand out now. */
  get available(): number {
    return this.#ready.length;
  }

  get size(): number {
    return this.#size;
  }

  /** A ready item, removed from the pool (never handed out twice), or null; either way the pool refills behind. */
  tryTake(): T | null {
    const item = this.#ready.shift() ?? null;
    this.#refill();
    return item;
  }

  /** A ready item if there is one, else one generated now. */
  async take(): Promise<T> {
    return this.tryTake() ?? this.#generate();
  }

  /** Start filling now (e.g. at server start); resolves once the pool is full (or stopped). */
  async fill(): Promise<void> {
    this.#refill();
    await this.#filling;
  }

  /** Change the target size (0 disables the pool); items beyond it are wiped. */
  resize(size: number): void {
    this.#size = Math.max(0, Math.floor(size));
    for (const item of this.#ready.splice(this.#size)) this.#wipe(item);
  }

  /** No more refills; wipes what the pool holds and waits for an in-flight generation (whose result is wiped). */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.resize(0);
    await this.#filling;
  }

  #refill(): void {
    if (this.#stopped || this.#filling || this.#ready.length >= this.#size) return;
    this.#filling = (async () => {
      try {
        while (!this.#stopped && this.#ready.length < this.#size) {
          const item = await this.#generate();
          if (this.#stopped || this.#ready.length >= this.#size) this.#wipe(item);
          else this.#ready.push(item);
        }
      } catch {
        // a failed background generation only means a miss: take() generates directly, and the next take retries
      } finally {
        this.#filling = null;
      }
    })();
  }
}

/** A fresh RSA-4096 key pair (e = 65537) in the DER encodings the KMS stores. */
export function generateRsa4096(): Promise<KeyPairDer> {
  const options = { modulusLength: 4096, publicExponent: 0x10001, privateKeyEncoding: { type: 'pkcs8', format: 'der' }, publicKeyEncoding: { type: 'spki', format: 'der' } } as const;
  return new Promise((resolve, reject) => generateKeyPair('rsa', options, (err: Error | null, publicKey: Buffer, privateKey: Buffer) => (err ? reject(err) : resolve({ privateKey, publicKey }))));
}

/** PALISADE_RSA_POOL_SIZE: RSA-4096 pairs kept ready (default 2; 0 disables the pool). */
export function poolSizeFromEnv(env: NodeJS.ProcessEnv = process.env, fallback = 2): number {
  const n = Number(env.PALISADE_RSA_POOL_SIZE);
  return env.PALISADE_RSA_POOL_SIZE !== undefined && env.PALISADE_RSA_POOL_SIZE !== '' && Number.isInteger(n) && n >= 0 && n <= 64 ? n : fallback;
}

/** The process's RSA-4096 pool, consulted by generateMaterial('RSA-4096'). */
export const rsa4096Pool = new KeygenPool<KeyPairDer>(generateRsa4096, { size: poolSizeFromEnv(), wipe: (kp) => kp.privateKey.fill(0) });
