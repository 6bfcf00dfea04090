import type { AuditEvent } from '@palisade/core';

/** The audit event as stored (canonical JSON) and as served: its schema is `AuditEvent` in @palisade/core. */
export type { AuditEvent, AuditActor, Outcome } from '@palisade/core';

/** What a caller appends; the ledger assigns the index and the time. */
export type AuditEventInput = Omit<AuditEvent, 'index' | 'time'>;
