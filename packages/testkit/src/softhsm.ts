/**
 * Throwaway SoftHSM2 tokens for tests: a temp dir with its own softhsm2.conf and token directory, one
 * initialised token, and the path of the PKCS#11 module to load.
 *
 * IMPORTANT: SoftHSM reads SOFTHSM2_CONF from the process environment when the module is C_Initialize'd (the
 * first PKCS#11 open in this process), not when the test calls startSoftHsm(). Call
 * {@link useSoftHsmEnv}(handle) before the first open, and create every token you need (initToken) before it
 * too: SoftHSM scans the token directory at C_Initialize.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findExecutable, makeTempDir, removeDirQuietly } from './proc.js';

export interface StartSoftHsmOptions {
  /** Label of the first token. Default 'palisade-test'. */
  label?: string;
  /** User PIN of every token created through the handle. Default '1234'. */
  pin?: string;
  /** Security-officer PIN. Default '5678'. */
  soPin?: string;
}

export interface SoftHsmHandle {
  /** Path of libsofthsm2.so (see {@link findSoftHsmModule}). */
  readonly module: string;
  readonly label: string;
  readonly pin: string;
  readonly soPin: string;
  /** The temp dir (tokens live in `<dir>/tokens`). */
  readonly dir: string;
  /** Path of this instance's softhsm2.conf. */
  readonly conf: string;
  /** Environment for child processes (and for this one: {@link useSoftHsmEnv}). */
  readonly env: { SOFTHSM2_CONF: string };
  /** Initialise another token (same PINs) in this token directory. */
  initToken(label: string): void;
  /** `softhsm2-util --delete-token`: simulates "token removed" for a process that has it open. */
  deleteToken(label?: string): void;
  /** Remove the temp dir. Idempotent. */
  stop(): Promise<void>;
}

const MODULE_PATHS = [
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib64/pkcs11/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
];

const readable = (p: string): boolean => {
  try {
    accessSync(p, constants.R_OK);
    return true;
  } catch {
    return false;
  }
};

/**
 * Where libsofthsm2.so lives: $PALISADE_SOFTHSM_MODULE, else the known Debian/Fedora paths, else what
 * `dpkg -L libsofthsm2 softhsm2` lists (Debian ships the module in libsofthsm2). null if none.
 */
export function findSoftHsmModule(env: NodeJS.ProcessEnv = process.env): string | null {
  if (env.PALISADE_SOFTHSM_MODULE) return readable(env.PALISADE_SOFTHSM_MODULE) ? env.PALISADE_SOFTHSM_MODULE : null;
  const known = MODULE_PATHS.find(readable);
  if (known) return known;
  for (const pkg of ['libsofthsm2', 'softhsm2']) {
    try {
      const files = execFileSync('dpkg', ['-L', pkg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      const hit = files.split('\n').find((f) => f.endsWith('/libsofthsm2.so') && readable(f));
      if (hit) return hit;
    } catch {
      // not Debian, or the package is not installed
    }
  }
  return null;
}

/** Point this process at the handle's softhsm2.conf (before the first C_Initialize). Returns a restore function. */
export function useSoftHsmEnv(handle: Pick<SoftHsmHandle, 'conf'>): () => void {
  const previous = process.env.SOFTHSM2_CONF;
  process.env.SOFTHSM2_CONF = handle.conf;
  return () => {
    if (previous === undefined) delete process.env.SOFTHSM2_CONF;
    else process.env.SOFTHSM2_CONF = previous;
  };
}

export async function startSoftHsm(opts: StartSoftHsmOptions = {}): Promise<SoftHsmHandle> {
  const util = findExecutable('softhsm2-util');
  const modulePath = findSoftHsmModule();
  if (!util || !modulePath) {
    const what = util ? 'libsofthsm2.so not found (set PALISADE_SOFTHSM_MODULE)' : 'softhsm2-util not found';
    throw new Error(`[palisade testkit] ${what} (run: sudo scripts/install-services.sh)`);
  }
  const { label = 'palisade-test', pin = '1234', soPin = '5678' } = opts;
  const dir = makeTempDir('palisade-softhsm-', null);
  const conf = join(dir, 'softhsm2.conf');
  const env = { SOFTHSM2_CONF: conf };
  const cleanup = (): void => removeDirQuietly(dir);
  process.once('exit', cleanup);

  const softhsm = (args: string[]): void => {
    try {
      execFileSync(util, args, { env: { ...process.env, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      const err = e as { stderr?: string; stdout?: string; message: string };
      // args hold PINs, and so does the caught error's message (the command line): name the command by its first argument.
      // eslint-disable-next-line preserve-caught-error
      throw new Error(`[palisade testkit] softhsm2-util ${args[0]} failed: ${(err.stderr || err.stdout || err.message).trim()}`);
    }
  };
  const initToken = (l: string): void => softhsm(['--init-token', '--free', '--label', l, '--pin', pin, '--so-pin', soPin]);

  try {
    mkdirSync(join(dir, 'tokens'), { mode: 0o700 });
    writeFileSync(conf, `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
    initToken(label);
  } catch (e) {
    cleanup();
    process.removeListener('exit', cleanup);
    throw e;
  }

  return {
    module: modulePath,
    label,
    pin,
    soPin,
    dir,
    conf,
    env,
    initToken,
    deleteToken: (l = label) => softhsm(['--delete-token', '--token', l]),
    stop: async () => {
      cleanup();
      process.removeListener('exit', cleanup);
    },
  };
}
