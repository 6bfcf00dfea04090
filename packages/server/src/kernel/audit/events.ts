/** The audit event as stored (canonical JSON) and as served. */
export type Outcome = 'success' | 'failure' | 'denied';

export interface AuditActor {
  principal_id: string | null;
  api_key_id?: string | null;
  source_ip?: string | null;
}

export interface AuditEventInput {
  type: string;
  actor: AuditActor;
  outcome: Outcome;
  request_id?: string | null;
  /** The permission exercised, e.g. `kms:keys:encrypt`. */
  action?: string | null;
  resource?: { type: string; id?: string | null } | null;
  error_code?: string | null;
  /** Non-secret details; values that identify secrets must be HMAC'd by the caller. */
  details?: Record<string, unknown>;
}

export interface AuditEvent extends AuditEventInput {
  index: number;
  time: string;
}
