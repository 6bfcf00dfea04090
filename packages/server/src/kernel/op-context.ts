import type { FastifyRequest } from 'fastify';
import type { Executor, Storage } from '../storage/database.js';
import type { AuditLedger } from './audit/ledger.js';
import type { AuditEventInput } from './audit/events.js';

/** What a service needs from a request: its transaction, and the pipeline's hooks for extra audit events and undo. */
export interface OpContext {
  db: Executor;
  /** Record an additional audit event in the same transaction (e.g. an automatic rotation). */
  emit?: (event: Omit<AuditEventInput, 'actor'> & { actor?: AuditEventInput['actor'] }) => void;
  onRollback?: (undo: () => void) => void;
}

/**
 * The request's transaction and pipeline hooks, as a service wants them. With `primary`, the first event of the
 * route's own audit type that the service emits becomes the route's event (its resource and details) instead of an
 * extra one, for services that audit themselves because they are also called outside a route.
 */
export function opContext(req: FastifyRequest, opts: { primary?: boolean } = {}): Required<OpContext> {
  let claimed = !opts.primary;
  return {
    db: req.tx,
    emit: (e) => {
      if (!claimed && e.type === req.routeOptions.config.audit) {
        claimed = true;
        req.auditRecord.resource = e.resource ?? null;
        req.auditRecord.details = e.details ?? {};
        return;
      }
      req.auditRecord.extra.push({ actor: { principal_id: req.principal?.principal_id ?? null, api_key_id: req.principal?.api_key_id ?? null, source_ip: req.ip }, request_id: req.id, ...e });
    },
    onRollback: (undo) => req.auditRecord.onRollback.push(undo),
  };
}

/**
 * Writes and the audit events they produce, in one transaction or not at all: `fn` pushes events as it goes, and
 * they are appended before the commit. For work that is not a route's own audited handler (jobs, sign-in steps that
 * must commit a failure's counters and event before answering with it).
 */
export async function transactWithEvents<T>(storage: Storage, ledger: Pick<AuditLedger, 'append'>, fn: (tx: Executor, events: AuditEventInput[]) => Promise<T>): Promise<T> {
  return storage.transact(async (tx) => {
    const events: AuditEventInput[] = [];
    const out = await fn(tx, events);
    for (const e of events) await ledger.append(tx, e);
    return out;
  });
}

/**
 * Run a service operation outside any request (a job, a public endpoint that refreshes a cache): its writes and the
 * audit events it emits, with `principal` as the actor, commit in one transaction, or neither does.
 */
export async function runAsSystem<T>(storage: Storage, ledger: Pick<AuditLedger, 'append'>, principal: string, fn: (ctx: OpContext) => Promise<T>, requestId?: string): Promise<T> {
  return transactWithEvents(storage, ledger, (tx, events) =>
    fn({ db: tx, emit: (e) => void events.push({ actor: { principal_id: principal }, ...(requestId ? { request_id: requestId } : {}), ...e }) }),
  );
}
