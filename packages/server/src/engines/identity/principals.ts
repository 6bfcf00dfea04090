import type { Executor, Storage } from '../../storage/database.js';
import type { Directory } from './directory.js';
import { permissionsOf } from '../../kernel/auth/roles.js';

/** What authentication needs to know of a user or service identity right now. */
export interface PrincipalState {
  kind: 'user' | 'service';
  active: boolean;
  /** Sessions and tokens issued before this instant are dead (deactivation, role change, password change). */
  valid_after: string;
  permissions: string[];
  username: string | null;
  org_id: string;
  /** Roles held directly or through groups, with where each comes from (`user`, `service`, `group:<id>`). */
  roles: Array<{ role: string; via: string }>;
  groups: string[];
}

/**
 * Reads the state of principals for every authenticated request, cached per node for `ttlMs` (1 s): a deprovisioned
 * user or service is refused on every node within about a second, without a database read on each request.
 */
export class PrincipalStates {
  readonly #cache = new Map<string, { state: PrincipalState | null; at: number }>();

  constructor(
    private readonly storage: Storage,
    private readonly directory: Directory,
    private readonly ttlMs = 1000,
  ) {}

  /** `db`: the caller's transaction when there is one (on SQLite a read outside it would wait for it). */
  async get(id: string, db: Executor = this.storage.db): Promise<PrincipalState | null> {
    const hit = this.#cache.get(id);
    if (hit && Date.now() - hit.at < this.ttlMs) return hit.state;
    const state = await this.#load(id, db);
    if (this.#cache.size > 50_000) this.#cache.clear();
    this.#cache.set(id, { state, at: Date.now() });
    return state;
  }

  /** Forget a principal on this node at once (its change was made here). */
  forget(id: string): void {
    this.#cache.delete(id);
  }

  /** Forget every principal (who may do what changed somewhere). */
  clear(): void {
    this.#cache.clear();
  }

  async #load(id: string, db: Executor): Promise<PrincipalState | null> {
    if (id.startsWith('usr_')) {
      const row = await db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
      if (!row) return null;
      const { roles, groups } = await this.directory.userRoles(db, row);
      return { kind: 'user', active: row.active === 1, valid_after: row.credentials_valid_after, permissions: permissionsOf(roles.map((r) => r.role)), username: row.username, org_id: row.org_id, roles, groups };
    }
    const svc = await db.selectFrom('service_identities').selectAll().where('id', '=', id).executeTakeFirst();
    if (!svc) return null;
    const roles = (JSON.parse(svc.roles) as string[]).map((role) => ({ role, via: 'service' }));
    return { kind: 'service', active: svc.active === 1, valid_after: svc.credentials_valid_after, permissions: permissionsOf(roles.map((r) => r.role)), username: null, org_id: svc.org_id, roles, groups: [] };
  }
}
