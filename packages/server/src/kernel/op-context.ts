import type { FastifyRequest } from 'fastify';
import type { Executor } from '../storage/database.js';
import type { AuditEventInput } from './audit/events.js';

/** What a service needs from a request: its transaction, and the pipeline's hooks for extra audit events and undo. */
export interface OpContext {
  db: Executor;
  /** Record an additional audit event in the same transaction (e.g. an automatic rotation). */
  emit?: (event: Omit<AuditEventInput, 'actor'> & { actor?: AuditEventInput['actor'] }) => void;
  onRollback?: (undo: () => void) => void;
}

/** The request's transaction and pipeline hooks, as a service wants them. */
export function opContext(req: FastifyRequest): Required<OpContext> {
  return {
    db: req.tx,
    emit: (e) => req.auditRecord.extra.push({ actor: { principal_id: req.principal?.principal_id ?? null, api_key_id: req.principal?.api_key_id ?? null, source_ip: req.ip }, request_id: req.id, ...e }),
    onRollback: (undo) => req.auditRecord.onRollback.push(undo),
  };
}
