// V8's garbage-collector helper threads at a lower CPU priority than the event loop (ADR 0015).
//
// Node's V8 platform runs GC work (concurrent marking, parallel scavenges, sweeping) on its worker threads. On a
// machine with few cores, a major GC's concurrent marking takes the cores the event loop needs for tens of ms: the
// latency tail of every request in flight. With those threads niced, the event loop and the machine's other work come
// first when the cores are busy; when a core is idle they run as before. The libuv threadpool (fs, dns, async crypto)
// is left alone.
//
// Which threads those are is known by the order Node starts them, on Linux (the only system with /proc/self/task):
// the main thread (tid = pid); before any JavaScript runs, the platform's workers (--v8-pool-size, 4 by default) and
// two idle threads of Node's (the platform's delayed-task scheduler, the inspector's signal thread); then the libuv
// threadpool and anything started later. Thread ids grow with creation, so the platform's threads are among the pool
// size + 2 lowest ids after the main thread's. A test (gc-threads.test.ts) checks, on the Node in use, that these are
// the threads that do the GC work and none of the threadpool's.
import { readdirSync } from 'node:fs';
import { availableParallelism, getPriority, setPriority } from 'node:os';

export type GcThreadsOutcome = { reniced: number[]; nice: number } | { skipped: string };

/** The size of V8's platform worker pool of this process (Node: --v8-pool-size, 4 by default, 0 = cores − 1). */
export function v8PoolSize(execArgv: readonly string[] = process.execArgv): number {
  let size = 4;
  for (let i = 0; i < execArgv.length; i++) {
    const a = execArgv[i]!;
    const value = a.startsWith('--v8-pool-size=') ? a.slice('--v8-pool-size='.length) : a === '--v8-pool-size' ? execArgv[i + 1] : undefined;
    if (value !== undefined && /^\d+$/.test(value)) size = Number(value);
  }
  return size >= 1 ? size : Math.max(1, availableParallelism() - 1);
}

/** The ids of the V8 platform's threads among `tids` (this process's threads), or why they cannot be told. */
export function platformThreads(tids: readonly number[], pid: number, poolSize: number): number[] | string {
  const sorted = [...tids].sort((a, b) => a - b);
  if (sorted[0] !== pid) return `the main thread (${pid}) is not the first thread`;
  const n = poolSize + 2;
  if (sorted.length < 1 + n) return `${sorted.length} threads, fewer than the main thread and the V8 platform's ${n}`;
  return sorted.slice(1, 1 + n);
}

/**
 * Gives the V8 platform's threads a nice value `steps` above the main thread's (at most 19; 0 leaves them as they
 * are). Never throws.
 */
export function lowerGcThreadPriority(steps: number): GcThreadsOutcome {
  if (steps === 0) return { skipped: 'gc_threads_nice is 0' };
  let tids: number[];
  try {
    tids = readdirSync('/proc/self/task').map(Number);
  } catch {
    return { skipped: 'no /proc/self/task (not Linux)' };
  }
  const threads = platformThreads(tids, process.pid, v8PoolSize());
  if (typeof threads === 'string') return { skipped: threads };
  let nice: number;
  try {
    nice = Math.min(19, getPriority(process.pid) + steps);
    for (const tid of threads) setPriority(tid, nice);
  } catch (e) {
    return { skipped: `setpriority failed: ${(e as Error).message}` };
  }
  return { reniced: threads, nice };
}
