// In-process AEAD benchmark: Palisade's aeadSeal() against a bare node:crypto loop, same process, same inputs.
//
//   node --import tsx bench/aead.ts            (after `npx tsc -b`; `npm run bench` builds first)
//
// Env knobs: BENCH_AEAD_SLICE_MS (default 750), BENCH_AEAD_ROUNDS (default 2: A/B/A/B), BENCH_AEAD_WARMUP_MS (300),
// BENCH_OPENSSL=0 to skip the openssl speed ceiling.
import { createCipheriv, randomBytes, type CipherGCMTypes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { aeadSeal, type AeadAlgorithm } from '@palisade/core';
import { heading, isEntry, machine, num, ratio, table } from './lib/report.js';

export interface AeadSide {
  ops: number;
  seconds: number;
  opsPerSec: number;
  mbPerSec: number;
  /** (max - min) / mean of the per-slice rates: how noisy this side was. */
  spread: number;
}

export interface OpensslCeiling {
  /** `openssl speed -aead -evp ...`: init + 13-byte AAD + update + final per message, key schedule reused. */
  perMessageMBps: number | null;
  /** `openssl speed -evp ...`: update() calls on one context, no per-message setup (the bulk ceiling). */
  bulkMBps: number | null;
}

export interface AeadRow {
  algorithm: AeadAlgorithm;
  bytes: number;
  palisade: AeadSide;
  bare: AeadSide;
  /** palisade ops/s ÷ bare ops/s; goal ≥ 0.9. */
  ratio: number;
  openssl: OpensslCeiling | null;
}

export interface AeadResult {
  sliceMs: number;
  rounds: number;
  rows: AeadRow[];
  opensslVersion: string | null;
}

const NODE_CIPHER: Record<AeadAlgorithm, CipherGCMTypes> = {
  'AES-256-GCM': 'aes-256-gcm',
  // Same API shape as GCM; the cast only selects the typed overload (as packages/core does).
  'CHACHA20-POLY1305': 'chacha20-poly1305' as CipherGCMTypes,
};
const OPENSSL_CIPHER: Record<AeadAlgorithm, string> = { 'AES-256-GCM': 'aes-256-gcm', 'CHACHA20-POLY1305': 'chacha20-poly1305' };

const env = (name: string, def: number) => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : def;
};

let sink = 0; // keeps every result observable

type Op = () => void;

function makeOps(alg: AeadAlgorithm, bytes: number): { palisade: Op; bare: Op } {
  const key = randomBytes(32);
  const plaintext = randomBytes(bytes);
  const aad = randomBytes(32);
  // A fresh nonce per message (counter in the last 4 bytes) for both sides: identical, negligible cost.
  const nonceP = randomBytes(12);
  const nonceB = Buffer.from(nonceP);
  let ctrP = 0;
  let ctrB = 0;
  const name = NODE_CIPHER[alg];
  return {
    palisade: () => {
      nonceP.writeUInt32BE((ctrP = (ctrP + 1) >>> 0), 8);
      const sealed = aeadSeal(alg, key, nonceP, plaintext, aad);
      sink ^= sealed.tag[0]! ^ sealed.ciphertext[0]!;
    },
    bare: () => {
      nonceB.writeUInt32BE((ctrB = (ctrB + 1) >>> 0), 8);
      const c = createCipheriv(name, key, nonceB, { authTagLength: 16 });
      c.setAAD(aad);
      const ct = c.update(plaintext);
      c.final();
      sink ^= c.getAuthTag()[0]! ^ ct[0]!;
    },
  };
}

/** Runs `op` in batches until `ms` have elapsed; returns ops done and exact elapsed seconds. */
function runFor(op: Op, ms: number): { ops: number; seconds: number } {
  const BATCH = 32;
  const start = process.hrtime.bigint();
  const limit = start + BigInt(Math.round(ms * 1e6));
  let ops = 0;
  let now = start;
  while (now < limit) {
    for (let i = 0; i < BATCH; i++) op();
    ops += BATCH;
    now = process.hrtime.bigint();
  }
  return { ops, seconds: Number(now - start) / 1e9 };
}

function side(slices: Array<{ ops: number; seconds: number }>, bytes: number): AeadSide {
  const ops = slices.reduce((s, x) => s + x.ops, 0);
  const seconds = slices.reduce((s, x) => s + x.seconds, 0);
  const rates = slices.map((x) => x.ops / x.seconds);
  const opsPerSec = ops / seconds;
  return { ops, seconds, opsPerSec, mbPerSec: (opsPerSec * bytes) / 1e6, spread: (Math.max(...rates) - Math.min(...rates)) / opsPerSec };
}

function measure(alg: AeadAlgorithm, bytes: number, sliceMs: number, rounds: number, warmupMs: number): Omit<AeadRow, 'openssl'> {
  const { palisade, bare } = makeOps(alg, bytes);
  runFor(palisade, warmupMs);
  runFor(bare, warmupMs);
  const p: Array<{ ops: number; seconds: number }> = [];
  const b: Array<{ ops: number; seconds: number }> = [];
  for (let r = 0; r < rounds; r++) {
    // A/B then B/A in the next round, so neither side always runs right after the warm-up or a GC.
    if (r % 2 === 0) {
      p.push(runFor(palisade, sliceMs));
      b.push(runFor(bare, sliceMs));
    } else {
      b.push(runFor(bare, sliceMs));
      p.push(runFor(palisade, sliceMs));
    }
  }
  const ps = side(p, bytes);
  const bs = side(b, bytes);
  return { algorithm: alg, bytes, palisade: ps, bare: bs, ratio: ps.opsPerSec / bs.opsPerSec };
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => resolve(err ? null : `${stdout}\n${stderr}`));
  });
}

