import { constantTimeEqual, leafHash, PalisadeError, randomId, type Approval } from '@palisade/core';
import type { Barrier } from '../seal/barrier.js';
import { purgeMacBytes } from './verify.js';
import type { Executor, Storage, Tx } from '../../storage/database.js';
import type { AuditHoldTable } from '../../storage/schema.js';
import type { ApprovalService } from '../approvals/approvals.js';
import { acquireLease, releaseLease } from '../lease.js';
import { isoTime, typeMatches, type AuditEvent, type AuditEventInput } from './events.js';
import type { AuditLedger } from './ledger.js';

const DAY_MS = 86_400_000;
const SYSTEM = { principal_id: 'system:audit-retention', api_key_id: null, source_ip: null };

/** Which events a legal hold preserves; every given field must match (all events when empty). */
export interface HoldFilter {
  since?: string;
  until?: string;
  type?: string; // exact, or a prefix ending in *
  principal?: string;
  resource?: string;
}

export interface LegalHold {
  id: string;
  name: string;
  reason: string;
  filter: HoldFilter;
  created_at: string;
  created_by: string;
  released_at: string | null;
  released_by: string | null;
}

export interface RetentionConfig {
  default_days: number;
  classes: Record<string, number>;
}

type Emit = (e: Omit<AuditEventInput, 'actor'> & { actor?: AuditEventInput['actor'] }) => void;

const toHold = (r: AuditHoldTable): LegalHold => ({ ...r, filter: JSON.parse(r.filter) as HoldFilter });


export function holdCovers(f: HoldFilter, e: AuditEvent): boolean {
  return (
    (!f.since || e.time >= new Date(f.since).toISOString()) &&
    (!f.until || e.time < new Date(f.until).toISOString()) &&
    (!f.type || typeMatches(f.type, e.type)) &&
    (!f.principal || e.actor.principal_id === f.principal) &&
    (!f.resource || e.resource?.id === f.resource)
  );
}

/** Days an event's payload is kept: the longest matching class (exact type or prefix*), else the default. */
export function retentionDays(cfg: RetentionConfig, type: string): number {
  let best: [number, number] | null = null; // [specificity, days]
  for (const [pattern, days] of Object.entries(cfg.classes)) {
    if (!typeMatches(pattern, type)) continue;
    const specificity = pattern.endsWith('*') ? pattern.length - 1 : Number.MAX_SAFE_INTEGER;
    if (!best || specificity > best[0]) best = [specificity, days];
  }
  return best ? best[1] : cfg.default_days;
}

/**
 * Retention and legal holds, with S3 Object Lock semantics: an event's payload is kept for its class's retention
 * period; a legal hold keeps what it covers regardless of retention until it is released, and releasing a hold takes a
 * second principal's approval. Purging removes the payload and keeps the leaf hash, the roots and the MACs, so the tree
 * and every proof still verify; each purge run is itself an audit event.
 */
export class AuditRetention {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;

  constructor(
    private readonly deps: { storage: Storage; ledger: AuditLedger; approvals: ApprovalService; barrier: () => Barrier; config: RetentionConfig; clock: () => Date; holder: string; intervalSeconds?: number; onError?: (e: unknown) => void },
  ) {
    deps.approvals.register('audit.hold.release', async (ctx, approval) => {
      const hold = await this.#release(ctx.db, approval.resource.id, approval.requested_by, approval.decided_by ?? null);
      ctx.emit({ type: 'audit.hold.release', outcome: 'success', resource: { type: 'audit_hold', id: hold.id }, details: { name: hold.name, approval_id: approval.id } });
      return hold;
    });
  }

