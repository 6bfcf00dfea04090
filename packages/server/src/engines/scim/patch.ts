/**
 * PATCH (RFC 7644 §3.5.2) applied to a resource's SCIM representation; the caller reads the result back into the
 * directory. Working on the representation keeps one set of rules for every attribute: `add`, `replace` and
 * `remove`, with a path (`active`, `name.familyName`, `members[value eq "usr_1"]`, `emails[type eq "work"].value`)
 * or without one (a value object whose keys are paths, dotted ones included).
 *
 * Quirks of real IdP traffic that are accepted: capitalised ops (Azure AD's "Replace"), string booleans ("False"),
 * `remove` of `members` with a value list instead of a filter (Azure AD), read-only attributes such as `id` inside a
 * path-less value object (Okta's group rename; skipped), and a filtered path that matches nothing but names its
 * element by equality (`emails[type eq "work"].value`), which adds that element. Removing something that is not
 * there is a no-op, so a retried request succeeds. Unknown attributes are 400 invalidPath; a filter that matches
 * nothing and cannot make a new element is 400 noTarget.
 */
import type { PalisadeError } from '@palisade/core';
import { scimError } from './errors.js';
import { compileFilter, FilterParser, lex, type Filter, type Predicate } from './filter.js';
import { isObject, parseAttrPath, resolvePath, resolveSub, schemaUrn, valuesOf, type AttrPath } from './paths.js';
import type { Resource } from './resources.js';
import type { AttributeDef, ResourceSchema } from './schema.js';
import { coerce, coerceElement, coerceSub } from './values.js';

export type PatchOpName = 'add' | 'remove' | 'replace';

export interface PatchOperation {
  op: PatchOpName;
  path: string | null;
  value: unknown;
}

const MAX_OPERATIONS = 1000;
const MAX_PATH = 1024;
const invalidPath = (detail: string): PalisadeError => scimError('invalidPath', detail);

/** The operations of a PatchOp body (`Operations`, whatever its case). */
export function readPatch(body: unknown): PatchOperation[] {
  if (!isObject(body)) throw scimError('invalidSyntax', 'the body must be a PatchOp object');
  const key = Object.keys(body).find((k) => k.toLowerCase() === 'operations');
  const ops = key === undefined ? undefined : body[key];
  if (!Array.isArray(ops) || ops.length === 0) throw scimError('invalidSyntax', 'Operations must be a non-empty list');
  if (ops.length > MAX_OPERATIONS) throw scimError('invalidValue', `at most ${MAX_OPERATIONS} operations per request`);
  return ops.map((o, i) => {
    if (!isObject(o)) throw scimError('invalidSyntax', `Operations[${i}] must be an object`);
    const op = typeof o.op === 'string' ? o.op.toLowerCase() : '';
    if (op !== 'add' && op !== 'remove' && op !== 'replace') throw scimError('invalidSyntax', `Operations[${i}].op must be add, remove or replace`);
    if (o.path !== undefined && o.path !== null && typeof o.path !== 'string') throw scimError('invalidPath', `Operations[${i}].path must be a string`);
    const path = typeof o.path === 'string' && o.path.trim() !== '' ? o.path.trim() : null;
    return { op, path, value: o.value };
  });
}

/** A PATCH path: an attribute path, optionally `[filter]` and a sub-attribute after it. */
interface PatchPath {
  path: AttrPath;
  filter: Filter | null;
  after: string | null;
}

export function parsePatchPath(text: string): PatchPath {
  if (text.length > MAX_PATH) throw invalidPath(`the path is longer than ${MAX_PATH} characters`);
  const p = new FilterParser(lex(text, invalidPath), invalidPath);
  const path = p.path();
  let filter: Filter | null = null;
  let after: string | null = null;
  if (p.peek()?.kind === '[') {
    if (path.sub !== null) throw invalidPath(`${text}: a value filter follows the attribute, not a sub-attribute`);
    p.next();
    filter = p.filter(true);
    p.expect(']');
    const t = p.peek();
    if (t?.kind === 'word' && t.text.startsWith('.')) {
      p.next();
      after = t.text.slice(1);
      if (!/^[A-Za-z$][A-Za-z0-9_$-]*$/.test(after)) throw invalidPath(`${text}: ${JSON.stringify(after)} is not a sub-attribute name`);
    }
  }
  if (!p.done) throw invalidPath(`${text}: unexpected ${JSON.stringify(p.peek()?.text)}`);
  return { path, filter, after };
}

