// KEK rotation: rewrapping N DEKs (default 100,000) after the confidential system KEK is rotated. A runtime in this
// process on a fresh SQLite data dir with the file seal; the DEKs are created through the KMS service (real wrapped
// material under the KEK), the KEK is rotated through the service, then `scheduler.rewrap(batch)` is timed. The limit:
// the same cryptography in a loop with node:crypto (AES-256-GCM open under the old KEK, seal under the new one with
// a fresh nonce, 32-byte keys, the same AAD), no database. At the end: nothing pending, and a sample of the keys
// still decrypts what they encrypted before the rotation (with every unwrapped key dropped from memory first).
//
//   node --import tsx bench/rewrap.ts         (after `npx tsc -b`; `npm run bench` builds first)
//
// Env knobs: BENCH_REWRAP_KEYS (100000), BENCH_REWRAP_BATCH (500, the scheduler's default), BENCH_REWRAP_SAMPLE (200).
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EncryptedData } from '@palisade/core';
import { loadConfig } from '../packages/server/src/config/config.js';
import { createLogger } from '../packages/server/src/logging.js';
import { createRuntime } from '../packages/server/src/runtime.js';
import { heading, isEntry, num, ratio } from './lib/report.js';

export interface RewrapResult {
  keys: number;
  batch: number;
  setupSeconds: number;
  seconds: number;
  /** DEKs rewrapped per second by scheduler.rewrap. */
  rate: number;
  /** The same crypto with node:crypto, no database: DEKs per second. */
  limit: number;
  pending: number;
  verified: number;
}

const env = (name: string, def: number) => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? Math.round(v) : def;
};

/** The physical limit: open a 32-byte key under the old KEK and seal it under the new one, `n` times, in memory. */
function cryptoLimit(n: number): number {
  const [oldKek, newKek] = [randomBytes(32), randomBytes(32)];
  const seal = (key: Buffer, aad: Buffer, pt: Buffer) => {
    const nonce = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', key, nonce);
    c.setAAD(aad);
    const ct = c.update(pt);
    c.final();
    return Buffer.concat([Buffer.of(1), nonce, c.getAuthTag(), ct]);
  };
  const open = (key: Buffer, aad: Buffer, blob: Buffer) => {
    const d = createDecipheriv('aes-256-gcm', key, blob.subarray(1, 13));
    d.setAAD(aad);
    d.setAuthTag(blob.subarray(13, 29));
    return Buffer.concat([d.update(blob.subarray(29)), d.final()]);
  };
  const rows = Array.from({ length: Math.min(n, 10_000) }, (_, i) => {
    const aad = Buffer.from(`kms/key_${String(i).padStart(26, '0')}/1`);
    return { aad, blob: seal(oldKek, aad, randomBytes(32)) };
  });
  const run = (count: number) => {
    for (let i = 0; i < count; i++) {
      const r = rows[i % rows.length]!;
      const secret = open(oldKek, r.aad, r.blob);
      seal(newKek, Buffer.from(r.aad), secret);
      secret.fill(0);
    }
  };
  run(Math.min(n, 5000)); // warm-up
  const t0 = performance.now();
  run(n);
  return n / ((performance.now() - t0) / 1000);
}

