// Root of trust operations per second: wrap and unwrap of 32-byte key material through the pkcs11 provider on a fresh
// SoftHSM2 token, against the software provider (the file seal: the same RootKeyProvider interface, AES-256-GCM under
// a root key in memory), same run, alternating slices. AES-256-GCM seal/open of 1 KiB with node:crypto is the
// software limit, for context. Without SoftHSM2 the pkcs11 rows are skipped (the benchmarks are not CI).
//
//   node --import tsx bench/hsm.ts            (after `npx tsc -b`; `npm run bench` builds first)
//
// Env knobs: BENCH_HSM_SLICE_MS (750), BENCH_HSM_ROUNDS (2).
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSoftHsm, useSoftHsmEnv, type SoftHsmHandle } from '../packages/testkit/src/softhsm.js';
import { openFileProvider } from '../packages/server/src/kernel/seal/file-provider.js';
import type { RootKeyProvider } from '../packages/server/src/kernel/seal/provider.js';
import { heading, isEntry, num, ratio, table } from './lib/report.js';

export interface HsmRow {
  op: 'wrap' | 'unwrap';
  /** null when SoftHSM2 is not installed. */
  hsmOps: number | null;
  softwareOps: number;
}

export interface HsmResult {
  rows: HsmRow[];
  /** node:crypto AES-256-GCM on 1 KiB, ops/s. */
  gcm: { seal: number; open: number };
  skipped: string | null;
  sliceMs: number;
  rounds: number;
}

const env = (name: string, def: number) => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : def;
};

type Op = () => Promise<unknown> | unknown;

/** Runs `op` back to back for `ms`; returns ops and seconds. */
async function runFor(op: Op, ms: number): Promise<{ ops: number; seconds: number }> {
  const start = performance.now();
  let ops = 0;
  while (performance.now() - start < ms) {
    for (let i = 0; i < 16; i++) await op();
    ops += 16;
  }
  return { ops, seconds: (performance.now() - start) / 1000 };
}

/** Alternating slices (A/B, then B/A) of every op; ops/s of each. */
async function compare(ops: Op[], sliceMs: number, rounds: number): Promise<number[]> {
  for (const op of ops) await runFor(op, Math.min(200, sliceMs)); // warm-up
  const sums = ops.map(() => ({ ops: 0, seconds: 0 }));
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? ops.map((_, i) => i) : ops.map((_, i) => ops.length - 1 - i);
    for (const i of order) {
      const s = await runFor(ops[i]!, sliceMs);
      sums[i]!.ops += s.ops;
      sums[i]!.seconds += s.seconds;
    }
  }
  return sums.map((s) => s.ops / s.seconds);
}

/** The pkcs11 provider on a fresh SoftHSM2 token (SOFTHSM2_CONF set before the module is loaded), or why not. */
async function openHsm(): Promise<{ provider: RootKeyProvider; hsm: SoftHsmHandle; restore: () => void } | string> {
  let hsm: SoftHsmHandle;
  try {
    hsm = await startSoftHsm({ label: `palisade-bench-${randomBytes(3).toString('hex')}` });
  } catch (e) {
    return `SoftHSM2 not available (${(e as Error).message.replace('[palisade testkit] ', '')})`;
  }
  const restore = useSoftHsmEnv(hsm);
  const { openPkcs11Provider } = await import('../packages/server/src/kernel/seal/pkcs11-provider.js');
  const { provider } = await openPkcs11Provider({ module: hsm.module, token: hsm.label, pin: hsm.pin });
  return { provider, hsm, restore };
}

