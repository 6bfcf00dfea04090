/**
 * Directory users and groups as SCIM resources (RFC 7643 §4) and back. Reads build the full representation that
 * filters evaluate and PATCH edits; writes read a representation (a POST/PUT body, or the result of a PATCH) back
 * into directory fields. The directory keeps one email, so the primary one (else `work`, else the first) wins.
 */
import type { Group, User } from '../identity/directory.js';
import { scimError } from './errors.js';
import type { GroupRef } from './membership.js';
import { isObject, parseAttrPath, resolvePath, schemaUrn, valuesOf } from './paths.js';
import { GROUP, GROUP_SCHEMA, USER, USER_SCHEMA, type ResourceSchema } from './schema.js';
import { coerce, coerceSub } from './values.js';

export type Resource = Record<string, unknown>;

/** The weak entity tag of a version (`meta.version`, `ETag`). */
export const etag = (version: number): string => `W/"${version}"`;

export function userResource(u: User, groups: readonly GroupRef[], base: string): Resource {
  const name: Record<string, string> = {};
  if (u.given_name !== null) name.givenName = u.given_name;
  if (u.family_name !== null) name.familyName = u.family_name;
  if (u.given_name !== null || u.family_name !== null) name.formatted = [u.given_name, u.family_name].filter((p) => p !== null).join(' ');
  return {
    schemas: [USER_SCHEMA],
    id: u.id,
    ...(u.external_id !== null ? { externalId: u.external_id } : {}),
    userName: u.username,
    ...(Object.keys(name).length > 0 ? { name } : {}),
    ...(u.display_name !== null ? { displayName: u.display_name } : {}),
    ...(u.email !== null ? { emails: [{ value: u.email, type: 'work', primary: true }] } : {}),
    active: u.active,
    groups: groups.map((g) => ({ value: g.id, $ref: `${base}/Groups/${g.id}`, display: g.display_name, type: 'direct' })),
    meta: { resourceType: 'User', created: u.created_at, lastModified: u.updated_at, location: `${base}/Users/${u.id}`, version: etag(u.version) },
  };
}

/** `labels` gives members' display names; without it (members not asked for) they carry only value and $ref. */
export function groupResource(g: Group, labels: ReadonlyMap<string, string> | null, base: string): Resource {
  return {
    schemas: [GROUP_SCHEMA],
    id: g.id,
    ...(g.external_id !== null ? { externalId: g.external_id } : {}),
    displayName: g.display_name,
    members: g.members.map((id) => ({ value: id, $ref: `${base}/Users/${id}`, type: 'User', ...(labels?.has(id) ? { display: labels.get(id) } : {}) })),
    meta: { resourceType: 'Group', created: g.created_at, lastModified: g.updated_at, location: `${base}/Groups/${g.id}`, version: etag(g.version) },
  };
}

/**
 * A POST or PUT body as a representation with canonical attribute names and checked values. Read-only attributes
 * (id, meta, groups), attributes we do not store and unknown ones are dropped: clients send their whole profile,
 * extensions included, and RFC 7644 §3.5.1 lets the server ignore what it does not keep.
 */
export function readBody(schema: ResourceSchema, body: unknown): Resource {
  if (!isObject(body)) throw scimError('invalidSyntax', `the body must be a ${schema.name} object`);
  if (body.schemas !== undefined && !(Array.isArray(body.schemas) && body.schemas.every((s) => typeof s === 'string'))) {
    throw scimError('invalidSyntax', 'schemas must be a list of schema URNs');
  }
  const out: Resource = {};
  const put = (key: string, value: unknown) => {
    const path = parseAttrPath(key);
    if (!path) return;
    let r;
    try {
      r = resolvePath(schema, path, (d) => scimError('invalidPath', d));
    } catch {
      return; // unknown: dropped (see above)
    }
    if (r.kind === 'ignored' || r.def.mutability === 'readOnly') return;
    if (r.sub === null) {
      const v = coerce(r.def, value);
      out[r.def.name] = isObject(v) && isObject(out[r.def.name]) ? { ...(out[r.def.name] as Resource), ...v } : v;
    } else if (!r.def.multiValued && r.sub.mutability !== 'readOnly') {
      const parent = isObject(out[r.def.name]) ? (out[r.def.name] as Resource) : {};
      out[r.def.name] = { ...parent, [r.sub.name]: coerceSub(r.sub, value, `${r.def.name}.${r.sub.name}`) };
    }
  };
  for (const [key, value] of Object.entries(body)) {
    if (key.toLowerCase() === 'schemas') continue;
    const urn = schemaUrn(key);
    if (urn !== undefined) {
      // `"urn:...:core:2.0:User": {...}` nests core attributes; an extension's object is dropped with its schema.
      if (urn === schema.id && isObject(value)) for (const [k, v] of Object.entries(value)) put(k, v);
      continue;
    }
    put(key, value);
  }
  return out;
}

const str = (v: unknown): string | null => (typeof v === 'string' && v.length > 0 ? v : null);

/** The one email the directory keeps: the primary, else the `work` one, else the first. */
function primaryEmail(emails: unknown): string | null {
  const list = valuesOf(emails, true).filter(isObject);
  const pick = list.find((e) => e.primary === true) ?? list.find((e) => typeof e.type === 'string' && e.type.toLowerCase() === 'work') ?? list[0];
  return str(pick?.value);
}

export interface UserFields {
  username: string;
  external_id: string | null;
  display_name: string | null;
  given_name: string | null;
  family_name: string | null;
  email: string | null;
  /** Absent from the representation: keep what the user has (a PUT without `active` does not deactivate). */
  active: boolean | undefined;
}

export function userFields(r: Resource): UserFields {
  const username = typeof r.userName === 'string' ? r.userName.trim() : '';
  if (username.length === 0) throw scimError('invalidValue', 'userName is required');
  const name = isObject(r.name) ? r.name : {};
  return {
    username,
    external_id: str(r.externalId),
    display_name: str(r.displayName),
    given_name: str(name.givenName),
    family_name: str(name.familyName),
    email: primaryEmail(r.emails),
    active: typeof r.active === 'boolean' ? r.active : undefined,
  };
}

export interface GroupFields {
  display_name: string;
  external_id: string | null;
  members: string[];
}

export function groupFields(r: Resource): GroupFields {
  const display_name = typeof r.displayName === 'string' ? r.displayName.trim() : '';
  if (display_name.length === 0) throw scimError('invalidValue', 'displayName is required');
  const members: string[] = [];
  for (const m of valuesOf(r.members, true)) {
    if (!isObject(m) || typeof m.value !== 'string' || m.value.length === 0) throw scimError('invalidValue', 'every member needs a value (a user id)');
    if (typeof m.type === 'string' && m.type.toLowerCase() === 'group') throw scimError('invalidValue', 'groups do not nest: members are users');
    members.push(m.value);
  }
  return { display_name, external_id: str(r.externalId), members: [...new Set(members)] };
}

export const schemaOf = (type: 'User' | 'Group'): ResourceSchema => (type === 'User' ? USER : GROUP);
