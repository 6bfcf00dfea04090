import { formatCheckpoint, parseCheckpoint, parseNote } from '@palisade/core';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Storage } from '../../storage/database.js';
import { acquireLease, releaseLease } from '../lease.js';
import type { Anchor, SignedCheckpoint } from './anchors/anchor.js';
import type { AuditLedger } from './ledger.js';

const LEASE = 'audit-checkpointer';

/** Signs checkpoint bodies with the log's key (held by the KMS); see checkpoint-signer.ts. */
export interface CheckpointSigner {
  /** The signed note for a checkpoint body. */
  sign(body: string): Promise<string>;
  /** C2SP verifier keys of every version of the log's key. */
  verifierKeys(): Promise<string[]>;
}

export interface CheckpointerDeps {
  storage: Storage;
  ledger: AuditLedger;
  signer: CheckpointSigner;
  anchors: Anchor[];
  origin: () => Promise<string>;
  intervalSeconds: number;
  maxEvents: number;
  log: Logger;
  registry: Registry;
  clock: () => Date;
  isSealed: () => boolean;
  /** Lease holder id of this node (see nodeId). */
  holder: string;
}

/**
 * Signs a checkpoint of the log (C2SP tlog-checkpoint in a signed note) every `intervalSeconds` when the log grew, or
 * sooner once `maxEvents` were appended, then hands it to each anchor (witnesses cosign, time-stamping authorities
 * timestamp) and stores their receipts. Each anchor catches up from the checkpoint it last accepted, so a witness
 * that was down receives the newest checkpoint with a consistency proof from its last one. One node at a time (lease).
 */
export class Checkpointer {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;
  readonly #anchorFailures: Counter<'anchor'>;

  constructor(private readonly deps: CheckpointerDeps) {
    const { registry, storage, clock } = deps;
    this.#anchorFailures = new Counter({ name: 'audit_anchor_failures_total', help: 'Checkpoints an anchor (witness, time-stamping authority) did not accept, by anchor.', labelNames: ['anchor'] as const, registers: [registry] });
    for (const a of deps.anchors) this.#anchorFailures.inc({ anchor: a.name }, 0);
    new Gauge({
      name: 'audit_checkpoint_age_seconds',
      help: 'Seconds since the latest signed checkpoint of the audit log (absent before the first).',
      registers: [registry],
      async collect() {
        this.reset();
        const cp = await storage.db.selectFrom('audit_checkpoints').select('created_at').orderBy('size', 'desc').limit(1).executeTakeFirst();
        if (cp) this.set((clock().getTime() - Date.parse(cp.created_at)) / 1000);
      },
    });
    new Gauge({
      name: 'audit_unanchored_entries',
      help: 'Entries of the audit log not yet covered by a checkpoint each anchor accepted, by anchor.',
      labelNames: ['anchor'] as const,
      registers: [registry],
      async collect() {
        this.reset();
        const size = await deps.ledger.size();
        for (const a of deps.anchors) this.set({ anchor: a.name }, size - (await lastAnchoredSize(storage, a.name)));
      },
    });
  }

  start(): void {
    const ms = Math.min(1000, this.deps.intervalSeconds * 1000);
    this.#timer = setInterval(() => this.kick(), ms);
    this.#timer.unref();
  }

