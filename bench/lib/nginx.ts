// Debian's nginx as an unprivileged child process of a benchmark: its own prefix directory, config, pid file, error
// log and temp paths under a temp dir, `daemon off`, so it dies with the benchmark. Plus the process-family helpers
// (master + workers) the benchmarks need to read its CPU time and memory.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cpuSeconds, stop } from './servers.js';

export const NGINX_BIN = process.env.BENCH_NGINX ?? '/usr/sbin/nginx';

export interface NginxProcess {
  child: ChildProcess;
  dir: string;
  /** The master and its workers (read fresh from /proc each call). */
  pids: () => number[];
  /** stdout/stderr and the tail of error.log, for diagnosis. */
  logs: () => string;
  stop: () => Promise<void>;
}

/** `nginx -v` ("1.22.1"), or null when the binary is missing or does not run. */
export async function nginxVersion(bin = NGINX_BIN): Promise<string | null> {
  if (!existsSync(bin)) return null;
  return new Promise((resolve) => {
    const c = spawn(bin, ['-v'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    c.on('error', () => resolve(null));
    c.on('exit', (code) => resolve(code === 0 ? (/nginx\/(\S+)/.exec(out)?.[1] ?? out.trim()) : null));
  });
}

/** The process and its direct children (nginx: master + workers). */
export function processFamily(pid: number): number[] {
  const kids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) kids.push(Number(d));
    } catch {
      // gone
    }
  }
  return [pid, ...kids];
}

/** utime + stime of several processes, in seconds (a process that is gone counts 0). */
export function cpuOfPids(pids: readonly number[]): number {
  let s = 0;
  for (const p of pids) {
    try {
      s += cpuSeconds(p);
    } catch {
      // gone
    }
  }
  return s;
}

/**
 * Writes `<dir>/nginx.conf` (the main-context lines every instance needs, then `body`: events/http blocks) and starts
 * nginx on it. Resolves once `ready()` says so (e.g. a request answers), with `workers` workers up.
 */
export async function startNginx(dir: string, workers: number, body: string, ready: () => Promise<boolean>): Promise<NginxProcess> {
  await mkdir(join(dir, 'tmp'), { recursive: true });
  const conf = `# written by a Palisade benchmark (bench/lib/nginx.ts)
worker_processes ${workers};
${process.getuid?.() === 0 ? 'user root;' : ''}
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
${body}
`;
  await writeFile(join(dir, 'nginx.conf'), conf);
  const child = spawn(NGINX_BIN, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log'), '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  child.once('exit', () => process.off('exit', killOnExit));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
  child.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
  const logs = () => `${out}${existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8').slice(-2000) : ''}`;
  const n: NginxProcess = { child, dir, pids: () => processFamily(child.pid!), logs, stop: () => stop(child) };
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited with code ${child.exitCode}:\n${logs()}`);
    if (n.pids().length > workers && (await ready().catch(() => false))) return n;
    if (Date.now() > deadline) {
      await stop(child);
      throw new Error(`nginx not ready after 10 s:\n${logs()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The `http { ... }` lines every benchmark instance shares: temp paths in its dir, no access log unless asked. */
export function httpCommon(dir: string): string {
  return `client_body_temp_path ${dir}/tmp/body; proxy_temp_path ${dir}/tmp/proxy; fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi; scgi_temp_path ${dir}/tmp/scgi;`;
}
