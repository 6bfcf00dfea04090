// The API gateway (issue 9): requests/s at saturation and latency at a fixed 2,000 req/s through the Palisade gateway
// with authentication (an API key), authorization (the authz engine decides gateway:chat:invoke), rate limiting (global,
// per client and per endpoint, limits set high enough never to refuse: every check still runs) and JSON Schema
// validation (draft 2020-12) of the POST body, over HTTPS, against the SAME upstream reached
//
//   direct   plain HTTP to the upstream, no proxy (the floor);
//   nginx    through nginx as a plain TLS-terminating reverse proxy (worker_processes 1, the same certificate and key
//            as the gateway, the same TLS 1.3 settings, keep-alive connections to the upstream);
//   gateway  through `palisade serve` (child process, SQLite, file seal) with its gateway listener, in-memory limits;
//   gateway-redis  the same with PALISADE_REDIS_URL (the multi-node configuration: every limit check is a Lua script
//            in Redis), when redis-server is installed.
//
// The upstream is a second nginx (1 worker, plain HTTP) answering every request with a fixed small JSON document: the
// cheapest and steadiest upstream on this machine, so the proxies get as much of the 2 cores as possible.
// Saturation: wrk (-t1, 32 keep-alive connections). Fixed rate: ./lib/fixed-rate.ts in a child process (open loop,
// latency from the scheduled send time, no coordinated omission), the same 32 connections. h2load is not installed.
//
//   node --import tsx bench/gateway.ts      (after `npx tsc -b`; `npm run bench -- --only gateway` builds first)
//
// Env knobs (bench/README.md): BENCH_GW_CONNECTIONS (32), BENCH_GW_THREADS (1), BENCH_GW_WARMUP_MS (2000),
// BENCH_GW_DURATION_MS (8000), BENCH_GW_RATE (2000), BENCH_GW_RATE_CONNECTIONS (32), BENCH_GW_RATE_WARMUP_MS (2000),
// BENCH_GW_RATE_DURATION_MS (8000), BENCH_GW_ROUNDS (2: each duration is split in rounds of alternating order), BENCH_GW_REDIS=0 to skip the Redis run, BENCH_GW_LOG=0 to turn the request logs
// off on both proxies, BENCH_GW_PATHS (e.g. `direct,gateway`: measure only these), BENCH_WRK (/usr/bin/wrk),
// BENCH_NGINX (/usr/sbin/nginx).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PalisadeClient } from '@palisade/sdk';
import { ECDH_CURVES, TLS13_CIPHERSUITES } from '../packages/server/src/http/tls.js';
import { findRedisServer, redisCommand, startRedis, type RedisHandle } from '../packages/testkit/src/redis.js';
import { mergeFixedRate, runFixedRateInChild, type FixedRateResult } from './lib/fixed-rate.js';
import { cpuOfPids, httpCommon, nginxVersion, startNginx, type NginxProcess } from './lib/nginx.js';
import { otherUsers, procSnapshot } from './lib/proc.js';
import { cpuSeconds, freePort, machineBusySeconds, startPalisade, stop } from './lib/servers.js';
import { heading, isEntry, machine, num, ratio, table, type Cell } from './lib/report.js';

/** The issue's goal: the gateway adds less than this to the p99 at GOAL_RATE req/s. */
export const GOAL_ADDED_P99_MS = 2;
export const GOAL_RATE = 2000;

export type PathName = 'direct' | 'nginx' | 'gateway' | 'gateway-redis';

const PATH_WHAT: Record<PathName, string> = {
  direct: 'plain HTTP straight to the upstream (no proxy, no TLS)',
  nginx: 'HTTPS through nginx, a plain reverse proxy (1 worker, keep-alive upstream connections)',
  gateway: 'HTTPS through the Palisade gateway: API key, authz, rate limits (memory), JSON Schema',
  'gateway-redis': 'the same with the rate limits in Redis (one Lua script per request: the multi-node setup)',
};

const WRK = process.env.BENCH_WRK ?? '/usr/bin/wrk';

const ROUTE_PATH = '/framework/v1/chat';

/** The route's JSON Schema (draft 2020-12), as an agent framework's chat endpoint would declare it. */
const CHAT_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  type: 'object',
  required: ['model', 'messages'],
  additionalProperties: false,
  properties: {
    model: { type: 'string', minLength: 1, maxLength: 128 },
    temperature: { type: 'number', minimum: 0, maximum: 2 },
    max_tokens: { type: 'integer', minimum: 1, maximum: 32768 },
    messages: {
      type: 'array',
      minItems: 1,
      maxItems: 256,
      items: {
        type: 'object',
        required: ['role', 'content'],
        additionalProperties: false,
        properties: { role: { enum: ['system', 'user', 'assistant', 'tool'] }, content: { type: 'string', maxLength: 100000 } },
      },
    },
  },
};

const REQUEST_BODY = JSON.stringify({
  model: 'bench-model',
  temperature: 0.2,
  max_tokens: 256,
  messages: [
    { role: 'system', content: 'You are a careful support agent. Answer in one sentence.' },
    { role: 'user', content: 'Summarise ticket 4711: the customer was charged twice for the March invoice and asks for a refund.' },
  ],
});

/** What the upstream answers to every request (Content-Length framed). */
const UPSTREAM_BODY = JSON.stringify({
  id: 'chatcmpl-bench',
  object: 'chat.completion',
  model: 'bench-model',
  choices: [{ index: 0, message: { role: 'assistant', content: 'The customer was charged twice in March and asks for a refund.' }, finish_reason: 'stop' }],
});

/** The seed's response headers; nginx adds the same ones, so both proxies answer with comparable headers. */
const SECURITY_HEADERS: Array<[string, string]> = [
  ['Strict-Transport-Security', 'max-age=31536000; includeSubDomains'],
  ['Content-Security-Policy', "default-src 'self'"],
  ['X-Frame-Options', 'DENY'],
  ['X-Content-Type-Options', 'nosniff'],
  ['Referrer-Policy', 'strict-origin-when-cross-origin'],
];

