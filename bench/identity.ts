// Identity engine (issue 6, "Benchmark"): password + TOTP sign-in latency at a steady rate against the Argon2id floor;
// access-token verification per second in process (TokenService.verifyAccess against jose's jwtVerify of the same
// token with the same key) and over HTTPS (a bearer-authenticated route); client-credentials grants per second against
// Keycloak's published sizing (120–200 per vCPU); token introspection per second. The real server runs as a child
// process (SQLite, file seal), started as http-encrypt.ts does; the HTTPS load comes from lib/loadgen.ts in a child.
//
//   node --import tsx bench/identity.ts         (after `npx tsc -b`; `npm run bench` builds first)
//
// Env knobs: BENCH_ID_LOGIN_RATE (20/s), BENCH_ID_LOGIN_MS (10000), BENCH_ID_ARGON2_SAMPLES (30),
// BENCH_ID_SLICE_MS (500), BENCH_ID_ROUNDS (2), BENCH_ID_CONNECTIONS (4), BENCH_ID_WARMUP_MS (1000),
// BENCH_ID_DURATION_MS (4000).
import { createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { jwtVerify } from 'jose';
import { loadConfig } from '../packages/server/src/config/config.js';
import { createLogger } from '../packages/server/src/logging.js';
import { createRuntime } from '../packages/server/src/runtime.js';
import { hashPassword, verifyPassword } from '../packages/server/src/engines/identity/password-hash.js';
import { base32Decode, totp } from '../packages/server/src/engines/identity/totp.js';
import { SESSION_COOKIE } from '../packages/server/src/engines/identity/engine.js';
import { heading, isEntry, num, percentile, table, type Cell } from './lib/report.js';
import { runLoadInChild, type LoadResult, type LoadSpec } from './lib/loadgen.js';
import { cpuSeconds, startPalisade, stop, type ServerTarget } from './lib/servers.js';

/** Ours (issue 6): password + TOTP sign-in p99 under 150 ms; the seed asks for < 200 ms. */
export const LOGIN_P99_MS = 150;
export const SEED_LOGIN_MS = 200;
/** Keycloak's sizing guide: 120–200 client-credentials grants per second per vCPU (a published figure, not measured here). */
export const KEYCLOAK_PER_VCPU = [120, 200] as const;
const PASSWORD = 'bench passphrase: lanterns over quiet harbours';

const env = (name: string, def: number) => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? Math.round(v) : def;
};

export interface Latency {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

function latency(ms: number[]): Latency {
  const s = Float64Array.from(ms).sort();
  return { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99), max: s.length ? s[s.length - 1]! : NaN };
}

export interface LoginResult {
  rate: number;
  seconds: number;
  users: number;
  /** Sign-ins started in the window, and those that did not end authenticated. */
  started: number;
  failed: number;
  firstFailure: string | null;
  /** POST /v1/auth/login → mfa_token → POST /v1/auth/login/totp, measured from each sign-in's scheduled start. */
  total: Latency;
  password: Latency;
  totp: Latency;
  serverCpuPct: number;
  setupSeconds: number;
}

export interface LoadRow {
  name: string;
  load: LoadResult;
  serverCpuPct: number;
  /** Successful requests per second of server CPU. */
  perCpuSec: number;
}

export interface IdentityResult {
  cores: number;
  /** verifyPassword() alone (Argon2id, OWASP parameters), in this process: the physical floor of a password sign-in. */
  argon2: Latency;
  login: LoginResult;
  /** Access-token verifications per second in process, one in flight, alternating slices; noise = largest slice spread. */
  verify: { palisade: number; jose: number; noise: number; alg: string };
  bearer: LoadRow;
  grant: LoadRow;
  introspect: LoadRow;
}

// ------------------------------------------------------------------------------------------------ HTTPS helpers

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: Record<string, unknown>;
}

