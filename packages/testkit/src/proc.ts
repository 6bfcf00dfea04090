/**
 * Process / filesystem helpers shared by the throwaway-server launchers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, chownSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, parse } from 'node:path';

/** Absolute path of `name` found on PATH (or null). */
export function findExecutable(name: string, pathEnv: string | undefined = process.env.PATH): string | null {
  for (const dir of (pathEnv ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it). */
export function getFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('could not determine a free port'));
        return;
      }
      const { port } = addr;
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface RunAs {
  user: string;
  uid: number;
  gid: number;
}

/**
 * When running as root, the unprivileged account to run servers as (PostgreSQL
 * refuses to run as root): `postgres` if it exists, else `nobody`.
 * Returns null when not root (run as ourselves).
 */
export function unprivilegedUser(preferred: readonly string[] = ['postgres', 'nobody']): RunAs | null {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return null;
  let passwd = '';
  try {
    passwd = readFileSync('/etc/passwd', 'utf8');
  } catch {
    // fall through to the error below
  }
  const entries = new Map<string, RunAs>();
  for (const line of passwd.split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user && uid !== undefined && gid !== undefined) {
      entries.set(user, { user, uid: Number(uid), gid: Number(gid) });
    }
  }
  for (const name of preferred) {
    const e = entries.get(name);
    if (e && Number.isInteger(e.uid) && Number.isInteger(e.gid) && e.uid !== 0) return e;
  }
  throw new Error(
    `[palisade testkit] running as root but none of the users ${preferred.join(', ')} exist; ` +
      'PostgreSQL cannot run as root. Create a "postgres" user (the postgresql package does) or run as non-root.',
  );
}

/** True if every ancestor of `dir` can be traversed by "other" (so a dropped-privilege child can reach it). */
function traversableByOthers(dir: string): boolean {
  let d = dir;
  const { root } = parse(d);
  for (;;) {
    try {
      if ((statSync(d).mode & 0o001) === 0) return false;
    } catch {
      return false;
    }
    if (d === root) return true;
    d = dirname(d);
  }
}

/**
 * mkdtemp under os.tmpdir() (falls back to /tmp if a dropped-privilege user
 * could not reach os.tmpdir()); chowned to `owner` when given.
 */
export function makeTempDir(prefix: string, owner: RunAs | null): string {
  let base = tmpdir();
  if (owner && !traversableByOthers(base)) base = '/tmp';
  const dir = mkdtempSync(join(base, prefix));
  if (owner) chownSync(dir, owner.uid, owner.gid);
  return dir;
}

export function removeDirQuietly(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
  } catch {
    // best effort
  }
}

/**
 * Guarantees that `child` (and `dir`) do not outlive this process:
 *  - on normal exit of this process: synchronously send `exitSignal` and rm the dir;
 *  - if this process is SIGKILLed / crashes: a tiny detached `sh` watchdog polls
 *    our pid once a second, then signals the server and removes the dir.
 * The watchdog exits by itself as soon as the server is gone.
 * Returns a function that disarms the on-exit hook (call it after a clean stop).
 */
export function tieLifetime(child: ChildProcess, dir: string, exitSignal: NodeJS.Signals): () => void {
  const onExit = (): void => {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill(exitSignal);
      } catch {
        // already gone
      }
    }
    removeDirQuietly(dir);
  };
  process.once('exit', onExit);

  if (child.pid !== undefined) {
    const script =
      'while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done; ' +
      'if kill -0 "$2" 2>/dev/null; then kill -s "$4" "$2" 2>/dev/null; ' +
      'i=0; while kill -0 "$2" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.2; i=$((i+1)); done; ' +
      'kill -s KILL "$2" 2>/dev/null; rm -rf "$3"; fi';
    try {
      const dog = spawn('/bin/sh', ['-c', script, 'palisade-testkit-watchdog', String(process.pid), String(child.pid), dir, exitSignal.replace(/^SIG/, '')], {
        detached: true,
        stdio: 'ignore',
      });
      dog.on('error', () => {});
      dog.unref();
    } catch {
      // no /bin/sh: the on-exit hook still covers normal termination
    }
  }
  return () => {
    process.removeListener('exit', onExit);
  };
}

/** Resolves when `child` exits (immediately if it already has). */
export function waitForExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Send `signal`, wait up to `graceMs`, then SIGKILL. */
export async function terminate(child: ChildProcess, signal: NodeJS.Signals, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = waitForExit(child);
  child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), graceMs);
  });
  const late = await Promise.race([exited.then(() => false), timedOut]);
  clearTimeout(timer);
  if (late) {
    child.kill('SIGKILL');
    await exited;
  }
}

/** Last `max` bytes of a (log) file, for error messages. */
export function tailFile(path: string, max = 4000): string {
  try {
    const text = readFileSync(path, 'utf8');
    return text.length > max ? `…${text.slice(-max)}` : text;
  } catch {
    return '';
  }
}
