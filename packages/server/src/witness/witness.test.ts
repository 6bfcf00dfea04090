import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { generateSignerKey, openNote, parseVerifierKey, verifyCosignature } from '@palisade/core';
import { TestLog } from '../testing/witness-testlog.js';
import { MAX_PROOF_LINES, WITNESS_KEY_FILE, WITNESS_LOCK_FILE, WITNESS_STATE_FILE, Witness, ensureWitnessKey, parseAddCheckpointRequest, readWitnessKey, type WitnessEvent, type WitnessOptions } from './witness.js';

const dirs: string[] = [];
const open: Witness[] = [];
afterEach(async () => {
  for (const w of open.splice(0)) await w.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'palisade-witness-'));
  dirs.push(d);
  return d;
}

async function witness(log: TestLog | TestLog[], opts: Partial<WitnessOptions> = {}): Promise<Witness> {
  const logs = (Array.isArray(log) ? log : [log]).map((l) => ({ origin: l.origin, keys: [l.vkey] }));
  const w = await Witness.open({ stateDir: opts.stateDir ?? tempDir(), name: 'witness.example/w1', logs, ...opts });
  open.push(w);
  return w;
}

async function reopen(w: Witness, log: TestLog | TestLog[], opts: Partial<WitnessOptions> = {}): Promise<Witness> {
  await w.close();
  return witness(log, { ...opts, stateDir: w.stateDir, name: w.name });
}

describe('parseAddCheckpointRequest', () => {
  const h = createHash('sha256').update('x').digest().toString('base64');
  it('reads the old size, the proof lines and the note', () => {
    expect(parseAddCheckpointRequest(`old 0\n\nnote\n`)).toEqual({ ok: true, oldSize: 0, proof: [], note: 'note\n' });
    const r = parseAddCheckpointRequest(Buffer.from(`old 12\n${h}\n${h}\n\no\n1\n${h}\n\n\u2014 x AAAAAAA=\n`));
    expect(r.ok && [r.oldSize, r.proof.length, r.note]).toEqual([12, 2, `o\n1\n${h}\n\n\u2014 x AAAAAAA=\n`]);
  });
  it('rejects malformed requests', () => {
    for (const bad of [
      '',
      'old 0\n',
      'old 0\nnote\n',
      'old 01\n\nn\n',
      'old -1\n\nn\n',
      'old  1\n\nn\n',
      'old 1 \n\nn\n',
      'Old 1\n\nn\n',
      'old 1\r\n\nn\n',
      'old 9007199254740992\n\nn\n',
      `old 1\n${h.slice(1)}\n\nn\n`,
      `old 1\n${h.replace('=', '')}\n\nn\n`,
      `old 1\n ${h}\n\nn\n`,
      `old 1\n${Buffer.alloc(31).toString('base64')}\n\nn\n`,
      `old 1\n${`${h}\n`.repeat(MAX_PROOF_LINES + 1)}\nn\n`,
    ]) {
      expect(parseAddCheckpointRequest(bad).ok, JSON.stringify(bad)).toBe(false);
    }
    expect(parseAddCheckpointRequest(`old 1\n${`${h}\n`.repeat(MAX_PROOF_LINES)}\nn\n`).ok).toBe(true);
    expect(parseAddCheckpointRequest(Buffer.from([0x6f, 0x6c, 0x64, 0x20, 0x30, 0x0a, 0x0a, 0xff])).ok).toBe(false);
  });
});

