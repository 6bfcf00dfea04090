/**
 * Streams the audit log to SIEM sinks (config `audit.exports`), at least once and in log order.
 *
 * Each sink has a cursor row in `audit_export_cursors`: the next log index it must receive. A new sink starts at 0,
 * so it receives the whole history (as SIEM users expect from Vault-style audit devices); retention-purged entries,
 * which have no payload left, are skipped. One loop per sink, on the node holding the lease `audit-export:<name>`:
 *
 *   read up to `batchSize` (≤ 500) events after the cursor → keep those whose type the sink wants → format → deliver
 *   → only then move the cursor past the batch.
 *
 * So a crash between delivery and the cursor update replays at most that one batch (duplicates are possible, gaps are
 * not). A failed batch is retried as is (same events, so the webhook id is stable) with exponential backoff; the error
 * is saved in the cursor's `last_error` and counted. The loop never throws. stop() waits for the batch in flight.
 */
import { hostname as osHostname } from 'node:os';
import { randomId } from '@palisade/core';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Config } from '../../../config/config.js';
import type { AuditEvent } from '../../../kernel/audit/events.js';
import type { AuditLedger } from '../../../kernel/audit/ledger.js';
import { acquireLease, releaseLease } from '../../../kernel/lease.js';
import type { Storage } from '../../../storage/database.js';
import { EXAMPLE_PEN, PALISADE_VERSION, type SyslogOptions } from './formats.js';
import { configError, errorText, readCaFile, type AuditSink } from './sink.js';
import { SyslogSink } from './syslog-sink.js';
import { readWebhookSecret, WebhookSink } from './webhook-sink.js';
import { typeMatches } from '../../../kernel/audit/events.js';

export type AuditExportConfig = Config['audit']['exports'][number];

export interface AuditExportsOptions {
  storage: Storage;
  ledger: Pick<AuditLedger, 'query' | 'size'>;
  /** `config.audit.exports`. */
  sinks: readonly AuditExportConfig[];
  log: Logger;
  registry: Registry;
  clock?: () => Date;
  /** This node's lease holder id; a random one when unset. */
  nodeId?: string;
  /** How often an idle loop looks for new events. Default 1000 ms. */
  pollMs?: number;
  /** Events read per batch, at most 500. Default 500. */
  batchSize?: number;
  /** Lease lifetime; renewed on every pass. Default 60 s (longer than a delivery's deadline). */
  leaseTtlMs?: number;
  /** Retry pacing after a failure: initialMs doubled per consecutive failure up to maxMs. Default 1 s .. 60 s. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Syslog HOSTNAME (and CEF dvchost). Default os.hostname(). */
  hostname?: string;
  /** Syslog APP-NAME. Default "palisade". */
  appName?: string;
  /** Enterprise number of the RFC 5424 SD-ID palisade@<pen>. Default 32473 (RFC 5612's example number). */
  pen?: number;
  /** Palisade's version in the formats. Default PALISADE_VERSION. */
  productVersion?: string;
  /** Build the transport of a sink (tests may wrap it); the default reads ca_file / secret_file. */
  createSink?: (cfg: AuditExportConfig, syslog: SyslogOptions) => AuditSink;
}

export interface AuditExports {
  /** Stop every loop: waits for the batch in flight, releases the leases, closes the connections. */
  stop(): Promise<void>;
  /**
   * Wake every loop and resolve once each sink's cursor reached the log size as of this call; rejects after
   * `timeoutMs` (default 10 s) naming the sinks still behind and their last error.
   */
  flush(timeoutMs?: number): Promise<void>;
  /** Wake the loops now (e.g. after an append) instead of at their next poll. */
  wake(): void;
}

const MAX_BATCH = 500;

/** Whether a sink wants an event type: `types` unset = all; entries are exact types or prefixes ending in `*`. */
export function typeFilter(types: readonly string[] | undefined): (type: string) => boolean {
  if (!types || types.length === 0) return () => true;
  return (type) => types.some((p) => typeMatches(p, type));
}

