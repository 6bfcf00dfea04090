// TLS client of bench/tls.ts, run as a child process (runTlsClient) so that the client's event loop and CPU are never the
// server's. One spec per child, received over IPC. No dependencies.
//
//   handshakes  `concurrency` closed loops, each: tls.connect (TLS 1.3 only, no session offered: every handshake is a
//               full one), wait for the server's first NewSessionTicket, destroy, repeat. Recorded per handshake:
//               connect → secureConnect (the client has the server's Finished and sent its own) and connect → first
//               ticket (the server has processed the client's Finished and, with mTLS, verified the client's
//               certificate: TLS 1.3 servers send tickets only then). Warm-up, then a measured window whose edges are
//               reported so the parent can read the server's CPU time.
//   hold        open `connections` keep-alive connections, `openConcurrency` at a time, one GET on each as it opens;
//               report how many are held; on 'check' do one more GET on every held connection; on 'close' close them.
//
// The server certificate is not verified during the load (rejectUnauthorized: false, one shared SecureContext): the
// parent checks the chain and the names once beforehand, and the client's own verification would only spend the
// client's core, which is the scarcer one on a 2-core machine.
import { connect, createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { percentile } from './report.js';

export interface HandshakeSpec {
  kind: 'handshakes';
  port: number;
  /** Client certificate chain (PEM, leaf first) and key for mTLS. */
  cert?: string;
  key?: string;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
}

export interface HoldSpec {
  kind: 'hold';
  port: number;
  connections: number;
  openConcurrency: number;
  path: string;
}

export type TlsClientSpec = HandshakeSpec | HoldSpec;

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface HandshakeResult {
  seconds: number;
  /** Handshakes completed on both sides (ticket received) that started in the window. */
  handshakes: number;
  rate: number;
  /** connect → secureConnect, ms. */
  secure: Percentiles;
  /** connect → first NewSessionTicket, ms. */
  ticket: Percentiles;
  errors: number;
  firstError: string | null;
  /** Handshakes that reached secureConnect but got no ticket within 2 s (counted, not in `ticket`). */
  noTicket: number;
  clientCpuPct: number;
}

export interface HoldOpened {
  held: number;
  failed: number;
  firstError: string | null;
  openSeconds: number;
  clientRssMb: number;
}

export interface HoldChecked {
  ok: number;
  failed: number;
  /** Held connections the server had closed before the check. */
  closedByServer: number;
  firstError: string | null;
}

/** Messages from the child. */
export type TlsClientMessage =
  | { type: 'window'; event: 'start' | 'end' }
  | { type: 'handshakes'; result: HandshakeResult }
  | { type: 'opened'; result: HoldOpened }
  | { type: 'checked'; result: HoldChecked }
  | { type: 'error'; message: string };

const TLS13 = { minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' } as const;

function context(spec: { cert?: string; key?: string }): SecureContext {
  return createSecureContext({ ...TLS13, ...(spec.cert && spec.key ? { cert: spec.cert, key: spec.key } : {}) });
}

function open(port: number, secureContext: SecureContext): TLSSocket {
  return connect({ host: '127.0.0.1', port, secureContext, rejectUnauthorized: false, ...TLS13 });
}

const pcts = (xs: number[]): Percentiles => {
  const s = Float64Array.from(xs).sort();
  return { p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), max: s.length ? s[s.length - 1]! : NaN };
};

async function handshakes(spec: HandshakeSpec, send: (m: TlsClientMessage) => void): Promise<HandshakeResult> {
  const secureContext = context(spec);
  const secure: number[] = [];
  const ticket: number[] = [];
  let [recording, stopped, errors, noTicket, firstError] = [false, false, 0, 0, null as string | null];
  let windowStart = 0n;
  let running = spec.concurrency;
  let allIdle!: () => void;
  const idle = new Promise<void>((r) => (allIdle = r));

  const loop = (): void => {
    if (stopped) {
      if (--running === 0) allIdle();
      return;
    }
    const start = process.hrtime.bigint();
    const counted = () => recording && start >= windowStart;
    let secureAt = 0n;
    let done = false;
    const s = open(spec.port, secureContext);
    let timer = setTimeout(() => finish('no handshake within 10 s'), 10_000);
    const finish = (err: string | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      if (err !== null) {
        if (counted()) errors++;
        firstError ??= err;
      }
      setImmediate(loop);
    };
    s.once('secureConnect', () => {
      secureAt = process.hrtime.bigint();
      clearTimeout(timer);
      timer = setTimeout(() => {
        if (counted()) noTicket++;
        finish(null);
      }, 2_000);
    });
    s.once('session', () => {
      const end = process.hrtime.bigint();
      if (counted() && secureAt > 0n) {
        secure.push(Number(secureAt - start) / 1e6);
        ticket.push(Number(end - start) / 1e6);
      }
      finish(null);
    });
    s.on('error', (e) => finish(e.message));
    s.on('close', () => finish(secureAt === 0n ? 'closed before the handshake finished' : null));
  };
  for (let i = 0; i < spec.concurrency; i++) loop();
  await new Promise((r) => setTimeout(r, spec.warmupMs));
  windowStart = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  recording = true;
  send({ type: 'window', event: 'start' });
  await new Promise((r) => setTimeout(r, spec.durationMs));
  const windowEnd = process.hrtime.bigint();
  const cpu = process.cpuUsage(cpu0);
  const wall = Number(windowEnd - windowStart) / 1e3;
  send({ type: 'window', event: 'end' });
  // Handshakes that started in the window and finish shortly after still count; the rate uses the window's length.
  stopped = true;
  await Promise.race([idle, new Promise((r) => setTimeout(r, 5_000))]);
  recording = false;
  const seconds = Number(windowEnd - windowStart) / 1e9;
  return {
    seconds,
    handshakes: ticket.length,
    rate: ticket.length / seconds,
    secure: pcts(secure),
    ticket: pcts(ticket),
    errors,
    firstError,
    noTicket,
    clientCpuPct: (100 * (cpu.user + cpu.system)) / wall,
  };
}

/** One GET on a keep-alive connection; resolves with the status (rejects if the connection fails first). */
function get(s: TLSSocket, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1');
      const len = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? NaN);
      if (!Number.isFinite(len)) return fail(new Error(`no Content-Length in ${head.slice(0, 80)}`));
      if (buf.length < end + 4 + len) return;
      cleanup();
      resolve(Number(head.slice(9, 12)));
    };
    const fail = (e: Error) => {
      cleanup();
      reject(e);
    };
    const onClose = () => fail(new Error('connection closed'));
    const cleanup = () => {
      s.off('data', onData);
      s.off('error', fail);
      s.off('close', onClose);
    };
    s.on('data', onData);
    s.once('error', fail);
    s.once('close', onClose);
    s.write(`GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`);
  });
}