/** What an operation's path resolved to. */
interface Target {
  def: AttributeDef;
  /** `name.givenName`, `emails.value`: the sub-attribute after a dot, with no filter. */
  sub: AttributeDef | null;
  filter: { ast: Filter; test: Predicate } | null;
  /** `emails[...].value`: the sub-attribute after the filter. */
  after: AttributeDef | null;
}

function target(schema: ResourceSchema, text: string): Target | null {
  const { path, filter, after } = parsePatchPath(text);
  const r = resolvePath(schema, path, invalidPath);
  if (r.kind === 'ignored') return null;
  const { def, sub } = r;
  if (!filter) return { def, sub, filter: null, after: null };
  if (def.type !== 'complex' || !def.multiValued) throw invalidPath(`${text}: only multi-valued complex attributes take a value filter`);
  const elementSchema: ResourceSchema = { name: schema.name, endpoint: schema.endpoint, id: schema.id, description: '', attributes: def.subAttributes ?? [], ignored: new Set(), ignoredExtensions: [] };
  let test: Predicate;
  try {
    test = compileFilter(filter, elementSchema);
  } catch (e) {
    throw invalidPath(`${text}: ${(e as Error).message}`);
  }
  const afterDef = after === null ? null : resolveSub(def, { uri: null, attr: after, sub: null, text }, invalidPath);
  return { def, sub: null, filter: { ast: filter, test }, after: afterDef };
}

const mutability = (what: string): PalisadeError => scimError('mutability', `${what} is read-only`);

/** The element a filter names by equality (`type eq "work" and primary eq true`), or null when it does not. */
function seedOf(f: Filter, def: AttributeDef): Record<string, unknown> | null {
  if (f.type === 'logical' && f.op === 'and') {
    const l = seedOf(f.left, def);
    const r = seedOf(f.right, def);
    return l && r ? { ...l, ...r } : null;
  }
  if (f.type !== 'compare' || f.op !== 'eq' || f.value === null || f.path.uri !== null || f.path.sub !== null) return null;
  const sub = resolveSub(def, f.path, invalidPath);
  if (sub.mutability === 'readOnly') return null;
  return { [sub.name]: coerceSub(sub, f.value, `${def.name}.${sub.name}`) };
}

/** How elements of a multi-valued attribute are told apart: by `value` when they have one. */
const identity = (e: unknown): string => (isObject(e) && typeof e.value === 'string' ? `v:${e.value}` : `j:${JSON.stringify(e)}`);

function setOrDelete(obj: Record<string, unknown>, key: string, v: unknown): void {
  if (v === null || v === undefined) delete obj[key];
  else obj[key] = v;
}

function applyToTarget(doc: Resource, op: PatchOpName, t: Target, value: unknown): void {
  const { def } = t;
  if (t.filter) return applyFiltered(doc, op, t, value);
  if (t.sub) {
    const sub = t.sub;
    if (sub.mutability === 'readOnly') throw mutability(`${def.name}.${sub.name}`);
    const v = op === 'remove' ? null : coerceSub(sub, value, `${def.name}.${sub.name}`);
    if (!def.multiValued) {
      const obj = isObject(doc[def.name]) ? { ...(doc[def.name] as Record<string, unknown>) } : {};
      setOrDelete(obj, sub.name, v);
      setOrDelete(doc, def.name, Object.keys(obj).length > 0 ? obj : null);
      return;
    }
    const elems = valuesOf(doc[def.name], true).filter(isObject).map((e) => ({ ...e }));
    if (elems.length === 0 && v !== null) elems.push({});
    for (const e of elems) setOrDelete(e, sub.name, v);
    doc[def.name] = elems;
    return;
  }
  if (op === 'remove') {
    if (def.multiValued && value !== undefined && value !== null) {
      // Azure AD: {"op":"Remove","path":"members","value":[{"value":"usr_1"}]}
      const gone = new Set((coerce(def, value) as unknown[]).map(identity));
      doc[def.name] = valuesOf(doc[def.name], true).filter((e) => !gone.has(identity(e)));
    } else delete doc[def.name];
    return;
  }
  const v = coerce(def, value);
  if (v === null) {
    if (op === 'replace') delete doc[def.name];
    return;
  }
  if (def.multiValued) {
    const incoming = v as unknown[];
    if (op === 'replace') doc[def.name] = incoming;
    else {
      const list = valuesOf(doc[def.name], true);
      const seen = new Set(list.map(identity));
      doc[def.name] = [...list, ...incoming.filter((e) => !seen.has(identity(e)))];
    }
  } else if (def.type === 'complex') {
    // add and replace of a complex attribute set the sub-attributes given and leave the others (§3.5.2.1, §3.5.2.3).
    doc[def.name] = { ...(isObject(doc[def.name]) ? (doc[def.name] as Record<string, unknown>) : {}), ...(v as Record<string, unknown>) };
  } else {
    doc[def.name] = v;
  }
}

