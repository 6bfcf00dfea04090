/**
 * Request-signing keys: HMAC-SHA256 secrets that belong to a principal, with which agents sign their requests
 * (`Palisade-Signature`, ADR 0012) and the gateway verifies them. The verifier needs the secret itself, so it is
 * stored sealed by the barrier (as EAB keys and TOTP secrets are), bound to its key id and principal, and shown once.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { PalisadeError, randomBytes, randomId, type SigningKeyInfo } from '@palisade/core';
import type { Executor, Storage } from '../../storage/database.js';
import type { SigningKeyTable } from '../../storage/schema.js';
import type { Barrier } from '../../kernel/seal/barrier.js';
import type { AuthGeneration } from '../../kernel/auth/generation.js';
import { RequestVerifier, type RequestVerifierOptions } from '../../kernel/signing/verifier.js';
import type { ReplayCache } from '../../kernel/signing/replay-cache.js';
import type { GatewaySignatures } from './gateway.js';

/**
 * The barrier purpose (AAD) of a key's secret: a sealed secret moved to another row, or a row given to another
 * principal, no longer opens. The id (`sk_` + base32) has no `/`, so the string is unambiguous.
 */
export const signingKeyPurpose = (id: string, principal_id: string): string => `gateway/signing-key/${id}/${principal_id}`;

/**
 * A valid key's secret is reused for this long, so the gateway's request path does not wait on the database.
 * Revocation on this node takes effect at once; on other nodes when the authorization generation moves (PostgreSQL
 * NOTIFY at commit, else its poll), and within this bound in any case.
 */
const SECRET_CACHE_MS = 1000;
const SECRET_CACHE_MAX = 10_000;

export interface SigningKeysOptions {
  storage: Storage;
  /** The barrier (throws PAL_SEAL_SEALED while sealed). */
  barrier: () => Barrier;
  /** Revocation bumps it; a change on any node drops every node's cache of secrets. */
  generation?: AuthGeneration;
  clock?: () => Date;
  /** How long a secret is cached (default 1000 ms). */
  cacheMs?: number;
}

function info(r: SigningKeyTable): SigningKeyInfo {
  return { id: r.id, principal_id: r.principal_id, name: r.name, created_at: r.created_at, created_by: r.created_by, revoked_at: r.revoked_at };
}

const INFO_COLUMNS = ['id', 'principal_id', 'name', 'created_at', 'created_by', 'revoked_at'] as const;

export class SigningKeys {
  readonly #storage: Storage;
  readonly #barrier: () => Barrier;
  readonly #generation: AuthGeneration | undefined;
  readonly #clock: () => Date;
  readonly #cacheMs: number;
  readonly #cache = new Map<string, { secret: Buffer; principal_id: string; at: number }>();
  /** Moves whenever the cache is dropped: a lookup that overlapped a change does not cache what it read. */
  #epoch = 0;

