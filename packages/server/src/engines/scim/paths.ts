/**
 * Attribute paths (RFC 7644 §3.10): `userName`, `name.familyName`, `emails.value`, optionally qualified by a schema
 * URN (`urn:ietf:params:scim:schemas:core:2.0:User:userName`). Filters, PATCH paths and projections all name
 * attributes this way; resolving them against the schema table makes names case-insensitive everywhere.
 */
import { PalisadeError } from '@palisade/core';
import { attributeOf, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA, type AttributeDef, type ResourceSchema } from './schema.js';

export interface AttrPath {
  /** The schema URN the path was qualified with, if any. */
  uri: string | null;
  attr: string;
  sub: string | null;
  /** As written, for error messages. */
  text: string;
}

const KNOWN_SCHEMAS = [USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE_USER_SCHEMA];
const NAME = '[A-Za-z$][A-Za-z0-9_$-]*';
const PATH = new RegExp(`^(${NAME})(?:\\.(${NAME}))?$`);

/** `text` as an attribute path, or null when it is not one. */
export function parseAttrPath(text: string): AttrPath | null {
  let uri: string | null = null;
  let rest = text;
  if (/^urn:/i.test(text)) {
    const known = KNOWN_SCHEMAS.find((s) => text.toLowerCase().startsWith(`${s.toLowerCase()}:`));
    const cut = known ? known.length : text.lastIndexOf(':');
    uri = text.slice(0, cut);
    rest = text.slice(cut + 1);
  }
  const m = PATH.exec(rest);
  if (!m?.[1]) return null;
  return { uri, attr: m[1], sub: m[2] ?? null, text };
}

/** A schema URN a client may use as a key of its own (`"urn:...:enterprise:2.0:User": {...}`), if `text` is one. */
export function schemaUrn(text: string): string | undefined {
  return KNOWN_SCHEMAS.find((s) => s.toLowerCase() === text.toLowerCase());
}

export type Resolved = { kind: 'ignored' } | { kind: 'attribute'; def: AttributeDef; sub: AttributeDef | null };

/**
 * What `path` names in `schema`: an attribute (and sub-attribute), or one we accept and drop (`ignored`). A name no
 * schema defines is `fail`ed: invalidFilter in a filter, invalidPath in a PATCH.
 */
export function resolvePath(schema: ResourceSchema, path: AttrPath, fail: (detail: string) => PalisadeError): Resolved {
  if (path.uri !== null && path.uri.toLowerCase() !== schema.id.toLowerCase()) {
    if (schema.ignoredExtensions.some((e) => e.toLowerCase() === path.uri?.toLowerCase())) return { kind: 'ignored' };
    throw fail(`${path.text}: ${path.uri} is not a schema of ${schema.name}`);
  }
  const def = attributeOf(schema.attributes, path.attr);
  if (!def) {
    if (schema.ignored.has(path.attr.toLowerCase())) return { kind: 'ignored' };
    throw fail(`${path.text}: ${schema.name} has no attribute ${path.attr}`);
  }
  if (path.sub === null) return { kind: 'attribute', def, sub: null };
  if (def.type !== 'complex') throw fail(`${path.text}: ${def.name} has no sub-attributes`);
  const sub = attributeOf(def.subAttributes, path.sub);
  if (!sub) {
    if (schema.ignored.has(`${def.name}.${path.sub}`.toLowerCase())) return { kind: 'ignored' };
    throw fail(`${path.text}: ${def.name} has no sub-attribute ${path.sub}`);
  }
  return { kind: 'attribute', def, sub };
}

/** A sub-attribute of the complex `parent`, for the paths inside a value filter (`emails[type eq "work"]`). */
export function resolveSub(parent: AttributeDef, path: AttrPath, fail: (detail: string) => PalisadeError): AttributeDef {
  if (path.uri !== null || path.sub !== null) throw fail(`${path.text}: inside ${parent.name}[...] name a sub-attribute of ${parent.name}`);
  const sub = attributeOf(parent.subAttributes, path.attr);
  if (!sub) throw fail(`${path.text}: ${parent.name} has no sub-attribute ${path.attr}`);
  return sub;
}

/** The values a (possibly multi-valued) attribute holds, as a list. */
export function valuesOf(value: unknown, multiValued: boolean): unknown[] {
  if (value === undefined || value === null) return [];
  if (multiValued) return Array.isArray(value) ? (value as unknown[]) : [value];
  return [value];
}

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
