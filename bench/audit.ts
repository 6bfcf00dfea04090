// The audit ledger: appends per second with batching (SQLite and PostgreSQL), inclusion and consistency proof
// latency, and the time to verify a log of 1,000,000 entries. Every figure is next to a limit measured in the same run:
//
//   1. appends/s: `storage.transact(tx => ledger.appendMany(tx, batch))` for batches of 100 and 1000, and 64 concurrent
//      `ledger.appendStandalone` (group-committed on SQLite), against the same rows (same columns and sizes,
//      precomputed: no JSON, hashing or MAC) inserted with plain batched INSERTs through the driver, on a fresh
//      database of the same engine, same schema, same durability, alternating A/B/B/A.
//   2. proof latency at the final tree size: `ledger.inclusionProof(i, size)` and `ledger.consistencyProof(m, size)`
//      from the database, against one primary-key SELECT of a row's leaf hash through the same connection (the
//      database round-trip floor). Every proof is checked against the tree head.
//   3. `ledger.verify()` over 1,000,000 entries on SQLite (built with appendMany first), against the same hashing
//      with node:crypto in a loop, no database: SHA-256 of every entry's bytes, the same node hashes, roots and MACs.
//
//   node --import tsx bench/audit.ts         (after `npx tsc -b`; `npm run bench` builds first)
//
// Env knobs (bench/README.md): BENCH_AUDIT_APPENDS (20000), BENCH_AUDIT_BATCHES (100,1000), BENCH_AUDIT_CONCURRENCY
// (64), BENCH_AUDIT_SINGLES (4000), BENCH_AUDIT_SINGLES_MS (3000), BENCH_AUDIT_PROOFS (500), BENCH_AUDIT_VERIFY_ENTRIES
// (1000000), BENCH_AUDIT_BUILD_BATCH (10000), BENCH_AUDIT_PG (1; 0 skips PostgreSQL), BENCH_AUDIT_PG_FSYNC (1; 0 keeps
// the testkit's fsync=off).
import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { canonicalJson, randomId, verifyConsistency, verifyInclusion } from '@palisade/core';
import { openStorage, type Storage } from '../packages/server/src/storage/database.js';
import { Barrier } from '../packages/server/src/kernel/seal/barrier.js';
import { AuditLedger } from '../packages/server/src/kernel/audit/ledger.js';
import type { AuditEventInput } from '../packages/server/src/kernel/audit/events.js';
import type { AuditEventTable } from '../packages/server/src/storage/schema.js';
import { findPostgresBinDir, startPostgres, type PostgresHandle } from '../packages/testkit/src/postgres.js';
import { heading, isEntry, num, percentile, ratio, table } from './lib/report.js';
import { machineBusySeconds } from './lib/servers.js';

export const APPEND_GOAL = 20_000; // appends per second, with batching
export const VERIFY_GOAL_S = 10; // seconds to verify 1,000,000 entries

export type Engine = 'SQLite' | 'PostgreSQL';

export interface AppendRow {
  engine: Engine;
  /** 'batch 100', 'batch 1000', '64 concurrent singles'. */
  mode: string;
  batch: number | null;
  ledger: Side;
  raw: Side;
}

export interface Side {
  count: number;
  seconds: number;
  /** Rows per second. */
  rate: number;
  /** This process's CPU while it ran, in cores (1.0 = one core busy throughout). */
  cpu: number;
}

export interface ProofRow {
  engine: Engine;
  /** Where the tree came from: the appends database or the verify log. */
  log: string;
  size: number;
  kind: 'inclusion' | 'consistency';
  n: number;
  p50: number;
  p99: number;
  floorP50: number;
  floorP99: number;
  hashesMean: number;
}

export interface VerifyBench {
  entries: number;
  buildBatch: number;
  buildSeconds: number;
  dbBytes: number;
  seconds: number;
  /** This process's CPU during verify, in cores. */
  cpu: number;
  /** Other processes' CPU during verify, in cores. */
  other: number;
  ok: boolean;
  reason: string | null;
  /** The same hashing (leaves, nodes, sampled roots and MACs) with node:crypto, no database. */
  limitSeconds: number;
  leafHashes: number;
  nodeHashes: number;
  macs: number;
  rootMatches: boolean;
  /** Reading every row with verify's query (5,000 rows each) through better-sqlite3 directly: the read floor. */
  rawScanSeconds: number;
}

