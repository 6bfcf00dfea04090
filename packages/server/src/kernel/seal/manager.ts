import { parseShare, PalisadeError, randomBytes } from '@palisade/core';
import type { Executor, Storage } from '../../storage/database.js';
import { Barrier } from './barrier.js';
import { createPassphraseSeal, openWithPassphrase, openWithShares, rewrapPassphraseSeal, type Argon2Params, type PassphraseSealRecord } from './passphrase.js';
import type { RootKeyProvider } from './provider.js';
import type { Seal, SealState } from './seal.js';
import { softwareProvider } from './software-provider.js';

export type ProviderName = RootKeyProvider['name'];

export interface SealStatus {
  provider: ProviderName;
  state: SealState;
  /** Passphrase seal: the recovery split, and how many shares of an unseal in progress were given. */
  recovery: { shares: number; threshold: number; submitted: number } | null;
}

export interface SealManagerOptions {
  provider: ProviderName;
  /** Opens the provider of an automatic seal (file, pkcs11); `rootId` names the root the database was sealed with. */
  open?: (rootId?: string) => Promise<{ provider: RootKeyProvider; created: boolean }>;
  /** A new root for a rotation (file, pkcs11); `commit` makes it the one opened at start, after the rewrap committed. */
  nextRoot?: () => Promise<{ provider: RootKeyProvider; commit: () => Promise<void> }>;
  argon2: Argon2Params;
}

const KEYRING = 'seal.keyring';

/** The keyring key, wrapped by the root that `root_id` names (absent in records from before root rotation). */
interface KeyringRecord {
  provider: ProviderName;
  wrapped: string;
  root_id?: string;
}
const PASSPHRASE = 'seal.passphrase';

/**
 * Seal state and the barrier. The keyring key (from which the barrier and the audit MAC keys derive) is random,
 * stored only wrapped by the provider's root key in `settings`, so all nodes of a PostgreSQL deployment share it
 * and each unwraps it with its own access to the root (the same HSM token, or the passphrase, or shares).
 *
 * `file` and `pkcs11` unseal by themselves at start; `passphrase` starts `uninitialized` (then `init`) or `sealed`
 * (then `unseal` with the passphrase or `threshold` recovery shares).
 */
export class SealManager implements Seal {
  #state: SealState = 'sealed';
  #barrier: Barrier | null = null;
  #root: RootKeyProvider | null = null;
  #pendingShares: string[] = [];
  #unavailable: string | null = null;
  /** During a root rotation, before its commit: the new root, tried first by `root`. */
  #nextRoot: RootKeyProvider | null = null;
  readonly #onUnseal: Array<() => Promise<void>> = [];
  readonly #onSeal: Array<() => void> = [];

  constructor(
    private readonly storage: Storage,
    private readonly opts: SealManagerOptions,
  ) {}

  get provider(): ProviderName {
    return this.opts.provider;
  }
  get state(): SealState {
    return this.#state;
  }
  /** The open provider (during a root rotation: the new root, falling back to the old one until it commits). */
  get root(): RootKeyProvider | null {
    const next = this.#nextRoot;
    const current = this.#root;
    if (!next || !current) return current;
    return { ...current, name: current.name, id: next.id, wrap: (m) => next.wrap(m), unwrap: (w) => next.unwrap(w).catch(() => current.unwrap(w)), check: () => current.check(), close: () => current.close() };
  }

  /** Why the root of trust failed its last health check (an HSM that went away), or null. */
  get unavailable(): string | null {
    return this.#unavailable;
  }

