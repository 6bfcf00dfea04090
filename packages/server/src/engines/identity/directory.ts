import { PalisadeError, randomId, type Group, type Organization, type ServiceIdentity, type User } from '@palisade/core';

export type { Group, Organization, ServiceIdentity, User };
import type { Executor } from '../../storage/database.js';
import type { GroupTable, ServiceIdentityTable, UserTable } from '../../storage/schema.js';
import { isRole, ROLES } from '../../kernel/auth/roles.js';
import { hashPassword } from './password-hash.js';
import { checkPassword } from './password-policy.js';

export const DEFAULT_ORG = 'default';

export interface NewUser {
  username: string;
  password?: string | undefined;
  email?: string | null | undefined;
  display_name?: string | null | undefined;
  given_name?: string | null | undefined;
  family_name?: string | null | undefined;
  active?: boolean | undefined;
  roles?: string[] | undefined;
  external_id?: string | null | undefined;
  source?: string | undefined;
  federated_subject?: string | null | undefined;
  mfa_required?: boolean | undefined;
  org_id?: string | undefined;
}

export type UserPatch = Partial<Pick<NewUser, 'username' | 'email' | 'display_name' | 'given_name' | 'family_name' | 'active' | 'roles' | 'external_id' | 'mfa_required'>>;

/** One account per name whatever its case or Unicode form (`Alice`, `alice`, `ａｌｉｃｅ`). */
export function usernameKey(username: string): string {
  return username.normalize('NFKC').toLowerCase();
}

function roles(json: string): string[] {
  return JSON.parse(json) as string[];
}

function checkRoles(list: readonly string[] | undefined): string[] {
  const unknown = (list ?? []).filter((r) => !isRole(r));
  if (unknown.length > 0) throw new PalisadeError('PAL_IDENTITY_UNKNOWN_ROLE', `unknown role ${unknown.join(', ')}`, { extensions: { roles: ROLES } });
  return [...new Set(list ?? [])];
}

export function toUser(row: UserTable): User {
  return {
    id: row.id,
    org_id: row.org_id,
    username: row.username,
    email: row.email,
    display_name: row.display_name,
    given_name: row.given_name,
    family_name: row.family_name,
    active: row.active === 1,
    roles: roles(row.roles),
    external_id: row.external_id,
    source: row.source,
    mfa_required: row.mfa_required === 1,
    has_password: row.password_hash !== null,
    created_at: row.created_at,
    updated_at: row.updated_at,
    version: row.version,
  };
}

function toService(row: ServiceIdentityTable): ServiceIdentity {
  return { id: row.id, org_id: row.org_id, name: row.name, description: row.description, roles: roles(row.roles), spiffe_id: row.spiffe_id, active: row.active === 1, created_at: row.created_at, updated_at: row.updated_at };
}

async function unique<T>(what: () => Promise<T>, code: 'PAL_IDENTITY_USER_EXISTS' | 'PAL_IDENTITY_GROUP_EXISTS' | 'PAL_IDENTITY_SERVICE_EXISTS' | 'PAL_IDENTITY_ORG_EXISTS'): Promise<T> {
  try {
    return await what();
  } catch (e) {
    if (/unique|duplicate/i.test(String((e as Error).message))) throw new PalisadeError(code);
    throw e;
  }
}

/**
 * Users (people), service identities (agents and services) and groups, in organisations. Every method takes the
 * executor of the caller's transaction, so a change and its audit event commit together.
 */
export class Directory {
  constructor(
    private readonly clock: () => Date,
    private readonly passwordMinLength = 12,
    /** Records, in the changing transaction, that who may do what changed (the auth generation). */
    private readonly authChanged: (db: Executor) => Promise<void> = async () => undefined,
  ) {}

  // -------------------------------------------------------------------------------------------- organisations
  // The organisation every installation starts with is implicit (no row): a fresh database stays empty, which is
  // what a backup restore checks before it writes.
  static readonly DEFAULT: Organization = { id: DEFAULT_ORG, name: DEFAULT_ORG, display_name: 'Default organisation', created_at: '1970-01-01T00:00:00.000Z' };

