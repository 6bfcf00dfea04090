/**
 * Throwaway PostgreSQL cluster for tests: initdb into a temp dir, start
 * `postgres` on a free 127.0.0.1 port with durability switched off, tear
 * everything down on stop() (or when the test process exits).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { accessSync, closeSync, constants, openSync, readdirSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { freshPostgresDatabase } from './pg-db.js';
import {
  findExecutable,
  getFreePort,
  makeTempDir,
  removeDirQuietly,
  sleep,
  tailFile,
  terminate,
  tieLifetime,
  unprivilegedUser,
  type RunAs,
} from './proc.js';

export interface StartPostgresOptions {
  /** Directory holding `initdb` and `postgres`. Default: see {@link findPostgresBinDir}. */
  binDir?: string;
  /** Port to listen on. Default: a free port (retried on a bind race). */
  port?: number;
  /** How long to wait for the server to accept queries. Default 30 s. */
  startTimeoutMs?: number;
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string | number | boolean>;
}

export interface PostgresHandle {
  /** Superuser URL: postgres://palisade@127.0.0.1:<port>/postgres (trust auth, no password). */
  readonly url: string;
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly user: 'palisade';
  /** Temp dir (data dir is `<dir>/data`, Unix socket and log file live in `<dir>`). */
  readonly dir: string;
  readonly binDir: string;
  /** CREATE DATABASE (default name t_<random>) and return its URL. */
  createDatabase(name?: string): Promise<string>;
  /** Fast shutdown (SIGINT), wait for exit, remove the temp dir. Idempotent. */
  stop(): Promise<void>;
}

const SUPERUSER = 'palisade';

function hasPgBinaries(dir: string): boolean {
  try {
    accessSync(join(dir, 'initdb'), constants.X_OK);
    accessSync(join(dir, 'postgres'), constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Where `initdb`/`postgres` live: $PALISADE_PG_BIN, else the newest
 * /usr/lib/postgresql/<major>/bin (Debian/Ubuntu keep them off PATH), else the
 * directory of `initdb` on PATH (symlinks resolved). null if none.
 */
export function findPostgresBinDir(env: NodeJS.ProcessEnv = process.env): string | null {
  const fromEnv = env.PALISADE_PG_BIN;
  if (fromEnv) return hasPgBinaries(fromEnv) ? fromEnv : null;

  try {
    const majors = readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+(\.\d+)?$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of majors) {
      const dir = `/usr/lib/postgresql/${v}/bin`;
      if (hasPgBinaries(dir)) return dir;
    }
  } catch {
    // not Debian-style
  }

  const initdb = findExecutable('initdb', env.PATH);
  if (initdb) {
    for (const dir of [dirname(initdb), dirname(realpathSync(initdb))]) {
      if (hasPgBinaries(dir)) return dir;
    }
  }
  return null;
}

function childEnv(dir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    // Don't let the caller's libpq / locale settings leak into the server.
    if (k.startsWith('PG') || k.startsWith('LC_') || k === 'LANG' || k === 'LANGUAGE') continue;
    env[k] = v;
  }
  env.LC_ALL = 'C';
  env.HOME = dir;
  return env;
}

function spawnOpts(runAs: RunAs | null, dir: string, stdio: SpawnOptions['stdio']): SpawnOptions {
  return {
    cwd: dir,
    env: childEnv(dir),
    stdio,
    ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
  };
}

function runInitdb(binDir: string, dataDir: string, dir: string, runAs: RunAs | null): Promise<void> {
  const args = ['-D', dataDir, '-A', 'trust', '-U', SUPERUSER, '--no-sync', '-E', 'UTF8', '--locale=C'];
  return new Promise((resolve, reject) => {
    const child = spawn(join(binDir, 'initdb'), args, spawnOpts(runAs, dir, ['ignore', 'pipe', 'pipe']));
    let out = '';
    const collect = (b: Buffer): void => {
      out = (out + b.toString('utf8')).slice(-8000);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`[palisade testkit] initdb failed (${signal ?? `exit ${code}`}${runAs ? `, as user ${runAs.user}` : ''}):\n${out}`));
    });
  });
}

async function queryable(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

const exited = (c: ChildProcess): boolean => c.exitCode !== null || c.signalCode !== null;

export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PostgresHandle> {
  const binDir = opts.binDir ?? findPostgresBinDir();
  if (!binDir || !hasPgBinaries(binDir)) {
    throw new Error(
      '[palisade testkit] PostgreSQL binaries (initdb, postgres) not found ' +
        '(set PALISADE_PG_BIN or run: sudo scripts/install-services.sh)',
    );
  }
  const runAs = unprivilegedUser();
  const dir = makeTempDir('palisade-pg-', runAs);
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'postgres.log');
  const timeoutMs = opts.startTimeoutMs ?? 30_000;

  try {
    await runInitdb(binDir, dataDir, dir, runAs);

    const settings: Record<string, string | number | boolean> = {
      fsync: 'off',
      synchronous_commit: 'off',
      full_page_writes: 'off',
      max_connections: 200,
      ...opts.settings,
    };
    const settingArgs = Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${String(v)}`]);

    for (let attempt = 1; ; attempt++) {
      const port = opts.port ?? (await getFreePort());
      const url = `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres`;
      const logFd = openSync(logFile, 'w');
      let child: ChildProcess;
      try {
        child = spawn(
          join(binDir, 'postgres'),
          ['-D', dataDir, '-k', dir, '-h', '127.0.0.1', '-p', String(port), '-F', ...settingArgs],
          spawnOpts(runAs, dir, ['ignore', logFd, logFd]),
        );
      } finally {
        closeSync(logFd);
      }
      let spawnError: Error | undefined;
      child.once('error', (e) => {
        spawnError = e;
      });
      // SIGQUIT = immediate shutdown if we die without calling stop().
      const disarm = tieLifetime(child, dir, 'SIGQUIT');

      const deadline = Date.now() + timeoutMs;
      let ready = false;
      while (!ready && !exited(child) && !spawnError && Date.now() < deadline) {
        ready = await queryable(url);
        if (!ready) await sleep(50);
      }

      if (ready) {
        let stopping: Promise<void> | undefined;
        return {
          url,
          host: '127.0.0.1',
          port,
          user: SUPERUSER,
          dir,
          binDir,
          createDatabase: (name?: string) => freshPostgresDatabase(url, name),
          stop: () => {
            stopping ??= (async () => {
              await terminate(child, 'SIGINT', 15_000); // SIGINT = fast shutdown
              disarm();
              removeDirQuietly(dir);
            })();
            return stopping;
          },
        };
      }

      const log = tailFile(logFile);
      await terminate(child, 'SIGQUIT', 5_000);
      disarm();
      const bindRace = /could not bind|address already in use|could not create any TCP\/IP sockets/i.test(log);
      if (bindRace && opts.port === undefined && attempt < 3) continue;
      const why = spawnError
        ? `could not spawn postgres: ${spawnError.message}`
        : exited(child)
          ? `postgres exited (${child.signalCode ?? `code ${child.exitCode}`})`
          : `postgres did not accept connections within ${timeoutMs} ms`;
      throw new Error(`[palisade testkit] ${why}${runAs ? ` [running as ${runAs.user}]` : ''}; log tail:\n${log}`);
    }
  } catch (e) {
    removeDirQuietly(dir);
    throw e;
  }
}