const LIMIT = 1_000_000;

export interface WrkResult {
  requests: number;
  seconds: number;
  rps: number;
  latencyMs: { p50: number; p75: number; p90: number; p99: number };
  socketErrors: number;
  non2xx: number;
  raw: string;
}

export interface Usage {
  /** % of one core over the window, per role (null: that role has no process on this path). */
  proxyCpuPct: number | null;
  upstreamCpuPct: number;
  redisCpuPct: number | null;
  clientCpuPct: number;
  /** The rest of the machine (kernel softirqs for loopback TCP, anything else running). */
  otherCpuPct: number;
  /** Of which: the kernel's softirq time (loopback networking), and the busiest other processes. */
  softirqPct: number;
  otherProcs: Array<{ what: string; pct: number }>;
}

export interface SatSide extends Usage {
  path: PathName;
  /** The rounds merged (latencies: the rounds' mean). */
  wrk: WrkResult;
  roundsRps: number[];
  /** Requests per second of proxy CPU (gateway-redis: gateway + Redis). */
  perProxyCpuSec: number | null;
}

export interface RateSide extends Usage {
  path: PathName;
  load: FixedRateResult;
  /** Proxy CPU per request, ms (gateway-redis: gateway + Redis). */
  proxyCpuMsPerReq: number | null;
}

export interface GatewayResult {
  cores: number;
  nginxVersion: string;
  wrkVersion: string;
  redis: { version: string } | { skipped: string };
  log: boolean;
  connections: number;
  threads: number;
  warmupMs: number;
  durationMs: number;
  rate: number;
  rateConnections: number;
  rateWarmupMs: number;
  rateDurationMs: number;
  rounds: number;
  paths: PathName[];
  negotiated: Partial<Record<PathName, string>>;
  checks: string[];
  saturation: SatSide[];
  fixed: RateSide[];
  /** Redis EVALSHA calls per gateway request during the gateway-redis saturation run (1.0 = one limit check each). */
  redisCallsPerRequest: number | null;
}

