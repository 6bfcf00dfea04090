// End-to-end HTTPS benchmark: the real Palisade server (child process) against two peers with the same TLS settings
// (./lib/bare-server.ts, one child process each), all driven by the same keep-alive TLS load generator
// (./lib/loadgen.ts, another child process) in the same run. Routes: POST /v1/keys/{id}/encrypt and /decrypt with
// 1 KiB of plaintext. Peers:
//   fastify-noop  a Fastify 5 route that does nothing and returns { ok: true } (the product requirement's peer);
//   https-aead    bare node:https + JSON + node:crypto AES-256-GCM with Palisade's JSON shapes (the HTTPS+AEAD floor).
//
//   node --import tsx bench/http-encrypt.ts     (after `npx tsc -b`; `npm run bench` builds first)
//
// Env knobs: BENCH_HTTP_CONNECTIONS (32), BENCH_HTTP_WARMUP_MS (2000), BENCH_HTTP_DURATION_MS (8000),
// BENCH_HTTP_BYTES (1024), BENCH_HTTP_CLIENT (raw | https), BENCH_HTTP_DECRYPT=0 to skip decrypt.
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { runLoadInChild, type LoadResult, type LoadSpec } from './lib/loadgen.js';
import type { BareMode } from './lib/bare-server.js'; // types only: evaluating that module starts a server
import { call, cpuSeconds, machineBusySeconds, startBare, startPalisade, stop, type ServerTarget } from './lib/servers.js';
import { heading, isEntry, machine, num, ratio, table } from './lib/report.js';

type Op = 'encrypt' | 'decrypt';

export type PeerName = BareMode;
export type ServerName = 'palisade' | PeerName;

/** The peers Palisade is compared with, headline first. */
export const PEERS: ReadonlyArray<{ name: PeerName; short: string; what: string }> = [
  { name: 'fastify-noop', short: 'a no-op Fastify route', what: 'a Fastify 5 route that does nothing and returns { ok: true } (default JSON body parser, no logger)' },
  { name: 'https-aead', short: 'bare node:https + AES-GCM', what: 'node:https + JSON.parse + node:crypto AES-256-GCM with Palisade\'s JSON shapes, no auth/audit/database: the HTTPS+JSON+AEAD floor' },
];
const SERVERS: readonly ServerName[] = ['palisade', ...PEERS.map((p) => p.name)];

export interface HttpSide {
  load: LoadResult;
  /** CPU the server process (all its threads) used during the measured window, in % of one core. */
  serverCpuPct: number;
  /** Requests per second of server CPU time: throughput normalised by what the server burned. */
  reqPerCpuSec: number;
  /** CPU used on the machine by anything but the server and the load generator during the window (% of one core). */
  otherCpuPct: number;
}

export interface Versus {
  /** palisade rps ÷ peer rps. */
  ratio: number;
  /** palisade req/CPU-s ÷ peer req/CPU-s: the same, independent of whether the load generator saturated. */
  cpuRatio: number;
}

export interface HttpRow {
  op: Op;
  sides: Record<ServerName, HttpSide>;
  /** Palisade against each peer. */
  vs: Record<PeerName, Versus>;
}

export interface HttpResult {
  connections: number;
  warmupMs: number;
  durationMs: number;
  bytes: number;
  client: 'raw' | 'https';
  rows: HttpRow[];
}

interface Target extends ServerTarget {
  path: (op: Op) => string;
}

const env = (name: string, def: number) => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : def;
};

async function expectJson(target: Target, op: Op | '', path: string, body: string, status: number): Promise<Record<string, unknown>> {
  const r = await call(target.port, target.ca, 'POST', path, target.headers, body);
  if (r.status !== status) throw new Error(`POST ${path}${op ? ` (${op})` : ''}: expected ${status}, got ${r.status} ${r.text.slice(0, 300)}`);
  return JSON.parse(r.text) as Record<string, unknown>;
}

async function measure(target: Target, path: string, body: string, spec: Omit<LoadSpec, 'port' | 'ca' | 'path' | 'headers' | 'body'>): Promise<HttpSide> {
  let [cpu0, busy0, cpu, busy, wall, t0] = [0, 0, 0, 0, 0, 0n];
  const load = await runLoadInChild({ ...spec, port: target.port, ca: target.ca, path, body, headers: { ...target.headers, 'content-type': 'application/json' } }, (e) => {
    if (e === 'start') {
      cpu0 = cpuSeconds(target.pid);
      busy0 = machineBusySeconds();
      t0 = process.hrtime.bigint();
    } else {
      cpu = cpuSeconds(target.pid) - cpu0;
      busy = machineBusySeconds() - busy0;
      wall = Number(process.hrtime.bigint() - t0) / 1e9;
    }
  });
  if (load.requests === 0) throw new Error(`no successful request to ${path}: ${load.firstBadResponse ?? 'no response'}`);
  const serverCpuPct = (100 * cpu) / wall;
  return { load, serverCpuPct, reqPerCpuSec: cpu > 0 ? (load.rps * wall) / cpu : NaN, otherCpuPct: Math.max(0, (100 * busy) / wall - serverCpuPct - load.clientCpuPct) };
}