describe('Witness', () => {
  it('cosigns a consistent sequence of checkpoints, recording each', async () => {
    const log = new TestLog().append(5);
    const w = await witness(log);
    expect(parseVerifierKey(w.verifierKey).type).toBe(0x04);

    let old = 0;
    for (const grow of [0, 1, 2, 8, 17, 1, 100]) {
      log.append(grow);
      const size = log.leaves.length;
      const r = await w.addCheckpoint(await log.request(old));
      expect(r, `from ${old} to ${size}`).toMatchObject({ ok: true, origin: log.origin, size });
      if (!r.ok) return;
      expect(r.cosignatures).toHaveLength(1);
      const check = verifyCosignature(w.verifierKey, log.text(), r.cosignatures[0]!);
      expect(check.ok).toBe(true);
      // The log's note plus the cosignature opens with both keys.
      const cosigned = (await log.note()) + r.cosignatures.join('');
      const opened = openNote(cosigned, [parseVerifierKey(log.vkey), parseVerifierKey(w.verifierKey)]);
      expect(opened.ok && opened.note.verified.length).toBe(2);
      expect(w.latest(log.origin)).toEqual({ size, root: log.root() });
      old = size;
    }
  });

  it('stamps cosignatures with the given clock', async () => {
    const log = new TestLog().append(3);
    const w = await witness(log, { now: () => 1_700_000_123 });
    const r = await w.addCheckpoint(await log.request(0));
    expect(r.ok && verifyCosignature(w.verifierKey, log.text(), r.cosignatures[0]!)).toEqual({ ok: true, timestamp: 1_700_000_123 });
  });

  it('cosigns the same checkpoint again, and an empty tree', async () => {
    const log = new TestLog();
    const w = await witness(log);
    expect((await w.addCheckpoint(await log.request(0, 0))).ok).toBe(true);
    expect(w.latest(log.origin)?.size).toBe(0);
    log.append(4);
    expect((await w.addCheckpoint(await log.request(0))).ok).toBe(true);
    expect((await w.addCheckpoint(await log.request(4))).ok).toBe(true);
    expect(w.latest(log.origin)).toEqual({ size: 4, root: log.root() });
  });

  it('answers 409 with its recorded size when old is stale, and refuses a smaller checkpoint', async () => {
    const log = new TestLog().append(10);
    const w = await witness(log);
    expect((await w.addCheckpoint(await log.request(0))).ok).toBe(true);
    log.append(5);
    expect(await w.addCheckpoint(await log.request(0))).toMatchObject({ ok: false, status: 409, conflictSize: 10 });
    expect(await w.addCheckpoint(await log.request(7))).toMatchObject({ ok: false, status: 409, conflictSize: 10 });
    expect(await w.addCheckpoint(await log.request(12))).toMatchObject({ ok: false, status: 409, conflictSize: 10 });
    // a smaller (older) checkpoint
    expect(await w.addCheckpoint(await log.request(5, 5))).toMatchObject({ ok: false, status: 409, conflictSize: 10 });
    expect(await w.addCheckpoint(`old 10\n\n${await log.note(5)}`)).toMatchObject({ ok: false, status: 400 }); // old > size
    // and then it goes on from 10
    expect(await w.addCheckpoint(await log.request(10))).toMatchObject({ ok: true, size: 15 });
  });

  it('refuses a fork: same size with another root (409) and a larger tree not consistent with it (422)', async () => {
    const log = new TestLog().append(8);
    const events: WitnessEvent[] = [];
    const w = await witness(log, { onEvent: (e) => events.push(e) });
    expect((await w.addCheckpoint(await log.request(0))).ok).toBe(true);

    const forked = log.fork(6).append(2, 'evil');
    expect(forked.root().equals(log.root())).toBe(false);
    const same = await w.addCheckpoint(await forked.request(8, 8));
    expect(same).toMatchObject({ ok: false, status: 409 });
    expect('conflictSize' in same).toBe(false);

    forked.append(5, 'evil');
    // The fork's own proof from 8 verifies against the fork's old root, not against the one the witness saw.
    expect(await w.addCheckpoint(await forked.request(8))).toMatchObject({ ok: false, status: 422 });
    // A tampered proof for the honest log fails too.
    log.append(5);
    const body = await log.request(8);
    const firstProofLine = body.split('\n')[1]!;
    const tampered = body.replace(firstProofLine, createHash('sha256').update('x').digest().toString('base64'));
    expect(await w.addCheckpoint(tampered)).toMatchObject({ ok: false, status: 422 });
    // A proof line too many, or a proof from 0, does not verify either.
    expect(await w.addCheckpoint(body.replace('\n\n', `\n${firstProofLine}\n\n`))).toMatchObject({ ok: false, status: 422 });
    expect(w.latest(log.origin)).toEqual({ size: 8, root: log.root(8) });
    // The misbehaviour is reported with the request as evidence.
    expect(events.filter((e) => e.evidence).map((e) => e.status)).toEqual([409, 422, 422, 422]);
    // The honest continuation is still cosigned.
    expect(await w.addCheckpoint(body)).toMatchObject({ ok: true, size: 13 });
  });

  it('refuses a non-empty proof from size 0 or between equal sizes (422)', async () => {
    const log = new TestLog().append(4);
    const w = await witness(log);
    const h = createHash('sha256').update('x').digest().toString('base64');
    const note = await log.note();
    expect(await w.addCheckpoint(`old 0\n${h}\n\n${note}`)).toMatchObject({ ok: false, status: 422 });
    expect((await w.addCheckpoint(`old 0\n\n${note}`)).ok).toBe(true);
    expect(await w.addCheckpoint(`old 4\n${h}\n\n${note}`)).toMatchObject({ ok: false, status: 422 });
  });

  it('403 without a valid signature by a configured key, 404 for an unknown origin, 400 for garbage', async () => {
    const log = new TestLog().append(3);
    const w = await witness(log);
    const impostor = new TestLog(log.origin).append(3); // same origin, another key: an unknown signature
    expect(await w.addCheckpoint(await impostor.request(0))).toMatchObject({ ok: false, status: 403 });
    const bad = (await log.request(0)).replace(/ (\S{10})(\S+)\n$/, (_m, a: string, b: string) => ` ${a}${b.startsWith('A') ? 'B' : 'A'}${b.slice(1)}\n`);
    expect(await w.addCheckpoint(bad)).toMatchObject({ ok: false, status: 403 });
    // signed, but the body changed after signing
    const altered = (await log.request(0)).replace(`\n3\n`, '\n2\n');
    expect(await w.addCheckpoint(altered)).toMatchObject({ ok: false, status: 403 });
    expect(await w.addCheckpoint(await new TestLog('other.example/log').append(3).request(0))).toMatchObject({ ok: false, status: 404 });
    for (const garbage of ['', 'hello', 'old 0\n\nnot a note\n', `old 0\n\n${log.text()}\n`, `old 0\n\n${(await log.note()).replace(`${log.origin}\n`, '')}`]) {
      expect(await w.addCheckpoint(garbage), JSON.stringify(garbage)).toMatchObject({ ok: false, status: 400 });
    }
    expect(w.latest(log.origin)).toBeUndefined();
  });

  it('accepts any of several keys of a log, and keeps logs apart', async () => {
    const a = new TestLog().append(2);
    const rotated = new TestLog(a.origin);
    const b = new TestLog().append(7);
    const w = await Witness.open({ stateDir: tempDir(), name: 'w', logs: [{ origin: a.origin, keys: [a.vkey] }, { origin: a.origin, keys: [rotated.vkey] }, { origin: b.origin, keys: [b.vkey] }] });
    open.push(w);
    expect((await w.addCheckpoint(await a.request(0))).ok).toBe(true);
    rotated.leaves.push(...a.leaves);
    rotated.append(3);
    expect((await w.addCheckpoint(await rotated.request(2))).ok).toBe(true);
    expect((await w.addCheckpoint(await b.request(0))).ok).toBe(true);
    expect([w.latest(a.origin)?.size, w.latest(b.origin)?.size]).toEqual([5, 7]);
    expect(w.origins.sort()).toEqual([a.origin, b.origin].sort());
  });

  it('refuses bad configuration', async () => {
    const log = new TestLog();
    await expect(Witness.open({ stateDir: tempDir(), name: 'bad name', logs: [] })).rejects.toThrow(/invalid witness name/);
    await expect(Witness.open({ stateDir: tempDir(), name: 'w', logs: [{ origin: 'o', keys: ['garbage'] }] })).rejects.toThrow(/bad verifier key/);
    await expect(Witness.open({ stateDir: tempDir(), name: 'w', logs: [{ origin: '', keys: [log.vkey] }] })).rejects.toThrow(/origin/);
    const cosigKey = generateSignerKey('o', 0x04).vkey;
    await expect(Witness.open({ stateDir: tempDir(), name: 'w', logs: [{ origin: 'o', keys: [cosigKey] }] })).rejects.toThrow(/type 0x01/);
  });
});

