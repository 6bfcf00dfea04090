// Open-loop (fixed-rate) HTTP/1.1 load generator, run as a child process (runFixedRateInChild, ./fixed-rate-child.ts)
// so that its event loop is never the server's. wrk has no fixed-rate mode (and wrk2 is not installed here), so this is
// the latency measurement at a given request rate:
//
//   - request i is SCHEDULED at t0 + i / rate, whatever happened to the ones before it (open loop);
//   - it goes out on the first idle keep-alive connection of a fixed pool; if none is idle it waits in a FIFO queue
//     for one, and that wait counts: latency = response complete − scheduled time (so a stall of the server is
//     charged to every request that should have been sent during it: no coordinated omission, as in wrk2);
//   - `send lag` = actual send − scheduled time is the client's own delay (timer granularity, its event loop, the
//     queue), reported so that the client's share of the latency is visible.
//
// The requests are pre-serialized; responses are parsed minimally (status line, Content-Length; chunked responses are
// refused as an error). Plain HTTP (http://) or TLS (https://, TLS 1.3 only, certificate verified against `ca` at
// connect: all handshakes happen before the first scheduled request). No dependencies.
import { RawResponse } from './raw-response.js';
import { fork } from 'node:child_process';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { percentile } from './report.js';

export interface FixedRateSpec {
  /** http://host:port or https://host:port (the path is `path`). */
  origin: string;
  /** PEM of the CA to verify an https server with. */
  ca?: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
  /** Requests per second, scheduled evenly. */
  rate: number;
  connections: number;
  warmupMs: number;
  durationMs: number;
  /** After the last scheduled request, how long to wait for the stragglers (they count as unfinished after). */
  drainMs?: number;
  /** Return every latency and send lag of the window too (to merge several runs with mergeFixedRate). */
  keepSamples?: boolean;
}

export interface FixedRateResult {
  origin: string;
  rate: number;
  connections: number;
  /** Requests scheduled in the measured window, and how many of them completed with a 2xx. */
  scheduled: number;
  ok: number;
  /** Completed 2xx requests ÷ the window's length. */
  achievedRps: number;
  errors: number;
  non2xx: number;
  /** Scheduled in the window but not answered before the drain ended: counted as failures, not in the latencies. */
  unfinished: number;
  firstBad: string | null;
  /** Scheduled → complete, of the window's 2xx responses, in ms. */
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number };
  /** Scheduled → written to the socket (the client's own delay and the wait for an idle connection), in ms. */
  sendLagMs: { p50: number; p99: number; max: number };
  /** Most requests waiting for an idle connection at once during the window. */
  maxQueued: number;
  /** CPU the load generator used during the window, in % of one core. */
  clientCpuPct: number;
  /** The window's length in seconds. */
  seconds: number;
  /** With keepSamples: the window's latencies and send lags, ascending. */
  samples?: { latency: number[]; lag: number[] };
}

export type FixedRateMessage = { type: 'window'; event: 'start' | 'end' } | { type: 'result'; result: FixedRateResult } | { type: 'error'; message: string };

interface Sample {
  scheduled: number;
  sent: number;
}

class Connection {
  socket!: Socket;
  private readonly res = new RawResponse();
  current: Sample | null = null;

  constructor(
    private readonly bytes: Buffer,
    private readonly onDone: (c: Connection, s: Sample, status: number, body: () => string) => void,
    private readonly onFail: (c: Connection, s: Sample | null, why: string) => void,
  ) {}

  open(origin: URL, ca: string | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      const port = Number(origin.port || (origin.protocol === 'https:' ? 443 : 80));
      const host = origin.hostname;
      const s =
        origin.protocol === 'https:'
          ? tlsConnect({ host, port, ...(ca ? { ca } : {}), minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' })
          : netConnect({ host, port });
      s.setNoDelay(true);
      s.once(origin.protocol === 'https:' ? 'secureConnect' : 'connect', () => resolve());
      s.once('error', reject);
      s.on('data', (d: Buffer) => this.onData(d));
      s.on('close', () => {
        const c = this.current;
        this.current = null;
        this.onFail(this, c, 'connection closed');
      });
      this.socket = s;
    });
  }

  send(s: Sample): void {
    this.res.reset();
    this.current = s;
    s.sent = performance.now();
    this.socket.write(this.bytes);
  }

  private onData(d: Buffer): void {
    const r = this.res.push(d);
    if (r === 'more') return;
    if (r !== 'done') {
      const c = this.current;
      this.current = null;
      this.onFail(this, c, r);
      this.socket.destroy();
      return;
    }
    const s = this.current!;
    this.current = null;
    const res = this.res;
    const { chunks, headerEnd } = res; // reset() replaces them: the body stays readable for onDone, read only if asked
    this.onDone(this, s, res.status, () => Buffer.concat(chunks).subarray(headerEnd, headerEnd + 300).toString('utf8'));
    if (res.closeAfter) this.socket.destroy(); // counted by onFail (current is null: no sample lost)
  }
}