async function hold(spec: HoldSpec, send: (m: TlsClientMessage) => void): Promise<void> {
  const secureContext = context({});
  const held: TLSSocket[] = [];
  const closed = new Set<TLSSocket>();
  let [failed, consecutive, next] = [0, 0, 0];
  let firstError: string | null = null;
  const t0 = performance.now();
  const one = async (): Promise<void> => {
    while (next < spec.connections && consecutive < 200) {
      next++;
      const s = open(spec.port, secureContext);
      try {
        await new Promise<void>((resolve, reject) => {
          s.once('secureConnect', () => resolve());
          s.once('error', reject);
        });
        const status = await get(s, spec.path);
        if (status !== 200) throw new Error(`GET ${spec.path}: ${status}`);
        s.on('error', () => {});
        s.once('close', () => closed.add(s));
        held.push(s);
        consecutive = 0;
      } catch (e) {
        failed++;
        consecutive++;
        firstError ??= e instanceof Error ? e.message : String(e);
        s.destroy();
      }
    }
  };
  await Promise.all(Array.from({ length: spec.openConcurrency }, one));
  const openSeconds = (performance.now() - t0) / 1000;
  send({ type: 'opened', result: { held: held.length, failed, firstError, openSeconds, clientRssMb: process.memoryUsage().rss / 2 ** 20 } });
  await new Promise<void>((resolve) => process.once('message', () => resolve())); // 'check'
  let [ok, bad] = [0, 0];
  let checkError: string | null = null;
  const closedByServer = held.filter((s) => closed.has(s)).length;
  const queue = held.filter((s) => !closed.has(s));
  await Promise.all(
    Array.from({ length: spec.openConcurrency }, async () => {
      for (let s = queue.pop(); s; s = queue.pop()) {
        try {
          const status = await get(s, spec.path);
          if (status === 200) ok++;
          else throw new Error(`GET ${spec.path}: ${status}`);
        } catch (e) {
          bad++;
          checkError ??= e instanceof Error ? e.message : String(e);
        }
      }
    }),
  );
  send({ type: 'checked', result: { ok, failed: bad + closedByServer, closedByServer, firstError: checkError } });
  await new Promise<void>((resolve) => process.once('message', () => resolve())); // 'close'
  for (const s of held) s.destroy();
}

