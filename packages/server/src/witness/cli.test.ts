/**
 * `palisade witness` end to end: the real CLI entry point (src/main.ts through tsx, as test/e2e runs it) as a child
 * process on a loopback port, fed checkpoints by the client; its printed key, SIGTERM, a restart from a YAML
 * configuration on the same state directory, `witness key` and usage errors.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseVerifierKey } from '@palisade/core';
import { addCheckpoint, verifyCosignatureLine } from './client.js';
import { TestLog } from '../testing/witness-testlog.js';
import { WITNESS_LOCK_FILE, WITNESS_STATE_FILE } from './witness.js';

const REPO_ROOT = fileURLToPath(new URL('../../../..', import.meta.url));
const MAIN = join(REPO_ROOT, 'packages/server/src/main.ts');

const children = new Set<ChildProcess>();
const dirs: string[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function env(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PALISADE_') && k !== 'NODE_OPTIONS') e[k] = v;
  return e;
}

interface Proc {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<number | null>;
}

function cli(args: string[]): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: REPO_ROOT, env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  const exited = new Promise<number | null>((resolve) =>
    child.once('close', (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  return { child, out: () => out, err: () => err, exited };
}

/** Start `palisade witness ...` and wait for its verifier key and listening line. */
async function startWitness(args: string[]): Promise<Proc & { vkey: string; url: string }> {
  const p = cli(['witness', '--listen', '127.0.0.1:0', ...args]);
  const deadline = Date.now() + 20_000;
  for (;;) {
    const m = /listening on (http:\/\/127\.0\.0\.1:\d+)\/add-checkpoint/.exec(p.err());
    if (m && p.out().endsWith('\n')) return Object.assign(p, { vkey: p.out().trim(), url: m[1]! });
    if (p.child.exitCode !== null || Date.now() > deadline) throw new Error(`witness did not start:\n${p.err()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'palisade-witness-cli-'));
  dirs.push(d);
  return d;
}

describe('palisade witness (CLI)', () => {
  it('serves, prints its key, survives a restart from a config file, and stops cleanly on SIGTERM', async () => {
    const dir = tempDir();
    const stateDir = join(dir, 'state');
    const log = new TestLog('palisade.example/audit').append(7);

    const w1 = await startWitness(['--state-dir', stateDir, '--name', 'witness.example/w1', '--log', `${log.origin} ${log.vkey}`]);
    expect(parseVerifierKey(w1.vkey)).toMatchObject({ name: 'witness.example/w1', type: 0x04 });
    const r1 = await addCheckpoint(w1.url, { oldSize: 0, proof: [], note: await log.note() });
    expect(r1.ok && verifyCosignatureLine(w1.vkey, log.text(), r1.cosignatures[0]!).ok).toBe(true);
    await expect(addCheckpoint(w1.url, { oldSize: 0, proof: [], note: await new TestLog('other.example/log').append(1).note() })).rejects.toMatchObject({ status: 404 });

    // `witness key` prints the same key while it runs
    const key = cli(['witness', 'key', '--state-dir', stateDir]);
    expect(await key.exited).toBe(0);
    expect(key.out()).toBe(`${w1.vkey}\n`);

    w1.child.kill('SIGTERM');
    expect(await w1.exited).toBe(0);
    expect(existsSync(join(stateDir, WITNESS_LOCK_FILE))).toBe(false);
    expect(existsSync(join(stateDir, WITNESS_STATE_FILE))).toBe(true);
    expect(w1.err()).toMatch(/"msg":"add-checkpoint"/);

    // a new process, configured by YAML, remembers size 7 and the same key
    const config = join(dir, 'witness.yaml');
    writeFileSync(config, [`name: witness.example/w1`, `state_dir: ${stateDir}`, 'logs:', `  - origin: ${log.origin}`, `    keys: ["${log.vkey}"]`, ''].join('\n'));
    const w2 = await startWitness(['--config', config]);
    expect(w2.vkey).toBe(w1.vkey);
    log.append(5);
    expect(await addCheckpoint(w2.url, { oldSize: 0, proof: [], note: await log.note() })).toEqual({ ok: false, conflictSize: 7 });
    const r2 = await addCheckpoint(w2.url, { oldSize: 7, proof: log.proof(7), note: await log.note() });
    expect(r2.ok && verifyCosignatureLine(w1.vkey, log.text(), r2.cosignatures[0]!)).toMatchObject({ ok: true });
    // a second witness on the same directory is refused while this one runs
    const dup = cli(['witness', '--listen', '127.0.0.1:0', '--config', config]);
    expect(await dup.exited).toBe(2);
    expect(dup.err()).toMatch(/in use by another witness/);
    w2.child.kill('SIGINT');
    expect(await w2.exited).toBe(0);
  }, 90_000);

  it('exits 2 with a clear message on usage errors', async () => {
    const dir = tempDir();
    const vkey = new TestLog('o.example/log').vkey;
    const cases: Array<[string[], RegExp]> = [
      [['witness', '--state-dir', dir, '--log', `o.example/log ${vkey}`], /needs a name/],
      [['witness', '--name', 'w', '--log', `o.example/log ${vkey}`], /needs a state directory/],
      [['witness', '--name', 'w', '--state-dir', dir], /no logs to witness/],
      [['witness', '--name', 'w', '--state-dir', dir, '--log', 'nokey'], /--log takes/],
      [['witness', '--name', 'w', '--state-dir', dir, '--log', 'o.example/log not-a-key'], /bad verifier key for o\.example\/log/],
      [['witness', '--name', 'w', '--state-dir', dir, '--log', `o ${vkey}`, '--listen', 'nowhere'], /--listen takes/],
      [['witness', '--name', 'w', '--state-dir', dir, '--log', `o ${vkey}`, '--tls-cert', 'x.pem'], /both --tls-cert and --tls-key/],
      [['witness', 'key', '--state-dir', join(dir, 'empty')], /no witness key/],
    ];
    await Promise.all(
      cases.map(async ([args, message]) => {
        const p = cli(args);
        expect(await p.exited, args.join(' ')).toBe(2);
        expect(p.err()).toMatch(message);
      }),
    );
  }, 90_000);
});