describe('Witness state', () => {
  it('keeps its key (mode 0600) and recorded checkpoints across restarts', async () => {
    const log = new TestLog().append(6);
    const w1 = await witness(log);
    const vkey = w1.verifierKey;
    expect((await w1.addCheckpoint(await log.request(0))).ok).toBe(true);
    const keyFile = join(w1.stateDir, WITNESS_KEY_FILE);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(keyFile, 'utf8')).toMatch(/^PRIVATE\+KEY\+witness\.example\/w1\+[0-9a-f]{8}\+B[A-P][A-Za-z0-9+/]{42}\n$/); // 0x04 || seed
    expect(JSON.parse(readFileSync(join(w1.stateDir, WITNESS_STATE_FILE), 'utf8'))).toEqual({ version: 1, logs: { [log.origin]: { size: 6, root: log.root().toString('base64') } } });

    const w2 = await reopen(w1, log);
    expect(w2.verifierKey).toBe(vkey);
    expect(w2.latest(log.origin)).toEqual({ size: 6, root: log.root() });
    log.append(3);
    expect(await w2.addCheckpoint(await log.request(0))).toMatchObject({ ok: false, status: 409, conflictSize: 6 });
    expect(await w2.addCheckpoint(await log.request(6))).toMatchObject({ ok: true, size: 9 });
    // a fork of what the first instance saw is still refused
    expect(await w2.addCheckpoint(await log.fork(4).append(5, 'x').request(9, 9))).toMatchObject({ ok: false, status: 409 });
    const w3 = await reopen(w2, log);
    expect(w3.latest(log.origin)?.size).toBe(9);
    expect(existsSync(join(w3.stateDir, WITNESS_LOCK_FILE))).toBe(true);
    await w3.close();
    expect(existsSync(join(w3.stateDir, WITNESS_LOCK_FILE))).toBe(false);
  });

  it('writes no temp files behind, and keeps other logs when one is updated', async () => {
    const a = new TestLog().append(1);
    const b = new TestLog().append(2);
    const w = await witness([a, b]);
    await Promise.all([w.addCheckpoint(await a.request(0)), w.addCheckpoint(await b.request(0))]);
    const state = JSON.parse(readFileSync(join(w.stateDir, WITNESS_STATE_FILE), 'utf8')) as { logs: Record<string, { size: number }> };
    expect(Object.fromEntries(Object.entries(state.logs).map(([k, v]) => [k, v.size]))).toEqual({ [a.origin]: 1, [b.origin]: 2 });
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(w.stateDir).sort()).toEqual([WITNESS_KEY_FILE, WITNESS_LOCK_FILE, WITNESS_STATE_FILE].sort());
  });

  it('refuses a second witness on the same directory, and a corrupt or exposed state', async () => {
    const log = new TestLog();
    const w = await witness(log);
    await expect(Witness.open({ stateDir: w.stateDir, name: w.name, logs: [] })).rejects.toThrow(/already open/);
    await expect(Witness.open({ stateDir: w.stateDir, name: 'another/name', logs: [] })).rejects.toThrow(/key of witness witness\.example\/w1/);
    await w.close();

    // a lock left by a live process (our parent) is respected; a stale one is taken over
    writeFileSync(join(w.stateDir, WITNESS_LOCK_FILE), `${process.ppid}\n`);
    await expect(Witness.open({ stateDir: w.stateDir, name: w.name, logs: [] })).rejects.toThrow(/in use by another witness/);
    writeFileSync(join(w.stateDir, WITNESS_LOCK_FILE), '999999999\n');
    const again = await witness(log, { stateDir: w.stateDir });
    await again.close();

    writeFileSync(join(w.stateDir, WITNESS_STATE_FILE), '{"version":1,"logs":{"o":{"size":-1,"root":"x"}}}');
    await expect(Witness.open({ stateDir: w.stateDir, name: w.name, logs: [] })).rejects.toThrow(/corrupt/);
    writeFileSync(join(w.stateDir, WITNESS_STATE_FILE), 'not json');
    await expect(Witness.open({ stateDir: w.stateDir, name: w.name, logs: [] })).rejects.toThrow(/corrupt/);
    rmSync(join(w.stateDir, WITNESS_STATE_FILE));

    chmodSync(join(w.stateDir, WITNESS_KEY_FILE), 0o644);
    await expect(Witness.open({ stateDir: w.stateDir, name: w.name, logs: [] })).rejects.toThrow(/chmod 600/);
    chmodSync(join(w.stateDir, WITNESS_KEY_FILE), 0o600);
    writeFileSync(join(w.stateDir, WITNESS_KEY_FILE), `${generateSignerKey(w.name).skey}\n`, { mode: 0o600 });
    await expect(readWitnessKey(w.stateDir)).rejects.toThrow(/type 0x04/);
  });

  it('creates the key once: concurrent first starts end with one key', async () => {
    const dir = tempDir();
    const keys = await Promise.all(Array.from({ length: 8 }, () => ensureWitnessKey(dir, 'w')));
    expect(new Set(keys.map((k) => k.vkey)).size).toBe(1);
    expect((await readWitnessKey(dir))?.vkey).toBe(keys[0]!.vkey);
  });

  it('concurrent submissions from the same old size: exactly one wins, the others get 409 with its size', async () => {
    const log = new TestLog().append(4);
    let entered = 0;
    const w = await witness(log, {
      // widen the window between the checks and the write, as a slow disk would
      beforeCommit: async () => {
        entered++;
        await new Promise((r) => setTimeout(r, 20));
      },
    });
    expect((await w.addCheckpoint(await log.request(0))).ok).toBe(true);
    const bodies: string[] = [];
    for (const grow of [1, 2, 3, 4, 5, 6]) {
      log.append(grow);
      bodies.push(await log.request(4));
    }
    const results = await Promise.all(bodies.map((b) => w.addCheckpoint(b)));
    const winners = results.filter((r) => r.ok);
    expect(winners).toHaveLength(1);
    const won = winners[0]!.ok ? winners[0]!.size : -1;
    for (const r of results.filter((x) => !x.ok)) expect(r).toMatchObject({ status: 409, conflictSize: won });
    expect(w.latest(log.origin)?.size).toBe(won);
    expect(entered).toBe(2);
  });

  it('a failed state write answers nothing and records nothing', async () => {
    const log = new TestLog().append(2);
    const w = await witness(log);
    chmodSync(w.stateDir, 0o500);
    try {
      if (process.getuid?.() === 0) return; // root writes anyway
      await expect(w.addCheckpoint(await log.request(0))).rejects.toThrow();
      expect(w.latest(log.origin)).toBeUndefined();
    } finally {
      chmodSync(w.stateDir, 0o700);
    }
    expect((await w.addCheckpoint(await log.request(0))).ok).toBe(true);
  });
});