function applyFiltered(doc: Resource, op: PatchOpName, t: Target, value: unknown): void {
  const { def, after, filter } = t;
  if (!filter) return;
  if (after?.mutability === 'readOnly') throw mutability(`${def.name}.${after.name}`);
  const elems = valuesOf(doc[def.name], true).map((e) => (isObject(e) ? { ...e } : e));
  const matches = elems.filter((e): e is Record<string, unknown> => isObject(e) && filter.test(e));
  if (op === 'remove') {
    if (after) for (const m of matches) delete m[after.name];
    doc[def.name] = after ? elems : elems.filter((e) => !matches.includes(e as Record<string, unknown>));
    return;
  }
  if (matches.length === 0) {
    const seed = seedOf(filter.ast, def);
    if (!seed) throw scimError('noTarget', `no ${def.name} value matches the filter`);
    elems.push(seed);
    matches.push(seed);
  }
  for (const m of matches) {
    if (after) setOrDelete(m, after.name, coerceSub(after, value, `${def.name}.${after.name}`));
    else {
      const v = coerceElement(def, value);
      if (op === 'replace') for (const k of Object.keys(m)) delete m[k];
      Object.assign(m, v);
    }
  }
  doc[def.name] = elems;
}

/** The path-less form: each key of the value object is a path (dotted and URN-qualified keys included). */
function applyValueObject(schema: ResourceSchema, doc: Resource, op: PatchOpName, value: unknown): void {
  if (op === 'remove') throw scimError('noTarget', 'remove needs a path');
  if (!isObject(value)) throw scimError('invalidValue', `${op} without a path takes an object of attributes`);
  for (const [key, v] of Object.entries(value)) {
    if (key.toLowerCase() === 'schemas') continue;
    const urn = schemaUrn(key);
    if (urn !== undefined) {
      if (urn === schema.id) applyValueObject(schema, doc, op, v);
      else if (!schema.ignoredExtensions.includes(urn)) throw invalidPath(`${key} is not a schema of ${schema.name}`);
      continue;
    }
    const path = parseAttrPath(key);
    if (!path) throw invalidPath(`${JSON.stringify(key)} is not an attribute path`);
    const r = resolvePath(schema, path, invalidPath);
    if (r.kind === 'ignored' || r.def.mutability === 'readOnly' || r.sub?.mutability === 'readOnly') continue;
    applyToTarget(doc, op, { def: r.def, sub: r.sub, filter: null, after: null }, v);
  }
}

/** `ops` applied in order to a copy of `resource`; all or nothing (the first failing operation throws). */
export function applyPatch(schema: ResourceSchema, resource: Resource, ops: readonly PatchOperation[]): Resource {
  const doc = structuredClone(resource);
  for (const o of ops) {
    if (o.path === null) {
      applyValueObject(schema, doc, o.op, o.value);
      continue;
    }
    const t = target(schema, o.path);
    if (!t) continue; // an attribute Palisade does not keep
    if (t.def.mutability === 'readOnly') throw mutability(t.def.name);
    if (o.op !== 'remove' && o.value === undefined) throw scimError('invalidValue', `${o.op} ${o.path} needs a value`);
    applyToTarget(doc, o.op, t, o.value);
  }
  return doc;
}
