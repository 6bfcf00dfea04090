/**
 * Submitting checkpoints to a witness (c2sp.org/tlog-witness add-checkpoint) and checking the cosignatures it returns.
 */
import { HASH_BYTES, parseSignatureLine, verifyCosignature, type CosignatureCheck, type NoteVerifier } from '@palisade/core';
import { postBuffer, type PostError } from '../http/post.js';

/** Largest witness answer read (a few signature lines). */
const MAX_RESPONSE_BYTES = 64 * 1024;

export interface AddCheckpointRequest {
  /** The size of the checkpoint the witness last cosigned for this log (0 the first time). */
  oldSize: number;
  /** The RFC 9162 consistency proof from `oldSize` to the checkpoint's size (empty from 0 or between equal sizes). */
  proof: readonly Uint8Array[];
  /** The checkpoint, a signed note. */
  note: string;
}

export interface WitnessClientOptions {
  /** CA certificate(s) (PEM) to trust for an https:// witness. */
  ca?: Buffer | string;
  /** Whole-request deadline (default 10 s). */
  timeoutMs?: number;
}

/**
 * `ok`: the witness cosigned; each entry is one signature line including its final newline, so `note +
 * cosignatures.join('')` is the cosigned note. Otherwise the witness's recorded size differs from `oldSize`: retry
 * from `conflictSize` (with a proof from there).
 */
export type AddCheckpointResponse = { ok: true; cosignatures: string[] } | { ok: false; conflictSize: number };

/** Any other answer of the witness (or none): the status (0 when there was no HTTP answer) and its text. */
export class WitnessError extends Error {
  readonly status: number;
  readonly body: string;
  constructor(message: string, status: number, body = '') {
    super(message);
    this.name = 'WitnessError';
    this.status = status;
    this.body = body;
  }
}

/** The add-checkpoint request body: `old <size>\n`, one base64 proof hash per line, an empty line, the note. */
export function formatAddCheckpointRequest(req: AddCheckpointRequest): Buffer {
  if (!Number.isSafeInteger(req.oldSize) || req.oldSize < 0) throw new TypeError('oldSize must be a non-negative safe integer');
  if (req.proof.some((h) => !(h instanceof Uint8Array) || h.length !== HASH_BYTES)) throw new TypeError('every proof hash must be 32 bytes');
  if (typeof req.note !== 'string' || !req.note.endsWith('\n')) throw new TypeError('note must be a signed note (text ending in a newline)');
  return Buffer.from(`old ${req.oldSize}\n${req.proof.map((h) => `${Buffer.from(h).toString('base64')}\n`).join('')}\n${req.note}`, 'utf8');
}

function endpoint(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`not a witness URL: ${url}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`a witness URL is http:// or https://, not ${u.protocol}`);
  if (!u.pathname.endsWith('/add-checkpoint')) u.pathname = `${u.pathname.replace(/\/+$/, '')}/add-checkpoint`;
  return u;
}

async function post(u: URL, body: Buffer, opts: WitnessClientOptions): Promise<{ status: number; contentType: string; text: string }> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  try {
    const r = await postBuffer(u, body, {
      headers: { 'content-type': 'text/plain; charset=utf-8', accept: 'text/plain, text/x.tlog.size' },
      timeoutMs,
      maxResponseBytes: MAX_RESPONSE_BYTES,
      ...(opts.ca ? { ca: opts.ca } : {}),
    });
    return { status: r.status, contentType: r.contentType, text: r.body.toString('utf8') };
  } catch (e) {
    const err = e as PostError;
    if (err.kind === 'timeout') throw new WitnessError(`witness ${u.origin}: no answer within ${timeoutMs} ms`, 0);
    if (err.kind === 'too-large') throw new WitnessError(`witness ${u.origin}: answer larger than ${MAX_RESPONSE_BYTES} bytes`, err.status);
    throw new WitnessError(`witness ${u.origin}: ${err.message}`, 0);
  }
}

const snippet = (s: string) => (s.length > 200 ? `${s.slice(0, 200)}…` : s).trim();

/**
 * Submit a checkpoint to a witness. `url` is its submission prefix (`https://witness.example/w1`) or the full
 * add-checkpoint URL. Resolves with the cosignature lines, or with the witness's recorded size on a 409
 * `text/x.tlog.size` answer; throws WitnessError on any other answer (a fork is a 409 without that content type,
 * a bad proof 422, a bad signature 403, an unknown log 404, a malformed request 400) or on a network failure.
 * The cosignatures are not verified here: see verifyCosignatureLine.
 */
export async function addCheckpoint(url: string, req: AddCheckpointRequest, opts: WitnessClientOptions = {}): Promise<AddCheckpointResponse> {
  const u = endpoint(url);
  const r = await post(u, formatAddCheckpointRequest(req), opts);
  if (r.status === 200) {
    if (r.text.length === 0 || !r.text.endsWith('\n')) throw new WitnessError(`witness ${u.origin}: malformed cosignature answer`, 200, r.text);
    const lines = r.text.slice(0, -1).split('\n');
    if (lines.some((l) => !parseSignatureLine(l).ok)) throw new WitnessError(`witness ${u.origin}: malformed cosignature answer`, 200, r.text);
    return { ok: true, cosignatures: lines.map((l) => `${l}\n`) };
  }
  if (r.status === 409 && /^text\/x\.tlog\.size\s*(;|$)/i.test(r.contentType)) {
    const m = /^(0|[1-9][0-9]*)\n$/.exec(r.text);
    const size = m ? Number(m[1]) : NaN;
    if (!Number.isSafeInteger(size)) throw new WitnessError(`witness ${u.origin}: malformed 409 size answer`, 409, r.text);
    return { ok: false, conflictSize: size };
  }
  const what: Record<number, string> = {
    400: 'rejected the request as malformed',
    403: 'does not accept the checkpoint signature',
    404: 'does not know this log',
    409: 'refused the checkpoint as inconsistent with one it cosigned (a fork)',
    413: 'found the request too large',
    422: 'rejected the consistency proof',
  };
  throw new WitnessError(`witness ${u.origin} ${what[r.status] ?? `answered HTTP ${r.status}`}: ${snippet(r.text)}`, r.status, r.text);
}

/**
 * Verify one cosignature line (from addCheckpoint) over the checkpoint text (the note's body, without signatures)
 * with the witness's verifier key; returns its timestamp. Never throws.
 */
export function verifyCosignatureLine(vkey: string | NoteVerifier, checkpointBody: string, line: string): CosignatureCheck {
  return verifyCosignature(vkey, checkpointBody, line);
}