export async function runRewrap(opts: { quiet?: boolean } = {}): Promise<RewrapResult> {
  const keys = env('BENCH_REWRAP_KEYS', 100_000);
  const batch = env('BENCH_REWRAP_BATCH', 500);
  const sampleSize = Math.min(keys, env('BENCH_REWRAP_SAMPLE', 200));
  const log = (s: string) => opts.quiet || console.log(s);
  const dataDir = await mkdtemp(join(tmpdir(), 'palisade-bench-rewrap-'));
  const config = loadConfig({ PALISADE_DATA_DIR: dataDir, PALISADE_LOG_LEVEL: 'warn' }, dataDir); // file seal, SQLite, synchronous=full
  const rt = await createRuntime(config, { log: createLogger('error') });
  try {
    rt.kms.onKekRotated = () => undefined; // this benchmark drives the rewrap itself
    const kek = await rt.storage.db.selectFrom('kms_keys').selectAll().where('name', '=', 'system/kek/confidential').executeTakeFirstOrThrow();

    log(`  creating ${num(keys)} confidential AES-256-GCM DEKs through the KMS service (5,000 per transaction) ...`);
    const t0 = performance.now();
    const ids: string[] = [];
    for (let done = 0; done < keys; ) {
      const n = Math.min(5000, keys - done);
      await rt.storage.transact(async (tx) => {
        for (let i = 0; i < n; i++) ids.push((await rt.kms.create({ db: tx }, { key_type: 'DEK', algorithm: 'AES-256-GCM', classification: 'confidential' })).key_id);
      });
      done += n;
    }
    const sample: Array<{ keyId: string; ct: EncryptedData; plain: string }> = [];
    await rt.storage.transact(async (tx) => {
      for (let i = 0; i < sampleSize; i++) {
        const keyId = ids[Math.floor((i * ids.length) / sampleSize)]!;
        const plain = `sample ${i} ${randomBytes(8).toString('hex')}`;
        sample.push({ keyId, plain, ct: await rt.kms.encrypt({ db: tx }, keyId, Buffer.from(plain)) });
      }
    });
    const setupSeconds = (performance.now() - t0) / 1000;
    log(`  created in ${num(setupSeconds, 1)} s; rotating ${kek.name} (v${kek.current_version} -> v${kek.current_version + 1}) through the service ...`);
    await rt.storage.transact((tx) => rt.kms.rotate({ db: tx }, kek.key_id, 'approved'));
    const before = (await rt.kms.get(rt.storage.db, kek.key_id, false)).rewrap!;
    if (before.pending !== keys) throw new Error(`expected ${keys} pending after the rotation, got ${before.pending}`);

    log(`  scheduler.rewrap(${batch}) over ${num(before.pending)} DEKs:`);
    let next = 0.1;
    const t1 = performance.now();
    const rewrapped = await rt.scheduler.rewrap(batch, (done, pending) => {
      if (done / keys + 1e-9 < next && pending > 0) return;
      const s = (performance.now() - t1) / 1000;
      log(`    ${String(Math.round((100 * done) / keys)).padStart(3)}%  ${num(done).padStart(8)} done  ${num(pending).padStart(8)} pending  ${num(s, 1).padStart(6)} s  ${num(done / s).padStart(7)} DEKs/s`);
      while (next <= done / keys + 1e-9) next += 0.1;
    });
    const seconds = (performance.now() - t1) / 1000;
    if (rewrapped !== keys) throw new Error(`rewrap reported ${rewrapped}, expected ${keys}`);

    const after = (await rt.kms.get(rt.storage.db, kek.key_id, false)).rewrap!;
    rt.kms.forgetAll(); // nothing from memory: every sampled key is unwrapped again, under the new KEK version
    let verified = 0;
    for (const s of sample) if ((await rt.kms.decrypt(rt.storage.db, s.keyId, s.ct)).toString() === s.plain) verified++;
    if (after.pending !== 0 || verified !== sample.length) throw new Error(`after the rewrap: ${after.pending} pending, ${verified}/${sample.length} samples decrypt`);

    log(`  the same crypto with node:crypto, no database (${num(keys)} DEKs) ...`);
    const limit = cryptoLimit(keys);
    return { keys, batch, setupSeconds, seconds, rate: keys / seconds, limit, pending: after.pending, verified };
  } finally {
    await rt.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

export function printRewrap(r: RewrapResult): void {
  heading(`KEK rotation: rewrapping ${num(r.keys)} DEKs`);
  console.log(`SQLite (synchronous=full), file seal, scheduler.rewrap(${r.batch}): one transaction and one audit event per batch; setup (creating the DEKs) took ${num(r.setupSeconds, 1)} s`);
  console.log('');
  console.log(`palisade: ${num(r.keys)} DEKs in ${num(r.seconds, 2)} s = ${num(r.rate)} DEKs/s`);
  console.log(`limit:    ${num(r.limit)} DEKs/s (node:crypto AES-256-GCM open + seal of a 32-byte key with a fresh nonce, in memory, no database)`);
  console.log(`ratio:    ${ratio(r.rate, r.limit)} (palisade ÷ limit)`);
  console.log(`checked:  ${r.pending} pending after the rewrap; ${r.verified} sampled keys decrypt their pre-rotation ciphertexts with the keys unwrapped again from storage`);
  const pace = r.rate / r.limit < 0.5 ? 'the database work per row, not the cryptography, sets the pace' : 'close to the cryptography itself';
  console.log(`=> a KEK rotation over ${num(r.keys)} DEKs completes in ${num(r.seconds, 1)} s at ${num(r.rate)} DEKs/s, ${ratio(r.rate, r.limit)}× the in-memory crypto limit: ${pace}.`);
}

if (isEntry(import.meta.url)) {
  printRewrap(await runRewrap());
}
