// TLS listener: new TLS 1.3 handshakes per second and their latency (with and without a client certificate), keep-alive
// connections held, and client-certificate validation time, against nginx (Debian's) serving the same certificate chain
// and key with the same TLS 1.3 settings, on the same machine in the same run.
//
// Palisade: `palisade serve` as a child process (as http-encrypt.ts starts it: SQLite, file seal), `pki init-root`
// through the SDK, so the listener serves its P-256 certificate from the Palisade intermediate. nginx: the same chain
// (<data>/tls/pki-server.pem + the cross-certified root the listener appends) and key copied to a temp dir, run as a
// non-daemon child with 1 worker (the fair peer of a one-thread Node process) and, for information, with 2 workers.
// The client is ./lib/tls-client.ts, always in its own child process.
//
//   node --import tsx bench/tls.ts        (after `npx tsc -b`; `npm run bench` builds first)
//
// Env knobs: BENCH_TLS_CONCURRENCY (16), BENCH_TLS_WARMUP_MS (1000), BENCH_TLS_DURATION_MS (5000), BENCH_TLS_SEQ_MS
// (2000), BENCH_TLS_CONNECTIONS (10000), BENCH_TLS_VALIDATIONS (2000), BENCH_TLS_NGINX2=0 to skip nginx with 2 workers,
// BENCH_TLS_NGINX (/usr/sbin/nginx).
import 'reflect-metadata';
import { spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { connect, type DetailedPeerCertificate, type PeerCertificate } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { PalisadeClient } from '@palisade/sdk';
import { ECDH_CURVES, TLS13_CIPHERSUITES } from '../packages/server/src/http/tls.js';
import { X509ClientAuthenticator } from '../packages/server/src/kernel/auth/client-certificates.js';
import { holdConnections, runHandshakes, type HandshakeResult, type HoldChecked, type HoldOpened } from './lib/tls-client.js';
import { freePort, machineBusySeconds, startPalisade, stop } from './lib/servers.js';
import { cpuOfPids as cpuOf, processFamily } from './lib/nginx.js';
import { heading, isEntry, machine, num, percentile, ratio, table } from './lib/report.js';

/** The seed's targets. */
export const TARGETS = { handshakeMs: 50, mtlsMs: 100, connections: 10_000, validationMs: 10 } as const;

export type ServerName = 'palisade' | 'nginx-1w' | 'nginx-2w';
export type Mode = 'tls' | 'mtls';

export interface HandshakeSide {
  server: ServerName;
  mode: Mode;
  /** Closed loops in the client. */
  concurrency: number;
  load: HandshakeResult;
  /** Server CPU (all processes and threads) in the window, % of one core. */
  serverCpuPct: number;
  /** Handshakes per second of server CPU. */
  perCpuSec: number;
  otherCpuPct: number;
}

export interface HoldSide {
  server: 'palisade' | 'nginx-1w';
  target: number;
  opened: HoldOpened;
  checked: HoldChecked;
  /** Server RSS (MiB; nginx: master + workers) before opening and with every connection held. */
  rssBeforeMb: number;
  rssHeldMb: number;
}

export interface Validation {
  name: string;
  n: number;
  p50: number;
  p99: number;
}

export interface TlsResult {
  cores: number;
  nofile: number;
  nginxVersion: string;
  /** The certificate all servers serve (checked). */
  leaf: { subject: string; issuer: string; fingerprint: string; chainCerts: number };
  negotiated: Record<ServerName, string>;
  handshakes: HandshakeSide[];
  holds: HoldSide[];
  validations: Validation[];
  nodeDefaults: Record<string, string>;
  nginxSettings: Record<string, string>;
}

const env = (name: string, def: number) => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : def;
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Soft limit on open files of this process (children inherit it). */
function nofile(): number {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.split(/\s{2,}/)[1];
  return soft === 'unlimited' ? Infinity : Number(soft);
}

const rssMb = (pids: number[]) =>
  pids.reduce((s, p) => s + Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0), 0) / 1024;

