/**
 * Crash durability of the audit ledger, end to end: `kill -9` of the real `palisade serve` process (SQLite, group
 * commit) in the middle of a burst of audited requests, several times on the same data directory. Every request that
 * was acknowledged (a 2xx answer) must have its audit event in the log after the restart, exactly once; no event may
 * appear twice; the database verifies (`palisade audit verify --database`, on the crashed files before the restart)
 * and the export verifies against the log's pinned checkpoint key — the checkpoints signed before each crash must
 * still match the tree, and at the end a checkpoint signed after the last restart covers every entry.
 *
 * Each request carries its own `x-request-id`, which the server takes as the request id and writes into the audit
 * event (`request_id`), so every acknowledgement can be matched to its event.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { PalisadeClient, verifyAuditExport } from '@palisade/sdk';
import type { AuditCheckpoint, AuditEvent } from '@palisade/core';
import { runCli, sleep, startServer, stopAll, waitExit, type Server } from './helpers.js';

afterAll(stopAll);

const ENV = { PALISADE_AUDIT_CHECKPOINT_SECONDS: '1' };
const ROUNDS = 3;
const CONCURRENCY = 32;
/** Kill once this many requests of the round were acknowledged (+ a random 0..MIN_ACKS, so the rounds differ). */
const MIN_ACKS = 200;
const ID = /^crash-r\d+-w\d+-\d+$/;

const client = (srv: Server): PalisadeClient => new PalisadeClient({ addr: srv.addr, token: srv.token, ca: srv.ca, maxSockets: CONCURRENCY, timeoutMs: 10_000 });

interface Burst {
  acked: string[];
  /** Acknowledged, but the answer was read after the SIGKILL was sent (still an acknowledgement). */
  ackedAfterKill: number;
  /** Sent, never answered: their events may or may not be in the log. */
  unanswered: string[];
  /** Errors before the kill: there should be none. */
  errorsBeforeKill: string[];
}

/** CONCURRENCY workers encrypting in a loop until the server is SIGKILLed after `killAfter` acknowledgements. */
async function burst(srv: Server, c: PalisadeClient, keyId: string, round: number, killAfter: number): Promise<Burst> {
  const out: Burst = { acked: [], ackedAfterKill: 0, unanswered: [], errorsBeforeKill: [] };
  let killed = false;
  let scheduled = false;
  const killNow = () => {
    if (killed) return;
    killed = true;
    process.kill(srv.proc.pid, 'SIGKILL'); // the server itself: spawnPalisade runs `node --import tsx main.ts`, no wrapper
  };
  // 0-4 ms after the threshold, so that the kill lands at different points of the server's batches
  const kill = () => {
    if (scheduled) return;
    scheduled = true;
    setTimeout(killNow, Math.floor(Math.random() * 5));
  };
  const worker = async (w: number) => {
    for (let n = 0; !killed; n++) {
      const id = `crash-r${round}-w${String(w).padStart(2, '0')}-${n}`;
      try {
        await c.transport.send('POST', `/v1/keys/${encodeURIComponent(keyId)}/encrypt`, { plaintext: Buffer.from(id).toString('base64'), context: { crash_test: id } }, { 'x-request-id': id });
        if (killed) out.ackedAfterKill++;
        out.acked.push(id);
        if (out.acked.length >= killAfter) kill();
      } catch (e) {
        if (killed) out.unanswered.push(id);
        else {
          out.errorsBeforeKill.push(`${id}: ${(e as Error).message}`);
          if (out.errorsBeforeKill.length > 20) killNow(); // something else is wrong: do not spin
        }
      }
    }
  };
  // a safety net: whatever happens, the server dies within 20 s
  const deadline = setTimeout(killNow, 20_000);
  try {
    await Promise.all(Array.from({ length: CONCURRENCY }, (_, w) => worker(w)));
  } finally {
    clearTimeout(deadline);
  }
  return out;
}

/** The whole export up to `to`, indexed: crash-test request id -> its events. */
async function exportAndIndex(c: PalisadeClient, to: number): Promise<{ lines: string[]; byRequest: Map<string, AuditEvent[]>; entries: number }> {
  const lines: string[] = [];
  for await (const line of c.audit.exportLines(to)) lines.push(line);
  const byRequest = new Map<string, AuditEvent[]>();
  let entries = 0;
  for (const line of lines) {
    if (!line.startsWith('{"index"')) continue;
    entries++;
    const { event } = JSON.parse(line) as { event: AuditEvent | null };
    if (!event?.request_id || !ID.test(event.request_id)) continue;
    const list = byRequest.get(event.request_id) ?? [];
    list.push(event);
    byRequest.set(event.request_id, list);
  }
  return { lines, byRequest, entries };
}

/** The latest signed checkpoint once it covers `size` entries (polls; fails 100 s after `t0`). */
async function waitForCheckpoint(c: PalisadeClient, size: number, t0: number): Promise<AuditCheckpoint> {
  for (;;) {
    const cp = await c.audit.checkpoint().catch(() => null);
    if (cp && cp.size >= size) return cp;
    expect(Date.now() - t0, `no checkpoint of size >= ${size} was signed`).toBeLessThan(100_000);
    await sleep(250);
  }
}

