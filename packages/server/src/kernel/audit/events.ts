import type { AuditEvent } from '@palisade/core';

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