export interface AuditResult {
  eventBytes: number;
  appends: AppendRow[];
  proofs: ProofRow[];
  verify: VerifyBench;
  pg: { skipped: string | null; settings: string };
  /** CPU used by other processes during each part, in cores (for PostgreSQL it includes the PostgreSQL server). */
  other: Record<string, number>;
  settings: { appends: number; batches: number[]; concurrency: number; singles: number; singlesMs: number; proofs: number };
}

const env = (name: string, def: number) => {
  const raw = process.env[name];
  const v = Number(raw);
  return raw !== undefined && raw !== '' && Number.isFinite(v) && v >= 0 ? Math.round(v) : def;
};

const COLUMNS = ['idx', 'ts', 'type', 'data', 'leaf_hash', 'tree_root', 'mac', 'purged_at'] as const;
const CHUNK = 500; // rows per INSERT statement, as appendMany does

/**
 * A kms.encrypt event shaped as the HTTP layer records it (actor from the API key, the client IP, a UUID request id, the
 * key as resource, the key version in details): about 390 bytes of canonical JSON once the index and time are added.
 */
function makeEvent(i: number): AuditEventInput {
  return {
    type: 'kms.encrypt',
    actor: { principal_id: randomId('svc'), api_key_id: randomId('ak'), source_ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` },
    outcome: 'success',
    request_id: randomUUID(),
    action: 'kms:encrypt',
    resource: { type: 'kms_key', id: randomId('key') },
    details: { key_version: 1 + (i % 4) },
  };
}

type RawRow = AuditEventTable;

/** What appendMany would store for `input` at `idx`, with random bytes for the three hashes: the raw peer's rows. */
function rawRow(input: AuditEventInput, idx: number, ts: string): RawRow {
  const data = canonicalJson({ index: idx, time: ts, ...input });
  return { idx, ts, type: input.type, data, leaf_hash: randomBytes(32), tree_root: randomBytes(32), mac: randomBytes(32), purged_at: null, purge_mac: null };
}

const params = (rows: readonly RawRow[]) => rows.flatMap((r) => COLUMNS.map((c) => r[c]));
const valuesSql = (n: number, pgStyle: boolean) =>
  Array.from({ length: n }, (_, r) => `(${COLUMNS.map((_c, k) => (pgStyle ? `$${r * COLUMNS.length + k + 1}` : '?')).join(',')})`).join(',');
const insertSql = (n: number, pgStyle: boolean) => `insert into audit_events (${COLUMNS.join(',')}) values ${valuesSql(n, pgStyle)}`;

/** The peer: plain batched INSERTs of precomputed rows, one transaction per batch, `CHUNK` rows per statement. */
interface RawSide {
  /** Parameter arrays per statement, precomputed outside the timing. */
  prepare(rows: readonly RawRow[], batch: number): unknown[][][];
  insert(batches: unknown[][][]): Promise<void>;
  close(): Promise<void>;
}

function sqliteRaw(file: string): RawSide {
  const db = new BetterSqlite3(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = full'); // as openStorage's default
  db.pragma('busy_timeout = 5000');
  const stmts = new Map<number, BetterSqlite3.Statement>();
  const stmt = (n: number) => stmts.get(n) ?? stmts.set(n, db.prepare(insertSql(n, false))).get(n)!;
  const tx = db.transaction((chunks: unknown[][]) => {
    for (const p of chunks) stmt(p.length / COLUMNS.length).run(...p);
  });
  return {
    prepare: (rows, batch) => chunked(rows, batch).map((b) => chunked(b, CHUNK).map(params)),
    insert: async (batches) => {
      for (const b of batches) tx.immediate(b);
    },
    close: async () => void db.close(),
  };
}

async function pgRaw(url: string): Promise<RawSide> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const texts = new Map<number, string>();
  const text = (n: number) => texts.get(n) ?? texts.set(n, insertSql(n, true)).get(n)!;
  return {
    prepare: (rows, batch) => chunked(rows, batch).map((b) => chunked(b, CHUNK).map(params)),
    insert: async (batches) => {
      for (const b of batches) {
        await client.query('begin');
        for (const p of b) await client.query(text(p.length / COLUMNS.length), p);
        await client.query('commit');
      }
    },
    close: () => client.end(),
  };
}

function chunked<T>(xs: readonly T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

/** `count` calls of `fn(i)` with `concurrency` in flight; stops issuing new ones after `maxMs`. Returns how many ran. */
async function inFlight(count: number, concurrency: number, maxMs: number, fn: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < count && performance.now() - t0 < maxMs) await fn(next++);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return next;
}

/** CPU the rest of the machine used since the call (busy time from /proc/stat minus this process's), in cores. */
function otherCpu(): () => number {
  const b0 = machineBusySeconds();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  return () => {
    const own = process.cpuUsage(c0);
    return Math.max(0, (machineBusySeconds() - b0 - (own.user + own.system) / 1e6) / ((performance.now() - t0) / 1000));
  };
}

interface Tally {
  count: number;
  seconds: number;
  /** CPU seconds this process (the benchmark, the ledger, the SQLite driver; not the PostgreSQL server) used. */
  cpu: number;
}
const tally = (): Tally => ({ count: 0, seconds: 0, cpu: 0 });

/** Runs `fn` (which returns how many rows it wrote) and adds its count, wall time and this process's CPU time to `t`. */
async function timed(t: Tally, fn: () => Promise<number>): Promise<void> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  t.count += await fn();
  t.seconds += (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  t.cpu += (c.user + c.system) / 1e6;
}

interface Db {
  engine: Engine;
  /** The ledger's database and the raw peer's (fresh, same engine and schema). */
  ledgerStorage: Storage;
  rawStorage: Storage;
  raw: RawSide;
  ledger: AuditLedger;
  close(): Promise<void>;
}

async function appendsOn(db: Db, pool: readonly AuditEventInput[], o: AuditResult['settings'], log: (s: string) => void): Promise<AppendRow[]> {
  const { ledger, ledgerStorage, rawStorage, raw } = db;
  let rawIdx = 0;
  const nextRaw = (n: number) => {
    const ts = new Date().toISOString();
    return Array.from({ length: n }, (_, k) => rawRow(pool[(rawIdx + k) % pool.length]!, rawIdx + k, ts));
  };
  let poolAt = 0;
  const nextEvents = (n: number) => Array.from({ length: n }, () => pool[poolAt++ % pool.length]!);

  // Warm-up (JIT, prepared statements, the first pages of both files): not timed.
  for (let i = 0; i < 4; i++) await ledgerStorage.transact((tx) => ledger.appendMany(tx, nextEvents(500)));
  const warm = nextRaw(2000);
  rawIdx += warm.length;
  await raw.insert(raw.prepare(warm, 500));

  const rows: AppendRow[] = [];
  const rate = (x: Tally): Side => ({ count: x.count, seconds: x.seconds, rate: x.count / x.seconds, cpu: x.cpu / x.seconds });
  for (const batch of o.batches) {
    const half = Math.max(batch, Math.round(o.appends / 2 / batch) * batch);
    const l = tally();
    const r = tally();
    const runLedger = async () => {
      const batches = chunked(nextEvents(half), batch);
      await timed(l, async () => {
        for (const b of batches) await ledgerStorage.transact((tx) => ledger.appendMany(tx, b));
        return half;
      });
    };
    const runRaw = async () => {
      const prepared = raw.prepare(nextRaw(half), batch);
      rawIdx += half;
      await timed(r, async () => {
        await raw.insert(prepared);
        return half;
      });
    };
    for (const side of [runRaw, runLedger, runLedger, runRaw]) await side(); // A/B/B/A: neither side always first
    rows.push({ engine: db.engine, mode: `batch ${num(batch)}`, batch, ledger: rate(l), raw: rate(r) });
    log(`  ${db.engine} batch ${num(batch)}: ledger ${num(l.count / l.seconds)}/s, plain INSERT ${num(r.count / r.seconds)}/s`);
  }

  // Concurrent single appends: each its own storage.transact (group commit on SQLite), vs the same path with a
  // plain INSERT of the precomputed row.
  const l = tally();
  const r = tally();
  const half = Math.ceil(o.singles / 2);
  const runLedger = async () => {
    const events = nextEvents(half);
    await timed(l, () => inFlight(half, o.concurrency, o.singlesMs / 2, (i) => ledger.appendStandalone(events[i]!)));
  };
  const runRaw = async () => {
    const rs = nextRaw(half);
    rawIdx += half;
    await timed(r, () => inFlight(half, o.concurrency, o.singlesMs / 2, (i) => rawStorage.transact((tx) => tx.insertInto('audit_events').values(rs[i]!).execute())));
  };
  for (const side of [runRaw, runLedger, runLedger, runRaw]) await side();
  rows.push({ engine: db.engine, mode: `${o.concurrency} concurrent singles`, batch: null, ledger: rate(l), raw: rate(r) });
  log(`  ${db.engine} ${o.concurrency} concurrent single appends: ledger ${num(l.count / l.seconds)}/s, plain single-row transactions ${num(r.count / r.seconds)}/s`);
  return rows;
}

/** Sequential proofs at the current tree size, each next to a primary-key SELECT through the same connection. */
async function proofsOn(engine: Engine, logName: string, storage: Storage, ledger: AuditLedger, n: number): Promise<ProofRow[]> {
  const { size, root } = await ledger.head();
  const floor = (i: number) => storage.db.selectFrom('audit_events').select('leaf_hash').where('idx', '=', i).executeTakeFirstOrThrow();
  const rnd = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo));
  const out: ProofRow[] = [];
  for (const kind of ['inclusion', 'consistency'] as const) {
    const t: number[] = [];
    const f: number[] = [];
    let hashes = 0;
    const checks: Array<() => Promise<boolean>> = [];
    for (let s = -20; s < n; s++) {
      const i = kind === 'inclusion' ? rnd(0, size) : rnd(1, size);
      const proof = async () => {
        const t0 = performance.now();
        if (kind === 'inclusion') {
          const p = await ledger.inclusionProof(i, size);
          const ms = performance.now() - t0;
          hashes += p.hashes.length;
          checks.push(async () => verifyInclusion(i, size, p.leaf_hash, p.hashes, root));
          return ms;
        }
        const p = await ledger.consistencyProof(i, size);
        const ms = performance.now() - t0;
        hashes += p.length;
        checks.push(async () => {
          // Rows keep a root only every 256 entries: the old root comes from the stored subtrees (checked by verify).
          return verifyConsistency(i, size, await ledger.tree.root(i), root, p);
        });
        return ms;
      };
      const select = async () => {
        const t0 = performance.now();
        await floor(rnd(0, size));
        return performance.now() - t0;
      };
      // Alternate which goes first; the first 20 samples are warm-up.
      let a: number;
      let b: number;
      if (s % 2 === 0) {
        a = await proof();
        b = await select();
      } else {
        b = await select();
        a = await proof();
      }
      if (s >= 0) {
        t.push(a);
        f.push(b);
      }
    }
    let bad = 0;
    for (const c of checks) if (!(await c())) bad++;
    if (bad > 0) throw new Error(`${bad} of ${checks.length} ${kind} proofs on ${engine} did not verify against the tree head`);
    t.sort((x, y) => x - y);
    f.sort((x, y) => x - y);
    out.push({ engine, log: logName, size, kind, n, p50: percentile(t, 50), p99: percentile(t, 99), floorP50: percentile(f, 50), floorP99: percentile(f, 99), hashesMean: hashes / (n + 20) });
  }
  return out;
}

/** Build a log of `entries` with appendMany, time ledger.verify(), then the scans and the same hashing without the DB. */
async function verifyBench(dir: string, pool: readonly AuditEventInput[], entries: number, buildBatch: number, proofs: number, log: (s: string) => void): Promise<{ v: VerifyBench; proofs: ProofRow[] }> {
  const file = join(dir, 'verify.sqlite');
  const storage = await openStorage({ url: file });
  const macKey = randomBytes(32);
  const barrier = new Barrier(macKey);
  const ledger = new AuditLedger(storage, () => barrier);
  try {
    log(`  building a log of ${num(entries)} entries: appendMany, ${num(buildBatch)} per transaction ...`);
    const t0 = performance.now();
    let next = 0.25;
    for (let done = 0; done < entries; ) {
      const n = Math.min(buildBatch, entries - done);
      const batch = Array.from({ length: n }, (_, k) => pool[(done + k) % pool.length]!);
      await storage.transact((tx) => ledger.appendMany(tx, batch));
      done += n;
      if (done / entries + 1e-9 >= next || done === entries) {
        const s = (performance.now() - t0) / 1000;
        log(`    ${String(Math.round((100 * done) / entries)).padStart(3)}%  ${num(done).padStart(9)} entries  ${num(s, 1).padStart(6)} s  ${num(done / s).padStart(7)}/s`);
        while (next <= done / entries + 1e-9) next += 0.25;
      }
    }
    const buildSeconds = (performance.now() - t0) / 1000;
    const dbBytes = (await stat(file)).size + (await stat(`${file}-wal`).catch(() => ({ size: 0 }))).size;

    log(`  ledger.verify() over ${num(entries)} entries ...`);
    let nextV = 0.25;
    const c1 = process.cpuUsage();
    const o1 = otherCpu();
    const t1 = performance.now();
    const res = await ledger.verify((p) => {
      if (p.checked / p.total + 1e-9 < nextV) return;
      const s = (performance.now() - t1) / 1000;
      log(`    ${String(Math.round((100 * p.checked) / p.total)).padStart(3)}%  ${num(p.checked).padStart(9)} checked  ${num(s, 1).padStart(6)} s  ${num(p.checked / s).padStart(7)}/s`);
      while (nextV <= p.checked / p.total + 1e-9) nextV += 0.25;
    });
    const seconds = (performance.now() - t1) / 1000;
    const cu = process.cpuUsage(c1);
    const otherDuringVerify = o1();
    const cpu = (cu.user + cu.system) / 1e6 / seconds;

    // The reads on their own: verify's query (5,000 rows each) through better-sqlite3 directly, back to back. Then the
    // limit: the rows read again (untimed), their bytes taken out (untimed), hashed exactly as verify hashes them
    // (timed: leaves, nodes, the root and its MAC every 256 entries and at the end).
    log('  the SELECT scan on its own, then the same hashing with node:crypto, no database ...');
    const raw = new BetterSqlite3(file, { readonly: true });
    interface ScanRow {
      data: string;
      tree_root: Buffer;
    }
    const q = raw.prepare<[number, number], ScanRow>('select * from audit_events where idx >= ? and idx < ? order by idx');
    const t2 = performance.now();
    for (let from = 0; from < entries; from += 5000) q.all(from, from + 5000);
    const rawScanSeconds = (performance.now() - t2) / 1000;

    const LEAF = Buffer.of(0);
    const NODE = Buffer.of(1);
    const h = (a: Buffer, b: Buffer) => createHash('sha256').update(NODE).update(a).update(b).digest();
    const stack: Buffer[] = [];
    const rootOf = () => stack.reduceRight((acc, x) => h(x, acc));
    let size = 0;
    let nodeHashes = 0;
    let macs = 0;
    let hashing = 0;
    let lastRoot: Buffer = Buffer.alloc(0);
    for (let from = 0; from < entries; from += 5000) {
      const rows = q.all(from, from + 5000);
      const datas = rows.map((r) => Buffer.from(r.data, 'utf8'));
      const t = performance.now();
      for (let k = 0; k < datas.length; k++) {
        let node = createHash('sha256').update(LEAF).update(datas[k]!).digest();
        for (let s = size; s % 2 === 1; s = Math.floor(s / 2)) {
          node = h(stack.pop()!, node);
          nodeHashes++;
        }
        stack.push(node);
        size++;
        if (size % 256 === 0 || size === entries) {
          lastRoot = rootOf();
          nodeHashes += stack.length - 1;
          const head = Buffer.alloc(40);
          head.writeBigUInt64BE(BigInt(size));
          rows[k]!.tree_root.copy(head, 8);
          createHmac('sha256', macKey).update(head).digest();
          macs++;
        }
      }
      hashing += performance.now() - t;
    }
    raw.close();
    const rootMatches = res.ok && lastRoot.toString('hex') === res.root;

    const v: VerifyBench = {
      entries, buildBatch, buildSeconds, dbBytes, seconds, cpu, other: otherDuringVerify, ok: res.ok, reason: res.ok ? null : `${res.reason} at ${res.first_bad_index}`,
      limitSeconds: hashing / 1000, leafHashes: size, nodeHashes, macs, rootMatches,
      rawScanSeconds,
    };
    log(`  proofs on the ${num(entries)}-entry log ...`);
    return { v, proofs: await proofsOn('SQLite', 'verify log', storage, ledger, proofs) };
  } finally {
    await storage.close();
  }
}

async function openSqlite(dir: string): Promise<Db> {
  const ledgerStorage = await openStorage({ url: join(dir, 'ledger.sqlite') });
  const rawStorage = await openStorage({ url: join(dir, 'raw.sqlite') });
  const barrier = new Barrier(randomBytes(32));
  const raw = sqliteRaw(join(dir, 'raw.sqlite'));
  return {
    engine: 'SQLite', ledgerStorage, rawStorage, raw, ledger: new AuditLedger(ledgerStorage, () => barrier),
    close: async () => {
      await raw.close();
      await Promise.all([ledgerStorage.close(), rawStorage.close()]);
    },
  };
}

/**
 * pg-pool's end() resolves before its sockets are closed; a server shut down in between sends the idle clients a
 * FATAL that the pool, already ended, reports as an unhandled 'error'. So wait until the server sees them gone.
 */
async function backendsGone(adminUrl: string, dbs: string[]): Promise<void> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    for (let i = 0; i < 100; i++) {
      const { rows } = await c.query<{ n: number }>('select count(*)::int as n from pg_stat_activity where datname = any($1)', [dbs]);
      if (rows[0]!.n === 0) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await c.end();
  }
}

async function openPg(server: PostgresHandle): Promise<Db> {
  const [ledgerUrl, rawUrl] = [await server.createDatabase('bench_ledger'), await server.createDatabase('bench_raw')];
  const ledgerStorage = await openStorage({ url: ledgerUrl });
  const rawStorage = await openStorage({ url: rawUrl });
  const barrier = new Barrier(randomBytes(32));
  const raw = await pgRaw(rawUrl);
  return {
    engine: 'PostgreSQL', ledgerStorage, rawStorage, raw, ledger: new AuditLedger(ledgerStorage, () => barrier),
    close: async () => {
      await raw.close();
      await Promise.all([ledgerStorage.close(), rawStorage.close()]);
    },
  };
}

export async function runAudit(opts: { quiet?: boolean } = {}): Promise<AuditResult> {
  const log = (s: string) => opts.quiet || console.log(s);
  const settings: AuditResult['settings'] = {
    appends: env('BENCH_AUDIT_APPENDS', 20_000),
    batches: (process.env.BENCH_AUDIT_BATCHES ?? '100,1000').split(',').map(Number).filter((b) => Number.isInteger(b) && b > 0),
    concurrency: env('BENCH_AUDIT_CONCURRENCY', 64) || 64,
    singles: env('BENCH_AUDIT_SINGLES', 4000),
    singlesMs: env('BENCH_AUDIT_SINGLES_MS', 3000) || 3000,
    proofs: env('BENCH_AUDIT_PROOFS', 500) || 500,
  };
  const entries = env('BENCH_AUDIT_VERIFY_ENTRIES', 1_000_000) || 1_000_000;
  const buildBatch = env('BENCH_AUDIT_BUILD_BATCH', 10_000) || 10_000;
  const wantPg = env('BENCH_AUDIT_PG', 1) !== 0;
  const pgFsync = env('BENCH_AUDIT_PG_FSYNC', 1) !== 0;

  const pool = Array.from({ length: 10_000 }, (_, i) => makeEvent(i));
  const eventBytes = pool.slice(0, 1000).reduce((a, e, i) => a + Buffer.byteLength(canonicalJson({ index: 500_000 + i, time: new Date().toISOString(), ...e })), 0) / 1000;
  const dir = await mkdtemp(join(tmpdir(), 'palisade-bench-audit-'));
  const appends: AppendRow[] = [];
  const proofs: ProofRow[] = [];
  const other: Record<string, number> = {};
  let pgInfo: AuditResult['pg'];
  let server: PostgresHandle | null = null;
  try {
    log(`  events: kms.encrypt, ${num(eventBytes)} bytes of canonical JSON on average; ${num(pool.length)} distinct, cycled`);
    log(`  SQLite (${dir}, WAL, synchronous=full): appends ...`);
    const lite = await openSqlite(dir);
    try {
      let o = otherCpu();
      appends.push(...(await appendsOn(lite, pool, settings, log)));
      other['SQLite appends'] = o();
      log('  SQLite: proofs at the final tree size ...');
      o = otherCpu();
      proofs.push(...(await proofsOn('SQLite', 'appends db', lite.ledgerStorage, lite.ledger, settings.proofs)));
      other['SQLite proofs'] = o();
    } finally {
      await lite.close();
    }

    if (!wantPg) pgInfo = { skipped: 'BENCH_AUDIT_PG=0', settings: '' };
    else if (!findPostgresBinDir()) pgInfo = { skipped: 'PostgreSQL binaries (initdb, postgres) not found: set PALISADE_PG_BIN or run scripts/install-services.sh', settings: '' };
    else {
      // The testkit switches durability off for tests; a benchmark of commits wants the server's defaults back.
      server = await startPostgres(pgFsync ? { settings: { fsync: 'on', synchronous_commit: 'on', full_page_writes: 'on' } } : {});
      const c = new pg.Client({ connectionString: server.url });
      await c.connect();
      const show = async (k: string) => `${k}=${(await c.query(`show ${k}`)).rows[0][k]}`;
      pgInfo = { skipped: null, settings: `${(await c.query('show server_version')).rows[0].server_version}, ${[await show('fsync'), await show('synchronous_commit'), await show('full_page_writes'), await show('wal_sync_method')].join(' ')}` };
      await c.end();
      log(`  PostgreSQL ${pgInfo.settings} on 127.0.0.1:${server.port}: appends ...`);
      const p = await openPg(server);
      try {
        let o = otherCpu();
        appends.push(...(await appendsOn(p, pool, settings, log)));
        other['PostgreSQL appends (with the server)'] = o();
        log('  PostgreSQL: proofs at the final tree size ...');
        o = otherCpu();
        proofs.push(...(await proofsOn('PostgreSQL', 'appends db', p.ledgerStorage, p.ledger, settings.proofs)));
        other['PostgreSQL proofs (with the server)'] = o();
      } finally {
        await p.close();
        await backendsGone(server.url, ['bench_ledger', 'bench_raw']);
      }
      await server.stop();
      server = null;
    }
    if (pgInfo.skipped) log(`  PostgreSQL skipped: ${pgInfo.skipped}`);

    const { v, proofs: vp } = await verifyBench(dir, pool, entries, buildBatch, settings.proofs, log);
    proofs.push(...vp);
    other['verify'] = v.other;
    return { eventBytes, appends, proofs, verify: v, pg: pgInfo, other, settings };
  } finally {
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

export const goalText = (met: boolean) => (met ? 'MET' : 'NOT MET');

export function printAudit(r: AuditResult): void {
  heading('audit ledger: appends per second');
  console.log(`kms.encrypt events, ${num(r.eventBytes)} bytes of canonical JSON each on average. Each side on a fresh database of its own, same engine, schema`);
  console.log('and durability: SQLite WAL synchronous=full (a temp file); PostgreSQL ' + (r.pg.skipped ? `skipped (${r.pg.skipped})` : `${r.pg.settings} (loopback, pool of 10)`) + '.');
  console.log('peer = the same rows (same columns and sizes, precomputed: no JSON, hash or MAC) with plain INSERTs through the driver,');
  console.log(`${CHUNK} rows per statement, one transaction per batch; for concurrent singles, ${r.settings.concurrency} in flight each inserting its row in its own`);
  console.log('storage.transact (group-committed on SQLite, one transaction each on PostgreSQL). Sides alternate A/B/B/A.');
  console.log('');
  console.log(
    table(
      ['database', 'mode', 'appends', 'ledger/s', 'node CPU', 'plain INSERT/s', 'node CPU', 'ratio', `goal ≥ ${num(APPEND_GOAL)}/s`],
      r.appends.map((x) => {
        const cpu = (s: Side) => `${num(100 * s.cpu)}%`;
        return [x.engine, x.mode, num(x.ledger.count), num(x.ledger.rate), cpu(x.ledger), num(x.raw.rate), cpu(x.raw), ratio(x.ledger.rate, x.raw.rate), x.batch === null ? '-' : goalText(x.ledger.rate >= APPEND_GOAL)];
      }),
    ),
  );
  console.log('ratio = ledger appends/s ÷ plain INSERT rows/s of the same rows on the same engine (1.0 = the database\'s own limit).');
  console.log('node CPU = this process\'s CPU while that side ran, in % of one core (SQLite runs in it; the PostgreSQL server does not).');
  console.log('For context, from the issue and not measured here: Trillian on MySQL sequences about 60 entries per second per tree.');

  heading('audit ledger: proof latency (one in flight, random indexes)');
  console.log('floor = one primary-key SELECT of a leaf hash through the same connection (the database round trip); every proof was');
  console.log('checked against the tree head with verifyInclusion / verifyConsistency from @palisade/core. Consistency: random m to the final size.');
  console.log('');
  const ms = (x: number) => num(x, 3);
  console.log(
    table(
      ['database', 'log', 'tree size', 'proof', 'n', 'hashes', 'p50 ms', 'p99 ms', 'floor p50', 'floor p99', 'speed p50'],
      r.proofs.map((x) => [x.engine, x.log, num(x.size), x.kind, x.n, num(x.hashesMean, 1), ms(x.p50), ms(x.p99), ms(x.floorP50), ms(x.floorP99), ratio(x.floorP50, x.p50)]),
    ),
  );
  console.log('speed = floor p50 ÷ proof p50 (1.0 = a proof costs one primary-key lookup).');

  const v = r.verify;
  heading(`audit ledger: verifying ${num(v.entries)} entries (SQLite)`);
  console.log(`built with appendMany, ${num(v.buildBatch)} per transaction: ${num(v.buildSeconds, 1)} s (${num(v.entries / v.buildSeconds)} appends/s); database ${num(v.dbBytes / 2 ** 20)} MiB`);
  console.log(`palisade: ledger.verify() ${num(v.seconds, 2)} s = ${num(v.entries / v.seconds)} entries/s, ${v.ok ? 'ok' : `FAILED: ${v.reason}`}; process CPU ${num(100 * v.cpu)}% of one core (one JS thread; V8's GC helpers make the rest)`);
  console.log(`limit:    ${num(v.limitSeconds, 2)} s = ${num(v.entries / v.limitSeconds)} entries/s: the same hashing with node:crypto, no database (${num(v.leafHashes)} leaf SHA-256 over the same bytes,`);
  console.log(`          ${num(v.nodeHashes)} node hashes, ${num(v.macs)} HMACs of sampled roots); its root ${v.rootMatches ? 'equals' : 'DIFFERS from'} the one verify computed`);
  console.log(`ratio:    ${ratio(v.limitSeconds, v.seconds)} (palisade entries/s ÷ limit entries/s)`);
  console.log(`scan:     the SELECT verify issues (5,000 rows each), better-sqlite3 directly, nothing else: ${num(v.rawScanSeconds, 2)} s = ${num(v.entries / v.rawScanSeconds)} rows/s`);
  const parts = v.rawScanSeconds + v.limitSeconds;
  console.log(`          scan + hashing = ${num(parts, 2)} s of verify's ${num(v.seconds, 2)} s; the other ${num(Math.max(0, v.seconds - parts), 2)} s are Kysely, the column checks, and the garbage they make`);
  const met = v.ok && v.seconds * (1_000_000 / v.entries) < VERIFY_GOAL_S;
  console.log(`=> goal < ${VERIFY_GOAL_S} s per 1,000,000 entries: ${goalText(met)} (${num(v.seconds * (1_000_000 / v.entries), 1)} s per million).`);
  const busy = Object.entries(r.other).map(([k, x]) => `${k} ${num(100 * x)}%`);
  console.log(`other CPU (the rest of the machine, % of one core): ${busy.join(', ')}`);
  if (Object.entries(r.other).some(([k, x]) => !k.includes('server') && x > 0.4)) console.log('WARNING: other processes used over 40% of a core during a part: the machine was shared; rerun when it is idle before trusting a figure.');
  const best = (e: Engine) => r.appends.filter((x) => x.engine === e && x.batch !== null).reduce<AppendRow | null>((a, x) => (!a || x.ledger.rate > a.ledger.rate ? x : a), null);
  for (const e of ['SQLite', 'PostgreSQL'] as const) {
    const b = best(e);
    if (b) console.log(`=> appends with batching on ${e}: ${num(b.ledger.rate)}/s at ${b.mode}, ${ratio(b.ledger.rate, b.raw.rate)}× plain INSERTs; goal ≥ ${num(APPEND_GOAL)}/s ${goalText(b.ledger.rate >= APPEND_GOAL)}.`);
  }
}

if (isEntry(import.meta.url)) {
  printAudit(await runAudit());
}
