// RFC 8785 JSON Canonicalization Scheme (JCS) for values that are already plain JSON data.

/** The value cannot be expressed as I-JSON (RFC 7493), so it has no canonical form. */
export class CanonicalError extends Error {
  override readonly name = 'CanonicalError';
}

const MAX_DEPTH = 1000; // keeps hostile nesting a CanonicalError instead of a stack overflow
const LONE_SURROGATE = /[\uD800-\uDFFF]/u; // with the u flag a valid surrogate pair is one code point, never matched

function str(s: string, path: string): string {
  if (LONE_SURROGATE.test(s)) throw new CanonicalError(`lone surrogate in string at ${path}`);
  return JSON.stringify(s); // ES string serialization, as RFC 8785 §3.2.2.2 requires
}

function write(value: unknown, path: string, ancestors: Set<object>): string {
  switch (typeof value) {
    case 'string':
      return str(value, path);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new CanonicalError(`non-finite number at ${path}`);
      return JSON.stringify(value); // ES Number::toString; -0 becomes "0" (RFC 8785 §3.2.2.3)
    case 'object':
      break;
    default: // undefined, bigint, symbol, function
      throw new CanonicalError(`unsupported ${typeof value} at ${path}`);
  }
  if (value === null) return 'null';
  if (ancestors.has(value)) throw new CanonicalError(`cyclic structure at ${path}`);
  if (ancestors.size >= MAX_DEPTH) throw new CanonicalError(`nesting deeper than ${MAX_DEPTH} at ${path}`);
  ancestors.add(value);
  let out: string;
  if (Array.isArray(value)) {
    const parts: string[] = [];
    // Indexing (not forEach) so that holes in sparse arrays read as undefined and are rejected.
    for (let i = 0; i < value.length; i++) parts.push(write(value[i], `${path}[${i}]`, ancestors));
    out = `[${parts.join(',')}]`;
  } else {
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      throw new CanonicalError(`non-plain object (${value.constructor?.name ?? 'unknown'}) at ${path}`);
    }
    if (Object.getOwnPropertySymbols(value).length > 0) throw new CanonicalError(`symbol key at ${path}`);
    const record = value as Record<string, unknown>;
    // Default sort compares UTF-16 code units, exactly what RFC 8785 §3.2.3 prescribes.
    const keys = Object.keys(record).sort();
    out = `{${keys.map((k) => `${str(k, path)}:${write(record[k], `${path}.${k}`, ancestors)}`).join(',')}}`;
  }
  ancestors.delete(value);
  return out;
}

/**
 * RFC 8785 canonical JSON text. Throws CanonicalError for non-finite numbers, undefined, functions, bigint, symbols,
 * lone surrogates, cycles, and objects that are neither arrays nor plain objects (Date, Map, Buffer, class instances).
 * Shared, non-cyclic references are fine. `toJSON` is never called.
 */
export function canonicalJson(value: unknown): string {
  return write(value, '$', new Set());
}

/** The UTF-8 bytes of `canonicalJson(value)`, the form that gets hashed or signed. */
export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), 'utf8');
}