async function verifyDatabase(env: NodeJS.ProcessEnv): Promise<number> {
  const r = await runCli(['audit', 'verify', '--database'], { env, timeoutMs: 30_000 });
  const out = r.stdout.toString('utf8');
  expect(r.code, `audit verify --database: ${r.stderr}${out}`).toBe(0);
  const m = /^audit log OK: (\d+) entries/m.exec(out);
  expect(m, out).not.toBeNull();
  return Number(m![1]);
}

describe('kill -9 during a burst of audited requests (SQLite)', () => {
  it(
    'every acknowledged event is in the log after each restart, exactly once, and the tree verifies',
    async () => {
      const t0 = Date.now();
      let srv = await startServer({ env: ENV });
      const dataDir = srv.dataDir;
      let c = client(srv);
      const key = await c.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM', name: 'crash-test' });
      const { verifier_keys } = await c.audit.log();
      const logKey = verifier_keys[0]!;
      expect(logKey).toBeDefined();
      // a first signed checkpoint, so that every round's export has one to check the tree against
      await waitForCheckpoint(c, (await c.audit.log()).size, t0);

      const allAcked = new Set<string>();
      const allSent = new Set<string>();
      const report: string[] = [];

      for (let round = 1; round <= ROUNDS; round++) {
        const killAfter = MIN_ACKS + Math.floor(Math.random() * MIN_ACKS);
        const before = (await c.audit.log()).size;
        const b = await burst(srv, c, key.key_id, round, killAfter);
        c.transport.close();
        const exit = await waitExit(srv.proc, 10_000);
        expect(exit, 'the server did not die of the SIGKILL').toEqual({ code: null, signal: 'SIGKILL' });
        expect(b.errorsBeforeKill, 'requests failed before the kill').toEqual([]);
        for (const id of b.acked) allAcked.add(id);
        for (const id of [...b.acked, ...b.unanswered]) allSent.add(id);

        // the files as the crash left them, before a server touches them again
        const durable = await verifyDatabase(srv.env);
        expect(durable).toBeGreaterThanOrEqual(before + b.acked.length);

        srv = await startServer({ dataDir, env: ENV });
        c = client(srv);
        const size = (await c.audit.log()).size;
        expect(size).toBeGreaterThanOrEqual(durable);
        expect(size).toBeGreaterThanOrEqual(allAcked.size);

        const { lines, byRequest, entries } = await exportAndIndex(c, size);
        expect(entries).toBe(size);
        const missing = [...allAcked].filter((id) => !byRequest.has(id));
        expect(missing, `round ${round}: acknowledged but not in the log after the restart`).toEqual([]);
        const twice = [...byRequest].filter(([, evs]) => evs.length > 1).map(([id, evs]) => `${id} x${evs.length} at ${evs.map((e) => e.index).join(',')}`);
        expect(twice, `round ${round}: events that appear more than once`).toEqual([]);
        const unknown = [...byRequest.keys()].filter((id) => !allSent.has(id));
        expect(unknown, 'events of requests this test never sent').toEqual([]);
        for (const id of allAcked) expect(byRequest.get(id)![0], id).toMatchObject({ type: 'kms.encrypt', outcome: 'success', request_id: id });
        // the entries after the last checkpoint may not be signed yet; what is signed, from before the crashes, must
        // still match the tree the entries build
        const v = await verifyAuditExport(lines, { logKeys: [logKey], allowUnsignedTail: true });
        expect(v, `round ${round}: the export does not verify: ${JSON.stringify(v)}`).toMatchObject({ ok: true, size, trusted: 'pinned' });

        const committedUnanswered = b.unanswered.filter((id) => byRequest.has(id)).length;
        report.push(
          `round ${round}: kill after ${killAfter} acks; acknowledged ${b.acked.length} (${b.ackedAfterKill} read after the kill), ` +
            `unanswered ${b.unanswered.length} (${committedUnanswered} of them committed); durable log ${durable}, log after restart ${size}, ` +
            `checkpoints ${v.ok ? v.checkpoints : '-'}`,
        );
      }

      // A checkpoint signed after the last restart must cover every entry (the restarted node holds the same lease).
      const cp = await waitForCheckpoint(c, (await c.audit.log()).size, t0);
      const final = await exportAndIndex(c, cp.size);
      expect([...allAcked].filter((id) => !final.byRequest.has(id))).toEqual([]);
      const v = await verifyAuditExport(final.lines, { logKeys: [logKey] });
      expect(v, JSON.stringify(v)).toMatchObject({ ok: true, size: cp.size, trusted: 'pinned' });
      const dbSize = await verifyDatabase(srv.env);
      expect(dbSize).toBeGreaterThanOrEqual(cp.size);
      c.transport.close();

      report.push(`final: ${allAcked.size} acknowledged in all, signed checkpoint of size ${cp.size} verifies (${v.ok ? v.checkpoints : '-'} checkpoints), ${Math.round((Date.now() - t0) / 1000)} s`);
      console.log(report.join('\n'));
    },
    120_000,
  );
});