/** The transport of a sink from its configuration: ca_file and secret_file are read now, so errors surface at start. */
export function createAuditSink(cfg: AuditExportConfig, syslog: SyslogOptions, log: Logger, clock: () => Date): AuditSink {
  const caPem = cfg.ca_file ? readCaFile(cfg.name, cfg.ca_file) : undefined;
  const format = cfg.format ?? 'ocsf';
  if (cfg.kind === 'syslog') {
    if (cfg.secret_file) throw configError(cfg.name, 'secret_file is for webhook sinks; a syslog collector is authenticated by TLS (ca_file)');
    return new SyslogSink({ name: cfg.name, url: cfg.url, ...(caPem ? { caPem } : {}), format, syslog, log });
  }
  if (!cfg.secret_file) throw configError(cfg.name, 'a webhook sink needs secret_file: every delivery is signed');
  return new WebhookSink({ name: cfg.name, url: cfg.url, ...(caPem ? { caPem } : {}), secret: readWebhookSecret(cfg.name, cfg.secret_file), format, syslog, log, clock });
}

function counter(registry: Registry, name: string, help: string): Counter<'sink'> {
  return (registry.getSingleMetric(name) as Counter<'sink'> | undefined) ?? new Counter({ name, help, labelNames: ['sink'] as const, registers: [registry] });
}

/**
 * Start one export loop per configured sink. Synchronous: a sink whose configuration is unusable (url, ca_file,
 * secret_file, duplicate name) throws PAL_CONFIG_INVALID here, before anything runs.
 */
export function startAuditExports(opts: AuditExportsOptions): AuditExports {
  const clock = opts.clock ?? (() => new Date());
  const names = new Set<string>();
  for (const s of opts.sinks) {
    if (names.has(s.name)) throw configError(s.name, 'two sinks have this name');
    names.add(s.name);
  }
  const batchSize = Math.min(MAX_BATCH, Math.max(1, opts.batchSize ?? MAX_BATCH));
  const syslog: SyslogOptions = {
    hostname: opts.hostname ?? osHostname(),
    appName: opts.appName ?? 'palisade',
    pen: opts.pen ?? EXAMPLE_PEN,
    productVersion: opts.productVersion ?? PALISADE_VERSION,
  };
  const make = opts.createSink ?? ((cfg, sys) => createAuditSink(cfg, sys, opts.log, clock));
  const sinks = opts.sinks.map((cfg) => ({ cfg, sink: make(cfg, syslog) }));

  const events = counter(opts.registry, 'audit_export_events_total', 'Audit events delivered to each SIEM sink.');
  const failures = counter(opts.registry, 'audit_export_failures_total', 'Failed export attempts per SIEM sink (a batch not delivered, or its cursor not read or moved); each is retried.');
  const { storage, ledger } = opts;
  if (!opts.registry.getSingleMetric('audit_export_lag_events')) {
    new Gauge({
      name: 'audit_export_lag_events',
      help: 'Audit events appended but not yet delivered to each SIEM sink (log size minus the sink\'s cursor).',
      labelNames: ['sink'] as const,
      registers: [opts.registry],
      async collect() {
        this.reset();
        const size = await ledger.size();
        const rows = await storage.db.selectFrom('audit_export_cursors').select(['sink', 'next_index']).execute();
        const cursors = new Map(rows.map((r) => [r.sink, Number(r.next_index)]));
        for (const s of names) this.set({ sink: s }, Math.max(0, size - (cursors.get(s) ?? 0)));
      },
    });
  }
  for (const s of names) {
    events.inc({ sink: s }, 0);
    failures.inc({ sink: s }, 0);
  }

  const holder = opts.nodeId ?? randomId('node');
  const loops = sinks.map(
    ({ cfg, sink }) =>
      new ExportLoop({
        sink,
        want: typeFilter(cfg.types),
        storage,
        ledger,
        log: opts.log.child({ audit_export: cfg.name }),
        clock,
        holder,
        pollMs: opts.pollMs ?? 1000,
        batchSize,
        leaseTtlMs: opts.leaseTtlMs ?? 60_000,
        backoffInitialMs: opts.backoff?.initialMs ?? 1000,
        backoffMaxMs: opts.backoff?.maxMs ?? 60_000,
        delivered: (n) => events.inc({ sink: cfg.name }, n),
        failed: () => failures.inc({ sink: cfg.name }),
      }),
  );
  for (const l of loops) l.start();
  return {
    async stop() {
      await Promise.all(loops.map((l) => l.stop()));
    },
    async flush(timeoutMs = 10_000) {
      const target = await ledger.size();
      await Promise.all(loops.map((l) => l.reached(target, timeoutMs)));
    },
    wake() {
      for (const l of loops) l.wake();
    },
  };
}

