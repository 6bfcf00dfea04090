/**
 * Throwaway Redis for tests (no persistence, temp working dir, free port) and a
 * minimal one-shot RESP client so tests need no Redis library.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import {
  findExecutable,
  getFreePort,
  makeTempDir,
  removeDirQuietly,
  sleep,
  tailFile,
  terminate,
  tieLifetime,
} from './proc.js';

export interface StartRedisOptions {
  /** Path to redis-server. Default: $PALISADE_REDIS_SERVER, else PATH. */
  binary?: string;
  /** Port to listen on. Default: a free port (retried on a bind race). */
  port?: number;
  /** How long to wait for PONG. Default 15 s. */
  startTimeoutMs?: number;
}

export interface RedisHandle {
  /** redis://127.0.0.1:<port> */
  readonly url: string;
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly dir: string;
  /** SIGTERM (nothing is saved), wait for exit, remove the temp dir. Idempotent. */
  stop(): Promise<void>;
}

export type RespValue = string | number | null | RespValue[];

/** A `-ERR ...` reply. */
export class RedisReplyError extends Error {
  override readonly name = 'RedisReplyError';
}

export function findRedisServer(env: NodeJS.ProcessEnv = process.env): string | null {
  return env.PALISADE_REDIS_SERVER || findExecutable('redis-server', env.PATH);
}

function encodeCommand(args: readonly (string | number | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a), 'utf8');
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** Parses one RESP2 value at `pos`; undefined if `buf` does not hold a complete one yet. */
function parseResp(buf: Buffer, pos = 0): { value: RespValue | RedisReplyError; next: number } | undefined {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return undefined;
  const type = String.fromCharCode(buf[pos] ?? 0);
  const line = buf.toString('utf8', pos + 1, eol);
  const after = eol + 2;
  switch (type) {
    case '+':
      return { value: line, next: after };
    case '-':
      return { value: new RedisReplyError(line), next: after };
    case ':':
      return { value: Number(line), next: after };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, next: after };
      if (buf.length < after + len + 2) return undefined;
      return { value: buf.toString('utf8', after, after + len), next: after + len + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, next: after };
      const items: RespValue[] = [];
      let p = after;
      for (let i = 0; i < n; i++) {
        const r = parseResp(buf, p);
        if (!r) return undefined;
        if (r.value instanceof RedisReplyError) throw r.value;
        items.push(r.value);
        p = r.next;
      }
      return { value: items, next: p };
    }
    default:
      throw new Error(`unexpected RESP type byte ${JSON.stringify(type)}`);
  }
}

/**
 * Opens a connection to `url` (redis://host:port[/db], optional password),
 * sends one command, resolves with the reply (bulk strings as UTF-8) and closes.
 * `-ERR` replies reject with RedisReplyError.
 */
export function redisCommand(
  url: string,
  args: readonly (string | number | Buffer)[],
  timeoutMs = 5000,
): Promise<RespValue> {
  const u = new URL(url);
  const pre: (readonly (string | number)[])[] = [];
  if (u.password) {
    pre.push(u.username ? ['AUTH', decodeURIComponent(u.username), decodeURIComponent(u.password)] : ['AUTH', decodeURIComponent(u.password)]);
  }
  const db = u.pathname.replace(/^\//, '');
  if (db && db !== '0') pre.push(['SELECT', db]);
  const expected = pre.length + 1;

  return new Promise((resolve, reject) => {
    const socket = connect({ host: u.hostname || '127.0.0.1', port: Number(u.port || 6379) });
    let buf = Buffer.alloc(0);
    let pos = 0;
    let seen = 0;
    const fail = (e: Error): void => {
      socket.destroy();
      reject(e);
    };
    socket.setTimeout(timeoutMs, () => fail(new Error(`redis ${String(args[0])}: timed out after ${timeoutMs} ms`)));
    socket.once('error', fail);
    socket.once('connect', () => {
      socket.write(Buffer.concat([...pre.map(encodeCommand), encodeCommand(args)]));
    });
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      try {
        for (;;) {
          const r = parseResp(buf, pos);
          if (!r) return;
          pos = r.next;
          seen++;
          if (r.value instanceof RedisReplyError) return fail(r.value);
          if (seen === expected) {
            socket.end();
            return resolve(r.value);
          }
        }
      } catch (e) {
        fail(e as Error);
      }
    });
    socket.once('close', () => {
      if (seen < expected) reject(new Error(`redis ${String(args[0])}: connection closed before reply`));
    });
  });
}

const exited = (c: ChildProcess): boolean => c.exitCode !== null || c.signalCode !== null;

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisHandle> {
  const binary = opts.binary ?? findRedisServer();
  if (!binary) {
    throw new Error('[palisade testkit] redis-server not found (run: sudo scripts/install-services.sh)');
  }
  // Redis is happy to run as root, so no privilege drop here.
  const dir = makeTempDir('palisade-redis-', null);
  const logFile = join(dir, 'redis.log');
  const timeoutMs = opts.startTimeoutMs ?? 15_000;
  try {
    for (let attempt = 1; ; attempt++) {
      const port = opts.port ?? (await getFreePort());
      const url = `redis://127.0.0.1:${port}`;
      const logFd = openSync(logFile, 'w');
      let child: ChildProcess;
      try {
        child = spawn(
          binary,
          ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no'],
          { cwd: dir, stdio: ['ignore', logFd, logFd] },
        );
      } finally {
        closeSync(logFd);
      }
      let spawnError: Error | undefined;
      child.once('error', (e) => {
        spawnError = e;
      });
      const disarm = tieLifetime(child, dir, 'SIGKILL');

      const deadline = Date.now() + timeoutMs;
      let ready = false;
      while (!ready && !exited(child) && !spawnError && Date.now() < deadline) {
        ready = await redisCommand(url, ['PING'], 1000).then(
          (r) => r === 'PONG',
          () => false,
        );
        if (!ready) await sleep(25);
      }

      if (ready) {
        let stopping: Promise<void> | undefined;
        return {
          url,
          host: '127.0.0.1',
          port,
          dir,
          stop: () => {
            stopping ??= (async () => {
              await terminate(child, 'SIGTERM', 10_000);
              disarm();
              removeDirQuietly(dir);
            })();
            return stopping;
          },
        };
      }

      const log = tailFile(logFile);
      await terminate(child, 'SIGKILL', 5_000);
      disarm();
      if (/address already in use|could not create server tcp listening socket/i.test(log) && opts.port === undefined && attempt < 3) continue;
      const why = spawnError
        ? `could not spawn redis-server: ${spawnError.message}`
        : exited(child)
          ? `redis-server exited (${child.signalCode ?? `code ${child.exitCode}`})`
          : `redis-server did not answer PING within ${timeoutMs} ms`;
      throw new Error(`[palisade testkit] ${why}; log tail:\n${log}`);
    }
  } catch (e) {
    removeDirQuietly(dir);
    throw e;
  }
}