  async createOrganization(db: Executor, input: { name: string; display_name?: string | null }): Promise<Organization> {
    if (input.name === DEFAULT_ORG) throw new PalisadeError('PAL_IDENTITY_ORG_EXISTS');
    const row = { id: randomId('org'), name: input.name, display_name: input.display_name ?? null, created_at: this.clock().toISOString() };
    await unique(() => db.insertInto('organizations').values(row).execute(), 'PAL_IDENTITY_ORG_EXISTS');
    return row;
  }

  async listOrganizations(db: Executor): Promise<Organization[]> {
    return [Directory.DEFAULT, ...(await db.selectFrom('organizations').selectAll().orderBy('created_at').orderBy('id').execute())];
  }

  async getOrganization(db: Executor, id: string): Promise<Organization> {
    if (id === DEFAULT_ORG) return Directory.DEFAULT;
    const row = await db.selectFrom('organizations').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new PalisadeError('PAL_IDENTITY_ORG_NOT_FOUND');
    return row;
  }

  // ------------------------------------------------------------------------------------------------ users
  async createUser(db: Executor, input: NewUser): Promise<User> {
    const now = this.clock().toISOString();
    if (input.org_id !== undefined) await this.getOrganization(db, input.org_id);
    const username = input.username.normalize('NFKC');
    let password_hash: string | null = null;
    if (input.password !== undefined) {
      password_hash = await this.#hashChecked(input.password, username, input.email ?? undefined);
    }
    const row: UserTable = {
      id: randomId('usr'),
      org_id: input.org_id ?? DEFAULT_ORG,
      username,
      username_key: usernameKey(username),
      email: input.email ?? null,
      display_name: input.display_name ?? null,
      given_name: input.given_name ?? null,
      family_name: input.family_name ?? null,
      password_hash,
      active: input.active === false ? 0 : 1,
      roles: JSON.stringify(checkRoles(input.roles)),
      external_id: input.external_id ?? null,
      source: input.source ?? 'local',
      federated_subject: input.federated_subject ?? null,
      mfa_required: input.mfa_required ? 1 : 0,
      credentials_valid_after: now,
      created_at: now,
      updated_at: now,
      version: 1,
    };
    await unique(() => db.insertInto('users').values(row).execute(), 'PAL_IDENTITY_USER_EXISTS');
    return toUser(row);
  }

