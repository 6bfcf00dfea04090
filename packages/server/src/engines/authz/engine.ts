import { PalisadeError, type Approval, type ExplainRequest, type Explanation } from '@palisade/core';
import type { Executor, Storage } from '../../storage/database.js';
import type { ApprovalService } from '../../kernel/approvals/approvals.js';
import type { AuthGeneration } from '../../kernel/auth/generation.js';
import { DecisionPoint, resourceKey, type DecisionInput, type SubjectInfo } from './decide.js';
import type { Decision, RequestFacts, ResourceAttrs } from '../../kernel/auth/decision.js';
import type { DecisionContext } from './conditions.js';
import { AuthzStore } from './store.js';

/** The threat-detection engine's view of a request: 0 (no concern) to 100. Until it reports, every request is 0. */
export type RiskSource = (input: { principal_id: string; source_ip: string | null; action: string }) => number;

export interface AuthzEngineDeps {
  storage: Storage;
  generation: AuthGeneration;
  approvals: ApprovalService;
  /** A directory principal's organisation, roles (with where they come from) and groups; null when it has none. */
  subjects: (principalId: string, db: Executor) => Promise<SubjectInfo | null>;
  clock?: () => Date;
}

/** The action an approval that permits one operation is filed under. */
export const PERMIT_ACTION = 'authz.permit';
/** The action a requested (just-in-time or break-glass) grant is filed under. */
export const GRANT_ACTION = 'authz.grant';


/**
 * Authorization: keeps the decision point current (rebuilt from the database when the auth generation moves, on
 * any node), answers `authorize` for the pipeline and `explain` for people, and runs the approval kinds it owns.
 */
export class AuthzEngine {
  readonly store: AuthzStore;
  readonly #clock: () => Date;
  #point: DecisionPoint | null = null;
  #loading: Promise<DecisionPoint> | null = null;
  #stale = true;
  #risk: RiskSource = () => 0;