export async function runHttpEncrypt(opts: { quiet?: boolean } = {}): Promise<HttpResult> {
  const connections = Math.round(env('BENCH_HTTP_CONNECTIONS', 32));
  const warmupMs = env('BENCH_HTTP_WARMUP_MS', 2000);
  const durationMs = env('BENCH_HTTP_DURATION_MS', 8000);
  const bytes = Math.round(env('BENCH_HTTP_BYTES', 1024));
  const client = process.env.BENCH_HTTP_CLIENT === 'https' ? 'https' : 'raw';
  const ops: Op[] = process.env.BENCH_HTTP_DECRYPT === '0' ? ['encrypt'] : ['encrypt', 'decrypt'];
  const log = (s: string) => opts.quiet || console.log(s);
  const spec = { host: '127.0.0.1', method: 'POST' as const, connections, warmupMs, durationMs, client: client as 'raw' | 'https' };
  const encryptBody = JSON.stringify({ plaintext: randomBytes(bytes).toString('base64') });

  log(`  starting palisade (fresh data dir) and the peers (${PEERS.map((p) => p.name).join(', ')}) ...`);
  const [palR, ...peerR] = await Promise.allSettled([startPalisade(), ...PEERS.map((p) => startBare(p.name))] as const);
  const peerFailure = peerR.find((r) => r.status === 'rejected');
  if (palR.status === 'rejected' || peerFailure) {
    if (palR.status === 'fulfilled') await stop(palR.value.child).then(() => rm(palR.value.dataDir, { recursive: true, force: true }));
    await Promise.all(peerR.map((r) => (r.status === 'fulfilled' ? stop(r.value.child) : undefined)));
    throw palR.status === 'rejected' ? palR.reason : (peerFailure as PromiseRejectedResult).reason;
  }
  const pal = palR.value;
  const peers = peerR.map((r) => (r as PromiseFulfilledResult<Awaited<ReturnType<typeof startBare>>>).value);
  try {
    const key = await expectJson({ ...pal.target, path: () => '' }, '', '/v1/keys', JSON.stringify({ key_type: 'DEK', algorithm: 'AES-256-GCM' }), 201);
    const keyId = String(key.key_id);
    const path = (op: Op) => `/v1/keys/${keyId}/${op}`;
    const targets = Object.fromEntries([
      ['palisade', { ...pal.target, path }],
      ...PEERS.map((p, i) => [p.name, { ...peers[i]!.target, path }] as const),
    ]) as Record<ServerName, Target>;
    // Decrypt bodies: a ciphertext of the same plaintext from each server that encrypts, checked to round-trip. The
    // no-op route gets Palisade's (same shape and size) and is only checked to answer 200 { ok: true }.
    const plaintext = (JSON.parse(encryptBody) as { plaintext: string }).plaintext;
    const decryptBody = {} as Record<ServerName, string>;
    for (const name of ['palisade', 'https-aead'] as const) {
      const t = targets[name];
      decryptBody[name] = JSON.stringify(await expectJson(t, 'encrypt', t.path('encrypt'), encryptBody, 200));
      const back = await expectJson(t, 'decrypt', t.path('decrypt'), decryptBody[name], 200);
      if (back.plaintext !== plaintext) throw new Error(`${name}: decrypt did not return the plaintext`);
    }
    decryptBody['fastify-noop'] = decryptBody.palisade;
    for (const op of ops) {
      const t = targets['fastify-noop'];
      const out = await expectJson(t, op, t.path(op), op === 'encrypt' ? encryptBody : decryptBody['fastify-noop'], 200);
      if (out.ok !== true) throw new Error(`fastify-noop: unexpected ${op} answer ${JSON.stringify(out)}`);
    }
    const rows: HttpRow[] = [];
    for (const [i, op] of ops.entries()) {
      // Alternate the order (encrypt: peers first, decrypt: Palisade first), so no side always runs on a cooler or warmer machine.
      const order = i % 2 === 0 ? [...SERVERS].reverse() : SERVERS;
      const sides = {} as Record<ServerName, HttpSide>;
      for (const name of order) {
        log(`  ${op} ${bytes} B on ${name}: ${connections} connections, ${warmupMs} ms warm-up + ${durationMs} ms ...`);
        sides[name] = await measure(targets[name], targets[name].path(op), op === 'encrypt' ? encryptBody : decryptBody[name], spec);
      }
      const p = sides.palisade;
      const vs = Object.fromEntries(PEERS.map(({ name }) => [name, { ratio: p.load.rps / sides[name].load.rps, cpuRatio: p.reqPerCpuSec / sides[name].reqPerCpuSec }])) as Record<PeerName, Versus>;
      rows.push({ op, sides, vs });
    }
    return { connections, warmupMs, durationMs, bytes, client, rows };
  } catch (e) {
    if (!opts.quiet) console.error(`palisade output:\n${pal.logs()}`);
    throw e;
  } finally {
    await Promise.all([stop(pal.child), ...peers.map((x) => stop(x.child))]);
    await rm(pal.dataDir, { recursive: true, force: true });
  }
}

