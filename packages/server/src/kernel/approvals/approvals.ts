import { PalisadeError, randomId, type Approval, type ApprovalStatus, type ListApprovalsQuery } from '@palisade/core';
import type { Executor, Tx } from '../../storage/database.js';
import type { ApprovalTable } from '../../storage/schema.js';
import type { AuditEventInput } from '../audit/events.js';
import { hasPermission } from '../auth/permissions.js';
import type { Principal } from '../auth/api-keys.js';

const DAY_MS = 86_400_000;

/** What runs when a request is approved, in the approving transaction; its return value is stored as `result`. */
export type ApprovalExecutor = (
  ctx: { db: Tx; emit: (e: Omit<AuditEventInput, 'actor'>) => void; afterCommit: (fn: () => Promise<void>) => void; onRollback: (fn: () => void) => void },
  approval: Approval,
) => Promise<unknown>;

export interface ApprovalRequest {
  action: string;
  permission: string;
  resource: { type: string; id: string };
  requested_by: string;
  reason?: string | null;
  details?: Record<string, unknown>;
  ttl_days?: number;
  /** Overrides ttl_days, for requests that must be decided soon (break-glass access, a single operation). */
  ttl_minutes?: number;
}

function toApproval(r: ApprovalTable): Approval {
  return {
    id: r.id,
    action: r.action,
    permission: r.permission,
    resource: { type: r.resource_type, id: r.resource_id },
    status: r.status as ApprovalStatus,
    requested_by: r.requested_by,
    requested_at: r.requested_at,
    expires_at: r.expires_at,
    reason: r.reason,
    decided_by: r.decided_by,
    decided_at: r.decided_at,
    details: JSON.parse(r.details) as Record<string, unknown>,
    result: r.result === null ? null : (JSON.parse(r.result) as unknown),
  };
}

/**
 * Multi-person approval, for any engine: an action that needs it is recorded as a pending request; a different
 * principal who holds the action's permission approves (the registered executor then runs in the same transaction
 * as the decision) or rejects it. Requests expire.
 */
export class ApprovalService {
  readonly #executors = new Map<string, ApprovalExecutor>();

  constructor(private readonly clock: () => Date = () => new Date()) {}

  register(action: string, executor: ApprovalExecutor): void {
    this.#executors.set(action, executor);
  }

  async request(db: Executor, req: ApprovalRequest): Promise<Approval> {
    if (!this.#executors.has(req.action)) throw new Error(`no executor registered for ${req.action}`);
    const now = this.clock();
    const row: ApprovalTable = {
      id: randomId('apr'),
      action: req.action,
      permission: req.permission,
      resource_type: req.resource.type,
      resource_id: req.resource.id,
      status: 'pending',
      requested_by: req.requested_by,
      requested_at: now.toISOString(),
      expires_at: new Date(now.getTime() + (req.ttl_minutes !== undefined ? req.ttl_minutes * 60_000 : (req.ttl_days ?? 7) * DAY_MS)).toISOString(),
      reason: req.reason ?? null,
      decided_by: null,
      decided_at: null,
      details: JSON.stringify(req.details ?? {}),
      result: null,
    };
    await db.insertInto('approvals').values(row).execute();
    return toApproval(row);
  }

  /** The pending request for this action on this resource, if any (so that due work does not stack requests). */
  async pendingFor(db: Executor, action: string, resourceId: string): Promise<Approval | null> {
    return (await this.pending(db, action, resourceId))[0] ?? null;
  }

  /** Pending, unexpired requests for this action on this resource (by one requester). */
  async pending(db: Executor, action: string, resourceId: string, requestedBy?: string): Promise<Approval[]> {
    let q = db.selectFrom('approvals').selectAll().where('action', '=', action).where('resource_id', '=', resourceId).where('status', '=', 'pending').where('expires_at', '>', this.clock().toISOString());
    if (requestedBy) q = q.where('requested_by', '=', requestedBy);
    return (await q.execute()).map(toApproval);
  }

  /**
   * Use an approved request once (an approval that permits a single operation): false when it was already used,
   * by a concurrent request too (the update is conditional).
   */
  async consume(db: Executor, id: string, use: Record<string, unknown>): Promise<boolean> {
    const r = await db.updateTable('approvals').set({ result: JSON.stringify({ used_at: this.clock().toISOString(), ...use }) }).where('id', '=', id).where('status', '=', 'approved').where('result', 'is', null).executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  async list(db: Executor, q: ListApprovalsQuery): Promise<Approval[]> {
    let sel = db.selectFrom('approvals').selectAll().orderBy('requested_at', 'desc').limit(q.limit ?? 100);
    if (q.status) sel = sel.where('status', '=', q.status);
    return (await sel.execute()).map(toApproval);
  }

  async get(db: Executor, id: string): Promise<Approval> {
    const row = await db.selectFrom('approvals').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new PalisadeError('PAL_APPROVAL_NOT_FOUND');
    return toApproval(row);
  }

  async decide(
    ctx: Parameters<ApprovalExecutor>[0],
    id: string,
    principal: Principal,
    decision: 'approve' | 'reject',
    /** Whether the decider may exercise a permission (the authorization engine's answer); the principal's own permissions otherwise. */
    may: (permission: string) => Promise<boolean> = async (permission) => hasPermission(principal.permissions, permission),
  ): Promise<Approval> {
    const a = await this.get(ctx.db, id);
    const now = this.clock().toISOString();
    if (a.status === 'pending' && a.expires_at <= now) {
      await ctx.db.updateTable('approvals').set({ status: 'expired' }).where('id', '=', id).execute();
      throw new PalisadeError('PAL_APPROVAL_NOT_PENDING', `the request expired at ${a.expires_at}`, { extensions: { status: 'expired' } });
    }
    if (a.status !== 'pending') throw new PalisadeError('PAL_APPROVAL_NOT_PENDING', `the request is ${a.status}`, { extensions: { status: a.status } });
    if (principal.principal_id === a.requested_by) throw new PalisadeError('PAL_APPROVAL_SELF');
    if (!(await may(a.permission))) throw new PalisadeError('PAL_FORBIDDEN', `deciding this request requires the permission ${a.permission}`, { extensions: { permission: a.permission } });
    const decided = { ...a, status: decision === 'approve' ? ('approved' as const) : ('rejected' as const), decided_by: principal.principal_id, decided_at: now };
    const result = decision === 'approve' ? await this.#executors.get(a.action)!(ctx, decided) : null;
    const updated = await ctx.db
      .updateTable('approvals')
      .set({ status: decided.status, decided_by: decided.decided_by, decided_at: now, result: result === null || result === undefined ? null : JSON.stringify(result) })
      .where('id', '=', id)
      .where('status', '=', 'pending')
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) !== 1) throw new PalisadeError('PAL_APPROVAL_NOT_PENDING', 'the request was decided concurrently');
    return { ...decided, result: result ?? null };
  }

  /** Mark pending requests past their expiry; returns them. */
  async expireDue(db: Executor): Promise<Approval[]> {
    const now = this.clock().toISOString();
    const rows = await db.selectFrom('approvals').selectAll().where('status', '=', 'pending').where('expires_at', '<=', now).execute();
    if (rows.length) await db.updateTable('approvals').set({ status: 'expired' }).where('status', '=', 'pending').where('expires_at', '<=', now).execute();
    return rows.map((r) => toApproval({ ...r, status: 'expired' }));
  }
}
