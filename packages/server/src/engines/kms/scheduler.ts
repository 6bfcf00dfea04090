import { randomId } from '@palisade/core';
import type { Logger } from 'pino';
import type { Storage } from '../../storage/database.js';
import type { AuditLedger } from '../../kernel/audit/ledger.js';
import type { AuditEventInput } from '../../kernel/audit/events.js';
import { acquireLease, releaseLease } from '../../kernel/lease.js';
import type { KmsService } from './service.js';

const LEASE = 'kms-scheduler';
const SYSTEM = { principal_id: 'system:kms-scheduler', api_key_id: null, source_ip: null };

/**
 * Rotates keys whose rotation period has passed and erases material whose destruction date has come. One node runs
 * it at a time (database lease); each rotation or destruction commits with its audit event.
 */
export class KmsScheduler {
  readonly #holder = randomId('node');
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(
    private readonly deps: { storage: Storage; ledger: AuditLedger; service: KmsService; log: Logger; clock: () => Date; intervalSeconds: number; isSealed?: () => boolean },
  ) {}

  start(): void {
    const ms = this.deps.intervalSeconds * 1000;
    this.#timer = setInterval(() => {
      if (!this.#running) this.#running = this.tick().then(() => undefined, (e: unknown) => this.deps.log.error({ err: e }, 'kms scheduler tick failed')).finally(() => (this.#running = undefined));
    }, ms);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
    await releaseLease(this.deps.storage.db, LEASE, this.#holder).catch(() => undefined);
  }

  /** One pass; returns what it did. Public so operators' tooling and tests can drive it with their own clock. */
  async tick(now: Date = this.deps.clock()): Promise<{ rotated: string[]; destroyed: Array<{ key_id: string; version: number | null }> }> {
    const { storage, ledger, service } = this.deps;
    const ttl = Math.max(2 * this.deps.intervalSeconds * 1000, 30_000);
    if (this.deps.isSealed?.()) return { rotated: [], destroyed: [] }; // nothing can be unwrapped or audited
    if (!(await acquireLease(storage.db, LEASE, this.#holder, ttl, now))) return { rotated: [], destroyed: [] };
    const rotated: string[] = [];
    for (const key of await service.dueForRotation(storage.db, now)) {
      await storage.transact(async (tx) => {
        const extra: AuditEventInput[] = [];
        const meta = await service.rotate({ db: tx, emit: (e) => extra.push({ actor: SYSTEM, ...e }) }, key.key_id, 'scheduled', key.current_version);
        for (const e of extra) await ledger.append(tx, e);
        if (meta.version > key.current_version) rotated.push(key.key_id);
      });
    }
    const destroyed = await storage.transact(async (tx) => {
      const done = await service.destroyDue(tx, now);
      for (const d of done) {
        await ledger.append(tx, { type: 'kms.key.destroy', actor: SYSTEM, outcome: 'success', resource: { type: 'kms_key', id: d.key_id }, details: { version: d.version } });
      }
      return done;
    });
    return { rotated, destroyed };
  }
}
