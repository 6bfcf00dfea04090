/**
 * Read-side lookups SCIM needs that the Directory does not offer yet: a user's groups (the read-only `groups`
 * attribute) and members' display names, each one query per page instead of one per row, plus a row lock so two
 * concurrent PATCHes of one group cannot both read the same member list (Azure AD sends membership changes in
 * parallel). Candidates for Directory methods; see the report to the lead.
 */
import type { Executor } from '../../storage/database.js';

/** Bound on the ids in one `IN (...)` (SQLite allows 32766 parameters, PostgreSQL 65535). */
const CHUNK = 500;

function chunks<T>(list: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += CHUNK) out.push(list.slice(i, i + CHUNK));
  return out;
}

export interface GroupRef {
  id: string;
  display_name: string;
}

/** The groups of each user, by user id (users in no group are absent). */
export async function groupsOfUsers(db: Executor, userIds: readonly string[]): Promise<Map<string, GroupRef[]>> {
  const out = new Map<string, GroupRef[]>();
  for (const ids of chunks([...new Set(userIds)])) {
    const rows = await db
      .selectFrom('group_members')
      .innerJoin('groups', 'groups.id', 'group_members.group_id')
      .select(['group_members.user_id as user_id', 'groups.id as id', 'groups.display_name as display_name'])
      .where('group_members.user_id', 'in', ids)
      .orderBy('groups.display_name')
      .execute();
    for (const r of rows) {
      const list = out.get(r.user_id) ?? [];
      list.push({ id: r.id, display_name: r.display_name });
      out.set(r.user_id, list);
    }
  }
  return out;
}

/** A label for each user id: its display name, else its username. */
export async function userLabels(db: Executor, userIds: readonly string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const ids of chunks([...new Set(userIds)])) {
    const rows = await db.selectFrom('users').select(['id', 'username', 'display_name']).where('id', 'in', ids).execute();
    for (const r of rows) out.set(r.id, r.display_name ?? r.username);
  }
  return out;
}

/**
 * Take the row's write lock for the rest of the transaction before reading it (PostgreSQL; SQLite runs one writer
 * at a time anyway): a no-op update, because SQLite has no `SELECT ... FOR UPDATE`. Reading after this makes
 * read-modify-write (PATCH, `If-Match`) safe against a concurrent request on the same resource.
 */
export async function lockRow(db: Executor, table: 'users' | 'groups', id: string): Promise<void> {
  await db
    .updateTable(table)
    .set((eb) => ({ version: eb.ref('version') }))
    .where('id', '=', id)
    .execute();
}
