/**
 * Attribute values from a client, checked against their definition and normalised. Real IdP traffic is looser than
 * RFC 7643: Azure AD sends booleans as the strings "True"/"False" and single values where arrays belong, so those
 * are accepted; anything else of the wrong type is 400 invalidValue. Unknown sub-attributes of a complex value
 * (Okta's `display` on a member, vendor extras) are dropped.
 */
import { scimError } from './errors.js';
import { isObject } from './paths.js';
import { attributeOf, type AttributeDef } from './schema.js';

/** Longer than any name, address or identifier an IdP sends; bounds what a row can be made to hold. */
const MAX_STRING = 1024;
const MAX_VALUES = 10_000;

function single(def: AttributeDef, v: unknown, where: string): unknown {
  switch (def.type) {
    case 'boolean':
      if (typeof v === 'boolean') return v;
      if (typeof v === 'string' && /^(true|false)$/i.test(v.trim())) return v.trim().toLowerCase() === 'true';
      throw scimError('invalidValue', `${where} must be a boolean`);
    case 'complex': {
      if (!isObject(v)) throw scimError('invalidValue', `${where} must be an object`);
      const out: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(v)) {
        const sub = attributeOf(def.subAttributes, key);
        if (!sub || value === null || value === undefined) continue;
        out[sub.name] = single(sub, value, `${where}.${sub.name}`);
      }
      return out;
    }
    default:
      if (typeof v !== 'string') throw scimError('invalidValue', `${where} must be a string`);
      if (v.length > MAX_STRING) throw scimError('invalidValue', `${where} is longer than ${MAX_STRING} characters`);
      return v;
  }
}

/** `v` as a value of `def` (an array for multi-valued attributes); null stays null (unassigned). */
export function coerce(def: AttributeDef, v: unknown, where: string = def.name): unknown {
  if (v === null || v === undefined) return null;
  if (!def.multiValued) {
    if (Array.isArray(v)) throw scimError('invalidValue', `${where} takes one value, not a list`);
    return single(def, v, where);
  }
  const list = Array.isArray(v) ? v : [v];
  if (list.length > MAX_VALUES) throw scimError('invalidValue', `${where} has more than ${MAX_VALUES} values`);
  return list.filter((e) => e !== null && e !== undefined).map((e, i) => single(def, e, `${where}[${i}]`));
}

/** A sub-attribute value (`name.givenName`, the `value` of `emails[type eq "work"].value`). */
export function coerceSub(sub: AttributeDef, v: unknown, where: string): unknown {
  return v === null || v === undefined ? null : single(sub, v, where);
}

/** One element of the multi-valued `def` (an email, a member). */
export function coerceElement(def: AttributeDef, v: unknown, where: string = def.name): Record<string, unknown> {
  return single({ ...def, multiValued: false }, v, where) as Record<string, unknown>;
}