interface LoopDeps {
  sink: AuditSink;
  want: (type: string) => boolean;
  storage: Storage;
  ledger: Pick<AuditLedger, 'query' | 'size'>;
  log: Logger;
  clock: () => Date;
  holder: string;
  pollMs: number;
  batchSize: number;
  leaseTtlMs: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  delivered: (n: number) => void;
  failed: () => void;
}

/** A batch read from the log and not yet delivered: retried as is until it is. */
interface Batch {
  start: number;
  /** The cursor after it: past the last entry read (including entries filtered out or purged). */
  end: number;
  events: AuditEvent[];
}

class ExportLoop {
  readonly #d: LoopDeps;
  readonly #lease: string;
  #stopped = false;
  #running: Promise<void> | undefined;
  #pending: Batch | null = null;
  #failures = 0;
  #cursorReady = false;
  #lastError: string | null = null;
  /** The sink's cursor as this loop last saw or moved it. */
  #cursor = 0;
  #wake: (() => void) | null = null;
  #kicked = false;
  #progress = new Set<() => void>();

  constructor(d: LoopDeps) {
    this.#d = d;
    this.#lease = `audit-export:${d.sink.name}`;
  }

  start(): void {
    this.#running = this.#run();
  }

  wake(): void {
    if (this.#wake) this.#wake();
    else this.#kicked = true; // mid-pass: do not sleep after it
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.wake();
    await this.#running;
    await releaseLease(this.#d.storage.db, this.#lease, this.#d.holder).catch(() => undefined);
    await this.#d.sink.close().catch(() => undefined);
  }

  /** Resolves once the cursor is at `target` or beyond. */
  reached(target: number, timeoutMs: number): Promise<void> {
    if (this.#cursor >= target) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (this.#cursor < target) return;
        clearTimeout(timer);
        this.#progress.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#progress.delete(check);
        reject(new Error(`audit export ${this.#d.sink.name} is at ${this.#cursor}, not ${target}, after ${timeoutMs} ms${this.#lastError ? `: ${this.#lastError}` : ''}`));
      }, timeoutMs);
      this.#progress.add(check);
      this.wake();
    });
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      let delay = this.#d.pollMs;
      try {
        const more = await this.#pass();
        this.#failures = 0;
        if (more) delay = 0;
      } catch (e) {
        this.#failures++;
        delay = Math.min(this.#d.backoffMaxMs, this.#d.backoffInitialMs * 2 ** Math.min(this.#failures - 1, 20));
        await this.#recordFailure(e);
      }
      for (const f of [...this.#progress]) f();
      if (this.#kicked) {
        this.#kicked = false;
        if (this.#failures === 0) delay = 0;
      }
      if (delay > 0 && !this.#stopped) await this.#sleep(delay);
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = null;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = null;
        resolve();
      };
    });
  }

  async #recordFailure(e: unknown): Promise<void> {
    const { log, storage, clock, sink } = this.#d;
    const text = errorText(e);
    this.#lastError = text;
    this.#d.failed();
    log.warn({ sink: sink.name, err: text, failures: this.#failures }, 'audit export failed; the batch will be retried');
    try {
      await storage.db.updateTable('audit_export_cursors').set({ last_error: text, updated_at: clock().toISOString() }).where('sink', '=', sink.name).execute();
    } catch (err) {
      log.warn({ sink: sink.name, err: errorText(err) }, 'audit export could not record its error');
    }
  }

  /** One step: returns true when it moved the cursor and more may be waiting. */
  async #pass(): Promise<boolean> {
    const { storage, sink, clock, holder } = this.#d;
    const db = storage.db;
    // Caught up: an idle pass only reads (the cursor another node may have moved is never behind this one's).
    if (this.#cursorReady && !this.#pending && (await this.#d.ledger.size()) <= this.#cursor) return false;
    if (!(await acquireLease(db, this.#lease, holder, this.#d.leaseTtlMs, clock()))) {
      this.#pending = null; // another node exports this sink; it re-reads from the cursor
      this.#cursor = await this.#readCursor();
      return false;
    }
    if (!this.#cursorReady) {
      // A new sink starts at 0: it receives the whole history.
      await db.insertInto('audit_export_cursors').values({ sink: sink.name, next_index: 0, updated_at: clock().toISOString(), last_error: null }).onConflict((oc) => oc.column('sink').doNothing()).execute();
      this.#cursorReady = true;
    }
    const cursor = await this.#readCursor();
    this.#cursor = cursor;
    if (this.#pending && this.#pending.start !== cursor) this.#pending = null; // the cursor moved under us (another node held the lease meanwhile)
    const batch = this.#pending ?? (await this.#read(cursor));
    if (!batch) return false;
    this.#pending = batch;
    if (batch.events.length > 0) await sink.deliver(batch.events);
    // Delivered: now (and only now) the cursor moves, unless another node moved it meanwhile.
    const moved = await db
      .updateTable('audit_export_cursors')
      .set({ next_index: batch.end, updated_at: clock().toISOString(), last_error: null })
      .where('sink', '=', sink.name)
      .where('next_index', '=', batch.start)
      .executeTakeFirst();
    this.#pending = null;
    if (Number(moved.numUpdatedRows) === 0) {
      this.#cursor = await this.#readCursor();
      return false;
    }
    this.#cursor = batch.end;
    this.#lastError = null;
    if (batch.events.length > 0) this.#d.delivered(batch.events.length);
    return true;
  }

  async #readCursor(): Promise<number> {
    const row = await this.#d.storage.db.selectFrom('audit_export_cursors').select('next_index').where('sink', '=', this.#d.sink.name).executeTakeFirst();
    return row ? Number(row.next_index) : 0;
  }

  /** The next batch after `cursor`, or null when the sink is caught up. */
  async #read(cursor: number): Promise<Batch | null> {
    const { ledger, batchSize, want } = this.#d;
    // Entries below the size read first are committed (the head and its rows commit together), so a page that ends
    // without a cursor has seen every one of them: the batch may end there even if the tail was purged or filtered.
    const size = await ledger.size();
    if (cursor >= size) return null;
    const page = await ledger.query({ order: 'asc', limit: batchSize, ...(cursor > 0 ? { cursor: String(cursor - 1) } : {}) });
    const last = page.events.length > 0 ? page.events[page.events.length - 1]!.index : -1;
    const end = page.next_cursor !== null ? Math.max(last, Number(page.next_cursor)) + 1 : Math.max(last + 1, size);
    // Purged entries come back without a payload (or not at all): skip anything without an actor.
    const events = page.events.filter((e) => e.index >= cursor && e.actor && typeof e.type === 'string' && want(e.type));
    return { start: cursor, end, events };
  }
}