  constructor(private readonly deps: AuthzEngineDeps) {
    this.#clock = deps.clock ?? (() => new Date());
    this.store = new AuthzStore(deps.generation, this.#clock);
    deps.generation.onChange(() => {
      this.#stale = true;
    });
    deps.approvals.register(PERMIT_ACTION, async () => null);
    deps.approvals.register(GRANT_ACTION, async (ctx, approval) => {
      const d = approval.details as { subject: string; role: string; scope: string; minutes: number; reason: string };
      const expires_at = new Date(this.#clock().getTime() + d.minutes * 60_000).toISOString();
      const binding = await this.store.createBinding(ctx.db, { subject: d.subject, role: d.role, scope: d.scope, expires_at, reason: d.reason, approval_id: approval.id }, approval.decided_by ?? approval.requested_by);
      ctx.emit({ type: 'authz.binding.create', outcome: 'success', action: 'authz:grants:request', resource: { type: 'authz_binding', id: binding.id }, error_code: null, details: { subject: d.subject, role: d.role, scope: d.scope, expires_at, reason: d.reason, approval_id: approval.id } });
      return { binding_id: binding.id, expires_at };
    });
  }

  /** The threat-detection engine's hook. */
  setRiskSource(fn: RiskSource): void {
    this.#risk = fn;
  }

  /**
   * The current decision point (rebuilt once after a change, whoever asks first). `db`: the caller's transaction
   * when it has one (on SQLite a read outside it would wait for it), for this and every read below.
   */
  async point(db: Executor = this.deps.storage.db): Promise<DecisionPoint> {
    if (!this.#stale && this.#point) return this.#point;
    // Inside a transaction: read through it, never join a load waiting for the connection this transaction holds.
    if (db !== this.deps.storage.db) return new DecisionPoint(await this.store.snapshot(db));
    if (!this.#loading) {
      this.#stale = false;
      this.#loading = this.store
        .snapshot(db)
        .then((s) => (this.#point = new DecisionPoint(s)))
        .catch((e: unknown) => {
          this.#stale = true;
          throw e;
        })
        .finally(() => {
          this.#loading = null;
        });
    }
    return this.#loading;
  }

  /** The input of a decision for a request's principal. */
  async #input(facts: RequestFacts, action: string, resource: ResourceAttrs, approval: string | null, db: Executor): Promise<DecisionInput> {
    const p = facts.principal;
    const method = p.method ?? 'api_key';
    const time = this.#clock();
    const context: DecisionContext = {
      time,
      source_ip: facts.source_ip,
      authentication: method,
      mfa_at: p.session?.mfa_at ? Date.parse(p.session.mfa_at) : null,
      mfa_method: p.session?.mfa_method ?? null,
      certificate: p.spiffe_id ?? null,
      risk: this.#risk({ principal_id: p.principal_id, source_ip: facts.source_ip, action }),
    };
    const credential = method === 'api_key' ? `api_key:${p.api_key_id ?? 'none'}` : method === 'access_token' ? `token:${p.token?.client_id ?? 'unknown'}` : 'role';
    return {
      principal_id: p.principal_id,
      permissions: p.permissions,
      credential,
      ceiling: p.ceiling ?? (method === 'api_key' ? p.permissions : null),
      subject: await this.deps.subjects(p.principal_id, db),
      action,
      resource,
      context,
      approval,
    };
  }

  /** The pipeline's question. An approval id, when given, must be an unused approval of exactly this request. */
  async authorize(facts: RequestFacts, action: string, resource: ResourceAttrs, db: Executor = this.deps.storage.db): Promise<Decision> {
    const point = await this.point(db);
    const approval = facts.approval_id ? await this.#checkPermit(facts.approval_id, facts.principal.principal_id, action, resource, db) : null;
    return point.decide(await this.#input(facts, action, resource, approval, db));
  }

  /** The decision and every role, binding and rule that took part, for a principal (not necessarily the caller). */
  async explain(
    facts: RequestFacts | { principal_id: string },
    action: string,
    resource: ResourceAttrs,
    ctx: NonNullable<ExplainRequest['context']> = {},
    db: Executor = this.deps.storage.db,
  ): Promise<Explanation> {
    const point = await this.point(db);
    let input: DecisionInput;
    if ('principal' in facts) input = await this.#input(facts, action, resource, null, db);
    else {
      // Someone else: as if they signed in (a session holding their roles).
      const subject = await this.deps.subjects(facts.principal_id, db);
      if (!subject) throw new PalisadeError('PAL_IDENTITY_USER_NOT_FOUND', `no user or service identity ${facts.principal_id}`);
      const permissions = [...new Set(subject.roles.flatMap((r) => point.snapshot.roles.get(r.role) ?? []))];
      input = { principal_id: facts.principal_id, permissions, credential: 'role', ceiling: null, subject, action, resource, context: { time: this.#clock(), source_ip: null, authentication: 'session', mfa_at: null, mfa_method: null, certificate: null, risk: this.#risk({ principal_id: facts.principal_id, source_ip: null, action }) }, approval: null };
    }
    const time = ctx.time ? new Date(ctx.time) : input.context.time;
    input.context = {
      time,
      source_ip: ctx.source_ip ?? input.context.source_ip,
      authentication: ctx.authentication ?? input.context.authentication,
      mfa_at: ctx.mfa_age_seconds !== undefined ? time.getTime() - ctx.mfa_age_seconds * 1000 : input.context.mfa_at,
      mfa_method: ctx.mfa_method ?? input.context.mfa_method,
      certificate: ctx.certificate ?? input.context.certificate,
      risk: ctx.risk ?? input.context.risk,
    };
    if (ctx.approval_id) input.approval = await this.#checkPermit(ctx.approval_id, input.principal_id, action, resource, db);
    const d = point.decide(input, true);
    return { decision: d.decision, reason: d.reason, principal_id: input.principal_id, action, policy_version: point.snapshot.policyVersion, steps: d.steps ?? [] };
  }

  /** File (or find the pending) approval request that would permit this one operation. */
  async requestPermit(db: Executor, principal_id: string, action: string, resource: ResourceAttrs, d: Decision): Promise<{ approval: Approval; created: boolean }> {
    const key = resourceKey(resource);
    const target = { type: resource.type, id: resource.id ?? resource.name ?? resource.type };
    const pending = await this.deps.approvals.pending(db, PERMIT_ACTION, target.id, principal_id);
    const same = pending.find((a) => a.details['permission'] === action && a.details['resource_key'] === key);
    if (same) return { approval: same, created: false };
    const approval = await this.deps.approvals.request(db, {
      action: PERMIT_ACTION,
      permission: d.approval!.approver_permission,
      resource: target,
      requested_by: principal_id,
      reason: d.reason,
      details: { permission: action, resource_key: key, rule: d.approval!.rule },
      ttl_minutes: d.approval!.ttl_minutes,
    });
    return { approval, created: true };
  }

  /** Use the approval (once); false when another request used it first. */
  consumePermit(db: Executor, approvalId: string, requestId: string): Promise<boolean> {
    return this.deps.approvals.consume(db, approvalId, { request_id: requestId });
  }

  async #checkPermit(id: string, principal_id: string, action: string, resource: ResourceAttrs, db: Executor): Promise<string> {
    const a = await this.deps.approvals.get(db, id).catch(() => null);
    const bad = (why: string) => new PalisadeError('PAL_APPROVAL_INVALID', `approval ${id} ${why}`);
    if (!a || a.action !== PERMIT_ACTION) throw bad('is not an approval of a single operation');
    if (a.requested_by !== principal_id) throw bad('was requested by another principal');
    if (a.details['permission'] !== action || a.details['resource_key'] !== resourceKey(resource)) throw bad('was given for another operation');
    if (a.status !== 'approved') throw bad(`is ${a.status}`);
    if (a.result !== null) throw bad('was used already');
    if (a.expires_at <= this.#clock().toISOString()) throw bad('expired');
    return id;
  }
}
