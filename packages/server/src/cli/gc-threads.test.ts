import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { platformThreads, v8PoolSize } from './gc-threads.js';

const MODULE = fileURLToPath(new URL('./gc-threads.ts', import.meta.url));

describe('V8 GC threads at a lower priority', () => {
  it('reads the platform pool size as node does', () => {
    expect(v8PoolSize([])).toBe(4);
    expect(v8PoolSize(['--v8-pool-size=2'])).toBe(2);
    expect(v8PoolSize(['--v8-pool-size', '6'])).toBe(6);
    expect(v8PoolSize(['--v8-pool-size=0'])).toBeGreaterThanOrEqual(1);
  });

  it('names the pool size + 2 lowest thread ids after the main thread, or says why not', () => {
    expect(platformThreads([112, 100, 101, 105, 103, 104, 102, 106, 110, 111], 100, 4)).toEqual([101, 102, 103, 104, 105, 106]);
    expect(platformThreads([100, 101, 102], 100, 4)).toMatch(/fewer than/);
    expect(platformThreads([99, 100, 101, 102, 103, 104, 105, 106], 100, 4)).toMatch(/not the first thread/);
  });

  // On the Node in use: renice, then make the libuv threadpool work (pbkdf2), then the GC (old-generation objects, so
  // concurrent marking runs; second, so that no GC work of the first phase is counted for the threadpool), and see
  // from /proc which threads spent the CPU in each phase and what their nice values are.
  it.runIf(process.platform === 'linux')('renices exactly threads that do GC work, none of the libuv threadpool', () => {
    const child = `
      import { readdirSync, readFileSync } from 'node:fs';
      import { pbkdf2 } from 'node:crypto';
      import { lowerGcThreadPriority } from ${JSON.stringify(MODULE)};
      const outcome = lowerGcThreadPriority(7);
      const stat = (t) => readFileSync('/proc/self/task/' + t + '/stat', 'utf8').split(') ')[1].split(' ');
      const cpu = () => new Map(readdirSync('/proc/self/task').map((t) => [Number(t), Number(stat(t)[11]) + Number(stat(t)[12])]));
      const busy = (a, b) => [...b].filter(([t, c]) => t !== process.pid && c - (a.get(t) ?? 0) >= 2).map(([t]) => t);
      const c0 = cpu();
      await Promise.all(Array.from({ length: 8 }, () => new Promise((r) => pbkdf2('a', 'b', 300000, 32, 'sha256', r))));
      const c1 = cpu();
      let keep = [];
      for (let i = 0; i < 8e6; i++) { keep.push({ a: i, b: [i] }); if (keep.length > 1e6) keep = []; }
      const c2 = cpu();
      const nice = Object.fromEntries(readdirSync('/proc/self/task').map((t) => [t, Number(stat(t)[16])]));
      console.log(JSON.stringify({ outcome, pool: busy(c0, c1), gc: busy(c1, c2), nice }));
    `;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', child], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const got = JSON.parse(r.stdout.trim().split('\n').pop()!) as { outcome: { reniced?: number[]; skipped?: string }; gc: number[]; pool: number[]; nice: Record<string, number> };
    expect(got.outcome.skipped).toBeUndefined();
    const reniced = got.outcome.reniced!;
    expect(got.gc.length).toBeGreaterThan(0); // the GC used helper threads
    expect(got.pool.length).toBeGreaterThan(0); // and pbkdf2 the threadpool
    for (const t of got.gc) expect(reniced, `GC thread ${t}`).toContain(t);
    for (const t of got.pool) expect(reniced, `threadpool thread ${t}`).not.toContain(t);
    const main = got.nice[Object.keys(got.nice).map(Number).sort((a, b) => a - b)[0]!]!; // (untouched: the lowest id)
    for (const t of reniced) expect(got.nice[t]).toBe(Math.min(19, main + 7));
  });
});