  kick(): void {
    if (!this.#running) this.#running = this.tick().catch((e: unknown) => this.deps.log.error({ err: e }, 'audit checkpoint pass failed')).finally(() => (this.#running = undefined));
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
    await releaseLease(this.deps.storage.db, LEASE, this.deps.holder).catch(() => undefined);
  }

  /** One pass: sign a checkpoint if one is due (or `force`), then bring every anchor up to the latest; null when idle. */
  async tick(force = false): Promise<SignedCheckpoint | null> {
    const { storage, ledger, clock } = this.deps;
    if (this.deps.isSealed()) return null;
    const now = clock();
    const latest = await this.latest();
    const size = await ledger.size();
    const due = size > (latest?.size ?? 0) && (force || !latest || size - latest.size >= this.deps.maxEvents || now.getTime() - Date.parse(latest.created_at) >= this.deps.intervalSeconds * 1000);
    const anchored = await Promise.all(this.deps.anchors.map((a) => lastAnchoredSize(storage, a.name)));
    // An idle pass only reads: the lease (a write) is taken when there is something to sign or to anchor.
    if (!due && !anchored.some((n) => n < (latest?.size ?? 0))) return null;
    if (!(await acquireLease(storage.db, LEASE, this.deps.holder, Math.max(30_000, 3 * this.deps.intervalSeconds * 1000), now))) return null;
    let cp = latest ? await this.#load(latest.size) : null;
    if (due) {
      // Sign only what checks out since the last signed root: a row or root forged in the database must not get the log's signature.
      const head = await ledger.checkedHead(cp ? { size: cp.size, root: cp.root } : null).catch((e: unknown) => {
        throw new Error(`refusing to sign an audit checkpoint: ${(e as Error).message}`, { cause: e });
      });
      cp = await this.#sign(head.size, head.root, now);
    }
    if (cp) await this.#anchor(cp);
    return cp;
  }

  async latest(): Promise<{ size: number; created_at: string } | undefined> {
    const r = await this.deps.storage.db.selectFrom('audit_checkpoints').select(['size', 'created_at']).orderBy('size', 'desc').limit(1).executeTakeFirst();
    return r ? { size: Number(r.size), created_at: r.created_at } : undefined;
  }

  async #sign(size: number, root: Buffer, now: Date): Promise<SignedCheckpoint> {
    const origin = await this.deps.origin();
    const body = formatCheckpoint({ origin, size, root });
    const note = await this.deps.signer.sign(body);
    await this.deps.storage.db.insertInto('audit_checkpoints').values({ size, root, note, created_at: now.toISOString() }).onConflict((oc) => oc.column('size').doNothing()).execute();
    return { origin, size, root, body, note };
  }

  async #load(size: number): Promise<SignedCheckpoint> {
    const r = await this.deps.storage.db.selectFrom('audit_checkpoints').selectAll().where('size', '=', size).executeTakeFirstOrThrow();
    // The size and root come from the signed note, not from the columns beside it.
    const parsed = parseNote(r.note);
    const c = parsed.ok ? parseCheckpoint(parsed.note.text) : parsed;
    if (!c.ok || !parsed.ok || c.checkpoint.size !== Number(r.size)) throw new Error(`stored checkpoint ${r.size} is not a signed checkpoint of that size`);
    return { origin: c.checkpoint.origin, size: c.checkpoint.size, root: c.checkpoint.root, body: parsed.note.text, note: r.note };
  }

  async #anchor(cp: SignedCheckpoint): Promise<void> {
    const { storage, ledger, clock, log } = this.deps;
    for (const a of this.deps.anchors) {
      const anchored = () => lastAnchoredSize(storage, a.name);
      if ((await anchored()) >= cp.size) continue;
      try {
        const receipt = await a.anchor(cp, { consistencyProof: (from, to) => (from === 0 || from === to ? Promise.resolve([]) : ledger.consistencyProof(from, to)), lastAnchoredSize: anchored });
        await storage.db.insertInto('audit_anchors').values({ size: cp.size, anchor: a.name, kind: a.kind, receipt, created_at: clock().toISOString() }).onConflict((oc) => oc.columns(['size', 'anchor']).doNothing()).execute();
      } catch (e) {
        this.#anchorFailures.inc({ anchor: a.name });
        log.warn({ err: e, anchor: a.name, size: cp.size }, 'audit checkpoint not anchored; retrying on the next pass');
      }
    }
  }
}

/** The largest checkpoint size an anchor has accepted (0 if none). */
async function lastAnchoredSize(storage: Storage, anchor: string): Promise<number> {
  const r = await storage.db.selectFrom('audit_anchors').select((eb) => eb.fn.max('size').as('size')).where('anchor', '=', anchor).executeTakeFirst();
  return Number(r?.size ?? 0);
}
