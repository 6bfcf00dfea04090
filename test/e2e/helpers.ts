/**
 * End-to-end helpers: run the real `palisade` entry point (packages/server/src/main.ts through tsx) as a child
 * process with a temporary data directory and a free loopback port, talk to it over HTTPS, and make sure nothing
 * outlives the test file (stopAll() in afterAll, plus a SIGKILL sweep when the worker exits).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { getFreePort } from '@palisade/testkit';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const MAIN = join(REPO_ROOT, 'packages/server/src/main.ts');

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------------------------
// process bookkeeping

const live = new Set<ChildProcess>();
const tempDirs: string[] = [];

// Last line of defence: a worker that exits (or crashes out of a test) takes its servers with it.
process.once('exit', () => {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

/** A fresh directory under the OS temp dir, removed by stopAll(). */
export function tempDir(prefix = 'palisade-e2e-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export const freePort = getFreePort;

/** process.env without any PALISADE_* (or NODE_OPTIONS) the developer may have exported, plus `extra`. */
export function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('PALISADE_') || k === 'NODE_OPTIONS') continue;
    env[k] = v;
  }
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface PalisadeProcess {
  child: ChildProcess;
  pid: number;
  /** Everything written to stdout / stderr so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has exited (never rejects). */
  exited: Promise<ExitInfo>;
  /** Set once exited. */
  exitInfo: ExitInfo | null;
}

/** Spawn `node --import tsx packages/server/src/main.ts ...args` (cwd = repo root, not detached). */
export function spawnPalisade(args: string[], env: NodeJS.ProcessEnv): PalisadeProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: REPO_ROOT, env, stdio: ['pipe', 'pipe', 'pipe'], detached: false });
  live.add(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  child.stdin!.on('error', () => undefined);
  child.stdin!.end();
  const proc: PalisadeProcess = {
    child,
    pid: child.pid ?? -1,
    stdout: () => out,
    stderr: () => err,
    exitInfo: null,
    exited: new Promise<ExitInfo>((resolve) => {
      child.once('error', (e) => {
        err += `\n[spawn error] ${e.message}`;
        live.delete(child);
        proc.exitInfo = { code: -1, signal: null };
        resolve(proc.exitInfo);
      });
      // 'close' (not 'exit') so that stdout/stderr are fully read
      child.once('close', (code, signal) => {
        live.delete(child);
        proc.exitInfo = { code, signal };
        resolve(proc.exitInfo);
      });
    }),
  };
  return proc;
}

/** Wait for exit at most `ms`; null when it is still running. */
export async function waitExit(proc: PalisadeProcess, ms: number): Promise<ExitInfo | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((r) => (timer = setTimeout(() => r(null), ms)));
  try {
    return await Promise.race([proc.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Signal, wait up to `ms`, then SIGKILL. Returns how it exited. */
export async function terminate(proc: PalisadeProcess, signal: NodeJS.Signals = 'SIGTERM', ms = 10_000): Promise<ExitInfo> {
  if (proc.exitInfo) return proc.exitInfo;
  proc.child.kill(signal);
  const info = await waitExit(proc, ms);
  if (info) return info;
  proc.child.kill('SIGKILL');
  return (await waitExit(proc, 5_000)) ?? { code: null, signal: 'SIGKILL' };
}

// ---------------------------------------------------------------------------------------------------------------
// HTTPS

export interface HttpTarget {
  port: number;
  ca: Buffer | string;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
  json<T = unknown>(): T;
}

export interface RequestOptions {
  method?: string;
  token?: string;
  /** JSON-serialised unless a Buffer/string. */
  body?: unknown;
  headers?: Record<string, string>;
  timeoutMs?: number;
  /** Called once the whole request body has been handed to the socket. */
  onWritten?: () => void;
}

/** One HTTPS request to 127.0.0.1:<port> trusting `ca`, no keep-alive (agent: false). */
export function request(target: HttpTarget, path: string, opts: RequestOptions = {}): Promise<HttpResponse> {
  const payload =
    opts.body === undefined ? undefined : Buffer.isBuffer(opts.body) ? opts.body : Buffer.from(typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body));
  const headers: Record<string, string> = {
    accept: 'application/json',
    ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
    ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
    ...opts.headers,
  };
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port: target.port, path, method: opts.method ?? (payload ? 'POST' : 'GET'), ca: target.ca, agent: false, headers, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          clearTimeout(overall);
          const body = Buffer.concat(chunks);
          const text = body.toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text, json: <T>() => JSON.parse(text) as T });
        });
      },
    );
    const overall = setTimeout(() => req.destroy(new Error(`request ${path} did not complete within ${timeoutMs} ms`)), timeoutMs);
    req.on('timeout', () => req.destroy(new Error(`request ${path} idle for ${timeoutMs} ms`)));
    req.on('error', (e) => {
      clearTimeout(overall);
      reject(e);
    });
    if (opts.onWritten) req.once('finish', opts.onWritten);
    req.end(payload);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// servers

export interface LogLine {
  level: number;
  time: number;
  msg: string;
  [k: string]: unknown;
}

