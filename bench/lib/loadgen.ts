// HTTP/1.1-over-TLS load generator, run as a child process (runLoadInChild, ./loadgen-child.ts) so that the client's event loop
// is never the server's. N keep-alive connections, one request in flight on each (closed loop), fixed duration after
// a warm-up; every request's latency is recorded. No dependencies.
//
// Two clients:
//   raw   (default) tls.connect + a pre-serialized request + a minimal response parser (Content-Length bodies only).
//         Cheapest per request, so the client's single core saturates last.
//   https node:https with a keep-alive Agent; heavier (HTTP parser, streams), kept to cross-check the raw client.
import { RawResponse } from './raw-response.js';
import { connect, type TLSSocket } from 'node:tls';
import { Agent, request } from 'node:https';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { percentile } from './report.js';

export interface LoadSpec {
  host: string;
  port: number;
  /** PEM of the CA the server certificate chains to. */
  ca: string;
  method: 'POST';
  path: string;
  headers: Record<string, string>;
  body: string;
  connections: number;
  warmupMs: number;
  durationMs: number;
  client: 'raw' | 'https';
}

export interface LoadResult {
  client: 'raw' | 'https';
  connections: number;
  seconds: number;
  requests: number;
  rps: number;
  errors: number;
  non2xx: number;
  /** First non-2xx status and body prefix, for diagnosis. */
  firstBadResponse: string | null;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  responseBytes: number;
  /** CPU the client process used during the measured window, in % of one core. */
  clientCpuPct: number;
}

/** Edges of the measured window (after the warm-up), e.g. to snapshot the server's CPU time. */
export type WindowEvent = 'start' | 'end';

/** Messages from the child: the window's edges, then the result. */
export type LoadMessage = { type: 'window'; event: WindowEvent } | { type: 'result'; result: LoadResult } | { type: 'error'; message: string };

interface Recorder {
  recording: boolean;
  stopped: boolean;
  latencies: number[];
  errors: number;
  non2xx: number;
  firstBad: string | null;
  responseBytes: number;
  windowStart: bigint;
}

/** One keep-alive TLS connection issuing the same request in a closed loop. */
class RawConnection {
  private socket!: TLSSocket;
  private readonly res = new RawResponse();
  private startedAt = 0n;
  private inFlight = false;
  idle!: () => void;

  constructor(
    private readonly spec: LoadSpec,
    private readonly requestBytes: Buffer,
    private readonly rec: Recorder,
  ) {}

  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: this.spec.host, port: this.spec.port, ca: this.spec.ca, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' });
      s.setNoDelay(true);
      s.once('secureConnect', () => resolve());
      s.once('error', reject);
      s.on('data', (d: Buffer) => this.onData(d));
      s.on('close', () => this.onClose());
      this.socket = s;
    });
  }

  send(): void {
    this.res.reset();
    this.inFlight = true;
    this.startedAt = process.hrtime.bigint();
    this.socket.write(this.requestBytes);
  }

  private onData(d: Buffer): void {
    const r = this.res.push(d);
    if (r === 'done') this.complete();
    else if (r !== 'more') this.fail(r);
  }

  private complete(): void {
    const end = process.hrtime.bigint();
    const rec = this.rec;
    this.inFlight = false;
    if (rec.recording && this.startedAt >= rec.windowStart) {
      if (this.res.status >= 200 && this.res.status < 300) {
        rec.latencies.push(Number(end - this.startedAt) / 1e6);
        rec.responseBytes += this.res.buffered;
      } else {
        rec.non2xx++;
      }
    }
    if ((this.res.status < 200 || this.res.status >= 300) && rec.firstBad === null) {
      rec.firstBad = `${this.res.status} ${this.res.bodyStart()}`;
    }
    if (this.res.closeAfter) {
      this.fail('server closed the keep-alive connection');
      return;
    }
    if (rec.stopped) this.idle();
    else this.send();
  }

  private fail(why: string): void {
    this.rec.errors++;
    if (this.rec.firstBad === null) this.rec.firstBad = why;
    this.inFlight = false;
    this.socket.destroy();
  }

  private onClose(): void {
    if (this.inFlight) {
      this.rec.errors++;
      this.inFlight = false;
    }
    this.idle();
  }

  close(): void {
    this.socket.end();
    this.socket.destroy();
  }
}

