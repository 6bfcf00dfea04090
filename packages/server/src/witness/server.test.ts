/**
 * The witness over real HTTP(S) on loopback, driven by the client: the C2SP tlog-witness status codes and content
 * types, restarts on the same state directory and concurrent submissions.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openNote, parseVerifierKey } from '@palisade/core';
import { ensureServerTls } from '../http/bootstrap-tls.js';
import { WitnessError, addCheckpoint, formatAddCheckpointRequest, verifyCosignatureLine } from './client.js';
import { MAX_REQUEST_BYTES, listenWitness, type RunningWitnessServer } from './server.js';
import { TestLog } from '../testing/witness-testlog.js';
import { Witness } from './witness.js';

const dirs: string[] = [];
const running: RunningWitnessServer[] = [];
afterEach(async () => {
  for (const s of running.splice(0)) await s.close(1000);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'palisade-witness-http-'));
  dirs.push(d);
  return d;
}

type Started = RunningWitnessServer & { vkey: string; witness: Witness };

async function start(logs: TestLog[], stateDir = tempDir(), extra: { tls?: { cert: string; key: string } } = {}): Promise<Started> {
  const witness = await Witness.open({ stateDir, name: 'witness.example/w1', logs: logs.map((l) => ({ origin: l.origin, keys: [l.vkey] })) });
  const s = await listenWitness({ witness, host: '127.0.0.1', port: 0, ...extra });
  running.push(s);
  return Object.assign(s, { vkey: witness.verifierKey, witness });
}

interface Raw {
  status: number;
  contentType: string;
  text: string;
  headers: Record<string, string | string[] | undefined>;
}

/** A raw HTTP request, to see exactly what the witness answers. */
function raw(url: string, path: string, method: string, body?: Buffer | string): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const u = new URL(path, url);
    const payload = body === undefined ? undefined : Buffer.from(body);
    const req = request(u, { method, headers: payload ? { 'content-length': String(payload.length) } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), text: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

async function submit(s: RunningWitnessServer, log: TestLog, old: number, size = log.leaves.length) {
  return addCheckpoint(s.url, { oldSize: old, proof: log.proof(old, size), note: await log.note(size) });
}

describe('witness over HTTP', () => {
  it('cosigns a consistent sequence; the cosignatures verify with the witness key', async () => {
    const log = new TestLog().append(3);
    const s = await start([log]);
    const other = await Witness.open({ stateDir: tempDir(), name: 'witness.example/w1', logs: [] }); // same name, another key
    await other.close();
    let old = 0;
    for (const grow of [0, 5, 1, 30]) {
      log.append(grow);
      const r = await submit(s, log, old);
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      expect(r.cosignatures).toHaveLength(1);
      expect(r.cosignatures[0]).toMatch(/^\u2014 witness\.example\/w1 \S+\n$/);
      const cosigned = (await log.note()) + r.cosignatures.join('');
      expect(verifyCosignatureLine(s.vkey, log.text(), r.cosignatures[0]!).ok).toBe(true);
      expect(verifyCosignatureLine(other.verifierKey, log.text(), r.cosignatures[0]!).ok).toBe(false);
      expect(verifyCosignatureLine(s.vkey, log.text(log.leaves.length - 1), r.cosignatures[0]!).ok).toBe(false);
      const opened = openNote(cosigned, [parseVerifierKey(log.vkey), parseVerifierKey(s.vkey)]);
      expect(opened.ok && opened.note.verified.length).toBe(2);
      old = log.leaves.length;
    }
  });

  it('answers a stale old size with 409 text/x.tlog.size and its size; the client returns it', async () => {
    const log = new TestLog().append(10);
    const s = await start([log]);
    expect((await submit(s, log, 0)).ok).toBe(true);
    log.append(3);
    expect(await submit(s, log, 0)).toEqual({ ok: false, conflictSize: 10 });
    expect(await submit(s, log, 4)).toEqual({ ok: false, conflictSize: 10 });
    const r = await raw(s.url, '/add-checkpoint', 'POST', await log.request(0));
    expect([r.status, r.contentType, r.text]).toEqual([409, 'text/x.tlog.size', '10\n']);
    // a smaller checkpoint than the recorded one
    expect(await submit(s, log, 5, 5)).toEqual({ ok: false, conflictSize: 10 });
    // the client retries from the size it was told
    expect((await submit(s, log, 10)).ok).toBe(true);
  });

  it('refuses forks: same size with another root is 409 (not a size answer), an inconsistent larger tree 422', async () => {
    const log = new TestLog().append(8);
    const s = await start([log]);
    expect((await submit(s, log, 0)).ok).toBe(true);
    const forked = log.fork(5).append(3, 'evil');
    const e409 = await submit(s, forked, 8, 8).catch((e: unknown) => e);
    expect(e409).toBeInstanceOf(WitnessError);
    expect((e409 as WitnessError).status).toBe(409);
    expect((e409 as WitnessError).message).toMatch(/fork/);
    const r = await raw(s.url, '/add-checkpoint', 'POST', await forked.request(8, 8));
    expect([r.status, r.contentType]).toEqual([409, 'text/plain; charset=utf-8']);

    forked.append(4, 'evil');
    await expect(submit(s, forked, 8)).rejects.toMatchObject({ name: 'WitnessError', status: 422 });
    const r422 = await raw(s.url, '/add-checkpoint', 'POST', await forked.request(8));
    expect([r422.status, r422.contentType]).toEqual([422, 'text/plain; charset=utf-8']);
  });

  it('403 for a bad signature, 404 for an unknown log, 400 for garbage, 405/404/413 for the wrong request', async () => {
    const log = new TestLog().append(2);
    const s = await start([log]);
    const impostor = new TestLog(log.origin).append(2);
    await expect(submit(s, impostor, 0)).rejects.toMatchObject({ status: 403 });
    const altered = (await log.request(0)).replace('\n2\n', '\n1\n');
    expect((await raw(s.url, '/add-checkpoint', 'POST', altered)).status).toBe(403);
    await expect(submit(s, new TestLog('nobody.example/log').append(1), 0)).rejects.toMatchObject({ status: 404 });
    for (const garbage of ['', 'garbage', 'old x\n\n', `old 0\n\n${log.text()}`, Buffer.from([0xff, 0xfe, 0x0a, 0x0a])]) {
      const r = await raw(s.url, '/add-checkpoint', 'POST', garbage);
      expect([r.status, r.contentType], JSON.stringify(garbage)).toEqual([400, 'text/plain; charset=utf-8']);
    }
    expect((await raw(s.url, '/add-checkpoint', 'GET')).status).toBe(405);
    expect((await raw(s.url, '/add-checkpoint', 'GET')).headers.allow).toBe('POST');
    expect((await raw(s.url, '/', 'GET')).status).toBe(404);
    expect((await raw(s.url, '/add-checkpoint/x', 'POST', 'old 0\n\n')).status).toBe(404);
    expect((await raw(s.url, '/add-checkpoint', 'POST', Buffer.alloc(MAX_REQUEST_BYTES + 1, 0x41))).status).toBe(413);
    // nothing was recorded, and the witness still works
    expect((await submit(s, log, 0)).ok).toBe(true);
  });

  it('keeps its state across a restart on the same directory', async () => {
    const log = new TestLog().append(6);
    const dir = tempDir();
    const s1 = await start([log], dir);
    const key1 = s1.vkey;
    expect((await submit(s1, log, 0)).ok).toBe(true);
    await s1.close();
    running.splice(running.indexOf(s1), 1);

    const s2 = await start([log], dir);
    expect(s2.vkey).toBe(key1);
    log.append(2);
    expect(await submit(s2, log, 0)).toEqual({ ok: false, conflictSize: 6 });
    const r = await submit(s2, log, 6);
    expect(r.ok && verifyCosignatureLine(key1, log.text(), r.cosignatures[0]!).ok).toBe(true);
  });

  it('concurrent submissions from the same old size over HTTP: exactly one wins', async () => {
    const log = new TestLog().append(4);
    const s = await start([log]);
    expect((await submit(s, log, 0)).ok).toBe(true);
    const requests: Array<{ proof: Buffer[]; note: string }> = [];
    for (let i = 1; i <= 8; i++) {
      log.append(1);
      requests.push({ proof: log.proof(4), note: await log.note() });
    }
    const results = await Promise.all(requests.map((r) => addCheckpoint(s.url, { oldSize: 4, ...r })));
    const wins = results.filter((r) => r.ok);
    expect(wins).toHaveLength(1);
    // every loser is told the winner's size, which is what the witness recorded
    const winnerSize = 5 + results.findIndex((r) => r.ok);
    expect(results.filter((r) => !r.ok)).toEqual(Array.from({ length: 7 }, () => ({ ok: false, conflictSize: winnerSize })));
    expect(s.witness.latest(log.origin)).toEqual({ size: winnerSize, root: log.root(winnerSize) });
  });

  it('serves HTTPS with a certificate; the client trusts the given CA', async () => {
    const log = new TestLog().append(2);
    const tls = await ensureServerTls(tempDir(), ['127.0.0.1', 'localhost']);
    const s = await start([log], tempDir(), { tls: { cert: tls.cert, key: tls.key } });
    expect(s.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    await expect(submit(s, log, 0)).rejects.toMatchObject({ name: 'WitnessError', status: 0 }); // untrusted
    const r = await addCheckpoint(`${s.url}/`, { oldSize: 0, proof: [], note: await log.note() }, { ca: tls.ca });
    expect(r.ok).toBe(true);
  });
});

describe('witness client', () => {
  it('formats requests as the spec shows and refuses bad input', () => {
    const h = createHash('sha256').update('a').digest();
    expect(formatAddCheckpointRequest({ oldSize: 3, proof: [h, h], note: 'n\n\n\u2014 x AAAAAAA=\n' }).toString()).toBe(`old 3\n${h.toString('base64')}\n${h.toString('base64')}\n\nn\n\n\u2014 x AAAAAAA=\n`);
    expect(formatAddCheckpointRequest({ oldSize: 0, proof: [], note: 'n\n' }).toString()).toBe('old 0\n\nn\n');
    expect(() => formatAddCheckpointRequest({ oldSize: -1, proof: [], note: 'n\n' })).toThrow(TypeError);
    expect(() => formatAddCheckpointRequest({ oldSize: 0, proof: [h.subarray(1)], note: 'n\n' })).toThrow(TypeError);
    expect(() => formatAddCheckpointRequest({ oldSize: 0, proof: [], note: 'n' })).toThrow(TypeError);
  });

  it('throws clearly on a refused connection, a timeout and a malformed answer', async () => {
    const log = new TestLog().append(1);
    const note = await log.note();
    const { createServer } = await import('node:http');
    const srv = createServer((req, res) => {
      if (req.url === '/slow/add-checkpoint') return; // never answers
      if (req.url === '/bad/add-checkpoint') res.end('not a signature line\n');
      else if (req.url === '/badsize/add-checkpoint') res.writeHead(409, { 'content-type': 'text/x.tlog.size' }).end('01\n');
      else res.writeHead(503).end('busy\n');
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const base = `http://127.0.0.1:${(srv.address() as { port: number }).port}`;
    try {
      await expect(addCheckpoint(`${base}/slow`, { oldSize: 0, proof: [], note }, { timeoutMs: 200 })).rejects.toThrow(/no answer within 200 ms/);
      await expect(addCheckpoint(`${base}/bad`, { oldSize: 0, proof: [], note })).rejects.toThrow(/malformed cosignature answer/);
      await expect(addCheckpoint(`${base}/badsize`, { oldSize: 0, proof: [], note })).rejects.toThrow(/malformed 409/);
      await expect(addCheckpoint(base, { oldSize: 0, proof: [], note })).rejects.toMatchObject({ status: 503, message: expect.stringMatching(/answered HTTP 503: busy/) });
    } finally {
      srv.closeAllConnections();
      await new Promise((r) => srv.close(r));
    }
    await expect(addCheckpoint('http://127.0.0.1:1', { oldSize: 0, proof: [], note })).rejects.toMatchObject({ name: 'WitnessError', status: 0 });
    await expect(addCheckpoint('ftp://x', { oldSize: 0, proof: [], note })).rejects.toThrow(TypeError);
  });
});
