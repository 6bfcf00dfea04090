/**
 * A transparency-log witness (c2sp.org/tlog-witness): for each configured log (origin → its Ed25519 note verifier
 * keys) it keeps the latest checkpoint it cosigned, and cosigns (c2sp.org/tlog-cosignature, cosignature/v1) a new
 * checkpoint only when the log signed it, the client's `old` size is the one the witness recorded, and a consistency
 * proof (RFC 9162 §2.1.4) links the recorded tree to the new one. The new size and root are persisted before the
 * cosignature is returned.
 *
 * State directory:
 *   witness.key  the witness signer key, `PRIVATE+KEY+<name>+<key ID>+<base64(0x04 || seed)>`, mode 0600
 *   state.json   { "version": 1, "logs": { "<origin>": { "size": n, "root": "<base64>" } } }
 *   witness.lock the pid of the process that has the directory open (one witness per directory)
 * Files are written atomically: temp file, fsync, rename (link for the key: never replaced), fsync of the directory.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { link, mkdir, open, readFile, realpath, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import {
  HASH_BYTES,
  NOTE_COSIGNATURE_V1,
  NOTE_ED25519,
  constantTimeEqual,
  cosignatureSigner,
  formatSignatureLine,
  generateSignerKey,
  isValidKeyName,
  openNote,
  parseCheckpoint,
  parseNote,
  parseSignerKey,
  parseVerifierKey,
  verifyConsistency,
  type NoteSignerKey,
  type NoteVerifier,
} from '@palisade/core';

export const WITNESS_KEY_FILE = 'witness.key';
export const WITNESS_STATE_FILE = 'state.json';
export const WITNESS_LOCK_FILE = 'witness.lock';
/** c2sp.org/tlog-witness: "The client MUST NOT send more than 63 consistency proof lines." */
export const MAX_PROOF_LINES = 63;

/** A log the witness follows: its origin line and the verifier keys (type 0x01) whose signatures it accepts. */
export interface WitnessLog {
  origin: string;
  keys: readonly string[];
}

/** What happened to one add-checkpoint request (for logs and metrics). */
export interface WitnessEvent {
  status: number;
  origin?: string;
  old?: number;
  size?: number;
  message: string;
  /** The whole request, kept when it may be evidence of log misbehaviour (a fork or a proof that does not verify). */
  evidence?: string;
}

export interface WitnessOptions {
  stateDir: string;
  /** The witness name (the key name of its cosignatures). */
  name: string;
  logs: readonly WitnessLog[];
  /** POSIX time in seconds for cosignature timestamps (default: the clock). */
  now?: () => number;
  onEvent?: (e: WitnessEvent) => void;
  /** Test hook: runs inside the per-origin critical section, after the checks and before the state is written. */
  beforeCommit?: (origin: string) => Promise<void> | void;
}

export interface LogState {
  size: number;
  root: Buffer;
}

export type AddCheckpointResult =
  | { ok: true; origin: string; size: number; cosignatures: string[] }
  /** 409 with `Content-Type: text/x.tlog.size`: the client's old size is not the recorded one. */
  | { ok: false; status: 409; conflictSize: number; error: string }
  | { ok: false; status: 400 | 403 | 404 | 409 | 422; error: string };

export type AddCheckpointRequestParse = { ok: true; oldSize: number; proof: Buffer[]; note: string } | { ok: false; error: string };

const SIZE = /^(?:0|[1-9][0-9]*)$/;
const HASH_B64 = /^[A-Za-z0-9+/]{43}=$/;

/**
 * Parse an add-checkpoint request body: `old <size>\n`, up to 63 base64 hash lines, an empty line, the checkpoint
 * note. Never throws.
 */
export function parseAddCheckpointRequest(body: Uint8Array | string): AddCheckpointRequestParse {
  let text: string;
  if (typeof body === 'string') text = body;
  else {
    try {
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(body);
    } catch {
      return { ok: false, error: 'the request is not valid UTF-8' };
    }
  }
  const at = text.indexOf('\n\n');
  if (at < 0) return { ok: false, error: 'the request has no empty line before the checkpoint' };
  const lines = text.slice(0, at).split('\n');
  const note = text.slice(at + 2);
  const m = /^old ([0-9]+)$/.exec(lines[0]!);
  if (!m || !SIZE.test(m[1]!)) return { ok: false, error: 'the first line must be "old <size>" (decimal, no leading zeros)' };
  const oldSize = Number(m[1]);
  if (!Number.isSafeInteger(oldSize)) return { ok: false, error: 'the old size is too large' };
  const proofLines = lines.slice(1);
  if (proofLines.length > MAX_PROOF_LINES) return { ok: false, error: `more than ${MAX_PROOF_LINES} consistency proof lines` };
  const proof: Buffer[] = [];
  for (const l of proofLines) {
    const h = HASH_B64.test(l) ? Buffer.from(l, 'base64') : null;
    if (!h || h.length !== HASH_BYTES || h.toString('base64') !== l) return { ok: false, error: 'a consistency proof line is not the base64 of a 32-byte hash' };
    proof.push(h);
  }
  return { ok: true, oldSize, proof, note };
}

