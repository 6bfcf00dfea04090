import type { FastifyRequest } from 'fastify';
import { toPalisadeError } from '../../http/problem.js';
import type { AuditLedger } from '../../kernel/audit/ledger.js';
import type { AuditEventInput } from '../../kernel/audit/events.js';
import type { Storage, Tx } from '../../storage/database.js';

export function actorOf(req: FastifyRequest): AuditEventInput['actor'] {
  return { principal_id: req.principal?.principal_id ?? null, api_key_id: req.principal?.api_key_id ?? null, source_ip: req.ip };
}

/**
 * For ACME routes that both read (POST-as-GET) and write (e.g. an account update), which the pipeline cannot audit
 * by route: the write and its audit event commit in one transaction, exactly as the pipeline's `config.audit` does
 * (req.tx is the transaction, req.auditRecord fills the event, a failure is recorded on its own).
 */
export const auditedWriter =
  (deps: { storage: Storage; ledger: AuditLedger }) =>
  <T>(req: FastifyRequest, type: string, fn: (tx: Tx) => Promise<T>): Promise<T> =>
    auditedWrite(deps, req, type, fn);

async function auditedWrite<T>(deps: { storage: Storage; ledger: AuditLedger }, req: FastifyRequest, type: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const event = (outcome: AuditEventInput['outcome'], error_code: string | null): AuditEventInput => ({
    type,
    actor: actorOf(req),
    outcome,
    request_id: req.id,
    action: null,
    resource: req.auditRecord.resource ?? null,
    error_code,
    details: req.auditRecord.details ?? {},
  });
  try {
    return await deps.storage.transact(async (tx) => {
      req.tx = tx;
      const out = await fn(tx);
      await deps.ledger.append(tx, event('success', null));
      for (const extra of req.auditRecord.extra) await deps.ledger.append(tx, extra);
      return out;
    });
  } catch (e) {
    for (const undo of req.auditRecord.onRollback) undo();
    const pe = toPalisadeError(e);
    if (pe.code !== 'PAL_AUDIT_WRITE_FAILED') await deps.ledger.appendStandalone(event('failure', pe.code));
    throw pe;
  } finally {
    req.tx = deps.storage.db;
  }
}
