// The classification schema of field-level encryption: which fields of a record are encrypted, under which
// classification (the seed's data_classification) and data type, addressed by small JSON paths.
import { PalisadeError } from '@palisade/core';

/** The seed's data_classification levels. `public` fields stay in clear; the other three are encrypted. */
export const FIELD_CLASSIFICATIONS = ['public', 'internal', 'confidential', 'restricted'] as const;
export type FieldClassification = (typeof FIELD_CLASSIFICATIONS)[number];
/** The classifications that are encrypted (`encryption_required: true` in the seed). */
export type EncryptedClassification = Exclude<FieldClassification, 'public'>;

export interface FieldRule {
  classification: FieldClassification;
  /** Names the DEK family with the classification and month: `{data_type}_{classification}_{YYYYMM}`. */
  data_type: string;
}

/**
 * Paths → rules. Paths: `ssn`, `address.street`, `items[*].card` (also `items[].card`: every element),
 * `tags[*]` (every element itself). Paths may not overlap (`a` and `a.b`).
 */
export interface ClassificationSchema {
  fields: Record<string, FieldRule>;
}

export const DATA_TYPE = /^[a-z][a-z0-9_-]{0,62}$/;

export type PathStep = { key: string } | { each: true };

export interface CompiledField {
  /** The path as written in canonical form (`[]` written `[*]`): what ciphertexts are bound to. */
  path: string;
  steps: PathStep[];
  classification: EncryptedClassification;
  data_type: string;
}

export function schemaError(message: string, extensions: Record<string, unknown> = {}): PalisadeError {
  return new PalisadeError('PAL_FIELD_SCHEMA_INVALID', message, { extensions });
}

const SEGMENT = /^([^.[\]]+)((?:\[\*?\])*)$/;

/** Parses `a.b`, `items[*].ssn`, `items[].ssn`, `tags[*]`; throws PAL_FIELD_SCHEMA_INVALID. */
export function parsePath(path: string): PathStep[] {
  if (typeof path !== 'string' || path.length === 0 || path.length > 512) throw schemaError(`path ${JSON.stringify(path)} is empty or too long`, { path });
  // Ciphertexts are bound to the path's UTF-8: a lone surrogate has none of its own (it would be written as U+FFFD).
  if (!(path as unknown as { isWellFormed(): boolean }).isWellFormed()) throw schemaError(`path ${JSON.stringify(path)} is not well-formed Unicode (a lone surrogate)`, { path });
  const steps: PathStep[] = [];
  for (const seg of path.split('.')) {
    const m = SEGMENT.exec(seg);
    if (!m) throw schemaError(`path ${JSON.stringify(path)} does not parse at ${JSON.stringify(seg)} (use a.b, items[*].c or items[].c)`, { path });
    steps.push({ key: m[1]! });
    const brackets = m[2]!.match(/\[\*?\]/g) ?? [];
    for (let i = 0; i < brackets.length; i++) steps.push({ each: true });
  }
  return steps;
}

export function formatPath(steps: PathStep[]): string {
  let out = '';
  for (const s of steps) out += 'key' in s ? (out === '' ? s.key : `.${s.key}`) : '[*]';
  return out;
}

/** Validates the schema and drops `public` fields; throws PAL_FIELD_SCHEMA_INVALID. */
export function compileSchema(schema: ClassificationSchema): CompiledField[] {
  if (!schema || typeof schema !== 'object' || !schema.fields || typeof schema.fields !== 'object') throw schemaError('the schema has no `fields` object');
  const out: CompiledField[] = [];
  const all: string[] = [];
  for (const [raw, rule] of Object.entries(schema.fields)) {
    const steps = parsePath(raw);
    const path = formatPath(steps);
    if (!rule || !FIELD_CLASSIFICATIONS.includes(rule.classification)) {
      throw schemaError(`field ${path}: classification must be one of ${FIELD_CLASSIFICATIONS.join(', ')}`, { path });
    }
    if (typeof rule.data_type !== 'string' || !DATA_TYPE.test(rule.data_type)) {
      throw schemaError(`field ${path}: data_type must match ${DATA_TYPE.source}`, { path });
    }
    for (const other of all) {
      if (other === path || path.startsWith(`${other}.`) || path.startsWith(`${other}[`) || other.startsWith(`${path}.`) || other.startsWith(`${path}[`)) {
        throw schemaError(`paths ${other} and ${path} overlap`, { path });
      }
    }
    all.push(path);
    if (rule.classification !== 'public') out.push({ path, steps, classification: rule.classification, data_type: rule.data_type });
  }
  return out;
}

type Json = unknown;
const isObject = (v: unknown): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** One place a path reaches: read and replace the value there. `at` is the concrete location (for messages). */
export interface FieldSlot {
  at: string;
  value: Json;
  set(v: Json): void;
}

/**
 * Every value `steps` reaches in `root` (mutable copies are the caller's business). Missing keys are skipped;
 * a value of the wrong shape on the way (an array where a key is expected, or the reverse) is a schema error.
 */
export function slots(root: Json, field: CompiledField): FieldSlot[] {
  const out: FieldSlot[] = [];
  const walk = (node: Json, i: number, at: string, set: (v: Json) => void): void => {
    if (i === field.steps.length) {
      out.push({ at, value: node, set });
      return;
    }
    if (node === undefined) return;
    const step = field.steps[i]!;
    if ('key' in step) {
      if (!isObject(node)) throw schemaError(`field ${field.path}: ${at || 'the record'} is not an object`, { path: field.path });
      if (!Object.prototype.hasOwnProperty.call(node, step.key) || node[step.key] === undefined) return;
      walk(node[step.key], i + 1, at === '' ? step.key : `${at}.${step.key}`, (v) => (node[step.key] = v));
    } else {
      if (!Array.isArray(node)) throw schemaError(`field ${field.path}: ${at} is not an array`, { path: field.path });
      node.forEach((el, n) => walk(el, i + 1, `${at}[${n}]`, (v) => (node[n] = v)));
    }
  };
  walk(root, 0, '', () => {
    throw schemaError('the record itself cannot be a field');
  });
  return out;
}