const env = (name: string, def: number) => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : def;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One request with a fresh connection; http:// or https:// (verified against `ca`). */
function once(origin: string, ca: string | undefined, method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number; headers: IncomingHttpHeaders; text: string; negotiated: string }> {
  const u = new URL(origin);
  const tls = u.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const opts = { host: u.hostname, port: Number(u.port), method, path, headers: body !== undefined ? { ...headers, 'content-length': String(Buffer.byteLength(body)) } : headers, agent: false as const };
    const req = (tls ? httpsRequest : httpRequest)(tls ? { ...opts, ca, minVersion: 'TLSv1.3' as const } : opts, (res) => {
      const parts: Buffer[] = [];
      const sock = res.socket as import('node:tls').TLSSocket;
      const negotiated = tls && sock.getProtocol ? `${sock.getProtocol()} ${sock.getCipher().standardName} ${(sock.getEphemeralKeyInfo() as { name?: string }).name ?? '?'}` : 'plain HTTP';
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(parts).toString('utf8'), negotiated }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function wrkVersion(): Promise<string> {
  return new Promise((resolve) => {
    const c = spawn(WRK, ['-v'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    c.on('error', () => resolve('?'));
    c.on('exit', () => resolve(/wrk (\S+)/.exec(out)?.[1] ?? '?'));
  });
}

const UNIT_MS: Record<string, number> = { us: 1e-3, ms: 1, s: 1000, m: 60_000 };

/** Parses wrk's text report (with --latency). */
export function parseWrk(out: string): WrkResult {
  const q = (p: string) => {
    const m = new RegExp(`^\\s*${p}%\\s+([0-9.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
    return m ? Number(m[1]) * UNIT_MS[m[2]!]! : NaN;
  };
  const done = /(\d+) requests in ([0-9.]+)(us|ms|s|m)/.exec(out);
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const requests = done ? Number(done[1]) : 0;
  const seconds = done ? (Number(done[2]) * UNIT_MS[done[3]!]!) / 1000 : NaN;
  return {
    requests,
    seconds,
    rps: Number(/Requests\/sec:\s+([0-9.]+)/.exec(out)?.[1] ?? NaN),
    latencyMs: { p50: q('50'), p75: q('75'), p90: q('90'), p99: q('99') },
    socketErrors: se ? se.slice(1, 5).reduce((s, x) => s + Number(x), 0) : 0,
    non2xx: Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0),
    raw: out,
  };
}

interface Roles {
  proxy: () => number[];
  upstream: () => number[];
  redis: () => number[];
}

/** Raw CPU seconds of each role over `wall` seconds; adds up across rounds. */
interface Cpu {
  wall: number;
  proxy: number;
  upstream: number;
  redis: number;
  client: number;
  busy: number;
  softirq: number;
  others: Map<string, number>;
  hasProxy: boolean;
  hasRedis: boolean;
}

function addCpu(a: Cpu | null, b: Cpu): Cpu {
  if (!a) return b;
  const others = new Map(a.others);
  for (const [k, v] of b.others) others.set(k, (others.get(k) ?? 0) + v);
  return { wall: a.wall + b.wall, proxy: a.proxy + b.proxy, upstream: a.upstream + b.upstream, redis: a.redis + b.redis, client: a.client + b.client, busy: a.busy + b.busy, softirq: a.softirq + b.softirq, others, hasProxy: a.hasProxy, hasRedis: a.hasRedis };
}

function usageOf(c: Cpu): Usage {
  const pct = (s: number) => (100 * s) / c.wall;
  return {
    proxyCpuPct: c.hasProxy ? pct(c.proxy) : null,
    upstreamCpuPct: pct(c.upstream),
    redisCpuPct: c.hasRedis ? pct(c.redis) : null,
    clientCpuPct: pct(c.client),
    otherCpuPct: Math.max(0, pct(c.busy - c.proxy - c.upstream - c.redis - c.client)),
    softirqPct: pct(c.softirq),
    otherProcs: [...c.others].sort((x, y) => y[1] - x[1]).slice(0, 3).map(([what, sec]) => ({ what, pct: pct(sec) })).filter((x) => x.pct >= 1),
  };
}

/** CPU of each role and of the machine between start() and end(), and what else ran (softirq, other processes). */
function usageMeter(roles: Roles) {
  const pids = { proxy: roles.proxy(), upstream: roles.upstream(), redis: roles.redis() };
  const at = () => ({ proxy: cpuOfPids(pids.proxy), upstream: cpuOfPids(pids.upstream), redis: cpuOfPids(pids.redis), busy: machineBusySeconds(), t: performance.now(), procs: procSnapshot() });
  let a = at();
  return {
    start: () => void (a = at()),
    end: (clientCpuSec: number, clientPid: number): Cpu => {
      const b = at();
      const known = new Set([...pids.proxy, ...pids.upstream, ...pids.redis, clientPid, process.pid]);
      const others = otherUsers(a.procs, b.procs, known);
      return {
        wall: (b.t - a.t) / 1000,
        proxy: b.proxy - a.proxy,
        upstream: b.upstream - a.upstream,
        redis: b.redis - a.redis,
        client: clientCpuSec,
        busy: b.busy - a.busy,
        softirq: others.softirqSec,
        others: others.procs,
        hasProxy: pids.proxy.length > 0,
        hasRedis: pids.redis.length > 0,
      };
    },
  };
}

/** Runs wrk for `seconds` (whole seconds) and returns its report and its own CPU seconds (sampled from /proc). */
function wrk(url: string, script: string, threads: number, connections: number, seconds: number): Promise<{ result: WrkResult; cpuSec: number; pid: number }> {
  return new Promise((resolve, reject) => {
    const c = spawn(WRK, ['-t', String(threads), '-c', String(connections), '-d', `${seconds}s`, '--latency', '-s', script, url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    let cpu = 0;
    const poll = setInterval(() => {
      try {
        cpu = cpuSeconds(c.pid!);
      } catch {
        // exited
      }
    }, 100);
    c.on('error', (e) => {
      clearInterval(poll);
      reject(e);
    });
    c.on('exit', (code) => {
      clearInterval(poll);
      if (code !== 0) reject(new Error(`wrk exited with code ${code}:\n${out}`));
      else resolve({ result: parseWrk(out), cpuSec: cpu, pid: c.pid! });
    });
  });
}

function palisadeConfig(gwPort: number, upstreamPort: number): string {
  const config = {
    gateway: {
      enabled: true,
      addr: `127.0.0.1:${gwPort}`,
      upstreams: {
        framework: { url: `http://127.0.0.1:${upstreamPort}`, timeout_ms: 30_000, connect_timeout_ms: 5000, max_connections: 256, circuit: { failure_threshold: 5, open_seconds: 30 } },
      },
      routes: [
        {
          name: 'chat',
          path: ROUTE_PATH,
          methods: ['POST'],
          upstream: 'framework',
          auth: ['bearer_token', 'api_key', 'client_cert'],
          schema: CHAT_SCHEMA,
          content_types: ['application/json'],
          signed: false,
          websocket: false,
        },
      ],
      // The seed's shape (global and per client with a burst window, one per-endpoint limit), with limits no run
      // reaches: every request is checked against 5 sliding logs, none refuses.
      rate_limits: {
        global: { requests: LIMIT, per: 'second', burst: LIMIT / 10 },
        per_client: { requests: LIMIT, per: 'second', burst: LIMIT / 10 },
        per_endpoint: { '/framework/*': { requests: LIMIT, per: 'second' } },
        on_store_error: 'deny',
      },
    },
  };
  return JSON.stringify(config, null, 2); // JSON is YAML
}

const tlsLines = (chain: string, key: string) => `ssl_protocols TLSv1.3;
  ssl_conf_command Ciphersuites ${TLS13_CIPHERSUITES.join(':')};
  ssl_prefer_server_ciphers on;
  ssl_ecdh_curve ${ECDH_CURVES.join(':')};
  ssl_certificate ${chain};
  ssl_certificate_key ${key};`;

export async function runGateway(opts: { quiet?: boolean } = {}): Promise<GatewayResult> {
  const log = (s: string) => opts.quiet || console.log(s);
  const connections = Math.round(env('BENCH_GW_CONNECTIONS', 32));
  const threads = Math.round(env('BENCH_GW_THREADS', 1));
  const warmupMs = env('BENCH_GW_WARMUP_MS', 2000);
  const durationMs = env('BENCH_GW_DURATION_MS', 8000);
  const rate = env('BENCH_GW_RATE', GOAL_RATE);
  const rateConnections = Math.round(env('BENCH_GW_RATE_CONNECTIONS', 32));
  const rateWarmupMs = env('BENCH_GW_RATE_WARMUP_MS', 2000);
  const rateDurationMs = env('BENCH_GW_RATE_DURATION_MS', 8000);
  const withLog = process.env.BENCH_GW_LOG !== '0';
  const wantRedis = process.env.BENCH_GW_REDIS !== '0';
  const rounds = Math.round(env('BENCH_GW_ROUNDS', 2));

  const ngVersion = await nginxVersion();
  if (!ngVersion) throw new Error(`nginx not found at ${process.env.BENCH_NGINX ?? '/usr/sbin/nginx'} (it is both the upstream and the peer proxy; apt-get install nginx-light)`);
  if (!existsSync(WRK)) throw new Error(`wrk not found at ${WRK} (apt-get install wrk)`);
  const wrkV = await wrkVersion();

  const dir = await mkdtemp(join(tmpdir(), 'palisade-bench-gw-'));
  const nginxes: NginxProcess[] = [];
  const pals: Array<Awaited<ReturnType<typeof startPalisade>>> = [];
  let redis: RedisHandle | null = null;
  let redisInfo: GatewayResult['redis'] = { skipped: 'BENCH_GW_REDIS=0' };
  try {
    // --- the upstream: nginx, 1 worker, plain HTTP, a fixed JSON answer
    const upPort = await freePort();
    const upDir = join(dir, 'upstream');
    const upstream = await startNginx(
      upDir,
      1,
      `events { worker_connections 4096; }
http {
  ${httpCommon(upDir)}
  access_log off;
  keepalive_timeout 75s;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:${upPort} backlog=4096;
    location / { default_type application/json; return 200 '${UPSTREAM_BODY}'; }
  }
}`,
      async () => (await once(`http://127.0.0.1:${upPort}`, undefined, 'GET', '/', {})).status === 200,
    );
    nginxes.push(upstream);
    log(`  upstream: nginx ${ngVersion} (1 worker, plain HTTP) on 127.0.0.1:${upPort}, a ${Buffer.byteLength(UPSTREAM_BODY)}-byte JSON answer`);

    // --- Redis (the multi-node rate-limit store), if installed
    if (wantRedis) {
      if (!findRedisServer()) redisInfo = { skipped: 'redis-server not installed' };
      else {
        redis = await startRedis();
        const info = String(await redisCommand(redis.url, ['INFO', 'server']));
        redisInfo = { version: /redis_version:(\S+)/.exec(info)?.[1] ?? '?' };
      }
    }
    const redisPid = redis ? Number(/process_id:(\d+)/.exec(String(await redisCommand(redis.url, ['INFO', 'server'])))?.[1]) : 0;

    // --- Palisade (one per rate-limit store), started side by side
    const owner = `pal_bench_owner_${randomBytes(24).toString('base64url')}`;
    const gwPorts = { gateway: await freePort(), 'gateway-redis': await freePort() };
    const gateways: Array<'gateway' | 'gateway-redis'> = redis ? ['gateway', 'gateway-redis'] : ['gateway'];
    log(`  starting palisade serve with its gateway (${gateways.map((g) => (g === 'gateway' ? 'memory limits' : 'Redis limits')).join(', ')}; request log ${withLog ? 'on (info, to a file)' : 'off'}) ...`);
    const started = await Promise.allSettled(
      gateways.map(async (g) => {
        const conf = join(dir, `${g}.yaml`);
        await writeFile(conf, palisadeConfig(gwPorts[g], upPort));
        return startPalisade({
          env: { PALISADE_CONFIG: conf, PALISADE_BOOTSTRAP_TOKEN: owner, PALISADE_LOG_LEVEL: withLog ? 'info' : 'warn', ...(g === 'gateway-redis' ? { PALISADE_REDIS_URL: redis!.url } : {}) },
          logFile: join(dir, `${g}.log`),
        });
      }),
    );
    for (const r of started) if (r.status === 'fulfilled') pals.push(r.value);
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const pal = Object.fromEntries(gateways.map((g, i) => [g, pals[i]!])) as Record<'gateway' | 'gateway-redis', (typeof pals)[number]>;
    // Only the Palisade being measured runs; the other one is stopped (SIGSTOP) meanwhile. An idle server still finishes
    // a GC cycle or runs its timers, and on 2 shared cores that takes CPU from the path being measured.
    const focus = (p: PathName) => {
      for (const g of gateways) pal[g].child.kill(g === p ? 'SIGCONT' : 'SIGSTOP');
    };
    const ca = pal.gateway.target.ca;

    // --- nginx as the peer proxy: the gateway's own certificate and key (bootstrap CA, ECDSA P-256), same TLS 1.3 settings
    const ngPort = await freePort();
    const ngDir = join(dir, 'nginx');
    await mkdir(ngDir, { recursive: true });
    const tlsDir = join(pal.gateway.dataDir, 'tls');
    const proxy = await startNginx(
      ngDir,
      1,
      `events { worker_connections 4096; }
http {
  ${httpCommon(ngDir)}
  access_log ${withLog ? `${ngDir}/access.log` : 'off'};
  keepalive_timeout 75s;
  keepalive_requests 1000000;
  client_max_body_size 10m;
  ${tlsLines(join(tlsDir, 'server.pem'), join(tlsDir, 'server-key.pem'))}
  upstream framework {
    server 127.0.0.1:${upPort};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${ngPort} ssl backlog=4096;
    location / {
      proxy_pass http://framework;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Request-Id $request_id;
${SECURITY_HEADERS.map(([k, v]) => `      add_header ${k} "${v}" always;`).join('\n')}
    }
  }
}`,
      async () => (await once(`https://127.0.0.1:${ngPort}`, ca, 'GET', '/', {})).status === 200,
    );
    nginxes.push(proxy);

    // --- keys: one the route's permission is granted to, one it is not
    const sdk = new PalisadeClient({ addr: `127.0.0.1:${pal.gateway.target.port}`, token: owner, ca });
    const keys: Record<string, { agent: string; outsider: string }> = {};
    for (const g of gateways) {
      const c = g === 'gateway' ? sdk : new PalisadeClient({ addr: `127.0.0.1:${pal[g].target.port}`, token: owner, ca: pal[g].target.ca });
      keys[g] = {
        agent: (await c.createApiKey({ name: 'bench-agent', permissions: ['gateway:*:invoke'] })).token,
        outsider: (await c.createApiKey({ name: 'bench-outsider', permissions: ['kms:encrypt'] })).token,
      };
      c.close();
    }

    const origins: Record<PathName, { origin: string; ca?: string; auth: string; roles: Roles }> = {
      direct: { origin: `http://127.0.0.1:${upPort}`, auth: keys.gateway!.agent, roles: { proxy: () => [], upstream: upstream.pids, redis: () => [] } },
      nginx: { origin: `https://127.0.0.1:${ngPort}`, ca, auth: keys.gateway!.agent, roles: { proxy: proxy.pids, upstream: upstream.pids, redis: () => [] } },
      gateway: { origin: `https://127.0.0.1:${gwPorts.gateway}`, ca, auth: keys.gateway!.agent, roles: { proxy: () => [pal.gateway.target.pid], upstream: upstream.pids, redis: () => [] } },
      'gateway-redis': { origin: `https://127.0.0.1:${gwPorts['gateway-redis']}`, ca: pal['gateway-redis']?.target.ca, auth: keys['gateway-redis']?.agent ?? '', roles: { proxy: () => [pal['gateway-redis'].target.pid], upstream: upstream.pids, redis: () => [redisPid] } },
    };
    const only = process.env.BENCH_GW_PATHS?.split(',').filter(Boolean);
    const paths: PathName[] = (['direct', 'nginx', ...gateways] as PathName[]).filter((p) => !only || only.includes(p));
    const headersFor = (p: PathName) => ({ 'content-type': 'application/json', authorization: `Bearer ${origins[p].auth}` });

    // --- checks before any load: the same answer on every path, and the gateway's checks are really on
    const checks: string[] = [];
    const negotiated: GatewayResult['negotiated'] = {};
    for (const p of paths) {
      const o = origins[p];
      const r = await once(o.origin, o.ca, 'POST', ROUTE_PATH, headersFor(p), REQUEST_BODY);
      if (r.status !== 200 || r.text !== UPSTREAM_BODY) throw new Error(`${p}: POST ${ROUTE_PATH} answered ${r.status} ${r.text.slice(0, 300)}`);
      if (p !== 'direct' && r.headers['strict-transport-security'] !== SECURITY_HEADERS[0]![1]) throw new Error(`${p}: no Strict-Transport-Security header on the answer`);
      negotiated[p] = r.negotiated;
    }
    checks.push(`every path answers POST ${ROUTE_PATH} with the upstream's ${Buffer.byteLength(UPSTREAM_BODY)} bytes (200); both proxies add the seed's security headers`);
    for (const g of gateways) {
      const o = origins[g];
      const refusals: Array<[string, Record<string, string>, string, number, string]> = [
        ['no credential', { 'content-type': 'application/json' }, REQUEST_BODY, 401, 'PAL_AUTH_REQUIRED'],
        ['an API key without gateway:*:invoke', { 'content-type': 'application/json', authorization: `Bearer ${keys[g]!.outsider}` }, REQUEST_BODY, 403, 'PAL_FORBIDDEN'],
        ['a body the schema refuses', headersFor(g), JSON.stringify({ model: 'bench-model', messages: [] }), 400, 'PAL_VALIDATION_FAILED'],
        ['invalid JSON', headersFor(g), '{"model":', 400, 'PAL_MALFORMED_JSON'],
      ];
      const seen: string[] = [];
      for (const [what, h, body, status, code] of refusals) {
        const r = await once(o.origin, o.ca, 'POST', ROUTE_PATH, h, body);
        const got = (/"code":"([A-Z_]+)"/.exec(r.text) ?? [])[1];
        if (r.status !== status || got !== code) throw new Error(`${g}: ${what}: expected ${status} ${code}, got ${r.status} ${r.text.slice(0, 300)}`);
        seen.push(`${what} → ${status} ${code}`);
      }
      checks.push(`${g}: ${seen.join('; ')}`);
    }
    sdk.close();

    // --- saturation: wrk, one path at a time, in rounds
    const script = join(dir, 'post.lua');
    const lua = (p: PathName) => `wrk.method = "POST"
wrk.body = ${JSON.stringify(REQUEST_BODY)}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer ${origins[p].auth}"
`;
    const secs = (ms: number) => Math.max(1, Math.round(ms / 1000));
    const satAcc = new Map<PathName, { runs: WrkResult[]; cpu: Cpu | null }>(paths.map((p) => [p, { runs: [], cpu: null }]));
    let redisCalls = 0;
    for (let round = 0; round < rounds; round++) {
      // Rounds alternate the order, so no path always runs first (or right after the heaviest one).
      for (const p of round % 2 === 0 ? paths : [...paths].reverse()) {
        const o = origins[p];
        focus(p);
        const acc = satAcc.get(p)!;
        await writeFile(script, lua(p));
        const warmS = round === 0 ? secs(warmupMs) : 1;
        log(`  saturation on ${p} (round ${round + 1}/${rounds}): wrk -t${threads} -c${connections}, ${warmS} s warm-up + ${secs(durationMs / rounds)} s ...`);
        const warm = await wrk(o.origin + ROUTE_PATH, script, threads, connections, warmS);
        if (warm.result.requests === 0) throw new Error(`${p}: no request completed in the warm-up:\n${warm.result.raw}`);
        const meter = usageMeter(o.roles);
        const evalsha0 = p === 'gateway-redis' ? await evalshaCalls(redis!.url) : 0;
        meter.start();
        const run = await wrk(o.origin + ROUTE_PATH, script, threads, connections, secs(durationMs / rounds));
        acc.cpu = addCpu(acc.cpu, meter.end(run.cpuSec, run.pid));
        if (p === 'gateway-redis') redisCalls += (await evalshaCalls(redis!.url)) - evalsha0;
        acc.runs.push(run.result);
        await sleep(300);
      }
    }
    const saturation: SatSide[] = paths.map((p) => {
      const { runs, cpu } = satAcc.get(p)!;
      const w = mergeWrk(runs);
      const proxySec = cpu!.proxy + cpu!.redis;
      // requests per second of proxy CPU: the run's requests ÷ the proxy CPU of the (slightly longer) measured span, scaled
      return { path: p, wrk: w, roundsRps: runs.map((r) => r.rps), ...usageOf(cpu!), perProxyCpuSec: !cpu!.hasProxy || proxySec <= 0 ? null : (w.rps * cpu!.wall) / proxySec };
    });
    const satRedis = satAcc.get('gateway-redis');
    const redisCallsPerRequest = satRedis && satRedis.runs.length ? redisCalls / satRedis.runs.reduce((s, r) => s + r.requests, 0) : null;

    // --- fixed rate: the open-loop client, one path at a time, rounds in alternating order (the first one reversed)
    const fixedAcc = new Map<PathName, { runs: FixedRateResult[]; cpu: Cpu | null }>(paths.map((p) => [p, { runs: [], cpu: null }]));
    for (let round = 0; round < rounds; round++) {
      for (const p of round % 2 === 0 ? [...paths].reverse() : paths) {
        const o = origins[p];
        focus(p);
        const acc = fixedAcc.get(p)!;
        const warm = round === 0 ? rateWarmupMs : 1000;
        const dur = rateDurationMs / rounds;
        log(`  fixed rate on ${p} (round ${round + 1}/${rounds}): ${num(rate)} req/s over ${rateConnections} keep-alive connections, ${num(warm)} ms warm-up + ${num(dur)} ms ...`);
        const meter = usageMeter(o.roles);
        let clientPid = 0;
        let clientCpu0 = 0;
        const box: { cpu?: Cpu } = {};
        const load = await runFixedRateInChild(
          { origin: o.origin, ...(o.ca ? { ca: o.ca } : {}), method: 'POST', path: ROUTE_PATH, headers: headersFor(p), body: REQUEST_BODY, rate, connections: rateConnections, warmupMs: warm, durationMs: dur, keepSamples: true },
          (e) => {
            if (e === 'start') {
              clientCpu0 = cpuSeconds(clientPid);
              meter.start();
            } else box.cpu = meter.end(cpuSeconds(clientPid) - clientCpu0, clientPid);
          },
          (pid) => (clientPid = pid),
        );
        if (!box.cpu) throw new Error(`${p}: the fixed-rate client reported no measured window`);
        acc.cpu = addCpu(acc.cpu, box.cpu);
        acc.runs.push(load);
        await sleep(300);
      }
    }
    const fixed: RateSide[] = paths.map((p) => {
      const { runs, cpu } = fixedAcc.get(p)!;
      const load = mergeFixedRate(runs);
      const proxySec = cpu!.proxy + cpu!.redis;
      return { path: p, load, ...usageOf(cpu!), proxyCpuMsPerReq: !cpu!.hasProxy || load.ok === 0 ? null : (1000 * proxySec) / (load.achievedRps * cpu!.wall) };
    });

    return {
      cores: machine().cores,
      nginxVersion: ngVersion,
      wrkVersion: wrkV,
      redis: redisInfo,
      log: withLog,
      connections,
      threads,
      warmupMs,
      durationMs,
      rate,
      rateConnections,
      rateWarmupMs,
      rateDurationMs,
      rounds,
      paths,
      negotiated,
      checks,
      saturation,
      fixed,
      redisCallsPerRequest,
    };
  } catch (e) {
    if (!opts.quiet) console.error(`palisade output:\n${pals.map((p) => p.logs().slice(-2000)).join('\n')}\n${nginxes.map((n) => `nginx (${n.dir}):\n${n.logs()}`).join('\n')}`);
    throw e;
  } finally {
    for (const p of pals) p.child.kill('SIGCONT'); // a stopped process cannot act on SIGTERM
    await Promise.all([...pals.map((p) => stop(p.child)), ...nginxes.map((n) => n.stop())]);
    await redis?.stop();
    await Promise.all(pals.map((p) => rm(p.dataDir, { recursive: true, force: true })));
    await rm(dir, { recursive: true, force: true });
  }
}

/** Rounds of wrk as one: requests and time add up; its latency percentiles are the rounds' mean (for information). */
function mergeWrk(runs: readonly WrkResult[]): WrkResult {
  const requests = runs.reduce((s, r) => s + r.requests, 0);
  const seconds = runs.reduce((s, r) => s + r.seconds, 0);
  const mean = (k: keyof WrkResult['latencyMs']) => runs.reduce((s, r) => s + r.latencyMs[k], 0) / runs.length;
  return {
    requests,
    seconds,
    rps: requests / seconds,
    latencyMs: { p50: mean('p50'), p75: mean('p75'), p90: mean('p90'), p99: mean('p99') },
    socketErrors: runs.reduce((s, r) => s + r.socketErrors, 0),
    non2xx: runs.reduce((s, r) => s + r.non2xx, 0),
    raw: runs.map((r) => r.raw).join('\n'),
  };
}

async function evalshaCalls(url: string): Promise<number> {
  const s = String(await redisCommand(url, ['INFO', 'commandstats']));
  const calls = (name: string) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(s)?.[1] ?? 0);
  return calls('evalsha') + calls('eval');
}

// ------------------------------------------------------------------------------------------------------- reporting

const elsewhere = (u: Usage) => {
  const listed = u.softirqPct + u.otherProcs.reduce((s, p) => s + p.pct, 0);
  const parts = [`kernel softirq ${num(u.softirqPct)}%`, ...u.otherProcs.map((p) => `${p.what} ${num(p.pct)}%`)];
  if (u.otherCpuPct - listed >= 5) parts.push(`unlisted (other processes, short-lived ones included) ${num(u.otherCpuPct - listed)}%`);
  return parts.join(', ');
};
const ms = (x: number) => (Number.isFinite(x) ? num(x, x < 10 ? 2 : 1) : 'n/a');
const pct = (x: number | null) => (x === null ? '-' : `${num(x)}%`);
const signed = (x: number) => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${num(x, 2)}` : 'n/a');

export function sat(r: GatewayResult, p: PathName): SatSide | undefined {
  return r.saturation.find((x) => x.path === p);
}
export function fix(r: GatewayResult, p: PathName): RateSide | undefined {
  return r.fixed.find((x) => x.path === p);
}

/** The fixed-rate run delivered (nearly) the asked rate, with every request answered: its latencies mean something. */
export function heldRate(x: RateSide): boolean {
  return x.load.unfinished === 0 && x.load.errors + x.load.non2xx === 0 && x.load.ok >= 0.99 * x.load.scheduled;
}

/** Added latency of a path over direct, at the fixed rate. */
export function added(r: GatewayResult, p: PathName): { p50: number; p99: number } | null {
  const d = fix(r, 'direct');
  const x = fix(r, p);
  if (!d || !x) return null;
  return { p50: x.load.latencyMs.p50 - d.load.latencyMs.p50, p99: x.load.latencyMs.p99 - d.load.latencyMs.p99 };
}

export function goalMet(r: GatewayResult, p: PathName): boolean {
  const a = added(r, p);
  const x = fix(r, p);
  const d = fix(r, 'direct');
  return !!a && !!x && !!d && heldRate(x) && heldRate(d) && x.load.rate >= GOAL_RATE && a.p99 < GOAL_ADDED_P99_MS;
}

export function gatewaySummaryRows(r: GatewayResult): Cell[][] {
  const rows: Cell[][] = [];
  const n = sat(r, 'nginx');
  const d = sat(r, 'direct');
  const na = added(r, 'nginx');
  for (const g of ['gateway', 'gateway-redis'] as const) {
    const s = sat(r, g);
    const f = fix(r, g);
    const a = added(r, g);
    if (!s || !n || !d) continue;
    const label = g === 'gateway' ? 'gateway (key, authz, limits, schema)' : '  same, limits in Redis';
    rows.push([`${label} req/s`, `${num(s.wrk.rps)} req/s`, `nginx proxy, ${num(n.wrk.rps)} req/s`, ratio(s.wrk.rps, n.wrk.rps), s.perProxyCpuSec && n.perProxyCpuSec ? ratio(s.perProxyCpuSec, n.perProxyCpuSec) : '-', '-']);
    rows.push([`  ${g} req/s vs upstream direct`, `${num(s.wrk.rps)} req/s`, `direct (plain HTTP), ${num(d.wrk.rps)} req/s`, ratio(s.wrk.rps, d.wrk.rps), '-', '-']);
    if (f && a) rows.push([`  ${g} added latency @ ${num(r.rate)}/s`, `+p50 ${ms(a.p50)} / +p99 ${ms(a.p99)} ms`, na ? `nginx +p50 ${ms(na.p50)} / +p99 ${ms(na.p99)} ms` : '-', '-', '-', `added p99 < ${GOAL_ADDED_P99_MS} ms @ ${num(GOAL_RATE)}/s: ${goalMet(r, g) ? 'MET' : 'NOT MET'}`]);
  }
  if ('skipped' in r.redis) rows.push(['  gateway, limits in Redis', 'skipped', r.redis.skipped, '-', '-', '-']);
  return rows;
}

export function printGateway(r: GatewayResult): void {
  heading('API gateway: Palisade gateway vs nginx reverse proxy vs the upstream directly');
  const m = machine();
  console.log(`node ${m.node} (OpenSSL ${m.openssl}), nginx ${r.nginxVersion}, wrk ${r.wrkVersion}, ${'version' in r.redis ? `redis ${r.redis.version}` : `redis: ${r.redis.skipped}`}; ${m.cpu}, ${m.cores} cores`);
  console.log(`! ${m.cores} cores are shared by the load generator, the proxy under test, the upstream (and Redis): nothing here is pinned. Every path pays`);
  console.log('  the same client and upstream, so the comparison is fair, but absolute req/s are what is left after the client and the upstream took their share.');
  console.log('  h2load is not installed here (HTTP/1.1 only: wrk for saturation, ./lib/fixed-rate.ts for the fixed rate; wrk2 is not installed either).');
  console.log('');
  for (const p of r.paths) console.log(`  ${p.padEnd(14)} ${PATH_WHAT[p]}${r.negotiated[p] ? ` [${r.negotiated[p]}]` : ''}`);
  console.log(`  Same request everywhere: POST ${ROUTE_PATH}, ${Buffer.byteLength(REQUEST_BODY)} bytes of JSON, Authorization: Bearer <API key>; same upstream answer (${Buffer.byteLength(UPSTREAM_BODY)} bytes).`);
  console.log(`  Gateway limits: global ${num(LIMIT)}/s burst ${num(LIMIT / 10)}, per client the same, /framework/* ${num(LIMIT)}/s: 5 sliding logs checked per request, none refuses.`);
  console.log(`  Request logs: ${r.log ? 'on for both proxies (Palisade info level to a file; nginx access_log to a file, unbuffered)' : 'off on both (BENCH_GW_LOG=0)'}. TLS: the same ECDSA P-256 certificate and key (Palisade's bootstrap CA) on both proxies.`);
  for (const c of r.checks) console.log(`  checked: ${c}`);
  if (r.redisCallsPerRequest !== null) console.log(`  checked: Redis ran ${num(r.redisCallsPerRequest, 3)} limit scripts (EVALSHA) per gateway-redis request during its saturation run`);
  console.log('');

  console.log(`(1) Saturation: wrk -t${r.threads} -c${r.connections} (keep-alive), ${num(r.durationMs / 1000)} s measured per path in ${r.rounds} round(s) of alternating order (warm-up ${num(r.warmupMs / 1000)} s, then 1 s per round);`);
  console.log('    wrk\'s latencies are closed-loop (the mean of the rounds\' percentiles, for information only).');
  const satRows = r.saturation.map((x) => [x.path, num(x.wrk.rps), x.roundsRps.map((v) => num(v)).join(' / '), ms(x.wrk.latencyMs.p50), ms(x.wrk.latencyMs.p99), pct(x.proxyCpuPct), x.perProxyCpuSec === null ? '-' : num(x.perProxyCpuSec), pct(x.upstreamCpuPct), pct(x.redisCpuPct), pct(x.clientCpuPct), pct(x.otherCpuPct), x.wrk.socketErrors + x.wrk.non2xx]);
  console.log(table(['path', 'req/s', 'rounds', 'p50 ms', 'p99 ms', 'proxy CPU', 'req/proxy-CPU-s', 'upstream CPU', 'redis CPU', 'wrk CPU', 'other CPU', 'errors'], satRows));
  console.log('');

  console.log(`(2) Fixed rate: ${num(r.rate)} req/s, open loop over ${r.rateConnections} keep-alive connections (./lib/fixed-rate.ts, a child process), ${num(r.rateDurationMs / 1000)} s measured per path`);
  console.log(`    in ${r.rounds} round(s) of alternating order (warm-up ${num(r.rateWarmupMs / 1000)} s, then 1 s per round), percentiles over all of a path's samples;`);
  console.log('    latency = response complete − SCHEDULED send time (a request waiting for a free connection or a slow server counts its wait).');
  const fixRows = r.fixed.map((x) => [x.path, num(x.load.achievedRps), ms(x.load.latencyMs.p50), ms(x.load.latencyMs.p90), ms(x.load.latencyMs.p99), ms(x.load.latencyMs.p999), ms(x.load.latencyMs.max), ms(x.load.sendLagMs.p99), pct(x.proxyCpuPct), x.proxyCpuMsPerReq === null ? '-' : num(x.proxyCpuMsPerReq, 3), pct(x.upstreamCpuPct), pct(x.redisCpuPct), pct(x.clientCpuPct), pct(x.otherCpuPct), x.load.errors + x.load.non2xx + x.load.unfinished]);
  console.log(table(['path', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'send lag p99', 'proxy CPU', 'proxy CPU ms/req', 'upstream CPU', 'redis CPU', 'client CPU', 'other CPU', 'errors'], fixRows));
  console.log('send lag = scheduled → written to the socket: the client\'s own delay (1 ms timer granularity, its event loop, waiting for an idle connection).');
  console.log('');

  console.log('(3) Added latency (path − direct, at the fixed rate) and ratios (saturation):');
  const d = sat(r, 'direct');
  const n = sat(r, 'nginx');
  const rows: Cell[][] = [];
  for (const p of r.paths.filter((x) => x !== 'direct')) {
    const a = added(r, p);
    const s = sat(r, p);
    const vsNginx = p === 'nginx' || !fix(r, 'nginx') ? null : { p50: fix(r, p)!.load.latencyMs.p50 - fix(r, 'nginx')!.load.latencyMs.p50, p99: fix(r, p)!.load.latencyMs.p99 - fix(r, 'nginx')!.load.latencyMs.p99 };
    rows.push([
      p,
      a ? signed(a.p50) : 'n/a',
      a ? signed(a.p99) : 'n/a',
      vsNginx ? signed(vsNginx.p50) : '-',
      vsNginx ? signed(vsNginx.p99) : '-',
      s && d ? ratio(s.wrk.rps, d.wrk.rps) : 'n/a',
      s && n && p !== 'nginx' ? ratio(s.wrk.rps, n.wrk.rps) : '-',
      s?.perProxyCpuSec && n?.perProxyCpuSec && p !== 'nginx' ? ratio(s.perProxyCpuSec, n.perProxyCpuSec) : '-',
      p === 'nginx' ? '-' : `${goalMet(r, p) ? 'MET' : 'NOT MET'}`,
    ]);
  }
  console.log(table(['path', 'added p50 ms', 'added p99 ms', 'vs nginx p50', 'vs nginx p99', 'req/s ÷ direct', 'req/s ÷ nginx', 'req/CPU-s ÷ nginx', `goal: added p99 < ${GOAL_ADDED_P99_MS} ms @ ${num(GOAL_RATE)}/s`], rows));
  console.log('added = the path\'s latency minus direct\'s, same client, same rate (direct is plain HTTP: the proxies\' added latency includes TLS on the client side).');
  console.log('req/CPU-s ÷ nginx: requests per second of proxy CPU (gateway-redis: gateway + Redis), the efficiency comparison independent of who saturated.');

  for (const x of r.saturation) {
    if (x.wrk.socketErrors + x.wrk.non2xx > 0) console.log(`! saturation ${x.path}: ${x.wrk.socketErrors} socket errors, ${x.wrk.non2xx} non-2xx answers`);
    if (x.otherCpuPct > 40) console.log(`! saturation ${x.path}: ${num(x.otherCpuPct)}% of a core went elsewhere (${elsewhere(x)}); compare req/CPU-s.`);
    if (x.clientCpuPct > 90 && (x.proxyCpuPct ?? 0) < 90) console.log(`! saturation ${x.path}: wrk used ${num(x.clientCpuPct)}% of a core, the proxy ${pct(x.proxyCpuPct)}: the client (or the machine) set the pace, not the proxy.`);
  }
  for (const x of r.fixed) {
    if (!heldRate(x)) console.log(`! fixed rate ${x.path}: ${num(x.load.ok)} of ${num(x.load.scheduled)} scheduled requests answered 2xx (${x.load.errors} errors, ${x.load.non2xx} non-2xx, ${x.load.unfinished} unfinished; max ${num(x.load.maxQueued)} queued): the path did not keep up; its latencies are a backlog.${x.load.firstBad ? ` First: ${x.load.firstBad}` : ''}`);
    if (x.otherCpuPct > 25) console.log(`! fixed rate ${x.path}: ${num(x.otherCpuPct)}% of a core went elsewhere (${elsewhere(x)}): the machine was shared, its tail latencies are not the proxy's alone; rerun when idle.`);
  }
  for (const g of ['gateway', 'gateway-redis'] as const) {
    const a = added(r, g);
    const s = sat(r, g);
    if (!a || !s || !n || !d) continue;
    console.log(`=> ${g}: ${num(s.wrk.rps)} req/s at saturation = ${ratio(s.wrk.rps, n.wrk.rps)} × nginx (${num(n.wrk.rps)}) and ${ratio(s.wrk.rps, d.wrk.rps)} × direct (${num(d.wrk.rps)}); at ${num(r.rate)} req/s it adds p50 ${signed(a.p50)} ms, p99 ${signed(a.p99)} ms over direct: goal (added p99 < ${GOAL_ADDED_P99_MS} ms) ${goalMet(r, g) ? 'MET' : 'NOT MET'}.`);
  }
}

if (isEntry(import.meta.url)) {
  printGateway(await runGateway());
  process.exit(0);
}