if (process.send && process.argv[2] === 'tls-client') {
  const send = (m: TlsClientMessage, then?: () => void) => process.send!(m, undefined, undefined, then);
  process.once('message', (spec: TlsClientSpec) => {
    const work = spec.kind === 'handshakes' ? handshakes(spec, send).then((result): TlsClientMessage => ({ type: 'handshakes', result })) : hold(spec, send).then(() => null);
    work.then(
      (m) => (m ? send(m, () => process.exit(0)) : process.exit(0)),
      (e: unknown) => send({ type: 'error', message: e instanceof Error ? e.message : String(e) }, () => process.exit(1)),
    );
  });
}

const CHILD = fileURLToPath(import.meta.url);

/** Handshake load in a fresh child process; `onWindow` fires at the measured window's edges. */
export function runHandshakes(spec: Omit<HandshakeSpec, 'kind'>, onWindow: (e: 'start' | 'end') => void): Promise<HandshakeResult> {
  const child = fork(CHILD, ['tls-client'], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill(), spec.warmupMs + spec.durationMs + 60_000);
    child.on('message', (m: TlsClientMessage) => {
      if (m.type === 'window') onWindow(m.event);
      else if (m.type === 'handshakes') resolve(m.result);
      else if (m.type === 'error') reject(new Error(`tls client: ${m.message}`));
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tls client exited with code ${code}`));
    });
    child.send({ kind: 'handshakes', ...spec } satisfies HandshakeSpec);
  });
}

/** Keep-alive connections held by a child process: open them, then check() every one, then close(). */
export async function holdConnections(spec: Omit<HoldSpec, 'kind'>): Promise<{ opened: HoldOpened; check: () => Promise<HoldChecked>; close: () => Promise<void> }> {
  const child = fork(CHILD, ['tls-client'], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const next = <T>(type: 'opened' | 'checked') =>
    new Promise<T>((resolve, reject) => {
      const onMessage = (m: TlsClientMessage) => {
        if (m.type === type) {
          child.off('message', onMessage);
          resolve(m.result as T);
        } else if (m.type === 'error') reject(new Error(`tls client: ${m.message}`));
      };
      child.on('message', onMessage);
      void exited.then(() => reject(new Error(`tls client exited (waiting for ${type})`)));
    });
  const opened = next<HoldOpened>('opened');
  child.send({ kind: 'hold', ...spec } satisfies HoldSpec);
  return {
    opened: await opened,
    check: () => {
      const checked = next<HoldChecked>('checked');
      child.send('check');
      return checked;
    },
    close: async () => {
      child.send('close');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}