export async function runHsm(opts: { quiet?: boolean } = {}): Promise<HsmResult> {
  const sliceMs = env('BENCH_HSM_SLICE_MS', 750);
  const rounds = Math.max(2, Math.round(env('BENCH_HSM_ROUNDS', 2)));
  const log = (s: string) => opts.quiet || console.log(s);
  const dir = await mkdtemp(join(tmpdir(), 'palisade-bench-seal-'));
  const software = (await openFileProvider(dir)).provider;
  const hsm = await openHsm();
  const skipped = typeof hsm === 'string' ? hsm : null;
  try {
    const material = randomBytes(32);
    const rows: HsmRow[] = [];
    const sides = typeof hsm === 'string' ? [software] : [hsm.provider, software];
    for (const op of ['wrap', 'unwrap'] as const) {
      log(`  ${op} 32 B: ${sides.map((p) => p.name).join(' vs ')}, ${rounds} × ${sliceMs} ms each ...`);
      const wrapped = await Promise.all(sides.map((p) => p.wrap(material)));
      for (const [i, p] of sides.entries()) if (!(await p.unwrap(wrapped[i]!)).equals(material)) throw new Error(`${p.name}: unwrap(wrap(x)) != x`);
      const rates = await compare(sides.map((p, i) => (op === 'wrap' ? () => p.wrap(material) : () => p.unwrap(wrapped[i]!))), sliceMs, rounds);
      rows.push({ op, hsmOps: sides.length === 2 ? rates[0]! : null, softwareOps: rates[rates.length - 1]! });
    }
    log('  node:crypto AES-256-GCM seal/open 1 KiB ...');
    const key = randomBytes(32);
    const iv = randomBytes(12);
    const pt = randomBytes(1024);
    let counter = 0;
    const seal = () => {
      iv.writeUInt32BE((counter = (counter + 1) >>> 0), 8); // a fresh nonce per message, as the KMS uses
      const c = createCipheriv('aes-256-gcm', key, iv);
      return [c.update(pt), c.final(), c.getAuthTag()];
    };
    const [ct, , tag] = seal();
    const sealedIv = Buffer.from(iv);
    const open = () => {
      const d = createDecipheriv('aes-256-gcm', key, sealedIv);
      d.setAuthTag(tag!);
      return [d.update(ct!), d.final()];
    };
    const [sealOps, openOps] = await compare([seal, open], sliceMs, rounds);
    return { rows, gcm: { seal: sealOps!, open: openOps! }, skipped, sliceMs, rounds };
  } finally {
    await software.close();
    await rm(dir, { recursive: true, force: true });
    if (typeof hsm !== 'string') {
      await hsm.provider.close();
      hsm.restore();
      await hsm.hsm.stop();
    }
  }
}

export function printHsm(r: HsmResult): void {
  heading('root of trust: pkcs11 (SoftHSM2) vs software provider');
  console.log(`${r.rounds} alternating slices of ${r.sliceMs} ms per side; one operation in flight (the pkcs11 provider serialises calls on its session)`);
  if (r.skipped) console.log(`! pkcs11 rows skipped: ${r.skipped}`);
  console.log('');
  const us = (ops: number | null) => (ops ? num(1e6 / ops, 1) : '-');
  console.log(
    table(
      ['operation', 'pkcs11 ops/s', 'µs/op', 'software ops/s', 'µs/op', 'ratio HSM/software'],
      r.rows.map((x) => [`${x.op} 32 B`, x.hsmOps === null ? 'skipped' : num(x.hsmOps), us(x.hsmOps), num(x.softwareOps), us(x.softwareOps), x.hsmOps === null ? '-' : ratio(x.hsmOps, x.softwareOps)]),
    ),
  );
  console.log('');
  console.log(`software limit, node:crypto AES-256-GCM 1 KiB (no provider, no await): seal ${num(r.gcm.seal)} ops/s, open ${num(r.gcm.open)} ops/s`);
  console.log('pkcs11 wrap = C_CreateObject (session object) + C_WrapKey (AES key wrap with padding) + C_DestroyObject; unwrap = C_UnwrapKey + C_GetAttributeValue + C_DestroyObject.');
  console.log('software = the file seal provider: AES-256-GCM under the root key in process memory. ratio = pkcs11 ops/s ÷ software ops/s.');
  for (const x of r.rows) {
    if (x.hsmOps !== null) console.log(`=> ${x.op}: the HSM path does ${num(x.hsmOps)} ops/s, ${ratio(x.hsmOps, x.softwareOps)}× the software provider (${num(x.softwareOps)} ops/s).`);
  }
}

if (isEntry(import.meta.url)) {
  printHsm(await runHsm());
}