interface Nginx {
  child: ChildProcess;
  workers: number;
  port: number;
  mtlsPort: number;
  pids: () => number[];
  logs: () => string;
}

const NGINX = process.env.BENCH_TLS_NGINX ?? '/usr/sbin/nginx';

/** nginx with Palisade's TLS 1.3 settings (suites, their order, curves, server preference), answering `200 ok`. */
async function startNginx(dir: string, workers: number, files: { chain: string; key: string; root: string; rootPem: () => string }): Promise<Nginx> {
  await mkdir(join(dir, 'tmp'), { recursive: true });
  const [port, mtlsPort] = [await freePort(), await freePort()];
  const conf = `# written by bench/tls.ts
worker_processes ${workers};
${process.getuid?.() === 0 ? 'user root;' : ''}
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
worker_rlimit_nofile ${Math.min(nofile(), 65_536)};
events { worker_connections ${Math.min(nofile(), 65_536) - 100}; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp/body; proxy_temp_path ${dir}/tmp/proxy; fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi; scgi_temp_path ${dir}/tmp/scgi;
  default_type text/plain;
  keepalive_timeout 75s;
  keepalive_requests 1000;
  ssl_protocols TLSv1.3;
  ssl_conf_command Ciphersuites ${TLS13_CIPHERSUITES.join(':')};
  ssl_prefer_server_ciphers on;
  ssl_ecdh_curve ${ECDH_CURVES.join(':')};
  ssl_certificate ${files.chain};
  ssl_certificate_key ${files.key};
  server { listen 127.0.0.1:${port} ssl; location / { return 200 "ok"; } }
  server {
    listen 127.0.0.1:${mtlsPort} ssl;
    ssl_verify_client on;
    ssl_client_certificate ${files.root};
    ssl_verify_depth 2;
    location / { return 200 "ok"; }
  }
}
`;
  await writeFile(join(dir, 'nginx.conf'), conf);
  const child = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log'), '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  child.once('exit', () => process.off('exit', killOnExit));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const logs = () => `${out}${existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8').slice(-2000) : ''}`;
  const nginx: Nginx = { child, workers, port, mtlsPort, pids: () => processFamily(child.pid!), logs };
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited with code ${child.exitCode}:\n${logs()}`);
    if (nginx.pids().length > workers && (await httpsGet(port, files.rootPem()).catch(() => null))?.status === 200) return nginx;
    if (Date.now() > deadline) {
      await stop(child);
      throw new Error(`nginx not ready after 10 s:\n${logs()}`);
    }
    await sleep(50);
  }
}

function httpsGet(port: number, ca: string, path = '/', opts: { cert?: string; key?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, ca, agent: false, minVersion: 'TLSv1.3', ...(opts.cert ? { cert: opts.cert, key: opts.key } : {}), headers: opts.headers ?? {} }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Connects with full verification against `ca` and returns what was negotiated and served. */
function probe(port: number, ca: string): Promise<{ fingerprint: string; subject: string; issuer: string; chainCerts: number; negotiated: string }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, ca, minVersion: 'TLSv1.3' }, () => {
      // getPeerCertificate(true) first: after getPeerX509Certificate() it comes back without `raw` (Node 20).
      const first = s.getPeerCertificate(true);
      const leaf = new X509Certificate(first.raw);
      const seen = new Set<string>();
      for (let c: PeerCertificate | undefined = first; c?.raw && !seen.has(c.fingerprint256); c = (c as DetailedPeerCertificate).issuerCertificate) seen.add(c.fingerprint256);
      const n = seen.size;
      const key = s.getEphemeralKeyInfo() as { name?: string; type?: string };
      resolve({ fingerprint: leaf.fingerprint256, subject: leaf.subject.replace(/\n/g, ', '), issuer: leaf.issuer.replace(/\n/g, ', '), chainCerts: n, negotiated: `${s.getProtocol()} ${s.getCipher().standardName} ${key.name ?? key.type ?? '?'}` });
      s.end();
    });
    s.on('error', reject);
  });
}

async function measure(server: ServerName, mode: Mode, port: number, pids: () => number[], concurrency: number, warmupMs: number, durationMs: number, client: { cert?: string; key?: string }): Promise<HandshakeSide> {
  let [cpu0, busy0, cpu, busy, t0, wall] = [0, 0, 0, 0, 0n, 0];
  let ps: number[] = [];
  const load = await runHandshakes({ port, concurrency, warmupMs, durationMs, ...client }, (e) => {
    if (e === 'start') {
      ps = pids();
      [cpu0, busy0, t0] = [cpuOf(ps), machineBusySeconds(), process.hrtime.bigint()];
    } else {
      [cpu, busy, wall] = [cpuOf(ps) - cpu0, machineBusySeconds() - busy0, Number(process.hrtime.bigint() - t0) / 1e9];
    }
  });
  if (load.handshakes === 0) throw new Error(`${server} ${mode}: no handshake completed: ${load.firstError ?? 'no error reported'}`);
  const serverCpuPct = (100 * cpu) / wall;
  return { server, mode, concurrency, load, serverCpuPct, perCpuSec: cpu > 0 ? (load.rate * wall) / cpu : NaN, otherCpuPct: Math.max(0, (100 * busy) / wall - serverCpuPct - load.clientCpuPct) };
}

async function holdSide(server: 'palisade' | 'nginx-1w', port: number, path: string, pids: () => number[], target: number): Promise<HoldSide> {
  const ps = pids();
  const rssBeforeMb = rssMb(ps);
  const h = await holdConnections({ port, connections: target, openConcurrency: 64, path });
  try {
    await sleep(500);
    const rssHeldMb = rssMb(pids());
    const checked = await h.check();
    return { server, target, opened: h.opened, checked, rssBeforeMb, rssHeldMb };
  } finally {
    await h.close();
  }
}

function timeIt(name: string, n: number, fn: () => unknown): Validation {
  for (let i = 0; i < Math.min(100, n); i++) fn();
  const xs = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    fn();
    xs[i] = Number(process.hrtime.bigint() - t) / 1e6;
  }
  xs.sort();
  return { name, n, p50: percentile(xs, 50), p99: percentile(xs, 99) };
}

async function timeAsync(name: string, n: number, fn: () => Promise<unknown>): Promise<Validation> {
  for (let i = 0; i < Math.min(100, n); i++) await fn();
  const xs = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await fn();
    xs[i] = Number(process.hrtime.bigint() - t) / 1e6;
  }
  xs.sort();
  return { name, n, p50: percentile(xs, 50), p99: percentile(xs, 99) };
}

/** Client-certificate validation in process: bare node:crypto against Palisade's mTLS authenticator, cold and cached. */
async function validations(chainPem: string, rootPem: string, n: number): Promise<Validation[]> {
  const ders = (chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((p) => new X509Certificate(p).raw);
  const root = new X509Certificate(rootPem);
  const [leaf, inter] = ders.map((d) => new X509Certificate(d)) as [X509Certificate, X509Certificate];
  const bare = () => {
    const [l, i] = ders.map((d) => new X509Certificate(d)) as [X509Certificate, X509Certificate];
    if (!(l.checkIssued(i) && l.verify(i.publicKey) && i.checkIssued(root) && i.verify(root.publicKey))) throw new Error('chain does not verify');
  };
  const sigOnly = () => {
    if (!(leaf.verify(inter.publicKey) && inter.verify(root.publicKey))) throw new Error('chain does not verify');
  };
  const roots = [root]; // one array: a new one would tell the authenticator the roots changed (and drop its cache)
  const opts = { trust: () => roots, revocation: { revokedSerials: async () => new Set<string>() }, identities: { 'spiffe://palisade.internal/**': ['auth:self:read'] }, revocationCheckSeconds: 60, clock: () => new Date() };
  const warm = new X509ClientAuthenticator(opts);
  const who = await warm.authenticate(ders);
  if (!who.principal_id.startsWith('spiffe://')) throw new Error(`authenticator: unexpected principal ${who.principal_id}`);
  return [
    timeIt('node:crypto X509Certificate parse + checkIssued + verify, leaf → intermediate → root', n, bare),
    timeIt('  signatures only (2 × X509Certificate.verify, parsed once)', n, sigOnly),
    await timeAsync('palisade X509ClientAuthenticator.authenticate, cold (new instance each)', n, () => new X509ClientAuthenticator(opts).authenticate(ders)),
    await timeAsync('palisade X509ClientAuthenticator.authenticate, cached chain', n, () => warm.authenticate(ders)),
  ];
}

function nodeDefaults(): Record<string, string> {
  // Palisade's buildApp passes none of these to Fastify: its listener has Fastify 5's and Node's defaults.
  const app = Fastify();
  const s = app.server;
  const out = { 'server.maxConnections': String(s.maxConnections ?? 'unset (no limit)'), 'server.keepAliveTimeout': `${s.keepAliveTimeout} ms`, 'server.headersTimeout': `${s.headersTimeout} ms`, 'server.requestTimeout': `${s.requestTimeout} ms`, 'server.maxRequestsPerSocket': String(s.maxRequestsPerSocket ?? 0) };
  void app.close();
  return out;
}

export async function runTls(opts: { quiet?: boolean } = {}): Promise<TlsResult> {
  const log = (s: string) => opts.quiet || console.log(s);
  const concurrency = Math.round(env('BENCH_TLS_CONCURRENCY', 16));
  const warmupMs = env('BENCH_TLS_WARMUP_MS', 1000);
  const durationMs = env('BENCH_TLS_DURATION_MS', 5000);
  const seqMs = env('BENCH_TLS_SEQ_MS', 2000);
  const limit = nofile();
  const wanted = Math.round(env('BENCH_TLS_CONNECTIONS', TARGETS.connections));
  const nValid = Math.round(env('BENCH_TLS_VALIDATIONS', 2000));
  const withNginx2 = process.env.BENCH_TLS_NGINX2 !== '0';
  if (!existsSync(NGINX)) throw new Error(`${NGINX} not found (apt-get install nginx-light, or set BENCH_TLS_NGINX)`);
  const nginxVersion = await new Promise<string>((resolve) => {
    const c = spawn(NGINX, ['-v']);
    let t = '';
    c.stderr.on('data', (d: Buffer) => (t += d.toString()));
    c.on('exit', () => resolve(t.trim().replace(/^nginx version: /, '')));
  });

  const dir = await mkdtemp(join(tmpdir(), 'palisade-bench-tls-'));
  const config = join(dir, 'palisade.yaml');
  await writeFile(config, 'tls:\n  client_auth:\n    identities:\n      "spiffe://palisade.internal/ns/*/sa/*": ["auth:self:read"]\n');
  log(`  starting palisade (fresh data dir, tls.client_auth.mode left at its default) and pki init-root ...`);
  const pal = await startPalisade({ env: { PALISADE_CONFIG: config } });
  const nginxes: Nginx[] = [];
  try {
    const addr = `127.0.0.1:${pal.target.port}`;
    const token = pal.target.headers.authorization!.slice('Bearer '.length);
    const sdk = new PalisadeClient({ addr, token, ca: pal.target.ca });
    const rootPem = (await sdk.pki.initRoot()).root.certificate_pem!;
    const tlsDir = join(pal.dataDir, 'tls');
    let served = await probe(pal.target.port, rootPem).catch(() => null);
    for (let i = 0; i < 100 && !(served?.issuer.includes('Palisade Intermediate') && existsSync(join(tlsDir, 'pki-server.pem'))); i++) {
      await sleep(100);
      served = await probe(pal.target.port, rootPem).catch(() => null);
    }
    if (!served?.issuer.includes('Palisade Intermediate')) throw new Error(`the listener does not serve a PKI certificate after init-root (issuer: ${served?.issuer ?? 'none'})`);
    // What the listener serves: pki-server.pem (leaf + intermediate) + the root cross-certified by the bootstrap CA.
    const cross = readdirSync(tlsDir).filter((f) => f.startsWith('root-cross-') && f.endsWith('.pem'));
    const chain = (await readFile(join(tlsDir, 'pki-server.pem'), 'utf8')) + (cross.length === 1 ? await readFile(join(tlsDir, cross[0]!), 'utf8') : '');
    const ngDir = join(dir, 'nginx');
    await mkdir(ngDir, { recursive: true });
    const files = { chain: join(ngDir, 'chain.pem'), key: join(ngDir, 'key.pem'), root: join(ngDir, 'root.pem'), rootPem: () => rootPem };
    await writeFile(files.chain, chain);
    await writeFile(files.key, await readFile(join(tlsDir, 'pki-server-key.pem')), { mode: 0o600 });
    await writeFile(files.root, rootPem);
    log(`  starting nginx ${nginxVersion} (1 worker${withNginx2 ? ', and 2 workers' : ''}) on the same chain and key ...`);
    for (const w of withNginx2 ? [1, 2] : [1]) {
      const d = join(ngDir, `w${w}`);
      await mkdir(d, { recursive: true });
      nginxes.push(await startNginx(d, w, files));
    }
    const [ng1, ng2] = nginxes as [Nginx, Nginx | undefined];

    // Same certificate everywhere, and mTLS works with a PKI client certificate on both servers.
    const negotiated = {} as Record<ServerName, string>;
    const ports: Array<[ServerName, number]> = [['palisade', pal.target.port], ['nginx-1w', ng1.port], ...(ng2 ? [['nginx-2w', ng2.port] as [ServerName, number]] : [])];
    for (const [name, port] of ports) {
      const p = await probe(port, rootPem);
      if (p.fingerprint !== served.fingerprint || p.chainCerts !== served.chainCerts) throw new Error(`${name} serves another certificate or chain than palisade (${p.fingerprint}, ${p.chainCerts} certs)`);
      negotiated[name] = p.negotiated;
    }
    const client = await sdk.pki.issue({ service: 'bench', namespace: 'tls', key_algorithm: 'ECDSA-P256' });
    const mtls = { cert: client.chain_pem, key: client.private_key_pem! };
    const who = await new PalisadeClient({ addr, ca: rootPem, ...mtls }).whoami();
    if (who.principal_id !== 'spiffe://palisade.internal/ns/tls/sa/bench') throw new Error(`palisade mTLS: unexpected principal ${who.principal_id}`);
    if ((await httpsGet(pal.target.port, rootPem, '/healthz')).status !== 200) throw new Error('palisade: GET /healthz is not 200');
    for (const ng of nginxes) {
      const ok = await httpsGet(ng.mtlsPort, rootPem, '/', mtls);
      const without = await httpsGet(ng.mtlsPort, rootPem, '/');
      if (ok.status !== 200 || ok.text !== 'ok' || without.status !== 400) throw new Error(`nginx mTLS check: ${ok.status} ${ok.text.slice(0, 80)} / without a certificate ${without.status}`);
    }
    sdk.close();

    const targets: Record<ServerName, { port: Record<Mode, number>; pids: () => number[] }> = {
      palisade: { port: { tls: pal.target.port, mtls: pal.target.port }, pids: () => [pal.target.pid] },
      'nginx-1w': { port: { tls: ng1.port, mtls: ng1.mtlsPort }, pids: ng1.pids },
      'nginx-2w': ng2 ? { port: { tls: ng2.port, mtls: ng2.mtlsPort }, pids: ng2.pids } : { port: { tls: 0, mtls: 0 }, pids: () => [] },
    };
    const handshakes: HandshakeSide[] = [];
    for (const mode of ['tls', 'mtls'] as const) {
      // Alternate who goes first; nginx with 2 workers (information only) last.
      const order: ServerName[] = [...(mode === 'tls' ? ['nginx-1w', 'palisade'] : ['palisade', 'nginx-1w']) as ServerName[], ...(ng2 ? ['nginx-2w' as const] : [])];
      const cert = mode === 'mtls' ? mtls : {};
      for (const name of order) {
        const t = targets[name];
        log(`  ${mode === 'mtls' ? 'mTLS' : 'TLS'} handshakes on ${name}: ${concurrency} in flight, ${warmupMs} ms warm-up + ${durationMs} ms; then 1 in flight, ${seqMs} ms ...`);
        handshakes.push(await measure(name, mode, t.port[mode], t.pids, concurrency, warmupMs, durationMs, cert));
        handshakes.push(await measure(name, mode, t.port[mode], t.pids, 1, 300, seqMs, cert));
      }
    }

    const target = Math.min(wanted, Number.isFinite(limit) ? limit - 200 : wanted);
    const holds: HoldSide[] = [];
    for (const [name, port, path, pids] of [['nginx-1w', ng1.port, '/', ng1.pids], ['palisade', pal.target.port, '/healthz', () => [pal.target.pid]]] as const) {
      log(`  keep-alive: opening ${num(target)} connections to ${name} (64 handshakes in flight, GET ${path} on each), then GET again on every one ...`);
      holds.push(await holdSide(name, port, path, pids, target));
      await sleep(1000);
    }

    log(`  certificate validation in process: ${nValid} samples each ...`);
    const valids = await validations(client.chain_pem, rootPem, nValid);

    return {
      cores: machine().cores,
      nofile: limit,
      nginxVersion,
      leaf: { subject: served.subject, issuer: served.issuer, fingerprint: served.fingerprint, chainCerts: served.chainCerts },
      negotiated,
      handshakes,
      holds,
      validations: valids,
      nodeDefaults: nodeDefaults(),
      nginxSettings: { worker_connections: String(Math.min(limit, 65_536) - 100), worker_rlimit_nofile: String(Math.min(limit, 65_536)), keepalive_timeout: '75 s', keepalive_requests: '1000', ssl_session_tickets: 'on (default)', ssl_session_cache: 'none (default)' },
    };
  } catch (e) {
    if (!opts.quiet) console.error(`palisade output:\n${pal.logs()}\n${nginxes.map((n) => `nginx ${n.workers}w:\n${n.logs()}`).join('\n')}`);
    throw e;
  } finally {
    await Promise.all([stop(pal.child), ...nginxes.map((n) => stop(n.child))]);
    await rm(pal.dataDir, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  }
}

const ms = (x: number) => num(x, x < 10 ? 2 : 1);

/** The headline rows: palisade and nginx (1 worker) at `concurrency` in flight. */
export function pick(r: TlsResult, server: ServerName, mode: Mode, sequential = false): HandshakeSide | undefined {
  return r.handshakes.find((x) => x.server === server && x.mode === mode && (x.concurrency === 1) === sequential);
}

/** The client, not the server, set the pace: the client used most of its core while the server had CPU to spare. */
export const clientBound = (x: HandshakeSide) => x.concurrency > 1 && x.load.clientCpuPct > 70 && x.serverCpuPct < 70;

/** The latency a target is judged on: connect → first ticket (the server has finished its side, mTLS verification included), p99. */
export const judged = (x: HandshakeSide) => x.load.ticket.p99;

export function verdicts(r: TlsResult): Array<{ what: string; target: string; measured: string; met: boolean }> {
  const out: Array<{ what: string; target: string; measured: string; met: boolean }> = [];
  for (const [mode, limit] of [['tls', TARGETS.handshakeMs], ['mtls', TARGETS.mtlsMs]] as const) {
    for (const seq of [false, true]) {
      const x = pick(r, 'palisade', mode, seq);
      if (x) out.push({ what: `${mode === 'mtls' ? 'mTLS' : 'TLS'} handshake p99, ${x.concurrency} in flight`, target: `< ${limit} ms`, measured: `${ms(judged(x))} ms at ${num(x.load.rate)}/s${clientBound(x) ? ' (client-bound: queueing in the client)' : ''}`, met: judged(x) < limit });
    }
  }
  const h = r.holds.find((x) => x.server === 'palisade');
  if (h) out.push({ what: 'keep-alive connections held, each answering', target: `≥ ${num(TARGETS.connections)}`, measured: `${num(h.checked.ok)} (RSS ${num(h.rssHeldMb)} MiB)`, met: h.checked.ok >= TARGETS.connections });
  const v = r.validations.find((x) => x.name.includes('cold'));
  if (v) out.push({ what: 'client certificate validation p99 (authenticator, cold)', target: `< ${TARGETS.validationMs} ms`, measured: `${ms(v.p99)} ms`, met: v.p99 < TARGETS.validationMs });
  return out;
}

export function printTls(r: TlsResult): void {
  heading('TLS listener: handshakes, mTLS, keep-alive connections, certificate validation: Palisade vs nginx');
  const m = machine();
  console.log(`node ${m.node} (OpenSSL ${m.openssl}), nginx ${r.nginxVersion} (system OpenSSL), ${m.cpu}, ${m.cores} cores; open files limit ${num(r.nofile)}`);
  console.log(`Certificate (same bytes on every server): ${r.leaf.subject}, issued by ${r.leaf.issuer}; chain of ${r.leaf.chainCerts} as the client builds it; sha256 ${r.leaf.fingerprint.slice(0, 23)}...`);
  for (const [name, neg] of Object.entries(r.negotiated)) console.log(`  ${name}: ${neg}`);
  console.log('Client: ./lib/tls-client.ts in its own process (a core of its own on 2 cores), TLS 1.3 only, no session offered (every handshake full),');
  console.log('no verification during the load (checked once before), one connection = connect, wait for the first session ticket, destroy.');
  console.log('nginx 1w = worker_processes 1, the fair peer of one Node thread; nginx 2w (2 workers, on the 2 cores the client also needs) is information only.');
  console.log('');
  const head = ['mode', 'server', 'in flight', 'handshakes/s', 'secure p50', 'secure p99', 'ticket p50', 'ticket p99', 'server CPU', 'hs/CPU-s', 'client CPU', 'client ms/hs', 'other CPU', 'errors'];
  const row = (x: HandshakeSide) => [x.mode === 'mtls' ? 'mTLS' : 'TLS', x.server, x.concurrency, num(x.load.rate), ms(x.load.secure.p50), ms(x.load.secure.p99), ms(x.load.ticket.p50), ms(x.load.ticket.p99), `${num(x.serverCpuPct)}%`, num(x.perCpuSec), `${num(x.load.clientCpuPct)}%`, num((10 * x.load.clientCpuPct) / x.load.rate, 2), `${num(x.otherCpuPct)}%`, x.load.errors + x.load.noTicket];
  const sorted = [...r.handshakes].sort((a, b) => a.mode.localeCompare(b.mode) * -1 || b.concurrency - a.concurrency || a.server.localeCompare(b.server));
  console.log(table(head, sorted.map(row)));
  console.log('secure = connect → secureConnect in the client; ticket = connect → the first NewSessionTicket (sent once the server has the client\'s Finished, and with mTLS');
  console.log('has verified its certificate chain: the handshake as the server completes it). Latencies in ms. hs/CPU-s = handshakes per second of server CPU (nginx: all its processes).');
  console.log('');
  const ratios: Array<Array<string | number>> = [];
  for (const mode of ['tls', 'mtls'] as const) {
    for (const seq of [false, true]) {
      for (const peer of ['nginx-1w', 'nginx-2w'] as const) {
        const p = pick(r, 'palisade', mode, seq);
        const n = pick(r, peer, mode, seq);
        if (!p || !n) continue;
        ratios.push([mode === 'mtls' ? 'mTLS' : 'TLS', p.concurrency, peer, ratio(p.load.rate, n.load.rate), ratio(p.perCpuSec, n.perCpuSec), ratio(n.load.ticket.p50, p.load.ticket.p50), ratio(n.load.ticket.p99, p.load.ticket.p99)]);
      }
    }
  }
  console.log(table(['mode', 'in flight', 'palisade vs', 'ratio hs/s', 'ratio hs/CPU-s', 'speed p50', 'speed p99'], ratios));
  console.log('client ms/hs = client CPU per handshake. Node\'s client checks every signature of the served chain even with rejectUnauthorized: false (its verify');
  console.log('callback accepts each error, so OpenSSL goes on): leaf ← P-384 intermediate ← root, two P-384 verifies per handshake, far more than the server\'s');
  console.log('one P-256 signature. On 2 cores one client core cannot saturate either server, so hs/CPU-s is the comparison; the seed targets are also given at 1 in flight.');
  console.log('ratio = palisade ÷ nginx (1.0 = as many handshakes); speed = nginx latency ÷ palisade latency on the ticket time (1.0 = as fast, < 1 = slower).');
  for (const x of r.handshakes) {
    if (x.load.errors + x.load.noTicket > 0) console.log(`! ${x.mode} ${x.server}: ${x.load.errors} errors, ${x.load.noTicket} without a ticket; first: ${x.load.firstError}`);
    if (clientBound(x)) console.log(`! ${x.mode} ${x.server}: client-bound (client ${num(x.load.clientCpuPct)}%, server ${num(x.serverCpuPct)}% of a core): handshakes/s and the latencies at ${x.concurrency} in flight measure the client; compare hs/CPU-s.`);
    if (x.otherCpuPct > 40) console.log(`! ${x.mode} ${x.server} (${x.concurrency} in flight): ${num(x.otherCpuPct)}% of a core went elsewhere (kernel, other processes); noisy.`);
  }
  console.log('');
  console.log(table(['server', 'target', 'held', 'open failures', 'opened in', 'answering after', 'closed by server', 'RSS before', 'RSS held', 'KiB/connection', 'client RSS'], r.holds.map((h) => [
    h.server,
    num(h.target),
    num(h.opened.held),
    h.opened.failed,
    `${num(h.opened.openSeconds, 1)} s`,
    num(h.checked.ok),
    h.checked.closedByServer,
    `${num(h.rssBeforeMb)} MiB`,
    `${num(h.rssHeldMb)} MiB`,
    h.opened.held > 0 ? num(((h.rssHeldMb - h.rssBeforeMb) * 1024) / h.opened.held, 1) : '-',
    `${num(h.opened.clientRssMb)} MiB`,
  ])));
  for (const h of r.holds) {
    if (h.opened.firstError) console.log(`! ${h.server}: first open failure: ${h.opened.firstError}`);
    if (h.checked.firstError) console.log(`! ${h.server}: first failure on the second request: ${h.checked.firstError}`);
  }
  console.log(`Keep-alive: one GET on each connection as it opens, then (all held) one more GET on every one; "answering after" counts 200s on that second GET.`);
  console.log(`The target is capped by the open files limit (${num(r.nofile)}, inherited by every child: the client holds one descriptor per connection, each server one).`);
  console.log(`Palisade listener (Fastify 5 / Node defaults, none overridden by buildApp): ${Object.entries(r.nodeDefaults).map(([k, v]) => `${k} ${v}`).join(', ')}.`);
  console.log(`nginx: ${Object.entries(r.nginxSettings).map(([k, v]) => `${k} ${v}`).join(', ')}.`);
  console.log('');
  console.log(table(['validation of a PKI client chain (leaf P-256 ← intermediate ← root)', 'n', 'p50 ms', 'p99 ms'], r.validations.map((v) => [v.name, v.n, num(v.p50, 3), num(v.p99, 3)])));
  const bare = r.validations[0];
  const cold = r.validations.find((v) => v.name.includes('cold'));
  if (bare && cold) console.log(`speed (bare node:crypto p50 ÷ authenticator cold p50) = ${ratio(bare.p50, cold.p50)}. In the TLS handshake OpenSSL verifies the same chain natively (the mTLS rows above); the`);
  console.log('authenticator then checks it again in the request pipeline (path, EKU, SPIFFE id, validity, revocation) and caches the signature result per chain.');
  console.log('');
  console.log(table(['seed target', 'goal', 'measured (palisade)', 'verdict'], verdicts(r).map((v) => [v.what, v.target, v.measured, v.met ? 'MET' : 'NOT MET'])));
}

if (isEntry(import.meta.url)) {
  printTls(await runTls());
  process.exit(0);
}