export function printHttpEncrypt(r: HttpResult): void {
  heading(`HTTPS ${r.rows.map((x) => x.op).join('/')} end to end: Palisade vs ${PEERS.map((p) => p.name).join(' and ')}`);
  const m = machine();
  console.log(`node ${m.node}, ${m.cpu}, ${m.cores} cores; ${r.bytes} B plaintext, ${r.connections} keep-alive TLS 1.3 connections, ${r.client} client, ${r.warmupMs} ms warm-up + ${r.durationMs} ms window`);
  console.log('One server is loaded at a time: it and the load generator are separate child processes, a core each on a 2-core machine; the other servers and the parent stay idle.');
  if (m.cores < 2) console.log(`! only ${m.cores} core: the server and the load generator share it, so every number here is a lower bound.`);
  console.log('');
  // Display order: the peers, then Palisade.
  const shown: readonly ServerName[] = [...PEERS.map((p) => p.name), 'palisade'];
  const side = (op: Op, name: string, s: HttpSide) => [
    op,
    name,
    num(s.load.rps),
    num(s.load.latencyMs.p50, 2),
    num(s.load.latencyMs.p99, 2),
    `${num(s.serverCpuPct)}%`,
    num(s.reqPerCpuSec),
    `${num(s.load.clientCpuPct)}%`,
    `${num(s.otherCpuPct)}%`,
    s.load.errors + s.load.non2xx,
  ];
  console.log(table(['op', 'server', 'req/s', 'p50 ms', 'p99 ms', 'server CPU', 'req/CPU-s', 'client CPU', 'other CPU', 'errors'], r.rows.flatMap((x) => shown.map((name) => side(x.op, name, x.sides[name])))));
  console.log('');
  const p50 = (x: HttpRow, peer: PeerName) => `${num(x.sides.palisade.load.latencyMs.p50 - x.sides[peer].load.latencyMs.p50, 2)} ms`;
  console.log(table(['op', 'palisade vs', 'ratio req/s', 'ratio req/CPU-s', 'p50 palisade - peer'], r.rows.flatMap((x) => PEERS.map(({ name }) => [x.op, name, ratio(x.sides.palisade.load.rps, x.sides[name].load.rps), ratio(x.sides.palisade.reqPerCpuSec, x.sides[name].reqPerCpuSec), p50(x, name)]))));
  console.log('');
  for (const p of PEERS) console.log(`${p.name} = ${p.what}; same TLS settings as Palisade (TLS 1.3 only, ECDSA P-256 certificate, keep-alive).`);
  console.log('ratio req/s = palisade ÷ peer throughput; ratio req/CPU-s = the same per second of server CPU (robust to a saturated client).');
  console.log('CPU columns are % of one core over the measured window (server: /proc/<pid>/stat, all threads; other: the rest of the machine, kernel work such as disk journaling included).');
  for (const x of r.rows) {
    for (const name of shown) {
      const s = x.sides[name];
      if (s.load.errors + s.load.non2xx > 0) console.log(`! ${x.op} ${name}: ${s.load.errors} errors, ${s.load.non2xx} non-2xx; first: ${s.load.firstBadResponse}`);
    }
    const p = x.sides.palisade;
    if (p.serverCpuPct < 80 && p.load.clientCpuPct < 80) {
      console.log(`! ${x.op}: neither Palisade (${num(p.serverCpuPct)}% CPU) nor the client is CPU-bound: Palisade waits (disk sync, locks or timers), not computes.`);
    }
    for (const name of shown) {
      const s = x.sides[name];
      if (s.otherCpuPct > 40) console.log(`! ${x.op} ${name}: ${num(s.otherCpuPct)}% of a core went elsewhere during the window (other processes?); its numbers may be noisy.`);
    }
    for (const { name } of PEERS) {
      const s = x.sides[name];
      if (s.load.clientCpuPct > 90 && s.serverCpuPct < 90) {
        console.log(`! ${x.op}: the load generator saturated its core before the ${name} server did; its req/s understates the limit, trust req/CPU-s.`);
      }
    }
  }
  for (const x of r.rows) {
    const p = x.sides.palisade;
    for (const { name, short } of PEERS) {
      const s = x.sides[name];
      const v = x.vs[name];
      console.log(`=> ${x.op} vs ${name}: Palisade serves ${pct(v.ratio)} of the req/s of ${short} (${num(p.load.rps)} vs ${num(s.load.rps)}; p50 ${num(p.load.latencyMs.p50, 2)} vs ${num(s.load.latencyMs.p50, 2)} ms) and ${pct(v.cpuRatio)} of its requests per CPU-second.`);
    }
  }
}

const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(0)}%` : 'n/a');

if (isEntry(import.meta.url)) {
  printHttpEncrypt(await runHttpEncrypt());
}