  constructor(opts: SigningKeysOptions) {
    this.#storage = opts.storage;
    this.#barrier = opts.barrier;
    this.#generation = opts.generation;
    this.#clock = opts.clock ?? (() => new Date());
    this.#cacheMs = opts.cacheMs ?? SECRET_CACHE_MS;
    opts.generation?.onChange(() => this.#forgetAll());
  }

  /** A new key for `principal_id`; its `secret` (32 random bytes, base64url) is returned here and never again. */
  async create(db: Executor, input: { principal_id: string; name: string; created_by: string }): Promise<SigningKeyInfo & { secret: string }> {
    const id = randomId('sk');
    const secret = randomBytes(32);
    try {
      const row: SigningKeyTable = {
        id,
        principal_id: input.principal_id,
        name: input.name,
        secret: this.#barrier().seal(signingKeyPurpose(id, input.principal_id), secret),
        created_at: this.#clock().toISOString(),
        created_by: input.created_by,
        revoked_at: null,
      };
      await db.insertInto('signing_keys').values(row).execute();
      return { ...info(row), secret: secret.toString('base64url') };
    } finally {
      secret.fill(0);
    }
  }

  /** Keys (never their secrets), oldest first: all of them, or one principal's. */
  async list(db: Executor, principal_id?: string): Promise<SigningKeyInfo[]> {
    let q = db.selectFrom('signing_keys').select(INFO_COLUMNS).orderBy('created_at').orderBy('id');
    if (principal_id !== undefined) q = q.where('principal_id', '=', principal_id);
    return (await q.execute()).map((r) => ({ ...r }));
  }

  /** One key (never its secret); PAL_GATEWAY_SIGNING_KEY_NOT_FOUND when there is none. */
  async get(db: Executor, id: string): Promise<SigningKeyInfo> {
    const row = await db.selectFrom('signing_keys').select(INFO_COLUMNS).where('id', '=', id).executeTakeFirst();
    if (!row) throw new PalisadeError('PAL_GATEWAY_SIGNING_KEY_NOT_FOUND', `no signing key ${id}`);
    return { ...row };
  }

  /** Revokes a key (revoking twice keeps the first time); its signatures are refused from then on, on every node. */
  async revoke(db: Executor, id: string): Promise<SigningKeyInfo> {
    const now = this.#clock().toISOString();
    const changed = await db.updateTable('signing_keys').set({ revoked_at: now }).where('id', '=', id).where('revoked_at', 'is', null).executeTakeFirst();
    this.#forget(id);
    if (changed.numUpdatedRows > 0n) await this.#generation?.bump(db);
    return this.get(db, id);
  }

  /**
   * The gateway's lookup: a key's secret and principal, or null when the key is unknown or revoked. Throws
   * PAL_SEAL_SEALED while the server is sealed (and drops what it cached). The buffer returned is the caller's.
   */
  async secretFor(keyId: string): Promise<{ secret: Buffer; principal_id: string } | null> {
    let barrier: Barrier;
    try {
      barrier = this.#barrier();
    } catch (e) {
      this.#forgetAll();
      throw e;
    }
    const cached = this.#cache.get(keyId);
    if (cached && Date.now() - cached.at < this.#cacheMs) return { secret: Buffer.from(cached.secret), principal_id: cached.principal_id };
    const epoch = this.#epoch;
    const row = await this.#storage.db.selectFrom('signing_keys').select(['id', 'principal_id', 'secret', 'revoked_at']).where('id', '=', keyId).executeTakeFirst();
    if (!row || row.revoked_at !== null) {
      this.#forget(keyId);
      return null;
    }
    const secret = barrier.open(signingKeyPurpose(row.id, row.principal_id), row.secret);
    if (epoch === this.#epoch && this.#cacheMs > 0) {
      if (this.#cache.size >= SECRET_CACHE_MAX) this.#forgetAll();
      this.#forget(keyId);
      this.#cache.set(keyId, { secret: Buffer.from(secret), principal_id: row.principal_id, at: Date.now() });
    }
    return { secret, principal_id: row.principal_id };
  }

  #forget(keyId: string): void {
    this.#cache.get(keyId)?.secret.fill(0);
    this.#cache.delete(keyId);
  }

  #forgetAll(): void {
    this.#epoch++;
    for (const v of this.#cache.values()) v.secret.fill(0);
    this.#cache.clear();
  }
}

export interface SignatureVerifierOptions {
  /** Seconds a signature's timestamp may be from the server's clock, either way (default 300). */
  skewSeconds?: number;
  /** Headers every signature must cover (default `host`). */
  requiredHeaders?: readonly string[];
}

/**
 * The gateway's `GatewaySignatures`: RequestVerifier (skew, key, constant-time HMAC, then the nonce in `replay`)
 * over the signing keys, answering which key signed and whose it is. The gateway then checks that the key's
 * principal is the authenticated one. Every failure is a 401 with its own PAL_SIGNATURE_* code.
 */
export function signatureVerifier(keys: Pick<SigningKeys, 'secretFor'>, replay: ReplayCache, clock: () => Date, opts: SignatureVerifierOptions = {}): GatewaySignatures {
  const base: Omit<RequestVerifierOptions, 'secrets'> = { replay, clock, requiredHeaders: opts.requiredHeaders ?? ['host'], ...(opts.skewSeconds !== undefined ? { skewSeconds: opts.skewSeconds } : {}) };
  void new RequestVerifier({ ...base, secrets: async () => null }); // invalid options fail here, at wiring time
  return {
    async verify(req: { method: string; url: string; headers: IncomingHttpHeaders; body: Buffer }): Promise<{ keyId: string; principal_id: string }> {
      // One verifier per request, so the principal of the secret it used is this request's (a second lookup after
      // verifying could race a revocation or a cache drop).
      const used: { principal_id?: string } = {};
      const verifier = new RequestVerifier({
        ...base,
        secrets: async (keyId) => {
          const found = await keys.secretFor(keyId);
          if (found) used.principal_id = found.principal_id;
          return found?.secret ?? null;
        },
      });
      const v = await verifier.verify({ method: req.method, url: req.url, headers: req.headers, body: req.body });
      if (used.principal_id === undefined) throw new PalisadeError('PAL_SIGNATURE_KEY_UNKNOWN', `no signing key "${v.keyId}"`); // not reached: verify() refused already
      return { keyId: v.keyId, principal_id: used.principal_id };
    },
  };
}
