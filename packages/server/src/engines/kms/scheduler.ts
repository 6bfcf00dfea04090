import type { Logger } from 'pino';
import type { Storage } from '../../storage/database.js';
import type { AuditLedger } from '../../kernel/audit/ledger.js';
import type { AuditEventInput } from '../../kernel/audit/events.js';
import { acquireLease, releaseLease } from '../../kernel/lease.js';
import type { KmsService } from './service.js';
import type { ApprovalService } from '../../kernel/approvals/approvals.js';

const LEASE = 'kms-scheduler';
const SYSTEM = { principal_id: 'system:kms-scheduler', api_key_id: null, source_ip: null };

/**
 * Rotates keys whose rotation period has passed, rewraps keys still under an older KEK version, and erases material
 * whose destruction date has come. One node runs it at a time (database lease); each step commits with its audit
 * event.
 */
export class KmsScheduler {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(
    private readonly deps: { storage: Storage; ledger: AuditLedger; service: KmsService; approvals: ApprovalService; log: Logger; clock: () => Date; intervalSeconds: number; holder: string; isSealed?: () => boolean },
  ) {}

  start(): void {
    const ms = this.deps.intervalSeconds * 1000;
    this.#timer = setInterval(() => this.kick(), ms);
    this.#timer.unref();
  }

  /** Run a pass now (e.g. after a KEK rotation) unless one is running. */
  kick(): void {
    if (!this.#running) this.#running = this.tick().then(() => undefined, (e: unknown) => this.deps.log.error({ err: e }, 'kms scheduler pass failed')).finally(() => (this.#running = undefined));
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
    await releaseLease(this.deps.storage.db, LEASE, this.deps.holder).catch(() => undefined);
  }

  /** One pass; returns what it did. Public so operators' tooling and tests can drive it with their own clock. */
  async tick(now: Date = this.deps.clock()): Promise<{ rotated: string[]; rewrapped: number; destroyed: Array<{ key_id: string; version: number | null }> }> {
    const { storage, ledger, service } = this.deps;
    const ttl = Math.max(2 * this.deps.intervalSeconds * 1000, 30_000);
    if (this.deps.isSealed?.()) return { rotated: [], rewrapped: 0, destroyed: [] }; // nothing can be unwrapped or audited
    if (!(await acquireLease(storage.db, LEASE, this.deps.holder, ttl, now))) return { rotated: [], rewrapped: 0, destroyed: [] };
    const rotated: string[] = [];
    for (const key of await service.dueForRotation(storage.db, now)) {
      await storage.transact(async (tx) => {
        const extra: AuditEventInput[] = [];
        const emit = (e: Omit<AuditEventInput, 'actor'>) => extra.push({ actor: SYSTEM, ...e });
        const out = await service.requestRotation({ db: tx, emit }, key.key_id, SYSTEM.principal_id, 'scheduled'); // approval types: a request, once
        for (const e of extra) await ledger.append(tx, e);
        if ('rotated' in out && out.rotated.version > key.current_version) rotated.push(key.key_id);
      });
    }
    await storage.transact(async (tx) => {
      for (const v of await service.deactivateDue(tx, now)) {
        await ledger.append(tx, { type: 'kms.rotation.deactivate', actor: SYSTEM, outcome: 'success', resource: { type: 'kms_key', id: v.key_id }, details: { version: v.version, reason: 'overlap ended' } });
      }
      for (const a of await this.deps.approvals.expireDue(tx)) {
        await ledger.append(tx, { type: 'approval.expire', actor: SYSTEM, outcome: 'success', resource: { type: 'approval', id: a.id }, details: { action: a.action, target: a.resource } });
      }
    });
    const rewrapped = await this.rewrap();
    const destroyed = await storage.transact(async (tx) => {
      const done = await service.destroyDue(tx, now);
      for (const d of done) {
        await ledger.append(tx, { type: 'kms.key.destroy', actor: SYSTEM, outcome: 'success', resource: { type: 'kms_key', id: d.key_id }, details: { version: d.version } });
      }
      return done;
    });
    return { rotated, rewrapped, destroyed };
  }

  /** Rewrap, batch by batch (each its own transaction and audit event), until nothing is under an old KEK version. */
  async rewrap(batch = 500, onProgress?: (done: number, pending: number) => void): Promise<number> {
    const { storage, ledger, service } = this.deps;
    let total = 0;
    for (;;) {
      const steps = await storage.transact(async (tx) => {
        const done = await service.rewrapPending(tx, batch);
        for (const d of done) {
          await ledger.append(tx, { type: 'kms.kek.rewrap', actor: SYSTEM, outcome: 'success', resource: { type: 'kms_key', id: d.kek_id }, details: { to_version: d.to_version, rewrapped: d.rewrapped, pending: d.pending } });
        }
        return done;
      });
      if (steps.length === 0) return total;
      total += steps.reduce((n, d) => n + d.rewrapped, 0);
      onProgress?.(total, steps.reduce((n, d) => n + d.pending, 0));
    }
  }

  /** At every unseal: the system keys exist (created with their audit events if not). */
  async ensureSystemKeys(): Promise<void> {
    const { storage, ledger, service } = this.deps;
    const attempt = () =>
      storage.transact(async (tx) => {
        const extra: AuditEventInput[] = [];
        await service.ensureSystemKeys({ db: tx, emit: (e) => extra.push({ actor: SYSTEM, ...e }) });
        for (const e of extra) await ledger.append(tx, e);
      });
    await attempt().catch(attempt); // another node may have created one at the same moment: the second pass sees it
  }
}
