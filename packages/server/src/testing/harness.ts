/**
 * Test harness: a real Palisade runtime listening on loopback over HTTPS (TLS 1.3), with the SDK as its client,
 * against SQLite or a fresh PostgreSQL database. Every storage test runs against both DIALECTS.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import { PalisadeClient } from '@palisade/sdk';
import { freshPostgresDatabase, requireService } from '@palisade/testkit';
import { loadConfig, type Config } from '../config/config.js';
import { createLogger } from '../logging.js';
import { createRuntime, type Runtime } from '../runtime.js';

export type DialectName = 'sqlite' | 'postgres';

export interface DialectCase {
  name: DialectName;
  /** False when PostgreSQL is not installed (outside CI only; in CI global setup fails instead). */
  available: boolean;
}

export function dialects(): DialectCase[] {
  const pg = inject('pgUrl');
  if (!pg) requireService('postgres', 'PostgreSQL dialect tests');
  return [
    { name: 'sqlite', available: true },
    { name: 'postgres', available: pg !== null },
  ];
}

export type SealName = 'file' | 'passphrase' | 'pkcs11';

export interface ServerCase {
  /** e.g. `postgres-pkcs11`, for test titles and unique names. */
  name: string;
  dialect: DialectName;
  seal: 'file' | 'pkcs11';
  available: boolean;
}

/** Every dialect with the development seal and with the HSM seal (SoftHSM2): the whole KMS suite runs on each. */
export function serverCases(): ServerCase[] {
  const hsm = inject('softhsm');
  if (!hsm) requireService('softhsm2', 'pkcs11 seal tests');
  return dialects().flatMap((d) =>
    (['file', 'pkcs11'] as const).map((seal) => ({ name: `${d.name}-${seal}`, dialect: d.name, seal, available: d.available && (seal === 'file' || hsm !== null) })),
  );
}

/** Environment for the pkcs11 seal on the test run's SoftHSM2 token (SOFTHSM2_CONF must be set before the module loads). */
export function softHsmEnv(): Record<string, string> {
  const hsm = inject('softhsm');
  if (!hsm) throw new Error('SoftHSM2 is not available');
  process.env.SOFTHSM2_CONF = hsm.conf;
  return { PALISADE_SEAL: 'pkcs11', PALISADE_PKCS11_MODULE: hsm.module, PALISADE_PKCS11_TOKEN: hsm.label, PALISADE_PKCS11_PIN: hsm.pin };
}

/** A mutable clock for tests that need time to pass (rotation, destruction, expiry). */
export class TestClock {
  #t: number;
  constructor(start = Date.now()) {
    this.#t = start;
  }
  now = (): Date => new Date(this.#t);
  advanceDays(days: number): void {
    this.#t += days * 86_400_000;
  }
  advanceMinutes(minutes: number): void {
    this.#t += minutes * 60_000;
  }
  set(t: Date | string): void {
    this.#t = new Date(t).getTime();
  }
}

export interface TestServer {
  rt: Runtime;
  token: string;
  client: PalisadeClient;
  addr: string;
  ca: string;
  clock: TestClock;
  dataDir: string;
  /** A client with another token (e.g. a restricted API key). */
  clientWith(token: string): PalisadeClient;
  /** Stop the runtime and start a new one on the same data directory and database (a server restart). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export const OWNER_TOKEN = 'pal_test_owner_token_0123456789abcdefghijklmnopqrstuvwxyz';

/** A test configuration in a fresh data directory (and a fresh PostgreSQL database for `postgres`), owned by OWNER_TOKEN. */
export async function testConfig(dialect: DialectName, opts: { seal?: SealName; env?: Record<string, string>; prefix?: string } = {}): Promise<{ config: Config; dataDir: string }> {
  const dataDir = await mkdtemp(join(tmpdir(), opts.prefix ?? 'palisade-test-'));
  const sealEnv: Record<string, string> = opts.seal === 'pkcs11' ? softHsmEnv() : opts.seal === 'passphrase' ? { PALISADE_SEAL: 'passphrase' } : {};
  const env: Record<string, string> = { PALISADE_DATA_DIR: dataDir, PALISADE_ADDR: '127.0.0.1:0', PALISADE_BOOTSTRAP_TOKEN: OWNER_TOKEN, ...sealEnv, ...opts.env };
  if (dialect === 'postgres') {
    const admin = inject('pgUrl');
    if (!admin) throw new Error('PostgreSQL is not available');
    env.PALISADE_DATABASE_URL = await freshPostgresDatabase(admin);
  }
  const config = loadConfig(env as NodeJS.ProcessEnv, dataDir);
  config.storage.sqlite_synchronous = 'normal';
  config.seal.argon2 = { memory_kib: 8192, iterations: 1, parallelism: 1 }; // tests need the scheme, not the cost
  config.seal.pkcs11.key_label = `palisade-root-${randomBytes(6).toString('hex')}`; // test servers share one token
  return { config, dataDir };
}

export async function startServer(dialect: DialectName, opts: { seal?: SealName; env?: Record<string, string>; mutate?: (c: Config) => void; /** collect every log line (debug level) */ logs?: string[] } = {}): Promise<TestServer> {
  const { config, dataDir } = await testConfig(dialect, opts);
  opts.mutate?.(config);
  const clock = new TestClock();
  const clients: PalisadeClient[] = [];
  const boot = async () => {
    const logs = opts.logs;
    const log = logs ? createLogger('debug', { write: (line: string) => void logs.push(line) }) : createLogger(process.env.DBG_LOG ?? 'silent');
    const rt = await createRuntime(config, { log, tls: true, clock: clock.now });
    await rt.app.listen({ host: '127.0.0.1', port: 0 });
    return rt;
  };
  const addrOf = (rt: Runtime) => `127.0.0.1:${(rt.app.server.address() as { port: number }).port}`;
  const rt = await boot();
  const server: TestServer = {
    rt,
    token: OWNER_TOKEN,
    client: null as unknown as PalisadeClient,
    addr: addrOf(rt),
    ca: rt.tls!.ca,
    clock,
    dataDir,
    clientWith(token: string) {
      const c = new PalisadeClient({ addr: server.addr, token, ca: server.ca });
      clients.push(c);
      return c;
    },
    async restart() {
      for (const c of clients.splice(0)) c.close();
      await server.rt.close();
      server.rt = await boot();
      server.addr = addrOf(server.rt);
      server.client = server.clientWith(OWNER_TOKEN);
    },
    async close() {
      for (const c of clients) c.close();
      await server.rt.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  server.client = server.clientWith(OWNER_TOKEN);
  return server;
}

/** The error code a promise rejects with (PalisadeApiError), or a failure if it resolves. */
export async function codeOf(p: Promise<unknown>): Promise<{ status: number; code: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as { status?: number; problem?: { code: string } };
    if (err.problem) return { status: err.status ?? 0, code: err.problem.code };
    throw e;
  }
  throw new Error('expected the call to fail');
}