  /** Health check of the root (the HSM session); data routes answer 503 while it fails, and recover when it passes. */
  async checkRoot(): Promise<void> {
    if (!this.#root) return;
    try {
      await this.#root.check();
      this.#unavailable = null;
    } catch (e) {
      this.#unavailable = (e as Error).message;
      throw e;
    }
  }

  barrier(): Barrier {
    if (this.#barrier) return this.#barrier;
    throw new PalisadeError(this.#state === 'uninitialized' ? 'PAL_SEAL_NOT_INITIALIZED' : 'PAL_SEAL_SEALED');
  }

  #rewrapRoot: (db: Executor, from: RootKeyProvider, to: RootKeyProvider) => Promise<number> = async () => 0;
  /** Who else keeps material wrapped by the root (the KMS's system KEKs), to move it during a root rotation. */
  onRootRotation(fn: (db: Executor, from: RootKeyProvider, to: RootKeyProvider) => Promise<number>): void {
    this.#rewrapRoot = fn;
  }

  /** Runs after every unseal (e.g. the owner credential on first start). */
  onUnseal(fn: () => Promise<void>): void {
    this.#onUnseal.push(fn);
  }
  /** Runs when sealing (e.g. dropping caches of unwrapped keys). */
  onSeal(fn: () => void): void {
    this.#onSeal.push(fn);
  }

  async start(): Promise<void> {
    if (this.opts.provider === 'passphrase') {
      this.#state = (await this.#record()) ? 'sealed' : 'uninitialized';
      return;
    }
    await this.#openAutomatic();
  }

  async status(db: Executor = this.storage.db): Promise<SealStatus> {
    const rec = this.opts.provider === 'passphrase' ? await this.#record(db) : null;
    return { provider: this.opts.provider, state: this.#state, recovery: rec ? { ...rec.recovery, submitted: this.#pendingShares.length } : null };
  }

  /** Passphrase seal only, once: a new root key; returns the recovery shares (shown once) and leaves the seal open. */
  async init(input: { passphrase: string; shares: number; threshold: number }): Promise<string[]> {
    if (this.opts.provider !== 'passphrase' || this.#state !== 'uninitialized') throw new PalisadeError('PAL_SEAL_ALREADY_INITIALIZED');
    const { record, rootKey, shares } = await createPassphraseSeal(input.passphrase, this.opts.argon2, input.shares, input.threshold);
    const inserted = await this.storage.db.insertInto('settings').values({ name: PASSPHRASE, value: JSON.stringify(record) }).onConflict((oc) => oc.column('name').doNothing()).executeTakeFirst();
    if (Number(inserted.numInsertedOrUpdatedRows ?? 0n) !== 1) throw new PalisadeError('PAL_SEAL_ALREADY_INITIALIZED');
    await this.#openWith(softwareProvider('passphrase', rootKey));
    rootKey.fill(0);
    return shares;
  }

  /**
   * Open the seal. Passphrase seal: `passphrase`, or recovery `shares` (given all at once or over several calls,
   * as a key ceremony does). Automatic seals re-open their provider.
   */
  async unseal(input: { passphrase?: string; shares?: string[]; reset?: boolean } = {}): Promise<SealStatus> {
    if (input.reset) this.#pendingShares = [];
    if (this.#state === 'unsealed') return this.status();
    if (this.opts.provider !== 'passphrase') {
      await this.#openAutomatic();
      return this.status();
    }
    const rec = await this.#record();
    if (!rec) throw new PalisadeError('PAL_SEAL_NOT_INITIALIZED');
    let rootKey: Buffer | null = null;
    if (input.passphrase !== undefined) {
      rootKey = await openWithPassphrase(rec, input.passphrase);
    } else if (input.shares?.length) {
      for (const s of input.shares) parseShare(s); // a corrupted share is refused on its own, before it is kept
      this.#pendingShares = [...new Set([...this.#pendingShares, ...input.shares])];
      if (this.#pendingShares.length < rec.recovery.threshold) return this.status();
      try {
        rootKey = openWithShares(rec, this.#pendingShares);
      } finally {
        this.#pendingShares = [];
      }
    } else if (!input.reset) {
      throw new PalisadeError('PAL_VALIDATION_FAILED', 'give the passphrase or recovery shares');
    }
    if (rootKey) {
      await this.#openWith(softwareProvider('passphrase', rootKey));
      rootKey.fill(0);
    }
    return this.status();
  }

  /** Drop the barrier and every unwrapped key; data routes answer 503 until unsealed again. */
  async seal(): Promise<void> {
    if (this.#state !== 'unsealed') return;
    this.#barrier = null;
    this.#state = 'sealed';
    for (const fn of this.#onSeal) fn();
    if (this.opts.provider === 'passphrase') {
      await this.#root?.close();
      this.#root = null;
    }
  }

  /**
   * Passphrase seal: prove possession (threshold shares, or the passphrase), then a new recovery split and
   * passphrase; with `rotate_root` also a new root key (the ceremony's root rotation), rewrapping what it protects.
   */
  async rekey(
    input: { shares?: string[]; passphrase?: string; new_passphrase: string; new_shares: number; new_threshold: number; rotate_root?: boolean },
    db: Executor = this.storage.db,
    hooks?: Parameters<SealManager['rotateRoot']>[1],
  ): Promise<string[]> {
    if (this.opts.provider !== 'passphrase') throw new PalisadeError('PAL_VALIDATION_FAILED', `re-keying applies to the passphrase seal; this server uses ${this.opts.provider}`);
    const rec = await this.#record(db);
    if (!rec) throw new PalisadeError('PAL_SEAL_NOT_INITIALIZED');
    const rootKey = input.shares?.length ? openWithShares(rec, input.shares) : input.passphrase !== undefined ? await openWithPassphrase(rec, input.passphrase) : null;
    if (!rootKey) throw new PalisadeError('PAL_VALIDATION_FAILED', 'give the recovery shares or the current passphrase');
    const next = input.rotate_root ? randomBytes(32) : null;
    try {
      const { record, shares } = await rewrapPassphraseSeal(next ?? rootKey, input.new_passphrase, this.opts.argon2, input.new_shares, input.new_threshold);
      await db.updateTable('settings').set({ value: JSON.stringify(record) }).where('name', '=', PASSPHRASE).execute();
      if (next) {
        if (!hooks) throw new Error('a root rotation needs transaction hooks');
        await this.rotateRoot(db, hooks, { provider: softwareProvider('passphrase', next), commit: async () => undefined });
      }
      return shares;
    } finally {
      rootKey.fill(0);
      next?.fill(0);
    }
  }

  async close(): Promise<void> {
    this.#barrier = null;
    await this.#root?.close();
    this.#root = null;
  }

  async #record(db: Executor = this.storage.db): Promise<PassphraseSealRecord | null> {
    const row = await db.selectFrom('settings').select('value').where('name', '=', PASSPHRASE).executeTakeFirst();
    return row ? (JSON.parse(row.value) as PassphraseSealRecord) : null;
  }

  async #openAutomatic(): Promise<void> {
    if (!this.#root) {
      if (!this.opts.open) throw new Error(`seal provider ${this.opts.provider} has no opener`);
      this.#root = (await this.opts.open((await this.#keyring())?.root_id)).provider;
    }
    await this.#openWith(this.#root);
  }

  async #keyring(db: Executor = this.storage.db): Promise<KeyringRecord | null> {
    const row = await db.selectFrom('settings').select('value').where('name', '=', KEYRING).executeTakeFirst();
    return row ? (JSON.parse(row.value) as KeyringRecord) : null;
  }

  /**
   * Root rotation (the yearly ceremony; approved by a second principal): a new root key — generated in the token
   * for pkcs11 — wraps the keyring and everything `rewrap` moves (the system KEKs), in `db`'s transaction. Until
   * it commits both roots unwrap; `afterCommit` makes the new one current, `onRollback` forgets it.
   */
  async rotateRoot(
    db: Executor,
    hooks: { afterCommit: (fn: () => Promise<void>) => void; onRollback: (fn: () => void) => void },
    next?: { provider: RootKeyProvider; commit: () => Promise<void> },
  ): Promise<{ from: string; to: string; rewrapped: number }> {
    const from = this.#root;
    if (this.#state !== 'unsealed' || !from) throw new PalisadeError('PAL_SEAL_SEALED');
    const fresh = next ?? (await this.opts.nextRoot?.());
    if (!fresh) throw new PalisadeError('PAL_VALIDATION_FAILED', `the ${this.opts.provider} seal rotates its root with operator rekey --rotate-root`);
    const rec = (await this.#keyring(db))!;
    const keyring = await from.unwrap(Buffer.from(rec.wrapped, 'base64'));
    const wrapped = (await fresh.provider.wrap(keyring)).toString('base64');
    keyring.fill(0);
    await db.updateTable('settings').set({ value: JSON.stringify({ provider: rec.provider, wrapped, root_id: fresh.provider.id }) }).where('name', '=', KEYRING).execute();
    const rewrapped = await this.#rewrapRoot(db, from, fresh.provider);
    this.#nextRoot = fresh.provider;
    hooks.onRollback(() => {
      this.#nextRoot = null;
      void fresh.provider.close();
    });
    hooks.afterCommit(async () => {
      await fresh.commit();
      this.#root = fresh.provider;
      this.#nextRoot = null;
      await from.close();
    });
    return { from: from.id, to: fresh.provider.id, rewrapped };
  }

  /** Unwrap the keyring with `root` (creating it on the very first unseal) and open the barrier. */
  async #openWith(root: RootKeyProvider): Promise<void> {
    const db = this.storage.db;
    let row = await db.selectFrom('settings').select('value').where('name', '=', KEYRING).executeTakeFirst();
    if (!row) {
      const fresh = randomBytes(32);
      const value = JSON.stringify({ provider: root.name, wrapped: (await root.wrap(fresh)).toString('base64'), root_id: root.id } satisfies KeyringRecord);
      fresh.fill(0);
      await db.insertInto('settings').values({ name: KEYRING, value }).onConflict((oc) => oc.column('name').doNothing()).execute();
      row = await db.selectFrom('settings').select('value').where('name', '=', KEYRING).executeTakeFirstOrThrow(); // another node may have won
    }
    const stored = JSON.parse(row.value) as KeyringRecord;
    if (stored.provider !== root.name) {
      throw new PalisadeError('PAL_SEAL_CORRUPT', `this database was sealed with the "${stored.provider}" provider, not "${root.name}"; start with seal.provider: ${stored.provider}`);
    }
    if (stored.root_id !== undefined && stored.root_id !== root.id) {
      throw new PalisadeError('PAL_SEAL_CORRUPT', `this database was sealed with root "${stored.root_id}", but the ${root.name} provider holds "${root.id}"`);
    }
    const key = await root.unwrap(Buffer.from(stored.wrapped, 'base64'));
    this.#barrier = new Barrier(key);
    key.fill(0);
    this.#root = root;
    this.#state = 'unsealed';
    for (const fn of this.#onUnseal) await fn();
  }
}