// ---------------------------------------------------------------------------------------------------------------
// files

async function fsyncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // not supported on every platform; the rename itself is still atomic
  } finally {
    await fh?.close();
  }
}

async function writeTemp(dir: string, base: string, data: string, mode: number): Promise<string> {
  const tmp = join(dir, `.${base}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, mode);
  try {
    await fh.writeFile(data, 'utf8');
    await fh.sync();
  } catch (e) {
    await fh.close();
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await fh.close();
  return tmp;
}

/** Write `data` to `dir/base` atomically (temp file, fsync, rename, fsync of the directory). */
export async function writeFileAtomic(dir: string, base: string, data: string, mode = 0o600): Promise<void> {
  const tmp = await writeTemp(dir, base, data, mode);
  try {
    await rename(tmp, join(dir, base));
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await fsyncDir(dir);
}

const isErrno = (e: unknown, code: string): boolean => (e as NodeJS.ErrnoException | null)?.code === code;

/** The witness key in `stateDir`, or null when there is none. Throws if it is unreadable, malformed or readable by others. */
export async function readWitnessKey(stateDir: string): Promise<NoteSignerKey | null> {
  const file = join(stateDir, WITNESS_KEY_FILE);
  let text: string;
  try {
    const st = await stat(file);
    if ((st.mode & 0o077) !== 0) throw new Error(`${file} is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}): chmod 600 it`);
    text = await readFile(file, 'utf8');
  } catch (e) {
    if (isErrno(e, 'ENOENT')) return null;
    throw e;
  }
  let key: NoteSignerKey;
  try {
    key = parseSignerKey(text.trim());
  } catch (e) {
    throw new Error(`${file} is not a witness signer key: ${(e as Error).message}`, { cause: e });
  }
  if (key.type !== NOTE_COSIGNATURE_V1) throw new Error(`${file} is not a cosignature/v1 (type 0x04) key`);
  return key;
}

/**
 * The witness key in `stateDir` for `name`: created (Ed25519, mode 0600, written atomically and never replaced) when
 * there is none. Throws if the directory holds the key of a witness with another name.
 */
export async function ensureWitnessKey(stateDir: string, name: string): Promise<NoteSignerKey> {
  if (!isValidKeyName(name)) throw new Error(`invalid witness name ${JSON.stringify(name)}: it must be non-empty, without white space or "+"`);
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  let key = await readWitnessKey(stateDir);
  if (!key) {
    const tmp = await writeTemp(stateDir, WITNESS_KEY_FILE, `${generateSignerKey(name, NOTE_COSIGNATURE_V1).skey}\n`, 0o600);
    try {
      await link(tmp, join(stateDir, WITNESS_KEY_FILE)); // fails if another process created the key meanwhile
    } catch (e) {
      if (!isErrno(e, 'EEXIST')) throw e;
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
    await fsyncDir(stateDir);
    key = await readWitnessKey(stateDir);
    if (!key) throw new Error(`could not create ${join(stateDir, WITNESS_KEY_FILE)}`);
  }
  if (key.name !== name) throw new Error(`${join(stateDir, WITNESS_KEY_FILE)} is the key of witness ${key.name}, not ${name}`);
  return key;
}

function parseState(text: string, file: string): Map<string, LogState> {
  const fail = (why: string): never => {
    throw new Error(`${file} is corrupt (${why}); refusing to start rather than forget what was witnessed`);
  };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    fail('not JSON');
  }
  const j = json as { version?: unknown; logs?: unknown } | null;
  if (typeof j !== 'object' || j === null || j.version !== 1 || typeof j.logs !== 'object' || j.logs === null || Array.isArray(j.logs)) fail('expected { version: 1, logs: {} }');
  const out = new Map<string, LogState>();
  for (const [origin, v] of Object.entries(j!.logs as Record<string, unknown>)) {
    const e = v as { size?: unknown; root?: unknown } | null;
    const root = typeof e?.root === 'string' && HASH_B64.test(e.root) ? Buffer.from(e.root, 'base64') : null;
    if (!e || !Number.isSafeInteger(e.size) || (e.size as number) < 0 || !root || root.toString('base64') !== e.root) fail(`bad entry for ${origin}`);
    out.set(origin, { size: e!.size as number, root: root! });
  }
  return out;
}

function serializeState(state: ReadonlyMap<string, LogState>): string {
  const logs: Record<string, { size: number; root: string }> = {};
  for (const [origin, s] of [...state].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) logs[origin] = { size: s.size, root: s.root.toString('base64') };
  return `${JSON.stringify({ version: 1, logs }, null, 2)}\n`;
}

/** State directories open in this process (a second Witness on the same directory is refused). */
const openDirs = new Set<string>();

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return isErrno(e, 'EPERM');
  }
}

async function acquireLock(dir: string): Promise<void> {
  const file = join(dir, WITNESS_LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return;
    } catch (e) {
      if (!isErrno(e, 'EEXIST')) throw e;
    }
    const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) {
      throw new Error(`${dir} is in use by another witness (pid ${pid}); two witnesses on one state directory could cosign a rollback`);
    }
    await unlink(file).catch(() => undefined); // stale: its process is gone
  }
  throw new Error(`could not lock ${file}`);
}

// ---------------------------------------------------------------------------------------------------------------
// the witness

export class Witness {
  readonly name: string;
  /** The witness's cosignature/v1 verifier key (type 0x04). */
  readonly verifierKey: string;
  readonly stateDir: string;
  readonly #key: NoteSignerKey;
  readonly #logs: ReadonlyMap<string, NoteVerifier[]>;
  readonly #state: Map<string, LogState>;
  readonly #now: () => number;
  readonly #onEvent: ((e: WitnessEvent) => void) | undefined;
  readonly #beforeCommit: WitnessOptions['beforeCommit'];
  readonly #locks = new Map<string, Promise<void>>();
  readonly #dirKey: string;
  #writes: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(stateDir: string, dirKey: string, key: NoteSignerKey, logs: ReadonlyMap<string, NoteVerifier[]>, state: Map<string, LogState>, opts: WitnessOptions) {
    this.stateDir = stateDir;
    this.#dirKey = dirKey;
    this.name = key.name;
    this.verifierKey = key.vkey;
    this.#key = key;
    this.#logs = logs;
    this.#state = state;
    this.#now = opts.now ?? (() => Math.floor(Date.now() / 1000));
    this.#onEvent = opts.onEvent;
    this.#beforeCommit = opts.beforeCommit;
  }

  /** Open (creating on first start) the state directory: key, recorded checkpoints and the directory lock. */
  static async open(opts: WitnessOptions): Promise<Witness> {
    const logs = new Map<string, NoteVerifier[]>();
    for (const l of opts.logs) {
      if (typeof l.origin !== 'string' || l.origin.length === 0 || l.origin.includes('\n')) throw new Error(`invalid log origin ${JSON.stringify(l.origin)}`);
      const keys = l.keys.map((k) => {
        try {
          return parseVerifierKey(k);
        } catch (e) {
          throw new Error(`bad verifier key for ${l.origin}: ${(e as Error).message}`, { cause: e });
        }
      });
      if (keys.some((k) => k.type !== NOTE_ED25519)) throw new Error(`the keys of log ${l.origin} must be Ed25519 note keys (type 0x01)`);
      logs.set(l.origin, [...(logs.get(l.origin) ?? []), ...keys]);
    }
    const key = await ensureWitnessKey(opts.stateDir, opts.name);
    const dirKey = await realpath(opts.stateDir);
    if (openDirs.has(dirKey)) throw new Error(`${opts.stateDir} is already open in this process`);
    openDirs.add(dirKey);
    try {
      await acquireLock(opts.stateDir);
      const file = join(opts.stateDir, WITNESS_STATE_FILE);
      let text: string | null = null;
      try {
        text = await readFile(file, 'utf8');
      } catch (e) {
        if (!isErrno(e, 'ENOENT')) throw e;
      }
      return new Witness(opts.stateDir, dirKey, key, logs, text === null ? new Map() : parseState(text, file), opts);
    } catch (e) {
      openDirs.delete(dirKey);
      throw e;
    }
  }

  /** The origins the witness follows. */
  get origins(): string[] {
    return [...this.#logs.keys()];
  }

  /** The latest checkpoint recorded for `origin` (a copy), or undefined when it has none. */
  latest(origin: string): LogState | undefined {
    const s = this.#state.get(origin);
    return s && { size: s.size, root: Buffer.from(s.root) };
  }

  /** Wait for pending writes and release the state directory. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#writes;
    await unlink(join(this.stateDir, WITNESS_LOCK_FILE)).catch(() => undefined);
    openDirs.delete(this.#dirKey);
  }

  /** Handle one add-checkpoint request body (c2sp.org/tlog-witness). Throws only on internal failures (storage, signing). */
  async addCheckpoint(body: Uint8Array | string): Promise<AddCheckpointResult> {
    const r = await this.#add(body);
    if (this.#onEvent) {
      const { event } = r;
      try {
        this.#onEvent(event);
      } catch {
        // a logging hook never fails a request
      }
    }
    return r.result;
  }

  async #add(body: Uint8Array | string): Promise<{ result: AddCheckpointResult; event: WitnessEvent }> {
    const bad = (status: 400 | 403 | 404 | 409 | 422, error: string, extra: Partial<WitnessEvent> = {}) => ({
      result: { ok: false as const, status, error },
      event: { status, message: error, ...extra },
    });
    if (this.#closed) throw new Error('the witness is closed');
    const req = parseAddCheckpointRequest(body);
    if (!req.ok) return bad(400, req.error);
    const parsed = parseNote(req.note);
    if (!parsed.ok) return bad(400, parsed.error);
    const cp = parseCheckpoint(parsed.note.text);
    if (!cp.ok) return bad(400, cp.error);
    const { origin, size, root } = cp.checkpoint;
    const ctx = { origin, old: req.oldSize, size };
    const keys = this.#logs.get(origin);
    if (!keys) return bad(404, `unknown log origin ${JSON.stringify(origin)}`, ctx);
    const opened = openNote(req.note, keys);
    if (!opened.ok) return bad(403, opened.reason === 'unverified' ? 'the checkpoint is not signed by a known key of the log' : opened.error, ctx);
    if (req.oldSize > size) return bad(400, `old size ${req.oldSize} is larger than the checkpoint size ${size}`, ctx);

    return this.#withOrigin(origin, async () => {
      const latest = this.#state.get(origin);
      const known = latest?.size ?? 0;
      if (req.oldSize !== known) {
        return {
          result: { ok: false as const, status: 409 as const, conflictSize: known, error: `the latest checkpoint this witness cosigned has size ${known}` },
          event: { status: 409, message: `stale old size (recorded ${known})`, ...ctx },
        };
      }
      const evidence = typeof body === 'string' ? body : Buffer.from(body).toString('utf8');
      if (req.oldSize === size) {
        if (latest && !constantTimeEqual(latest.root, root)) return bad(409, `a checkpoint of size ${size} with another root was already cosigned: the log forked`, { ...ctx, evidence });
        if (req.proof.length !== 0) return bad(422, 'the consistency proof between equal sizes must be empty', { ...ctx, evidence });
      } else if (req.oldSize === 0) {
        if (req.proof.length !== 0) return bad(422, 'the consistency proof from size 0 must be empty', { ...ctx, evidence });
      } else if (!verifyConsistency(req.oldSize, size, latest!.root, root, req.proof)) {
        return bad(422, `the consistency proof from size ${req.oldSize} to ${size} does not verify`, { ...ctx, evidence });
      }
      await this.#beforeCommit?.(origin);
      if (!latest || latest.size !== size) await this.#persist(origin, { size, root: Buffer.from(root) });
      const signer = cosignatureSigner(this.#key, this.#now);
      const sig = Buffer.from(await signer.sign(Buffer.from(parsed.note.text, 'utf8')));
      const line = formatSignatureLine({ name: signer.name, keyHash: Buffer.from(signer.keyHash), signature: sig });
      return { result: { ok: true as const, origin, size, cosignatures: [line] }, event: { status: 200, message: 'cosigned', ...ctx } };
    });
  }

  /** Run `fn` with no other request for `origin` in its critical section. */
  async #withOrigin<T>(origin: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(origin) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.#locks.set(origin, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.#locks.get(origin) === tail) this.#locks.delete(origin);
    }
  }

  /** Write the state with `origin` updated (one write at a time), then update memory. */
  async #persist(origin: string, entry: LogState): Promise<void> {
    const run = this.#writes.then(async () => {
      const next = new Map(this.#state);
      next.set(origin, entry);
      await writeFileAtomic(this.stateDir, WITNESS_STATE_FILE, serializeState(next));
      this.#state.set(origin, entry);
    });
    this.#writes = run.catch(() => undefined);
    await run;
  }
}
