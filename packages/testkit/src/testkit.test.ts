import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterEach, describe, expect, inject, it, vi } from 'vitest';
import {
  freshPostgresDatabase,
  redisCommand,
  requireService,
  serviceAvailability,
  startPostgres,
  startRedis,
} from './index.js';

const run = promisify(execFile);

const portIsClosed = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

const postgres = requireService('postgres', 'testkit: PostgreSQL');
describe.skipIf(!postgres.available)('testkit: PostgreSQL', () => {
  const adminUrl = (): string => {
    const url = inject('pgUrl');
    expect(url, 'globalSetup must provide pgUrl when postgres is installed').toMatch(/^postgres:\/\/palisade@127\.0\.0\.1:\d+\/postgres$/);
    return url!;
  };

  it('gives each caller a fresh database: create table, insert, select', async () => {
    const url = await freshPostgresDatabase(adminUrl());
    expect(url).toMatch(/\/t_[0-9a-f]{16}$/);
    const rows = await withClient(url, async (c) => {
      await c.query('CREATE TABLE secrets (id serial PRIMARY KEY, name text NOT NULL, sealed bytea NOT NULL)');
      await c.query('INSERT INTO secrets (name, sealed) VALUES ($1, $2), ($3, $4)', ['a', Buffer.from([1, 2]), 'b', Buffer.from([3])]);
      const res = await c.query<{ name: string; sealed: Buffer }>('SELECT name, sealed FROM secrets ORDER BY id');
      return res.rows;
    });
    expect(rows.map((r) => r.name)).toEqual(['a', 'b']);
    expect([...rows[0]!.sealed]).toEqual([1, 2]);
  });

  it('databases are isolated from each other', async () => {
    const [a, b] = await Promise.all([freshPostgresDatabase(adminUrl()), freshPostgresDatabase(adminUrl())]);
    expect(a).not.toBe(b);
    await withClient(a, (c) => c.query('CREATE TABLE only_in_a (x int)'));
    const found = await withClient(b, (c) => c.query("SELECT to_regclass('only_in_a') AS t"));
    expect(found.rows[0]).toEqual({ t: null });
  });

  it('runs with durability off and UTF8 encoding', async () => {
    const settings = await withClient(adminUrl(), async (c) => {
      const r = await c.query<{ name: string; setting: string }>(
        "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'server_encoding')",
      );
      return Object.fromEntries(r.rows.map((x) => [x.name, x.setting]));
    });
    expect(settings).toEqual({ fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', server_encoding: 'UTF8' });
  });

  it('startPostgres()/stop() lifecycle: own cluster, named database, cleanup', async () => {
    const h = await startPostgres();
    try {
      const url = await h.createDatabase('named_db');
      expect(url).toBe(`postgres://palisade@127.0.0.1:${h.port}/named_db`);
      const r = await withClient(url, (c) => c.query<{ db: string; su: boolean }>("SELECT current_database() AS db, current_setting('is_superuser') = 'on' AS su"));
      expect(r.rows[0]).toEqual({ db: 'named_db', su: true });
      await expect(h.createDatabase('Robert"); DROP')).rejects.toThrow(/invalid database name/);
    } finally {
      await h.stop();
    }
    expect(existsSync(h.dir)).toBe(false);
    expect(await portIsClosed(h.port)).toBe(true);
    await h.stop(); // idempotent
  });
});

const redis = requireService('redis', 'testkit: Redis');
describe.skipIf(!redis.available)('testkit: Redis', () => {
  it('answers PING, SET and GET over raw RESP', async () => {
    const url = inject('redisUrl');
    expect(url, 'globalSetup must provide redisUrl when redis is installed').toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/);
    const key = `testkit:${Math.random().toString(36).slice(2)}`;
    expect(await redisCommand(url!, ['PING'])).toBe('PONG');
    expect(await redisCommand(url!, ['SET', key, 'välue\r\nwith crlf'])).toBe('OK');
    expect(await redisCommand(url!, ['GET', key])).toBe('välue\r\nwith crlf');
    expect(await redisCommand(url!, ['GET', `${key}:missing`])).toBeNull();
    expect(await redisCommand(url!, ['INCRBY', `${key}:n`, 41])).toBe(41);
    expect(await redisCommand(url!, ['MGET', key, `${key}:n`])).toEqual(['välue\r\nwith crlf', '41']);
    await expect(redisCommand(url!, ['NOSUCHCOMMAND'])).rejects.toThrow(/ERR/);
    // persistence is off
    expect(await redisCommand(url!, ['CONFIG', 'GET', 'save'])).toEqual(['save', '']);
  });

  it('startRedis()/stop() lifecycle', async () => {
    const h = await startRedis();
    await h.stop();
    expect(existsSync(h.dir)).toBe(false);
    expect(await portIsClosed(h.port)).toBe(true);
  });
});

const softhsm = requireService('softhsm2', 'testkit: SoftHSM2');
describe.skipIf(!softhsm.available)('testkit: SoftHSM2', () => {
  it('softhsm2-util exists and can initialise a token in a private token dir', async () => {
    const { stdout: version } = await run('softhsm2-util', ['--version']);
    expect(version.trim()).toMatch(/^\d+\.\d+/);

    const dir = mkdtempSync(join(tmpdir(), 'palisade-softhsm-'));
    try {
      mkdirSync(join(dir, 'tokens'));
      writeFileSync(join(dir, 'softhsm2.conf'), `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
      const env = { ...process.env, SOFTHSM2_CONF: join(dir, 'softhsm2.conf') };
      const init = await run('softhsm2-util', ['--init-token', '--free', '--label', 'palisade-test', '--so-pin', '12345678', '--pin', '87654321'], { env });
      expect(init.stdout).toMatch(/has been initialized/);
      const slots = await run('softhsm2-util', ['--show-slots'], { env });
      expect(slots.stdout).toMatch(/Label:\s+palisade-test/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('testkit: service rule (CI-or-skip-loudly)', () => {
  const saved = { PATH: process.env.PATH, CI: process.env.CI };
  afterEach(() => {
    process.env.PATH = saved.PATH;
    if (saved.CI === undefined) delete process.env.CI;
    else process.env.CI = saved.CI;
    vi.restoreAllMocks();
  });

  it('reports what is installed', () => {
    const a = serviceAvailability();
    expect(Object.keys(a).sort()).toEqual(['openssl', 'postgres', 'promtool', 'redis', 'softhsm2', 'testssl']);
    for (const s of Object.values(a)) expect(s.available).toBe(s.binary !== null);
  });

  it('outside CI a missing service is skipped with exactly one loud warning', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    process.env.PATH = '';
    delete process.env.CI;
    const r1 = requireService('promtool', 'rule-test suite');
    const r2 = requireService('promtool', 'rule-test suite');
    expect(r1).toEqual({ available: false, reason: expect.stringMatching(/promtool not found/) });
    expect(r2.available).toBe(false);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]![0]).toMatch(
      /^\[palisade testkit\] SKIPPING rule-test suite: promtool not found .* — run: sudo scripts\/install-services\.sh$/,
    );
  });

  it('with CI=true a missing service is an error naming scripts/install-services.sh', () => {
    process.env.PATH = '';
    process.env.CI = 'true';
    expect(() => requireService('promtool', 'rule-test suite')).toThrow(/scripts\/install-services\.sh/);
  });
});