  /** Purge on a timer, one node at a time (lease). */
  start(isSealed: () => boolean): void {
    const interval = (this.deps.intervalSeconds ?? 3600) * 1000;
    this.#timer = setInterval(() => {
      if (this.#running || isSealed()) return;
      this.#running = (async () => {
        if (!(await acquireLease(this.deps.storage.db, 'audit-retention', this.deps.holder, 2 * interval, this.deps.clock()))) return;
        for (let r = await this.purgeDue(); r.purged === 5000; r = await this.purgeDue());
      })()
        .catch((e: unknown) => this.deps.onError?.(e))
        .finally(() => (this.#running = undefined));
    }, interval);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
    await releaseLease(this.deps.storage.db, 'audit-retention', this.deps.holder).catch(() => undefined);
  }

  async createHold(ctx: { db: Executor; emit?: Emit }, req: { name: string; reason: string; filter?: HoldFilter }, createdBy: string): Promise<LegalHold> {
    const filter: HoldFilter = { ...req.filter };
    if (filter.since) filter.since = isoTime(filter.since, 'filter.since');
    if (filter.until) filter.until = isoTime(filter.until, 'filter.until');
    const row: AuditHoldTable = { id: randomId('hold'), name: req.name, reason: req.reason, filter: JSON.stringify(filter), created_at: this.deps.clock().toISOString(), created_by: createdBy, released_at: null, released_by: null };
    await ctx.db.insertInto('audit_holds').values(row).execute();
    ctx.emit?.({ type: 'audit.hold.create', outcome: 'success', resource: { type: 'audit_hold', id: row.id }, details: { name: row.name, filter } });
    return toHold(row);
  }

  async listHolds(db: Executor, includeReleased = false): Promise<LegalHold[]> {
    let q = db.selectFrom('audit_holds').selectAll().orderBy('created_at');
    if (!includeReleased) q = q.where('released_at', 'is', null);
    return (await q.execute()).map(toHold);
  }

  async getHold(db: Executor, id: string): Promise<LegalHold> {
    const row = await db.selectFrom('audit_holds').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new PalisadeError('PAL_AUDIT_HOLD_NOT_FOUND', `no legal hold ${id}`);
    return toHold(row);
  }

  /** Releasing a hold always takes a second principal's approval: this records the request. */
  async requestRelease(ctx: { db: Executor; emit?: Emit }, id: string, requestedBy: string, reason?: string): Promise<Approval> {
    const hold = await this.getHold(ctx.db, id);
    if (hold.released_at) throw new PalisadeError('PAL_AUDIT_HOLD_RELEASED');
    const pending = await this.deps.approvals.pendingFor(ctx.db, 'audit.hold.release', id);
    if (pending) return pending;
    const approval = await this.deps.approvals.request(ctx.db, {
      action: 'audit.hold.release',
      permission: 'audit:holds:release',
      resource: { type: 'audit_hold', id },
      requested_by: requestedBy,
      reason: reason ?? null,
      details: { name: hold.name },
    });
    ctx.emit?.({ type: 'approval.request', outcome: 'success', resource: { type: 'approval', id: approval.id }, details: { action: approval.action, target: approval.resource } });
    return approval;
  }

  async #release(db: Tx, id: string, _requestedBy: string, decidedBy: string | null): Promise<LegalHold> {
    const hold = await this.getHold(db, id);
    if (hold.released_at) throw new PalisadeError('PAL_AUDIT_HOLD_RELEASED');
    const released_at = this.deps.clock().toISOString();
    await db.updateTable('audit_holds').set({ released_at, released_by: decidedBy }).where('id', '=', id).execute();
    return { ...hold, released_at, released_by: decidedBy };
  }

  /**
   * Purge the payloads whose retention ended and that no active hold covers, up to `limit` entries, in one transaction
   * with its `audit.purge` event. Returns what was purged and how many expired entries holds kept.
   */
  async purgeDue(now: Date = this.deps.clock(), limit = 5000): Promise<{ purged: number; held: number; first: number | null; last: number | null }> {
    const { storage, ledger, config } = this.deps;
    const minDays = Math.min(config.default_days, ...Object.values(config.classes));
    const horizon = new Date(now.getTime() - minDays * DAY_MS).toISOString();
    return storage.transact(async (tx) => {
      const holds = (await this.listHolds(tx)).map((h) => h.filter);
      const due: Array<{ idx: number; leaf: Buffer; ts: string; type: string }> = [];
      let held = 0;
      // Entries of longer-kept classes (or held) are passed over, so the scan pages on until `limit` are due.
      for (let cursor = -1; due.length < limit; ) {
        const rows = await tx.selectFrom('audit_events').select(['idx', 'data', 'leaf_hash', 'ts', 'type']).where('ts', '<', horizon).where('purged_at', 'is', null).where('idx', '>', cursor).orderBy('idx').limit(1000).execute();
        for (const r of rows) {
          cursor = Number(r.idx);
          // Only what still hashes to its leaf is purged (and MACed as purged): a tampered row stays for verify to name.
          if (!constantTimeEqual(leafHash(Buffer.from(r.data, 'utf8')), r.leaf_hash)) continue;
          const e = JSON.parse(r.data) as AuditEvent;
          if (Date.parse(e.time) + retentionDays(config, e.type) * DAY_MS > now.getTime()) continue;
          if (holds.some((f) => holdCovers(f, e))) held++;
          else if (due.push({ idx: cursor, leaf: Buffer.from(r.leaf_hash), ts: r.ts, type: r.type }) === limit) break;
        }
        if (rows.length < 1000) break;
      }
      const purgedAt = now.toISOString();
      const barrier = this.deps.barrier();
      for (const d of due) {
        const purge_mac = barrier.auditMac(purgeMacBytes(d.idx, d.leaf, d.ts, d.type, purgedAt));
        await tx.updateTable('audit_events').set({ data: '', purged_at: purgedAt, purge_mac }).where('idx', '=', d.idx).execute();
      }
      const out = { purged: due.length, held, first: due[0]?.idx ?? null, last: due.at(-1)?.idx ?? null };
      if (due.length > 0 || held > 0) await ledger.append(tx, { type: 'audit.purge', actor: SYSTEM, outcome: 'success', details: { purged: out.purged, held: out.held, first_index: out.first, last_index: out.last } });
      return out;
    });
  }
}
