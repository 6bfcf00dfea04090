// Child processes the end-to-end benchmarks talk to: the real Palisade server and the bare peers (./bare-server.ts),
// plus small helpers (an HTTPS call, CPU time of a process from /proc).
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BareMode, BareReady } from './bare-server.js'; // types only: evaluating that module starts a server

/** A running server: its process, where it listens, the CA to trust and the headers every request needs. */
export interface ServerTarget {
  pid: number;
  port: number;
  ca: string;
  headers: Record<string, string>;
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a process (all threads), in seconds, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // fields 14 and 15
}

/** Busy (non-idle, non-iowait) CPU seconds of the whole machine, from /proc/stat. */
export function machineBusySeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  return (f.reduce((a, b) => a + b, 0) - f[3]! - f[4]!) / CLK_TCK;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export function call(port: number, ca: string, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, ca, headers: body ? { ...headers, 'content-type': 'application/json' } : headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/** The server settings a benchmark run may set in its own environment (bench/README.md); other PALISADE_ variables are not passed on. */
const PASSED_THROUGH = ['PALISADE_SQLITE_SYNCHRONOUS', 'PALISADE_GC_THREADS_NICE'];
const passedThrough = () => Object.fromEntries(PASSED_THROUGH.filter((k) => process.env[k]).map((k) => [k, process.env[k]!]));

/**
 * Starts `node packages/server/dist/main.js serve` on a fresh data directory; resolves once /readyz answers 200.
 * `logFile`: its stdout and stderr go to that file (no pipe through this process, which would spend this process's
 * CPU on every log line) and `logs()` reads its tail.
 */
export async function startPalisade(opts: { env?: Record<string, string>; logFile?: string } = {}): Promise<{ target: ServerTarget; child: ChildProcess; dataDir: string; logs: () => string }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'palisade-bench-'));
  const port = await freePort();
  const token = randomBytes(32).toString('base64url'); // 43 characters
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PALISADE_')));
  const nodeArgs = process.env.BENCH_SERVER_NODE_ARGS?.split(' ').filter(Boolean) ?? []; // e.g. --cpu-prof
  const logFd = opts.logFile ? openSync(opts.logFile, 'a') : null;
  const child = spawn(process.execPath, [...nodeArgs, join(ROOT, 'packages/server/dist/main.js'), 'serve'], {
    cwd: dataDir, // no ./palisade.yaml from the repository
    env: { ...clean, PALISADE_DATA_DIR: dataDir, PALISADE_ADDR: `127.0.0.1:${port}`, PALISADE_BOOTSTRAP_TOKEN: token, PALISADE_LOG_LEVEL: 'warn', ...passedThrough(), ...opts.env },
    stdio: logFd === null ? ['ignore', 'pipe', 'pipe'] : ['ignore', logFd, logFd],
  });
  if (logFd !== null) closeSync(logFd);
  const killOnExit = () => child.kill('SIGKILL'); // never leave a server behind if this process dies
  process.once('exit', killOnExit);
  child.once('exit', () => process.off('exit', killOnExit));
  let piped = '';
  const keep = (d: Buffer) => (piped = (piped + d.toString('utf8')).slice(-4000));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const tail = () => {
    try {
      const t = readFileSync(opts.logFile!, 'utf8');
      return t.slice(-4000);
    } catch {
      return '';
    }
  };
  const logs = () => (opts.logFile ? tail() : piped);
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`palisade exited with code ${child.exitCode}:\n${logs()}`);
    try {
      const ca = await readFile(join(dataDir, 'tls/ca.pem'), 'utf8');
      if ((await call(port, ca, 'GET', '/readyz')).status === 200) {
        return { target: { pid: child.pid!, port, ca, headers: { authorization: `Bearer ${token}` } }, child, dataDir, logs };
      }
    } catch {
      // not listening or no CA yet
    }
    if (Date.now() > deadline) {
      await stop(child);
      throw new Error(`palisade not ready after 30 s:\n${logs()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function startBare(mode: BareMode): Promise<{ target: ServerTarget; child: ChildProcess }> {
  const child = fork(fileURLToPath(new URL('./bare-server.ts', import.meta.url)), [mode], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  child.once('exit', () => process.off('exit', killOnExit));
  return new Promise((resolve, reject) => {
    child.once('message', (m: BareReady) => resolve({ target: { pid: child.pid!, port: m.port, ca: m.ca, headers: {} }, child }));
    child.once('exit', (code) => reject(new Error(`${mode} peer exited with code ${code}`)));
  });
}

/** Sequential requests over one keep-alive TLS connection (no handshake in the timings); each resolves with its latency. */
export function keepAliveClient(target: ServerTarget): { post: (path: string, body: string) => Promise<{ status: number; text: string; ms: number }>; close: () => void } {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const post = (path: string, body: string) =>
    new Promise<{ status: number; text: string; ms: number }>((resolve, reject) => {
      const t0 = performance.now();
      const headers = { ...target.headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) };
      const req = request({ host: '127.0.0.1', port: target.port, method: 'POST', path, ca: target.ca, headers, agent }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8'), ms: performance.now() - t0 }));
      });
      req.on('error', reject);
      req.end(body);
    });
  return { post, close: () => agent.destroy() };
}

/** Waits until a process has used under 5% of a core for 300 ms (e.g. background key generation finished); false on timeout. */
export async function waitIdle(pid: number, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let before = cpuSeconds(pid); Date.now() < deadline; ) {
    await new Promise((r) => setTimeout(r, 300));
    const now = cpuSeconds(pid);
    if (now - before < 0.015) return true;
    before = now;
  }
  return false;
}