  async #hashChecked(password: string, username: string, email: string | undefined): Promise<string> {
    const violations = checkPassword(password, { username, ...(email ? { email } : {}), minLength: this.passwordMinLength });
    if (violations.length > 0) throw new PalisadeError('PAL_AUTH_PASSWORD_POLICY', `the password is not accepted: ${violations.join(', ')}`, { extensions: { violations } });
    return hashPassword(password);
  }

  async userRow(db: Executor, id: string): Promise<UserTable> {
    const row = await db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new PalisadeError('PAL_IDENTITY_USER_NOT_FOUND');
    return row;
  }

  async getUser(db: Executor, id: string): Promise<User> {
    return toUser(await this.userRow(db, id));
  }

  async userByUsername(db: Executor, username: string): Promise<UserTable | undefined> {
    return db.selectFrom('users').selectAll().where('username_key', '=', usernameKey(username)).executeTakeFirst();
  }

  async userByFederatedSubject(db: Executor, subject: string): Promise<UserTable | undefined> {
    return db.selectFrom('users').selectAll().where('federated_subject', '=', subject).executeTakeFirst();
  }

  /** Users in creation order; the equality filters are the indexed ones SCIM clients use to find an account. */
  async listUsers(db: Executor, q: { offset?: number; limit?: number; username?: string; external_id?: string; email?: string; org_id?: string } = {}): Promise<{ total: number; users: User[] }> {
    let base = db.selectFrom('users');
    if (q.org_id !== undefined) base = base.where('org_id', '=', q.org_id);
    if (q.username !== undefined) base = base.where('username_key', '=', usernameKey(q.username));
    if (q.external_id !== undefined) base = base.where('external_id', '=', q.external_id);
    if (q.email !== undefined) base = base.where('email', '=', q.email);
    const total = Number((await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
    const rows = await base
      .selectAll()
      .orderBy('created_at')
      .orderBy('id')
      .offset(q.offset ?? 0)
      .limit(q.limit ?? 100)
      .execute();
    return { total, users: rows.map(toUser) };
  }

  /**
   * Changes the given attributes; returns the names of those that changed. Deactivating an account ends its
   * sessions, refresh tokens and API keys in the same transaction (and access tokens at their next check).
   */
  async updateUser(db: Executor, id: string, patch: UserPatch): Promise<{ user: User; changed: string[] }> {
    const row = await this.userRow(db, id);
    const set: Partial<UserTable> = {};
    const changed: string[] = [];
    const put = <K extends keyof UserTable>(name: string, key: K, value: UserTable[K]) => {
      if (row[key] !== value) {
        set[key] = value;
        changed.push(name);
      }
    };
    if (patch.username !== undefined) {
      put('username', 'username', patch.username.normalize('NFKC'));
      set.username_key = usernameKey(patch.username);
    }
    if (patch.email !== undefined) put('email', 'email', patch.email);
    if (patch.display_name !== undefined) put('display_name', 'display_name', patch.display_name);
    if (patch.given_name !== undefined) put('given_name', 'given_name', patch.given_name);
    if (patch.family_name !== undefined) put('family_name', 'family_name', patch.family_name);
    if (patch.external_id !== undefined) put('external_id', 'external_id', patch.external_id);
    if (patch.active !== undefined) put('active', 'active', patch.active ? 1 : 0);
    if (patch.mfa_required !== undefined) put('mfa_required', 'mfa_required', patch.mfa_required ? 1 : 0);
    if (patch.roles !== undefined) {
      const next = JSON.stringify(checkRoles(patch.roles));
      put('roles', 'roles', next);
    }
    if (changed.length === 0) return { user: toUser(row), changed };
    const now = this.clock().toISOString();
    Object.assign(set, { updated_at: now, version: row.version + 1 });
    if (set.active === 0 || set.roles !== undefined) set.credentials_valid_after = now;
    await unique(() => db.updateTable('users').set(set).where('id', '=', id).execute(), 'PAL_IDENTITY_USER_EXISTS');
    if (set.active === 0) await this.revokeCredentials(db, id);
    else if (set.roles !== undefined || set.active !== undefined) await this.authChanged(db);
    return { user: toUser({ ...row, ...set }), changed };
  }

  async setPassword(db: Executor, id: string, password: string): Promise<void> {
    const row = await this.userRow(db, id);
    const hash = await this.#hashChecked(password, row.username, row.email ?? undefined);
    const now = this.clock().toISOString();
    await db.updateTable('users').set({ password_hash: hash, updated_at: now, credentials_valid_after: now, version: row.version + 1 }).where('id', '=', id).execute();
  }

  /** Store a stronger hash of a password that just verified (cost parameters went up since it was set). */
  async rehashPassword(db: Executor, id: string, hash: string): Promise<void> {
    await db.updateTable('users').set({ password_hash: hash }).where('id', '=', id).execute();
  }

  async deleteUser(db: Executor, id: string): Promise<User> {
    const row = await this.userRow(db, id);
    await this.revokeCredentials(db, id);
    await db.deleteFrom('group_members').where('user_id', '=', id).execute();
    await db.deleteFrom('mfa_factors').where('user_id', '=', id).execute();
    await db.deleteFrom('recovery_codes').where('user_id', '=', id).execute();
    await db.deleteFrom('users').where('id', '=', id).execute();
    return toUser(row);
  }

  /** Sessions, refresh tokens and API keys of a principal stop working (access tokens: at their next check). */
  async revokeCredentials(db: Executor, principalId: string): Promise<void> {
    const now = this.clock().toISOString();
    await db.deleteFrom('sessions').where('user_id', '=', principalId).execute();
    await db.updateTable('oauth_refresh_tokens').set({ revoked_at: now }).where('principal_id', '=', principalId).where('revoked_at', 'is', null).execute();
    await db.updateTable('api_keys').set({ revoked_at: now }).where('principal_id', '=', principalId).where('revoked_at', 'is', null).execute();
    await this.authChanged(db);
  }

  /** Roles of a user, its own and its groups', each with where it comes from; and its groups. */
  async userRoles(db: Executor, row: UserTable): Promise<{ roles: Array<{ role: string; via: string }>; groups: string[] }> {
    const groups = await db.selectFrom('group_members').innerJoin('groups', 'groups.id', 'group_members.group_id').select(['groups.id', 'groups.roles']).where('group_members.user_id', '=', row.id).execute();
    return {
      roles: [...roles(row.roles).map((role) => ({ role, via: 'user' })), ...groups.flatMap((g) => roles(g.roles).map((role) => ({ role, via: `group:${g.id}` })))],
      groups: groups.map((g) => g.id),
    };
  }

  // ----------------------------------------------------------------------------------------------- groups
  async createGroup(db: Executor, input: { display_name: string; external_id?: string | null; roles?: string[]; members?: string[] }): Promise<Group> {
    const now = this.clock().toISOString();
    const row: GroupTable = {
      id: randomId('grp'),
      org_id: DEFAULT_ORG,
      display_name: input.display_name,
      external_id: input.external_id ?? null,
      roles: JSON.stringify(checkRoles(input.roles)),
      created_at: now,
      updated_at: now,
      version: 1,
    };
    await unique(() => db.insertInto('groups').values(row).execute(), 'PAL_IDENTITY_GROUP_EXISTS');
    await this.#setMembers(db, row.id, input.members ?? []);
    return this.getGroup(db, row.id);
  }

  async getGroup(db: Executor, id: string): Promise<Group> {
    const row = await db.selectFrom('groups').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new PalisadeError('PAL_IDENTITY_GROUP_NOT_FOUND');
    const members = await db.selectFrom('group_members').select('user_id').where('group_id', '=', id).orderBy('user_id').execute();
    return { id: row.id, org_id: row.org_id, display_name: row.display_name, external_id: row.external_id, roles: roles(row.roles), members: members.map((m) => m.user_id), created_at: row.created_at, updated_at: row.updated_at, version: row.version };
  }

  async listGroups(db: Executor, q: { offset?: number; limit?: number; display_name?: string; external_id?: string } = {}): Promise<{ total: number; groups: Group[] }> {
    let base = db.selectFrom('groups');
    if (q.display_name !== undefined) base = base.where('display_name', '=', q.display_name);
    if (q.external_id !== undefined) base = base.where('external_id', '=', q.external_id);
    const total = Number((await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
    const ids = await base.select('id').orderBy('created_at').orderBy('id').offset(q.offset ?? 0).limit(q.limit ?? 100).execute();
    const groups: Group[] = [];
    for (const { id } of ids) groups.push(await this.getGroup(db, id));
    return { total, groups };
  }

  /** `members` replaces the member list; `add`/`remove` edit it. Members' credentials are re-checked (roles changed). */
  async updateGroup(db: Executor, id: string, patch: { display_name?: string; external_id?: string | null; roles?: string[]; members?: string[]; add?: string[]; remove?: string[] }): Promise<{ group: Group; changed: string[] }> {
    const before = await this.getGroup(db, id);
    const changed: string[] = [];
    const set: Partial<GroupTable> = {};
    if (patch.display_name !== undefined && patch.display_name !== before.display_name) {
      set.display_name = patch.display_name;
      changed.push('display_name');
    }
    if (patch.external_id !== undefined && patch.external_id !== before.external_id) {
      set.external_id = patch.external_id;
      changed.push('external_id');
    }
    if (patch.roles !== undefined) {
      const next = checkRoles(patch.roles);
      if (JSON.stringify(next) !== JSON.stringify(before.roles)) {
        set.roles = JSON.stringify(next);
        changed.push('roles');
      }
    }
    let members = new Set(patch.members ?? before.members);
    for (const m of patch.add ?? []) members.add(m);
    for (const m of patch.remove ?? []) members.delete(m);
    members = new Set([...members].sort());
    const membersChanged = JSON.stringify([...members]) !== JSON.stringify(before.members);
    if (membersChanged) changed.push('members');
    if (changed.length === 0) return { group: before, changed };
    await unique(
      () => db.updateTable('groups').set({ ...set, updated_at: this.clock().toISOString(), version: before.version + 1 }).where('id', '=', id).execute(),
      'PAL_IDENTITY_GROUP_EXISTS',
    );
    if (membersChanged) await this.#setMembers(db, id, [...members]);
    if (membersChanged || set.roles !== undefined) await this.authChanged(db);
    return { group: await this.getGroup(db, id), changed };
  }

  async deleteGroup(db: Executor, id: string): Promise<Group> {
    const group = await this.getGroup(db, id);
    await db.deleteFrom('group_members').where('group_id', '=', id).execute();
    await db.deleteFrom('groups').where('id', '=', id).execute();
    await this.authChanged(db);
    return group;
  }

  async #setMembers(db: Executor, groupId: string, userIds: string[]): Promise<void> {
    const unique = [...new Set(userIds)];
    if (unique.length > 0) {
      const found = await db.selectFrom('users').select('id').where('id', 'in', unique).execute();
      if (found.length !== unique.length) {
        const known = new Set(found.map((f) => f.id));
        throw new PalisadeError('PAL_IDENTITY_USER_NOT_FOUND', `no user ${unique.filter((u) => !known.has(u)).join(', ')}`);
      }
    }
    await db.deleteFrom('group_members').where('group_id', '=', groupId).execute();
    if (unique.length > 0) await db.insertInto('group_members').values(unique.map((user_id) => ({ group_id: groupId, user_id }))).execute();
  }

  // ------------------------------------------------------------------------------------- service identities
  async createService(db: Executor, input: { name: string; description?: string | null; roles?: string[]; spiffe_id?: string | null; org_id?: string | undefined }): Promise<ServiceIdentity> {
    const now = this.clock().toISOString();
    if (input.org_id !== undefined) await this.getOrganization(db, input.org_id);
    const row: ServiceIdentityTable = {
      id: randomId('svc'),
      org_id: input.org_id ?? DEFAULT_ORG,
      name: input.name,
      description: input.description ?? null,
      roles: JSON.stringify(checkRoles(input.roles ?? ['agent'])),
      spiffe_id: input.spiffe_id ?? null,
      active: 1,
      credentials_valid_after: now,
      created_at: now,
      updated_at: now,
    };
    await unique(() => db.insertInto('service_identities').values(row).execute(), 'PAL_IDENTITY_SERVICE_EXISTS');
    return toService(row);
  }

  async serviceRow(db: Executor, id: string): Promise<ServiceIdentityTable> {
    const row = await db.selectFrom('service_identities').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new PalisadeError('PAL_IDENTITY_SERVICE_NOT_FOUND');
    return row;
  }

  async getService(db: Executor, id: string): Promise<ServiceIdentity> {
    return toService(await this.serviceRow(db, id));
  }

  async listServices(db: Executor): Promise<ServiceIdentity[]> {
    return (await db.selectFrom('service_identities').selectAll().orderBy('created_at').orderBy('id').execute()).map(toService);
  }

  async updateService(db: Executor, id: string, patch: { description?: string | null; roles?: string[]; active?: boolean }): Promise<{ service: ServiceIdentity; changed: string[] }> {
    const row = await this.serviceRow(db, id);
    const set: Partial<ServiceIdentityTable> = {};
    if (patch.description !== undefined && patch.description !== row.description) set.description = patch.description;
    if (patch.roles !== undefined) {
      const next = JSON.stringify(checkRoles(patch.roles));
      if (next !== row.roles) set.roles = next;
    }
    if (patch.active !== undefined && (patch.active ? 1 : 0) !== row.active) set.active = patch.active ? 1 : 0;
    const changed = Object.keys(set);
    if (changed.length === 0) return { service: toService(row), changed };
    const now = this.clock().toISOString();
    if (set.active === 0 || set.roles !== undefined) set.credentials_valid_after = now;
    await db.updateTable('service_identities').set({ ...set, updated_at: now }).where('id', '=', id).execute();
    if (set.active === 0) await this.revokeCredentials(db, id);
    else if (set.roles !== undefined || set.active !== undefined) await this.authChanged(db);
    return { service: toService({ ...row, ...set, updated_at: now }), changed };
  }

  async deleteService(db: Executor, id: string): Promise<ServiceIdentity> {
    const row = await this.serviceRow(db, id);
    await this.revokeCredentials(db, id);
    await db.deleteFrom('service_identities').where('id', '=', id).execute();
    return toService(row);
  }
}