/** Parses the result line of `openssl speed` ("AES-256-GCM   5831939.41k", in 1000s of bytes/s) into MB/s. */
export function parseOpensslSpeed(out: string): number | null {
  const lines = out.split('\n');
  const t = lines.findIndex((l) => /^type\s+\d+ bytes/.test(l));
  for (const l of t >= 0 ? lines.slice(t + 1) : lines) {
    const m = /^(\S+)\s+([0-9.]+)k\s*$/.exec(l.trim());
    if (m) return Number(m[2]) / 1000; // k = 1000 bytes/s -> MB/s (10^6 bytes)
  }
  return null;
}

async function opensslVersion(): Promise<string | null> {
  return (await run('openssl', ['version'], 5000))?.trim().split('\n')[0] ?? null;
}

async function opensslCeiling(alg: AeadAlgorithm, bytes: number): Promise<OpensslCeiling> {
  const base = ['speed', '-evp', OPENSSL_CIPHER[alg], '-bytes', String(bytes), '-seconds', '1'];
  const perMessage = await run('openssl', ['speed', '-aead', ...base.slice(1)], 15_000);
  const bulk = await run('openssl', base, 15_000);
  return { perMessageMBps: perMessage ? parseOpensslSpeed(perMessage) : null, bulkMBps: bulk ? parseOpensslSpeed(bulk) : null };
}

export async function runAead(opts: { quiet?: boolean } = {}): Promise<AeadResult> {
  const sliceMs = env('BENCH_AEAD_SLICE_MS', 750);
  const rounds = Math.max(2, Math.round(env('BENCH_AEAD_ROUNDS', 2)));
  const warmupMs = env('BENCH_AEAD_WARMUP_MS', 300);
  const cases: Array<[AeadAlgorithm, number]> = [
    ['AES-256-GCM', 1024],
    ['AES-256-GCM', 16384],
    ['CHACHA20-POLY1305', 1024],
    ['CHACHA20-POLY1305', 16384],
  ];
  const log = (s: string) => opts.quiet || console.log(s);
  const rows: AeadRow[] = [];
  for (const [alg, bytes] of cases) {
    log(`  measuring ${alg} ${bytes} B (${rounds} × ${sliceMs} ms per side, alternating) ...`);
    rows.push({ ...measure(alg, bytes, sliceMs, rounds, warmupMs), openssl: null });
  }
  // The openssl CLI runs after the Node loops, never alongside them.
  const version = process.env.BENCH_OPENSSL === '0' ? null : await opensslVersion();
  if (version) {
    log(`  openssl speed ceilings (${version}) ...`);
    for (const row of rows) row.openssl = await opensslCeiling(row.algorithm, row.bytes);
  }
  if (sink === 0.5) console.log(sink); // never true; reads the sink
  return { sliceMs, rounds, rows, opensslVersion: version };
}

export function printAead(r: AeadResult): void {
  heading('AEAD seal, in-process (one core)');
  const m = machine();
  console.log(`node ${m.node} (OpenSSL ${m.openssl}), ${m.cpu}, ${m.cores} cores; ${r.rounds} alternating slices of ${r.sliceMs} ms per side`);
  console.log('');
  const rows = r.rows.map((x) => [
    x.algorithm,
    `${x.bytes / 1024} KiB`,
    num(x.palisade.opsPerSec),
    num(x.bare.opsPerSec),
    num(x.palisade.mbPerSec),
    num(x.bare.mbPerSec),
    ratio(x.palisade.opsPerSec, x.bare.opsPerSec),
    `${(100 * Math.max(x.palisade.spread, x.bare.spread)).toFixed(1)}%`,
    x.openssl?.perMessageMBps != null ? num(x.openssl.perMessageMBps) : '-',
    x.openssl?.bulkMBps != null ? num(x.openssl.bulkMBps) : '-',
  ]);
  console.log(table(['algorithm', 'size', 'palisade op/s', 'bare op/s', 'palisade MB/s', 'bare MB/s', 'ratio', 'noise', 'openssl msg MB/s', 'openssl bulk MB/s'], rows));
  console.log('');
  console.log('ratio = palisade ÷ bare ops/s (goal ≥ 0.9); noise = largest slice-to-slice spread of either side.');
  console.log('openssl msg = `openssl speed -aead -evp <alg>` (per-message init+AAD+final, key reused); bulk = `openssl speed -evp <alg>`.');
  if (!r.opensslVersion) console.log('(openssl CLI not found or skipped: no physical ceiling shown)');
  else console.log(`openssl CLI: ${r.opensslVersion} (Node's bundled OpenSSL is ${m.openssl}).`);
  const worst = r.rows.reduce((a, x) => (x.ratio < a.ratio ? x : a));
  const verdict =
    worst.ratio >= 0.9
      ? `aeadSeal keeps ≥ ${(worst.ratio * 100).toFixed(0)}% of bare node:crypto everywhere (worst: ${worst.algorithm} ${worst.bytes / 1024} KiB); the wrapper is not a bottleneck.`
      : `aeadSeal falls to ${(worst.ratio * 100).toFixed(0)}% of bare node:crypto at ${worst.algorithm} ${worst.bytes / 1024} KiB (goal 90%): per-call wrapper cost is visible.`;
  console.log(`=> ${verdict}`);
}

if (isEntry(import.meta.url)) {
  printAead(await runAead());
}
