import { Type, type TObject } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { AuditEvent } from '../api/audit.js';
import { AUDIT_EVENT_CATALOGUE, type AuditEventSpec } from './catalogue.js';

/** The catalogue's types, sorted. */
export function auditEventTypes(): string[] {
  return Object.keys(AUDIT_EVENT_CATALOGUE);
}

/** One entry of the catalogue, undefined for an unknown type. */
export function auditEventSpec(type: string): AuditEventSpec | undefined {
  return Object.hasOwn(AUDIT_EVENT_CATALOGUE, type) ? AUDIT_EVENT_CATALOGUE[type] : undefined;
}

/**
 * The details schema an outcome is checked against. A success carries every required field; a failed or denied
 * event may lack any of them (the operation can fail before it recorded them), but never has an unknown one.
 */
function detailsFor(spec: AuditEventSpec, outcome: string): TObject {
  return outcome === 'success' ? spec.details : Type.Partial(spec.details);
}

interface Checkers {
  success?: TypeCheck<TObject>;
  other?: TypeCheck<TObject>;
}
const compiled = new Map<string, Checkers>();

/** The compiled checker of a type and outcome, compiled on first use (then a check costs microseconds). */
function checker(spec: AuditEventSpec, outcome: string): TypeCheck<TObject> {
  let c = compiled.get(spec.type);
  if (!c) compiled.set(spec.type, (c = {}));
  const slot = outcome === 'success' ? 'success' : 'other';
  return (c[slot] ??= TypeCompiler.Compile(detailsFor(spec, outcome)));
}

function describe(schema: unknown, message: string): string {
  const alts = (schema as { anyOf?: Array<{ const?: unknown }> }).anyOf;
  if (alts?.length && alts.every((a) => a.const !== undefined)) return `expected one of ${alts.map((a) => JSON.stringify(a.const)).join(', ')}`;
  return message;
}

/**
 * Null when the event conforms to its catalogue entry; otherwise a short reason naming the type and the JSON path
 * (`kms.encrypt (success): /details/key_version: Expected integer`). Unknown types are a problem. Personal fields
 * given apart (`personal_fields`, encrypted by the ledger) are checked as details fields the entry marks personal.
 */
export function auditEventProblem(e: { type: string; outcome: string; details?: unknown; personal_fields?: unknown }): string | null {
  const spec = auditEventSpec(e.type);
  if (!spec) return `unknown audit event type ${JSON.stringify(e.type)} (not in the catalogue)`;
  if (!(spec.outcomes as readonly string[]).includes(e.outcome)) return `${e.type}: outcome ${JSON.stringify(e.outcome)} is not one of ${spec.outcomes.join(', ')}`;
  let details = e.details ?? {};
  if (typeof details !== 'object' || details === null || Array.isArray(details)) return `${e.type} (${e.outcome}): /details: expected an object`;
  if (e.personal_fields !== undefined) {
    const pf = e.personal_fields;
    if (typeof pf !== 'object' || pf === null || Array.isArray(pf)) return `${e.type} (${e.outcome}): /personal_fields: expected an object`;
    const stray = Object.keys(pf).find((k) => !spec.personal.includes(k));
    if (stray !== undefined) return `${e.type} (${e.outcome}): /personal_fields/${stray}: not a personal field of this type`;
    details = { ...details, ...pf };
  }
  const check = checker(spec, e.outcome);
  if (check.Check(details)) return null;
  const first = check.Errors(details).First();
  return `${e.type} (${e.outcome}): /details${first?.path ?? ''}: ${first ? describe(first.schema, first.message) : 'does not match'}`;
}

const jsonClone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/** The details schema as plain JSON Schema, personal and sensitive fields annotated (`x-personal`, `x-sensitive`). */
function detailsJson(spec: AuditEventSpec, outcome: 'success' | 'other'): Record<string, unknown> {
  const s = jsonClone(outcome === 'success' ? spec.details : Type.Partial(spec.details)) as { properties: Record<string, Record<string, unknown>> };
  for (const f of spec.personal) if (s.properties[f]) s.properties[f]['x-personal'] = true;
  for (const f of spec.sensitive) if (s.properties[f]) s.properties[f]['x-sensitive'] = true;
  return s;
}

/**
 * The full JSON Schema (draft 2020-12) of one event type as the ledger stores it: the envelope of `AuditEvent` with
 * `type` fixed, `outcome` narrowed and `details` described (stricter for success). For docs and SIEM consumers.
 */
export function auditEventSchema(type: string): Record<string, unknown> {
  const spec = auditEventSpec(type);
  if (!spec) throw new Error(`unknown audit event type ${type}`);
  const envelope = jsonClone(AuditEvent) as { properties: Record<string, unknown>; required?: string[] };
  const hasSuccess = spec.outcomes.includes('success');
  const partial = spec.outcomes.some((o) => o !== 'success');
  const schema: Record<string, unknown> = {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: `https://palisade.dev/audit-events/${type}.json`,
    title: type,
    description: spec.description,
    ...envelope,
    properties: {
      ...envelope.properties,
      type: { const: type },
      outcome: { enum: [...spec.outcomes] },
      details: detailsJson(spec, partial ? 'other' : 'success'),
    },
    'x-category': spec.category,
    'x-resource-type': spec.resource,
    'x-personal': [...spec.personal],
    'x-sensitive': [...spec.sensitive],
    ...(spec.planned ? { 'x-planned': true } : {}),
  };
  // A failed or denied event may lack fields a success always has: success is held to the full details schema.
  if (partial && hasSuccess) Object.assign(schema, { if: { properties: { outcome: { const: 'success' } } }, then: { properties: { details: detailsJson(spec, 'success') } } });
  return schema;
}