export interface Server extends HttpTarget {
  proc: PalisadeProcess;
  addr: string;
  dataDir: string;
  caFile: string;
  ca: Buffer;
  /** The owner token: PALISADE_BOOTSTRAP_TOKEN if given, else `<data>/bootstrap-token`. */
  token: string;
  /** The environment the server was started with (reuse it for CLI runs against the same data dir). */
  env: NodeJS.ProcessEnv;
  /** stdout parsed as pino JSON lines (non-JSON lines are skipped). */
  logs(): LogLine[];
  /** SIGTERM (by default), wait, SIGKILL after `ms`. */
  stop(signal?: NodeJS.Signals, ms?: number): Promise<ExitInfo>;
}

export interface StartOptions {
  /** Data directory (default: a new `<tmp>/data`, created by the server). */
  dataDir?: string;
  /** Extra environment; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  readyTimeoutMs?: number;
}

const servers: Server[] = [];

export function parseLogs(stdout: string): LogLine[] {
  const lines: LogLine[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(line) as LogLine);
    } catch {
      // partial line
    }
  }
  return lines;
}

/** An empty palisade.yaml, so that a stray ./palisade.yaml in the repo cannot change what the tests see. */
export function emptyConfigFile(): string {
  const file = join(tempDir('palisade-e2e-cfg-'), 'palisade.yaml');
  writeFileSync(file, '# palisade e2e: defaults\n');
  return file;
}

function describeFailure(proc: PalisadeProcess, why: string): Error {
  return new Error(`${why}\n--- exit: ${JSON.stringify(proc.exitInfo)}\n--- stderr:\n${proc.stderr().slice(-4000)}\n--- stdout:\n${proc.stdout().slice(-4000)}`);
}

/** Start `palisade serve` and wait until GET /readyz answers 200 over HTTPS with the data dir's CA. */
export async function startServer(opts: StartOptions = {}): Promise<Server> {
  const dataDir = opts.dataDir ?? join(tempDir(), 'data');
  const readyTimeoutMs = opts.readyTimeoutMs ?? 20_000;
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const addr = `127.0.0.1:${port}`;
    const env = cleanEnv({
      PALISADE_CONFIG: emptyConfigFile(),
      PALISADE_DATA_DIR: dataDir,
      PALISADE_ADDR: addr,
      PALISADE_LOG_LEVEL: 'info',
      ...opts.env,
    });
    const proc = spawnPalisade(['serve'], env);
    const caFile = join(dataDir, 'tls', 'ca.pem');
    const deadline = Date.now() + readyTimeoutMs;
    let ready = false;
    while (Date.now() < deadline && !proc.exitInfo) {
      if (existsSync(caFile)) {
        try {
          const r = await request({ port, ca: readFileSync(caFile) }, '/readyz', { timeoutMs: 2_000 });
          if (r.status === 200) {
            ready = true;
            break;
          }
        } catch {
          // not listening yet
        }
      }
      await sleep(100);
    }
    if (!ready) {
      if (proc.exitInfo && attempt < 3 && /EADDRINUSE/.test(proc.stdout() + proc.stderr())) continue; // lost the port race
      await terminate(proc, 'SIGKILL');
      throw describeFailure(proc, proc.exitInfo?.signal === 'SIGKILL' ? `palisade serve was not ready within ${readyTimeoutMs} ms` : 'palisade serve exited before it was ready');
    }
    const tokenFile = join(dataDir, 'bootstrap-token');
    const token = env.PALISADE_BOOTSTRAP_TOKEN ?? (existsSync(tokenFile) ? readFileSync(tokenFile, 'utf8').trim() : '');
    const server: Server = {
      proc,
      port,
      addr,
      dataDir,
      caFile,
      ca: readFileSync(caFile),
      token,
      env,
      logs: () => parseLogs(proc.stdout()),
      stop: (signal = 'SIGTERM', ms = 10_000) => terminate(proc, signal, ms),
    };
    servers.push(server);
    return server;
  }
}

/** Stop every server this file started (SIGTERM, then SIGKILL) and remove the temp dirs. Call in afterAll. */
export async function stopAll(): Promise<void> {
  await Promise.all(servers.splice(0).map((s) => s.stop('SIGTERM', 5_000)));
  for (const child of live) child.kill('SIGKILL');
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
}

// ---------------------------------------------------------------------------------------------------------------
// CLI

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/** Run the CLI to completion (SIGKILL after `timeoutMs`), feeding `input` on stdin. */
export function runCli(args: string[], opts: { env: NodeJS.ProcessEnv; input?: Buffer | string; timeoutMs?: number }): Promise<CliResult> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: REPO_ROOT, env: opts.env, stdio: ['pipe', 'pipe', 'pipe'], detached: false });
    live.add(child);
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
    const timer = setTimeout(() => {
      err += `\n[e2e] killed after ${timeoutMs} ms`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      live.delete(child);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: err });
    });
    child.stdin.on('error', () => undefined); // the CLI may exit without reading stdin
    child.stdin.end(opts.input ?? '');
  });
}
