import { constantTimeEqual, PalisadeError, randomBytes, randomId, sha256 } from '@palisade/core';
import type { ApiKeyInfo } from '@palisade/core';
import type { Executor, Storage } from '../../storage/database.js';
import type { ApiKeyTable } from '../../storage/schema.js';
import type { AuthGeneration } from './generation.js';

/** Who a request acts as: an API key's principal, or a client certificate's SPIFFE id (then `api_key_id` is null). */
export interface Principal {
  principal_id: string;
  api_key_id: string | null;
  permissions: string[];
  /** How the request authenticated (absent: an API key). */
  method?: 'api_key' | 'session' | 'access_token' | 'client_certificate';
  /** For a session: its id's hash (sign-out, step-up) and when a second factor was last verified in it. */
  session?: { id_hash: Buffer; mfa_at: string | null; mfa_method: string | null };
  /** For an access token: its jti and client. */
  token?: { jti: string; client_id: string; exp: number };
  /**
   * What the credential may carry at most, when it has a list of its own (an access token's scope, a session
   * restricted to MFA enrolment; an API key's list is its `permissions`): bindings and rules grant nothing beyond it.
   */
  ceiling?: string[];
  /** For a client certificate: its SPIFFE id (also when the principal is the service registered with it). */
  spiffe_id?: string;
}

const TOKEN_PREFIX = 'pal_';
const LAST_USED_RESOLUTION_MS = 60_000;
/**
 * A valid key's row is reused for this long, so the request path does not wait on the database (on SQLite that
 * wait would serialize every request behind the write transaction and defeat group commit). Revocation on this
 * node takes effect at once; on another node of a PostgreSQL deployment within this bound.
 */
const AUTH_CACHE_MS = 1000;

/** A new API key token: `pal_` + 256 random bits, base64url. Only its SHA-256 is stored. */
export function newToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

export function hashToken(token: string): Buffer {
  return sha256(Buffer.from(token, 'utf8'));
}

function toInfo(row: ApiKeyTable): ApiKeyInfo {
  return {
    id: row.id,
    name: row.name,
    principal_id: row.principal_id,
    permissions: JSON.parse(row.permissions) as string[],
    created_at: row.created_at,
    expires_at: row.expires_at,
    last_used_at: row.last_used_at,
    revoked_at: row.revoked_at,
  };
}

/**
 * API keys are high-entropy bearer tokens, so a fast hash is the right store (as GitHub and Stripe do); lookup is by
 * the hash's unique index and the match is re-checked in constant time.
 */
export class ApiKeyService {
  readonly #lastUsedWritten = new Map<string, number>();
  /** Valid keys by their hash (base64), with what every request needs of the row already parsed. */
  readonly #valid = new Map<string, { row: ApiKeyTable; at: number; permissions: string[]; expiresMs: number }>();

  constructor(
    private readonly storage: Storage,
    private readonly clock: () => Date = () => new Date(),
    /** Revocation bumps it; any change on any node drops the cache of valid keys. */
    private readonly generation?: AuthGeneration,
  ) {
    generation?.onChange(() => this.#valid.clear());
  }

  async authenticate(token: string): Promise<Principal> {
    const hash = hashToken(token);
    const now = this.clock();
    const cacheKey = hash.toString('base64');
    let entry = this.#valid.get(cacheKey);
    if (!entry || Date.now() - entry.at >= AUTH_CACHE_MS) {
      const row = await this.storage.db.selectFrom('api_keys').selectAll().where('token_hash', '=', hash).executeTakeFirst();
      if (this.#valid.size >= 10_000) this.#valid.clear();
      if (row && row.revoked_at === null) {
        entry = { row, at: Date.now(), permissions: JSON.parse(row.permissions) as string[], expiresMs: row.expires_at === null ? Infinity : Date.parse(row.expires_at) };
        this.#valid.set(cacheKey, entry);
      } else {
        entry = undefined;
        this.#valid.delete(cacheKey);
      }
    }
    if (!entry || !constantTimeEqual(entry.row.token_hash, hash) || entry.expiresMs <= now.getTime()) throw new PalisadeError('PAL_AUTH_INVALID');
    this.#touch(entry.row.id, now);
    return { principal_id: entry.row.principal_id, api_key_id: entry.row.id, permissions: [...entry.permissions] };
  }

  /** last_used_at is informational: written at most once a minute per key per node, never on the request's path. */
  #touch(id: string, now: Date): void {
    const last = this.#lastUsedWritten.get(id) ?? 0;
    if (now.getTime() - last < LAST_USED_RESOLUTION_MS) return;
    this.#lastUsedWritten.set(id, now.getTime());
    this.storage.db
      .updateTable('api_keys')
      .set({ last_used_at: now.toISOString() })
      .where('id', '=', id)
      .execute()
      .catch(() => this.#lastUsedWritten.delete(id));
  }

  async create(
    db: Executor,
    input: { name: string; principal_id: string; permissions: string[]; expires_at?: string | null; created_by: string | null; token?: string },
  ): Promise<ApiKeyInfo & { token: string }> {
    const token = input.token ?? newToken();
    const row: ApiKeyTable = {
      id: randomId('ak'),
      name: input.name,
      principal_id: input.principal_id,
      token_hash: hashToken(token),
      permissions: JSON.stringify(input.permissions),
      created_at: this.clock().toISOString(),
      created_by: input.created_by,
      expires_at: input.expires_at ?? null,
      revoked_at: null,
      last_used_at: null,
    };
    await db.insertInto('api_keys').values(row).execute();
    return { ...toInfo(row), token };
  }

  async list(db: Executor = this.storage.db): Promise<ApiKeyInfo[]> {
    const rows = await db.selectFrom('api_keys').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map(toInfo);
  }

  async revoke(db: Executor, id: string): Promise<ApiKeyInfo> {
    const row = await db.selectFrom('api_keys').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new PalisadeError('PAL_AUTH_API_KEY_NOT_FOUND');
    for (const [k, v] of this.#valid) if (v.row.id === id) this.#valid.delete(k);
    if (row.revoked_at === null) {
      row.revoked_at = this.clock().toISOString();
      await db.updateTable('api_keys').set({ revoked_at: row.revoked_at }).where('id', '=', id).execute();
      await this.generation?.bump(db);
    }
    return toInfo(row);
  }

  async count(): Promise<number> {
    const r = await this.storage.db.selectFrom('api_keys').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return Number(r.n);
  }
}
