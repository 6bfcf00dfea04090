/**
 * `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9): which attributes an answer carries. `id` and
 * `schemas` are always returned. Names are attribute paths (case-insensitive, optionally URN-qualified, `name.givenName`
 * picks one sub-attribute); names that do not resolve are ignored, as they select nothing.
 */
import { scimError } from './errors.js';
import { isObject, parseAttrPath, resolvePath } from './paths.js';
import type { Resource } from './resources.js';
import type { ResourceSchema } from './schema.js';

export interface Projection {
  /** Top-level attribute -> the sub-attributes asked for (null: all of it). */
  include: Map<string, Set<string> | null> | null;
  exclude: Map<string, Set<string> | null> | null;
}

function parseList(schema: ResourceSchema, list: string | undefined): Map<string, Set<string> | null> | null {
  if (list === undefined || list.trim() === '') return null;
  const out = new Map<string, Set<string> | null>();
  for (const item of list.split(',')) {
    const path = parseAttrPath(item.trim());
    if (!path) throw scimError('invalidValue', `${JSON.stringify(item.trim())} is not an attribute path`);
    let r;
    try {
      r = resolvePath(schema, path, (d) => scimError('invalidValue', d));
    } catch {
      continue;
    }
    if (r.kind === 'ignored') continue;
    const name = r.def.name;
    if (r.sub === null) out.set(name, null);
    else if (out.get(name) !== null) out.set(name, new Set([...(out.get(name) ?? []), r.sub.name]));
  }
  return out;
}

export function parseProjection(schema: ResourceSchema, attributes: string | undefined, excluded: string | undefined): Projection {
  const include = parseList(schema, attributes);
  return { include, exclude: include ? null : parseList(schema, excluded) };
}

/** Whether the answer will carry `attr` (so it is worth loading, e.g. members' display names). */
export function wants(p: Projection, attr: string): boolean {
  if (p.include) return p.include.has(attr);
  return !(p.exclude?.has(attr) && p.exclude.get(attr) === null);
}

const ALWAYS = new Set(['schemas', 'id']);

function pick(value: unknown, subs: Set<string>, keep: boolean): unknown {
  const one = (v: unknown) => (isObject(v) ? Object.fromEntries(Object.entries(v).filter(([k]) => subs.has(k) === keep)) : v);
  return Array.isArray(value) ? value.map(one) : one(value);
}

export function project(r: Resource, p: Projection): Resource {
  if (!p.include && !p.exclude) return r;
  const out: Resource = {};
  for (const [key, value] of Object.entries(r)) {
    if (ALWAYS.has(key)) out[key] = value;
    else if (p.include) {
      if (!p.include.has(key)) continue;
      const subs = p.include.get(key);
      out[key] = subs ? pick(value, subs, true) : value;
    } else if (p.exclude) {
      if (!p.exclude.has(key)) out[key] = value;
      else {
        const subs = p.exclude.get(key);
        if (subs) out[key] = pick(value, subs, false);
      }
    }
  }
  return out;
}