function client(target: ServerTarget, maxSockets: number) {
  const agent = new Agent({ keepAlive: true, maxSockets, ca: target.ca });
  const call = (method: string, path: string, opts: { headers?: Record<string, string>; json?: unknown; form?: Record<string, string> } = {}) =>
    new Promise<Answer>((resolve, reject) => {
      const headers: Record<string, string> = { ...opts.headers };
      let body: Buffer | undefined;
      if (opts.json !== undefined) {
        body = Buffer.from(JSON.stringify(opts.json));
        headers['content-type'] = 'application/json';
      } else if (opts.form) {
        body = Buffer.from(new URLSearchParams(opts.form).toString());
        headers['content-type'] = 'application/x-www-form-urlencoded';
      }
      if (body) headers['content-length'] = String(body.length);
      const req = request({ host: '127.0.0.1', port: target.port, method, path, headers, agent }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => {
          const text = Buffer.concat(parts).toString('utf8');
          let json: Record<string, unknown> = {};
          try {
            json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
          } catch {
            // not JSON
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      });
      req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${path}: no answer in 30 s`)));
      req.on('error', reject);
      req.end(body);
    });
  return { call, close: () => agent.destroy() };
}

function expectStatus(r: Answer, status: number, what: string): void {
  if (r.status !== status) throw new Error(`${what}: ${r.status} ${r.text.slice(0, 300)}`);
}

const sessionOf = (r: Answer) => {
  const set = ([] as string[]).concat(r.headers['set-cookie'] ?? []).find((h) => h.startsWith(`${SESSION_COOKIE}=`));
  return set?.slice(SESSION_COOKIE.length + 1).split(';')[0] ?? '';
};

/** Runs fn(i) for i in 0..n-1 with `concurrency` in flight. */
async function pool(n: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, concurrency) }, async () => {
    while (next < n) await fn(next++);
  }));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

// ------------------------------------------------------------------------------------------------ in process

async function argon2Floor(n: number): Promise<Latency> {
  const phc = await hashPassword(PASSWORD);
  for (let i = 0; i < 3; i++) await verifyPassword(phc, PASSWORD);
  const ms: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    if (!(await verifyPassword(phc, PASSWORD))) throw new Error('verifyPassword refused the password');
    ms.push(performance.now() - t0);
  }
  return latency(ms);
}

/** verifyAccess vs jose jwtVerify of the same token and key, alternating A/B/B/A slices, one verification in flight. */
async function verifyInProcess(sliceMs: number, rounds: number): Promise<IdentityResult['verify']> {
  const dataDir = await mkdtemp(join(tmpdir(), 'palisade-bench-identity-'));
  const config = loadConfig({ PALISADE_DATA_DIR: dataDir, PALISADE_LOG_LEVEL: 'warn' }, dataDir); // file seal, SQLite
  const rt = await createRuntime(config, { log: createLogger('error') });
  try {
    const tokens = rt.identity.tokens;
    const svc = await rt.identity.directory.createService(rt.storage.db, { name: 'bench-verifier', roles: ['agent'] });
    const { token, claims } = await tokens.issueAccess(rt.storage.db, { sub: svc.id, client_id: svc.id, scope: ['pki:ca:read'] });
    const header = JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()) as { alg: string; kid: string };
    const jwk = (await tokens.jwks()).keys.find((k) => k.kid === header.kid);
    if (!jwk) throw new Error('the signing key is not in the JWKS');
    const key: KeyObject = createPublicKey({ key: jwk as never, format: 'jwk' });
    const opts = { algorithms: [header.alg], typ: 'at+jwt', issuer: claims.iss!, audience: claims.aud!, requiredClaims: ['sub', 'exp', 'iat', 'jti'], clockTolerance: 5 };
    const sides = {
      palisade: async () => void (await tokens.verifyAccess(token)),
      jose: async () => void (await jwtVerify(token, key, opts)),
    };
    const slice = async (fn: () => Promise<void>, ms: number) => {
      let n = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < ms) {
        await fn();
        n++;
      }
      return n / ((performance.now() - t0) / 1000);
    };
    await slice(sides.palisade, 300); // warm-up
    await slice(sides.jose, 300);
    const rates = { palisade: [] as number[], jose: [] as number[] };
    for (let r = 0; r < rounds; r++) {
      for (const side of ['palisade', 'jose', 'jose', 'palisade'] as const) rates[side].push(await slice(sides[side], sliceMs));
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const spread = (xs: number[]) => (Math.max(...xs) - Math.min(...xs)) / mean(xs);
    return { palisade: mean(rates.palisade), jose: mean(rates.jose), noise: Math.max(spread(rates.palisade), spread(rates.jose)), alg: header.alg };
  } finally {
    await rt.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------------------------------------ against the server

interface Enrolled {
  username: string;
  secret: Buffer;
}

/** N users, each with a password and an active TOTP factor; enrolment spends the previous step, so the current one is free. */
async function enrolUsers(target: ServerTarget, n: number): Promise<Enrolled[]> {
  const c = client(target, 4);
  const tag = randomBytes(3).toString('hex');
  const out: Enrolled[] = new Array<Enrolled>(n);
  try {
    await pool(n, 4, async (i) => {
      const username = `bench-${tag}-${i}`;
      expectStatus(await c.call('POST', '/v1/users', { headers: target.headers, json: { username, password: PASSWORD } }), 201, 'POST /v1/users');
      const login = await c.call('POST', '/v1/auth/login', { json: { username, password: PASSWORD } });
      expectStatus(login, 200, 'POST /v1/auth/login (enrolment)');
      const browser = { cookie: `${SESSION_COOKIE}=${sessionOf(login)}`, 'sec-fetch-site': 'same-origin' };
      const enroll = await c.call('POST', '/v1/auth/mfa/totp/enroll', { headers: browser });
      if (enroll.status !== 200 && enroll.status !== 201) throw new Error(`POST /v1/auth/mfa/totp/enroll: ${enroll.status} ${enroll.text.slice(0, 300)}`);
      const secret = base32Decode(String(enroll.json.secret));
      // The code of the previous 30-s step (inside the ±1 window): the timed sign-ins then use the current step.
      // A step boundary between computing the code and the server checking it pushes it out of the window: wait past one.
      if (Date.now() % 30_000 > 29_000) await sleep(30_000 - (Date.now() % 30_000) + 50);
      const verify = await c.call('POST', '/v1/auth/mfa/totp/verify', { headers: browser, json: { factor_id: enroll.json.factor_id, code: totp(secret, Date.now() - 30_000) } });
      if (verify.status !== 200 && verify.status !== 204) throw new Error(`POST /v1/auth/mfa/totp/verify: ${verify.status} ${verify.text.slice(0, 300)}`);
      out[i] = { username, secret };
    });
    return out;
  } finally {
    c.close();
  }
}

/**
 * Open loop at `rate` per second: sign-in i starts at t0 + i/rate whatever the previous ones are doing, so a slow server
 * shows as latency (measured from the scheduled start), not as a lower rate. Every user signs in once: a TOTP code is
 * accepted once per 30-s step and user, and the users were enrolled on the previous step.
 */
async function loginLoad(target: ServerTarget, users: Enrolled[], rate: number, warmup: number): Promise<Omit<LoginResult, 'setupSeconds' | 'users'>> {
  const c = client(target, 64);
  const total: number[] = [];
  const password: number[] = [];
  const second: number[] = [];
  let failed = 0;
  let firstFailure: string | null = null;
  const one = async (u: Enrolled, scheduled: number, record: boolean) => {
    try {
      const t0 = performance.now();
      const step1 = await c.call('POST', '/v1/auth/login', { json: { username: u.username, password: PASSWORD } });
      const t1 = performance.now();
      if (step1.status !== 200 || step1.json.status !== 'mfa_required') throw new Error(`login: ${step1.status} ${step1.text.slice(0, 200)}`);
      const step2 = await c.call('POST', '/v1/auth/login/totp', { json: { mfa_token: step1.json.mfa_token, code: totp(u.secret, Date.now()) } });
      const t2 = performance.now();
      if (step2.status !== 200 || step2.json.status !== 'authenticated') throw new Error(`login/totp: ${step2.status} ${step2.text.slice(0, 200)}`);
      if (!record) return;
      total.push(t2 - scheduled);
      password.push(t1 - t0);
      second.push(t2 - t1);
    } catch (e) {
      if (!record) throw e;
      failed++;
      firstFailure ??= e instanceof Error ? e.message : String(e);
    }
  };
  try {
    const inflight: Array<Promise<void>> = [];
    const start = performance.now() + 50;
    let cpu0 = 0;
    let w0 = 0;
    for (let i = 0; i < users.length; i++) {
      const at = start + (i * 1000) / rate;
      await sleep(at - performance.now());
      if (i === warmup) {
        cpu0 = cpuSeconds(target.pid);
        w0 = performance.now();
      }
      inflight.push(one(users[i]!, at, i >= warmup));
    }
    await Promise.all(inflight);
    const seconds = (performance.now() - w0) / 1000;
    const serverCpuPct = (100 * (cpuSeconds(target.pid) - cpu0)) / seconds;
    return { rate, seconds, started: users.length - warmup, failed, firstFailure, total: latency(total), password: latency(password), totp: latency(second), serverCpuPct };
  } finally {
    c.close();
  }
}

async function load(target: ServerTarget, name: string, spec: Pick<LoadSpec, 'path' | 'headers' | 'body'> & { method: 'GET' | 'POST' }): Promise<LoadRow> {
  let cpu0 = 0;
  let cpu1 = 0;
  let t0 = 0;
  let t1 = 0;
  const result = await runLoadInChild(
    {
      host: '127.0.0.1',
      port: target.port,
      ca: target.ca,
      ...spec,
      method: spec.method as LoadSpec['method'], // the load generator serialises any method; GET carries Content-Length: 0
      connections: env('BENCH_ID_CONNECTIONS', 4),
      warmupMs: env('BENCH_ID_WARMUP_MS', 1000),
      durationMs: env('BENCH_ID_DURATION_MS', 4000),
      client: 'raw',
    },
    (e) => {
      if (e === 'start') [cpu0, t0] = [cpuSeconds(target.pid), performance.now()];
      else [cpu1, t1] = [cpuSeconds(target.pid), performance.now()];
    },
  );
  if (result.requests === 0) throw new Error(`${name}: no successful request (${result.firstBadResponse ?? 'no response'})`);
  const serverCpuPct = (100 * (cpu1 - cpu0)) / ((t1 - t0) / 1000);
  return { name, load: result, serverCpuPct, perCpuSec: result.rps / (serverCpuPct / 100) };
}

export async function runIdentity(opts: { quiet?: boolean } = {}): Promise<IdentityResult> {
  const log = (s: string) => opts.quiet || console.log(s);
  const rate = env('BENCH_ID_LOGIN_RATE', 20);
  const loginMs = env('BENCH_ID_LOGIN_MS', 10_000);
  const warmup = Math.max(5, Math.round(rate)); // one second of sign-ins
  const nUsers = warmup + Math.ceil((rate * loginMs) / 1000);

  log(`  in process: Argon2id verifyPassword (${env('BENCH_ID_ARGON2_SAMPLES', 30)} samples), then verifyAccess vs jose jwtVerify ...`);
  const argon2 = await argon2Floor(env('BENCH_ID_ARGON2_SAMPLES', 30));
  const verify = await verifyInProcess(env('BENCH_ID_SLICE_MS', 500), env('BENCH_ID_ROUNDS', 2));

  log('  starting palisade (SQLite, file seal) ...');
  // The owner token carries the `pal_` API-key prefix: since the identity engine, a bearer without it is parsed as a
  // JWT access token, so lib/servers.ts's prefix-less bootstrap token answers 401 (PAL_AUTH_TOKEN_INVALID).
  const owner = `pal_bench_owner_${randomBytes(24).toString('base64url')}`;
  const server = await startPalisade({ env: { PALISADE_BOOTSTRAP_TOKEN: owner } });
  try {
    const target: ServerTarget = { ...server.target, headers: { authorization: `Bearer ${owner}` } };
    log(`  creating and enrolling ${nUsers} users (password + TOTP) ...`);
    const s0 = performance.now();
    const users = await enrolUsers(target, nUsers);
    const setupSeconds = (performance.now() - s0) / 1000;
    log(`  sign-in: ${rate}/s for ${loginMs / 1000} s after ${warmup} warm-up sign-ins ...`);
    const login = { ...(await loginLoad(target, users, rate, warmup)), users: nUsers, setupSeconds };

    const c = client(target, 1);
    let svc: Answer;
    let key: Answer;
    try {
      svc = await c.call('POST', '/v1/services', { headers: target.headers, json: { name: `bench-agent-${randomBytes(3).toString('hex')}`, roles: ['agent'] } });
      expectStatus(svc, 201, 'POST /v1/services');
      key = await c.call('POST', `/v1/services/${String(svc.json.id)}/api-keys`, { headers: target.headers, json: { name: 'oauth client' } });
      expectStatus(key, 201, 'POST /v1/services/:id/api-keys');
    } finally {
      c.close();
    }
    const basic = { authorization: `Basic ${Buffer.from(`${String(svc.json.id)}:${String(key.json.token)}`).toString('base64')}` };
    const form = { ...basic, 'content-type': 'application/x-www-form-urlencoded' };
    const grantBody = new URLSearchParams({ grant_type: 'client_credentials', scope: 'pki:ca:read' }).toString();
    const c2 = client(target, 1);
    let accessToken: string;
    try {
      const t = await c2.call('POST', '/v1/oauth/token', { headers: basic, form: { grant_type: 'client_credentials', scope: 'pki:ca:read' } });
      expectStatus(t, 200, 'POST /v1/oauth/token');
      accessToken = String(t.json.access_token);
      expectStatus(await c2.call('GET', '/v1/pki/cas', { headers: { authorization: `Bearer ${accessToken}` } }), 200, 'GET /v1/pki/cas with the access token');
      const intro = await c2.call('POST', '/v1/oauth/introspect', { headers: basic, form: { token: accessToken } });
      if (intro.json.active !== true) throw new Error(`introspection: ${intro.status} ${intro.text.slice(0, 300)}`);
    } finally {
      c2.close();
    }

    log('  HTTPS: GET /v1/pki/cas with the bearer token ...');
    const bearer = await load(target, 'GET /v1/pki/cas (bearer JWT)', { method: 'GET', path: '/v1/pki/cas', headers: { authorization: `Bearer ${accessToken}` }, body: '' });
    log('  HTTPS: POST /v1/oauth/token client_credentials ...');
    const grant = await load(target, 'POST /v1/oauth/token (client_credentials)', { method: 'POST', path: '/v1/oauth/token', headers: form, body: grantBody });
    log('  HTTPS: POST /v1/oauth/introspect ...');
    const introspect = await load(target, 'POST /v1/oauth/introspect', { method: 'POST', path: '/v1/oauth/introspect', headers: form, body: new URLSearchParams({ token: accessToken }).toString() });
    return { cores: cpus().length, argon2, login, verify, bearer, grant, introspect };
  } finally {
    await stop(server.child);
    await rm(server.dataDir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------------------------------------ report

const ms = (x: number) => num(x, x < 10 ? 2 : 1);
const pct = (x: number) => `${num(x)}%`;
export const loginVerdict = (r: IdentityResult) => (r.login.failed === 0 && r.login.total.p99 < LOGIN_P99_MS ? 'MET' : 'NOT MET');

/** Rows for the summary of bench/run.ts: capability, palisade, peer / limit, ratio, ratio per CPU-s, goal. */
export function identitySummaryRows(r: IdentityResult): Cell[][] {
  const [kLow, kHigh] = KEYCLOAK_PER_VCPU;
  return [
    [`password + TOTP sign-in, ${r.login.rate}/s`, `p50 ${ms(r.login.total.p50)} / p99 ${ms(r.login.total.p99)} ms`, `Argon2id verify p50 ${ms(r.argon2.p50)} ms`, (r.argon2.p50 / r.login.total.p50).toFixed(3), '-', `p99 < ${LOGIN_P99_MS} ms: ${loginVerdict(r)}`],
    ['access token verify, in process', `${num(r.verify.palisade)}/s`, `jose jwtVerify, ${num(r.verify.jose)}/s`, (r.verify.palisade / r.verify.jose).toFixed(3), '-', '-'],
    ['  same, over HTTPS (GET /v1/pki/cas)', `${num(r.bearer.load.rps)} req/s`, `jose jwtVerify, ${num(r.verify.jose)}/s`, (r.bearer.load.rps / r.verify.jose).toFixed(3), (r.bearer.perCpuSec / r.verify.jose).toFixed(3), '-'],
    ['client-credentials grants', `${num(r.grant.load.rps)}/s, ${num(r.grant.perCpuSec)}/CPU-s`, `Keycloak ${kLow}–${kHigh}/vCPU (published)`, '-', (r.grant.perCpuSec / kHigh).toFixed(3), `≥ ${kLow}/CPU-s: ${r.grant.perCpuSec >= kLow ? 'MET' : 'NOT MET'}`],
    ['token introspection', `${num(r.introspect.load.rps)}/s, ${num(r.introspect.perCpuSec)}/CPU-s`, `verifyAccess in process, ${num(r.verify.palisade)}/s`, (r.introspect.load.rps / r.verify.palisade).toFixed(3), (r.introspect.perCpuSec / r.verify.palisade).toFixed(3), '-'],
  ];
}

export function printIdentity(r: IdentityResult): void {
  heading('identity: sign-in, tokens, grants, introspection');
  const l = r.login;
  console.log(`(1) password + TOTP sign-in, open loop at ${l.rate}/s for ${num(l.seconds, 1)} s (${l.started} sign-ins, ${l.failed} failed), one user per sign-in`);
  console.log(`    (${l.users} users created and enrolled in ${num(l.setupSeconds, 1)} s); server CPU ${pct(l.serverCpuPct)} of one core during the window`);
  console.log('');
  console.log(
    table(
      ['step', 'n', 'p50 ms', 'p99 ms', 'max ms'],
      [
        ['POST /v1/auth/login (password)', l.password.n, ms(l.password.p50), ms(l.password.p99), ms(l.password.max)],
        ['POST /v1/auth/login/totp', l.totp.n, ms(l.totp.p50), ms(l.totp.p99), ms(l.totp.max)],
        ['sign-in, both (from scheduled start)', l.total.n, ms(l.total.p50), ms(l.total.p99), ms(l.total.max)],
        ['limit: Argon2id verifyPassword, in process', r.argon2.n, ms(r.argon2.p50), ms(r.argon2.p99), ms(r.argon2.max)],
      ],
    ),
  );
  if (l.firstFailure) console.log(`    first failure: ${l.firstFailure}`);
  console.log(`    sign-in p50 ÷ Argon2id p50 = ${(l.total.p50 / r.argon2.p50).toFixed(2)}× (1.0 = nothing but the hash); target p99 < ${LOGIN_P99_MS} ms (seed: < ${SEED_LOGIN_MS} ms): ${loginVerdict(r)}`);
  console.log('');
  const v = r.verify;
  console.log(`(2) access-token (${v.alg}) verification, in process, one in flight, alternating slices (noise ${pct(100 * v.noise)}):`);
  console.log(`    TokenService.verifyAccess ${num(v.palisade)}/s vs jose jwtVerify (same token, same public key, same claim checks) ${num(v.jose)}/s: ratio ${(v.palisade / v.jose).toFixed(3)}`);
  console.log('');
  console.log(`(3)/(4) over HTTPS: ${r.grant.load.connections} keep-alive TLS 1.3 connections, one request in flight each, ${num(r.grant.load.seconds, 1)} s windows, load generator in a child process`);
  console.log('');
  const [kLow, kHigh] = KEYCLOAK_PER_VCPU;
  console.log(
    table(
      ['operation', 'req/s', 'p50 ms', 'p99 ms', 'server CPU', 'req/CPU-s', 'client CPU', 'non-2xx', 'reference', 'ratio'],
      [
        [r.bearer.name, num(r.bearer.load.rps), ms(r.bearer.load.latencyMs.p50), ms(r.bearer.load.latencyMs.p99), pct(r.bearer.serverCpuPct), num(r.bearer.perCpuSec), pct(r.bearer.load.clientCpuPct), r.bearer.load.non2xx + r.bearer.load.errors, `jose ${num(v.jose)}/s`, `${(r.bearer.perCpuSec / v.jose).toFixed(3)}/CPU-s`],
        [r.grant.name, num(r.grant.load.rps), ms(r.grant.load.latencyMs.p50), ms(r.grant.load.latencyMs.p99), pct(r.grant.serverCpuPct), num(r.grant.perCpuSec), pct(r.grant.load.clientCpuPct), r.grant.load.non2xx + r.grant.load.errors, `Keycloak ${kLow}–${kHigh}/vCPU`, `${(r.grant.perCpuSec / kHigh).toFixed(2)}–${(r.grant.perCpuSec / kLow).toFixed(2)}`],
        [r.introspect.name, num(r.introspect.load.rps), ms(r.introspect.load.latencyMs.p50), ms(r.introspect.load.latencyMs.p99), pct(r.introspect.serverCpuPct), num(r.introspect.perCpuSec), pct(r.introspect.load.clientCpuPct), r.introspect.load.non2xx + r.introspect.load.errors, `verifyAccess ${num(v.palisade)}/s`, `${(r.introspect.perCpuSec / v.palisade).toFixed(3)}/CPU-s`],
      ],
    ),
  );
  for (const x of [r.bearer, r.grant, r.introspect]) if (x.load.firstBadResponse) console.log(`    ${x.name}: first bad response ${x.load.firstBadResponse.slice(0, 200)}`);
  console.log('');
  console.log(`req/CPU-s = req/s ÷ server CPU (cores): the per-core figure. Client credentials: ${num(r.grant.perCpuSec)} grants per CPU-second against Keycloak's published`);
  console.log(`${kLow}–${kHigh} per vCPU (not measured here; ratio = ours ÷ ${kHigh} … ours ÷ ${kLow}); on this ${r.cores}-core machine the load generator shares the cores.`);
  console.log('Bearer and introspection ratios = HTTPS req/CPU-s ÷ the in-process verification rate: the share of a request that is the token check itself.');
}

if (isEntry(import.meta.url)) {
  printIdentity(await runIdentity());
  process.exit(0);
}