export function serializeRequest(spec: Pick<FixedRateSpec, 'origin' | 'method' | 'path' | 'headers' | 'body'>): Buffer {
  const u = new URL(spec.origin);
  const body = Buffer.from(spec.body);
  const headers = { host: u.host, ...spec.headers, 'content-length': String(body.length) };
  const head = `${spec.method} ${spec.path} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

export async function runFixedRate(spec: FixedRateSpec, onWindow: (e: 'start' | 'end') => void = () => {}): Promise<FixedRateResult> {
  const origin = new URL(spec.origin);
  const bytes = serializeRequest(spec);
  const interval = 1000 / spec.rate;
  const drainMs = spec.drainMs ?? 10_000;
  const lat: number[] = [];
  const lag: number[] = [];
  let [errors, non2xx, firstBad, maxQueued] = [0, 0, null as string | null, 0];
  let wStart = Infinity;
  let wEnd = Infinity;
  const inWindow = (s: Sample) => s.scheduled >= wStart && s.scheduled < wEnd;
  let windowScheduled = 0;
  let windowFinished = 0;

  const idle: Connection[] = [];
  const queue: Sample[] = [];
  let qHead = 0;
  let outstanding = 0; // scheduled, not yet answered or failed
  let allScheduled = false;
  let closing = false;
  let drained: () => void = () => {};

  const next = (c: Connection) => {
    if (qHead < queue.length) {
      const s = queue[qHead++]!;
      if (qHead > 4096 && qHead * 2 > queue.length) {
        queue.splice(0, qHead);
        qHead = 0;
      }
      c.send(s);
    } else idle.push(c);
  };
  const settle = (s: Sample) => {
    outstanding--;
    if (inWindow(s)) windowFinished++;
    if (allScheduled && outstanding === 0) drained();
  };
  const onDone = (c: Connection, s: Sample, status: number, body: () => string) => {
    const now = performance.now();
    if (status >= 200 && status < 300) {
      if (inWindow(s)) {
        lat.push(now - s.scheduled);
        lag.push(s.sent - s.scheduled);
      }
    } else {
      if (inWindow(s)) non2xx++;
      if (firstBad === null) firstBad = `${status} ${body()}`;
    }
    settle(s);
    next(c);
  };
  const onFail = (c: Connection, s: Sample | null, why: string) => {
    const at = idle.indexOf(c);
    if (at >= 0) idle.splice(at, 1);
    if (s) {
      if (inWindow(s)) errors++;
      if (firstBad === null) firstBad = why;
      settle(s);
    }
    if (closing) return;
    // Replace the connection so the pool keeps its size (its reconnect counts in the waiting requests' latency).
    const r = new Connection(bytes, onDone, onFail);
    r.open(origin, spec.ca).then(
      () => next(r),
      (e: unknown) => {
        errors++;
        if (firstBad === null) firstBad = `reconnect: ${(e as Error).message}`;
      },
    );
  };

  const conns = Array.from({ length: spec.connections }, () => new Connection(bytes, onDone, onFail));
  await Promise.all(conns.map((c) => c.open(origin, spec.ca)));
  idle.push(...conns);

  let cpu0 = process.cpuUsage();
  let cpu = { user: 0, system: 0 };
  let cpuWall = 0;
  const t0 = performance.now() + 20;
  const total = Math.ceil(((spec.warmupMs + spec.durationMs) * spec.rate) / 1000);
  wStart = t0 + spec.warmupMs;
  wEnd = t0 + spec.warmupMs + spec.durationMs;
  let i = 0;
  let started = false;
  let ended = false;
  const done = new Promise<void>((resolve) => {
    drained = resolve;
  });
  const tick = () => {
    const now = performance.now();
    if (!started && now >= wStart) {
      started = true;
      cpu0 = process.cpuUsage();
      cpuWall = now;
      onWindow('start');
    }
    while (i < total && t0 + i * interval <= now) {
      const s: Sample = { scheduled: t0 + i * interval, sent: 0 };
      i++;
      outstanding++;
      if (inWindow(s)) windowScheduled++;
      const c = idle.shift();
      if (c) c.send(s);
      else queue.push(s);
    }
    const queued = queue.length - qHead;
    if (started && !ended && queued > maxQueued) maxQueued = queued;
    if (!ended && now >= wEnd) {
      ended = true;
      cpu = process.cpuUsage(cpu0);
      cpuWall = now - cpuWall;
      onWindow('end');
    }
    if (i < total) {
      setTimeout(tick, Math.max(0, t0 + i * interval - performance.now()));
    } else {
      if (!ended) {
        // The last request's slot is just before wEnd: close the window when it comes.
        setTimeout(tick, Math.max(0, wEnd - performance.now()));
        return;
      }
      allScheduled = true;
      if (outstanding === 0) drained();
    }
  };
  setTimeout(tick, Math.max(0, t0 - performance.now()));
  await Promise.race([done, new Promise((r) => setTimeout(r, spec.warmupMs + spec.durationMs + drainMs + 1000))]);
  closing = true;
  for (const c of [...conns, ...idle]) c.socket.destroy();

  const sorted = Float64Array.from(lat).sort();
  const lags = Float64Array.from(lag).sort();
  const seconds = spec.durationMs / 1000;
  return {
    origin: spec.origin,
    rate: spec.rate,
    connections: spec.connections,
    scheduled: windowScheduled,
    ok: sorted.length,
    achievedRps: sorted.length / seconds,
    errors,
    non2xx,
    unfinished: windowScheduled - windowFinished,
    firstBad,
    ...stats(sorted, lags),
    maxQueued,
    clientCpuPct: cpuWall > 0 ? (100 * (cpu.user + cpu.system)) / 1000 / cpuWall : NaN,
    seconds,
    ...(spec.keepSamples ? { samples: { latency: Array.from(sorted), lag: Array.from(lags) } } : {}),
  };
}

function stats(sorted: ArrayLike<number>, lags: ArrayLike<number>): Pick<FixedRateResult, 'latencyMs' | 'sendLagMs'> {
  let sum = 0;
  for (let i = 0; i < sorted.length; i++) sum += sorted[i]!;
  return {
    latencyMs: {
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      p999: percentile(sorted, 99.9),
      max: sorted.length ? sorted[sorted.length - 1]! : NaN,
      mean: sorted.length ? sum / sorted.length : NaN,
    },
    sendLagMs: { p50: percentile(lags, 50), p99: percentile(lags, 99), max: lags.length ? lags[lags.length - 1]! : NaN },
  };
}

/** Several runs (with keepSamples) as one: counts add up, percentiles over all their samples. */
export function mergeFixedRate(runs: readonly FixedRateResult[]): FixedRateResult {
  const first = runs[0];
  if (!first) throw new Error('mergeFixedRate: no runs');
  const all = (k: 'latency' | 'lag') => Float64Array.from(runs.flatMap((r) => r.samples?.[k] ?? [])).sort();
  const seconds = runs.reduce((s, r) => s + r.seconds, 0);
  const ok = runs.reduce((s, r) => s + r.ok, 0);
  const sum = (k: 'scheduled' | 'errors' | 'non2xx' | 'unfinished') => runs.reduce((s, r) => s + r[k], 0);
  return {
    origin: first.origin,
    rate: first.rate,
    connections: first.connections,
    scheduled: sum('scheduled'),
    ok,
    achievedRps: ok / seconds,
    errors: sum('errors'),
    non2xx: sum('non2xx'),
    unfinished: sum('unfinished'),
    firstBad: runs.find((r) => r.firstBad !== null)?.firstBad ?? null,
    ...stats(all('latency'), all('lag')),
    maxQueued: Math.max(...runs.map((r) => r.maxQueued)),
    clientCpuPct: runs.reduce((s, r) => s + r.clientCpuPct * r.seconds, 0) / seconds,
    seconds,
  };
}

/** Runs `spec` in a fresh child process; `onWindow` fires when the measured window opens and closes. */
export function runFixedRateInChild(spec: FixedRateSpec, onWindow: (e: 'start' | 'end') => void = () => {}, onSpawn: (pid: number) => void = () => {}): Promise<FixedRateResult> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(new URL('./fixed-rate-child.ts', import.meta.url)), [], {
      execArgv: ['--import', 'tsx'], // not the parent's (e.g. --cpu-prof)
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    if (child.pid) onSpawn(child.pid);
    let settled = false;
    const settle = (f: () => void) => {
      clearTimeout(timer);
      if (!settled) f();
      settled = true;
    };
    const timer = setTimeout(() => {
      child.kill();
      settle(() => reject(new Error('fixed-rate load generator timed out')));
    }, spec.warmupMs + spec.durationMs + (spec.drainMs ?? 10_000) + 60_000);
    child.on('message', (m: FixedRateMessage) => {
      if (m.type === 'window') onWindow(m.event);
      else if (m.type === 'result') settle(() => resolve(m.result));
      else settle(() => reject(new Error(`fixed-rate load generator: ${m.message}`)));
    });
    child.on('error', (e) => settle(() => reject(e)));
    child.on('exit', (code) => settle(() => reject(new Error(`fixed-rate load generator exited with code ${code}`))));
    child.send(spec);
  });
}
