import { AUDIT_EVENT_CATALOGUE, PalisadeError, type AuditEvent } from '@palisade/core';

/** The audit event as stored (canonical JSON) and as served: its schema is `AuditEvent` in @palisade/core. */
export type { AuditEvent, AuditActor, Outcome } from '@palisade/core';

/**
 * What a caller appends; the ledger assigns the index and the time. Personal data goes in `personal_fields` with the
 * `subject` it belongs to: the ledger encrypts it under that subject's key (crypto-shredding), never in clear.
 */
export type AuditEventInput = Omit<AuditEvent, 'index' | 'time' | 'personal'> & {
  subject?: string;
  personal_fields?: Record<string, unknown>;
};

/** An RFC 3339 time from a request as a canonical ISO string; 400 for what the format allows but Date cannot read (leap seconds). */
export function isoTime(value: string, field: string): string {
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw new PalisadeError('PAL_VALIDATION_FAILED', `${field}: ${value} is not a time this server can compare (leap seconds are not)`);
  return new Date(t).toISOString();
}

/** Event type patterns (retention classes, hold filters, export filters): an exact type, or a prefix ending in `*`. */
export function typeMatches(pattern: string, type: string): boolean {
  return pattern.endsWith('*') ? type.startsWith(pattern.slice(0, -1)) : type === pattern;
}

/**
 * An event with a `subject` but no `personal_fields`: the `details` fields its catalogue entry marks personal move
 * to `personal_fields`, so that callers only name whose data it is and the ledger encrypts it under that subject.
 */
export function separatePersonal(input: AuditEventInput): AuditEventInput {
  const personal = AUDIT_EVENT_CATALOGUE[input.type]?.personal ?? [];
  if (input.subject === undefined || input.personal_fields || personal.length === 0 || !input.details) return input;
  const details: Record<string, unknown> = { ...input.details };
  const fields: Record<string, unknown> = {};
  for (const f of personal) {
    if (f in details) {
      fields[f] = details[f];
      delete details[f];
    }
  }
  return Object.keys(fields).length === 0 ? input : { ...input, details, personal_fields: fields };
}
