// Who used the CPU during a measured window, from /proc: every process's utime + stime, and the kernel's softirq time
// (on loopback most of the network stack runs there). Used to say where "other CPU" went (another job on a shared
// machine, or the kernel), not only how much.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

export interface ProcSnapshot {
  /** pid -> [command name, CPU seconds] */
  procs: Map<number, [string, number]>;
  /** softirq seconds of the whole machine (/proc/stat, all CPUs). */
  softirq: number;
}

export function procSnapshot(): ProcSnapshot {
  const procs = new Map<number, [string, number]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const name = stat.slice(stat.indexOf('(') + 1, close);
      const f = stat.slice(close + 2).split(' ');
      procs.set(Number(d), [name, (Number(f[11]) + Number(f[12])) / CLK_TCK]);
    } catch {
      // gone
    }
  }
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  return { procs, softirq: Number(cpu[7]) / CLK_TCK };
}

/** A short description: the program's and its first two non-flag arguments' base names (node vs node says nothing). */
function describe(pid: number, name: string): string {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    if (argv.length === 0) return name;
    const base = (a: string) => a.slice(a.lastIndexOf('/') + 1);
    const args = argv.slice(1).filter((a, i, all) => !a.startsWith('-') && !(all[i - 1] ?? '').match(/^--?(r|require|import|loader)$/));
    return [base(argv[0]!), ...args.slice(0, 2).map(base)].join(' ').slice(0, 50);
  } catch {
    return name;
  }
}

/**
 * CPU seconds used between `a` and `b` by every process not in `known` (processes that started during the window
 * count from 0; those that ended are missed), keyed by a description, and the softirq seconds.
 */
export function otherUsers(a: ProcSnapshot, b: ProcSnapshot, known: ReadonlySet<number>): { softirqSec: number; procs: Map<string, number> } {
  const procs = new Map<string, number>();
  for (const [pid, [name, sec]] of b.procs) {
    if (known.has(pid)) continue;
    const d = sec - (a.procs.get(pid)?.[1] ?? 0);
    if (d > 0) procs.set(`${describe(pid, name)} (${pid})`, d);
  }
  return { softirqSec: b.softirq - a.softirq, procs };
}