function serializeRequest(spec: LoadSpec): Buffer {
  const body = Buffer.from(spec.body);
  const headers = { host: `${spec.host}:${spec.port}`, ...spec.headers, 'content-length': String(body.length) };
  const head = `${spec.method} ${spec.path} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

async function runRaw(spec: LoadSpec, rec: Recorder, onWindow: (e: WindowEvent) => void): Promise<number> {
  const bytes = serializeRequest(spec);
  const conns = Array.from({ length: spec.connections }, () => new RawConnection(spec, bytes, rec));
  await Promise.all(conns.map((c) => c.open()));
  return drive(spec, rec, onWindow, conns.length, (i, idle) => {
    const c = conns[i]!;
    c.idle = idle;
    c.send();
  }, () => conns.forEach((c) => c.close()));
}

async function runHttps(spec: LoadSpec, rec: Recorder, onWindow: (e: WindowEvent) => void): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: spec.connections, ca: spec.ca, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' });
  const body = Buffer.from(spec.body);
  const headers = { ...spec.headers, 'content-length': String(body.length) };
  const loop = (idle: () => void) => {
    const started = process.hrtime.bigint();
    const req = request({ host: spec.host, port: spec.port, method: spec.method, path: spec.path, headers, agent }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => {
        const end = process.hrtime.bigint();
        const status = res.statusCode ?? 0;
        const ok = status >= 200 && status < 300;
        if (rec.recording && started >= rec.windowStart) {
          if (ok) {
            rec.latencies.push(Number(end - started) / 1e6);
            rec.responseBytes += parts.reduce((s, p) => s + p.length, 0);
          } else rec.non2xx++;
        }
        if (!ok && rec.firstBad === null) rec.firstBad = `${status} ${Buffer.concat(parts).subarray(0, 300).toString('utf8')}`;
        if (rec.stopped) idle();
        else loop(idle);
      });
    });
    req.on('error', (e) => {
      rec.errors++;
      if (rec.firstBad === null) rec.firstBad = e.message;
      if (rec.stopped) idle();
      else setTimeout(() => loop(idle), 10);
    });
    req.end(body);
  };
  return drive(spec, rec, onWindow, spec.connections, (_i, idle) => loop(idle), () => agent.destroy());
}

/** Starts `n` closed loops, warms up, measures, stops, waits for in-flight requests; returns the window in seconds. */
function drive(spec: LoadSpec, rec: Recorder, onWindow: (e: WindowEvent) => void, n: number, start: (i: number, idle: () => void) => void, closeAll: () => void): Promise<number> {
  return new Promise((resolve) => {
    let idleCount = 0;
    let windowEnd = 0n;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      closeAll();
      resolve(Number(windowEnd - rec.windowStart) / 1e9);
    };
    const done = new Array<boolean>(n).fill(false);
    // Each loop reports idle once: after its last response, or when its connection died.
    const idleOf = (i: number) => () => {
      if (done[i]) return;
      done[i] = true;
      if (++idleCount >= n) finish();
    };
    for (let i = 0; i < n; i++) start(i, idleOf(i));
    setTimeout(() => {
      rec.windowStart = process.hrtime.bigint();
      rec.recording = true;
      onWindow('start');
      setTimeout(() => {
        windowEnd = process.hrtime.bigint();
        rec.recording = false;
        rec.stopped = true;
        onWindow('end');
        setTimeout(finish, 5000).unref(); // stragglers
      }, spec.durationMs);
    }, spec.warmupMs);
  });
}

export async function runLoad(spec: LoadSpec, onWindow: (e: WindowEvent) => void = () => {}): Promise<LoadResult> {
  const rec: Recorder = { recording: false, stopped: false, latencies: [], errors: 0, non2xx: 0, firstBad: null, responseBytes: 0, windowStart: 0n };
  let cpu0 = process.cpuUsage();
  let cpu = process.cpuUsage(cpu0);
  let t0 = process.hrtime.bigint();
  let wall = 0; // µs
  const window = (e: WindowEvent) => {
    if (e === 'start') {
      cpu0 = process.cpuUsage();
      t0 = process.hrtime.bigint();
    } else {
      cpu = process.cpuUsage(cpu0);
      wall = Number(process.hrtime.bigint() - t0) / 1e3;
    }
    onWindow(e);
  };
  const seconds = await (spec.client === 'https' ? runHttps(spec, rec, window) : runRaw(spec, rec, window));
  const lat = Float64Array.from(rec.latencies).sort();
  const mean = lat.length ? lat.reduce((s, x) => s + x, 0) / lat.length : NaN;
  return {
    client: spec.client,
    connections: spec.connections,
    seconds,
    requests: lat.length,
    rps: lat.length / seconds,
    errors: rec.errors,
    non2xx: rec.non2xx,
    firstBadResponse: rec.firstBad,
    latencyMs: { p50: percentile(lat, 50), p90: percentile(lat, 90), p99: percentile(lat, 99), max: lat.length ? lat[lat.length - 1]! : NaN, mean },
    responseBytes: rec.responseBytes,
    clientCpuPct: (100 * (cpu.user + cpu.system)) / wall,
  };
}

/**
 * Runs `spec` in a fresh child process (its own core, event loop and GC) and resolves with its result.
 * `onWindow` fires when the measured window opens (after the warm-up) and closes.
 */
export function runLoadInChild(spec: LoadSpec, onWindow: (e: WindowEvent) => void = () => {}): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(new URL('./loadgen-child.ts', import.meta.url)), [], {
      execArgv: ['--import', 'tsx'], // not the parent's (e.g. --cpu-prof)
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let settled = false;
    const timer = setTimeout(() => {
      child.kill();
      if (!settled) reject(new Error('load generator timed out'));
      settled = true;
    }, spec.warmupMs + spec.durationMs + 60_000);
    child.on('message', (m: LoadMessage) => {
      if (m.type === 'window') onWindow(m.event);
      else if (m.type === 'result' || m.type === 'error') {
        clearTimeout(timer);
        if (settled) return;
        if (m.type === 'result') resolve(m.result);
        else reject(new Error(`load generator: ${m.message}`));
        settled = true;
      }
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      if (!settled) reject(e);
      settled = true;
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (!settled) reject(new Error(`load generator exited with code ${code}`));
      settled = true;
    });
    child.send(spec);
  });
}
