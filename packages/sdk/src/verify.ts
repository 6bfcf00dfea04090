import { createPublicKey, verify as edVerify, type KeyObject } from 'node:crypto';
import { sha256, verifyExportLines, verifyTimeStampToken, type AuditExportHeader, type ExportCheckpoint, type NoteCheck, type VerifyExportResult } from '@palisade/core';

/** A C2SP note verifier key: `<name>+<8 hex key hash>+<base64(type || Ed25519 public key)>`. */
interface VerifierKey {
  name: string;
  hash: Buffer;
  type: number;
  key: KeyObject;
}

const ED25519_SPKI = Buffer.from('302a300506032b6570032100', 'hex');
const SIG_ED25519 = 0x01;
const SIG_COSIGNATURE_V1 = 0x04;

/** Parse a verifier key; throws on anything malformed (the key hash must match the name and key). */
export function parseVerifierKey(vkey: string): VerifierKey {
  const a = vkey.indexOf('+');
  const b = vkey.indexOf('+', a + 1);
  if (a <= 0 || b !== a + 9) throw new Error(`not a note verifier key: ${vkey.slice(0, 40)}`);
  const name = vkey.slice(0, a);
  const hash = Buffer.from(vkey.slice(a + 1, b), 'hex');
  const raw = Buffer.from(vkey.slice(b + 1), 'base64');
  if (hash.length !== 4 || raw.length !== 33 || raw.toString('base64') !== vkey.slice(b + 1)) throw new Error(`malformed note verifier key for ${name}`);
  const type = raw[0]!;
  if (type !== SIG_ED25519 && type !== SIG_COSIGNATURE_V1) throw new Error(`unsupported key type ${type} for ${name}`);
  if (!sha256(Buffer.concat([Buffer.from(`${name}\n`), raw])).subarray(0, 4).equals(hash)) throw new Error(`the key hash of ${name} does not match its key`);
  return { name, hash, type, key: createPublicKey({ key: Buffer.concat([ED25519_SPKI, raw.subarray(1)]), format: 'der', type: 'spki' }) };
}

/** Body and signature lines of a signed note (C2SP signed-note), or null when malformed. */
function splitNote(note: string): { body: string; sigs: Array<{ name: string; blob: Buffer }> } | null {
  const at = note.indexOf('\n\n');
  if (at < 0 || !note.endsWith('\n')) return null;
  const body = note.slice(0, at + 1);
  const sigs: Array<{ name: string; blob: Buffer }> = [];
  for (const line of note.slice(at + 2, -1).split('\n')) {
    const m = /^\u2014 (\S+) ([A-Za-z0-9+/]+={0,2})$/.exec(line);
    if (!m) return null;
    sigs.push({ name: m[1]!, blob: Buffer.from(m[2]!, 'base64') });
  }
  return { body, sigs };
}

/**
 * Checks checkpoints signed by one of `logKeys`, counts valid cosignatures of `witnessKeys` (cosignature/v1) and,
 * given the CAs of time-stamping authorities, verifies their RFC 3161 tokens over the checkpoint.
 */
export function checkpointChecker(logKeys: readonly string[], witnessKeys: readonly string[] = [], tsaCaPems: readonly string[] = []): (note: string, header: AuditExportHeader, checkpoint?: ExportCheckpoint) => NoteCheck {
  const logs = logKeys.map(parseVerifierKey);
  const witnesses = witnessKeys.map(parseVerifierKey);
  if (logs.some((k) => k.type !== SIG_ED25519)) throw new Error('a log key must be an Ed25519 note key');
  if (witnesses.some((k) => k.type !== SIG_COSIGNATURE_V1)) throw new Error('a witness key must be a cosignature/v1 key');
  return (note, header, checkpoint) => {
    const n = splitNote(note);
    if (!n) return { ok: false, reason: 'the signed note is malformed' };
    const [origin, sizeText, rootText] = n.body.split('\n');
    if (origin !== header.origin) return { ok: false, reason: `the checkpoint is for another log (${origin})` };
    if (!/^(0|[1-9][0-9]{0,15})$/.test(sizeText ?? '') || !/^[A-Za-z0-9+/]{43}=$/.test(rootText ?? '')) return { ok: false, reason: 'the checkpoint body is malformed' };
    let signed = false;
    for (const s of n.sigs) {
      const k = logs.find((l) => l.name === s.name && s.blob.subarray(0, 4).equals(l.hash));
      if (!k) continue;
      if (!edVerify(null, Buffer.from(n.body), k.key, s.blob.subarray(4))) return { ok: false, reason: `the signature by ${k.name} does not verify` };
      signed = true;
    }
    if (!signed) return { ok: false, reason: 'no signature by a trusted log key' };
    let cosignatures = 0;
    for (const w of witnesses) {
      const s = n.sigs.find((x) => x.name === w.name && x.blob.subarray(0, 4).equals(w.hash));
      if (!s || s.blob.length !== 4 + 8 + 64) continue;
      const time = s.blob.readBigUInt64BE(4);
      const msg = Buffer.from(`cosignature/v1\ntime ${time}\n${n.body}`);
      if (!edVerify(null, msg, w.key, s.blob.subarray(12))) return { ok: false, reason: `the cosignature by ${w.name} does not verify` };
      cosignatures++;
    }
    let timestamps = 0;
    if (tsaCaPems.length > 0) {
      for (const a of checkpoint?.anchors ?? []) {
        if (a.kind !== 'rfc3161') continue;
        const v = verifyTimeStampToken(Buffer.from(a.receipt, 'base64'), Buffer.from(n.body), { trusted: [...tsaCaPems] });
        if (!v.ok) return { ok: false, reason: `the time-stamp by ${a.anchor} does not verify: ${v.reason}` };
        timestamps++;
      }
    }
    return { ok: true, size: Number(sizeText), root: Buffer.from(rootText!, 'base64'), cosignatures, timestamps };
  };
}

export interface VerifyAuditExportOptions {
  /** The log's checkpoint verifier keys to trust (from `GET /v1/audit/log`, pinned). Without them the export's own keys are used: say so to the user. */
  logKeys?: string[];
  /** Witnesses whose cosignatures count, and how many of them must have cosigned the latest checkpoint. */
  witnessKeys?: string[];
  minWitnesses?: number;
  /** CA certificates (PEM) of the time-stamping authorities whose tokens to verify. */
  tsaCaPems?: string[];
  onProgress?: (checked: number, total: number) => void;
}

/**
 * Verify an audit export (NDJSON lines from `AuditClient.exportLines()` or a file) on any machine, trusting only the
 * given keys: every checkpoint signature and cosignature, every leaf, the tree at every checkpoint. `trusted` says
 * whether the log keys were pinned by the caller or taken from the export.
 */
export async function verifyAuditExport(lines: AsyncIterable<string> | Iterable<string>, opts: VerifyAuditExportOptions = {}): Promise<VerifyExportResult & { trusted: 'pinned' | 'export' }> {
  const pinned = (opts.logKeys ?? []).length > 0;
  let check: ReturnType<typeof checkpointChecker> | undefined;
  const r = await verifyExportLines(lines, {
    checkNote: (note, header, cp) => {
      try {
        check ??= checkpointChecker(pinned ? opts.logKeys! : header.verifier_keys, opts.witnessKeys, opts.tsaCaPems);
      } catch (e) {
        return { ok: false, reason: (e as Error).message };
      }
      return check(note, header, cp);
    },
    ...(opts.minWitnesses ? { minCosignatures: opts.minWitnesses } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
  return { ...r, trusted: pinned ? 'pinned' : 'export' };
}
