import { NOTE_COSIGNATURE_V1, NOTE_ED25519, openNote, parseCheckpoint, parseVerifierKey, verifyExportLines, verifyTimeStampToken, type AuditExportHeader, type ExportCheckpoint, type NoteCheck, type NoteVerifier, type VerifyExportResult } from '@palisade/core';

/**
 * Checks checkpoints (C2SP signed notes) signed by one of `logKeys`, counts valid cosignatures (cosignature/v1) of
 * `witnessKeys` and, given the CAs of time-stamping authorities, verifies their RFC 3161 tokens over the checkpoint.
 * Throws on a malformed key (configuration); answers `{ ok: false, reason }` for what comes from the export.
 */
export function checkpointChecker(logKeys: readonly string[], witnessKeys: readonly string[] = [], tsaCaPems: readonly string[] = []): (note: string, header: AuditExportHeader, checkpoint?: ExportCheckpoint) => NoteCheck {
  const logs = logKeys.map(parseVerifierKey);
  const witnesses = witnessKeys.map(parseVerifierKey);
  if (logs.some((k) => k.type !== NOTE_ED25519)) throw new Error('a log key must be an Ed25519 note key');
  if (witnesses.some((k) => k.type !== NOTE_COSIGNATURE_V1)) throw new Error('a witness key must be a cosignature/v1 key (as `palisade witness key` prints it)');
  const by = (set: readonly NoteVerifier[]) => (s: { name: string; keyHash: Buffer }) => set.some((k) => k.name === s.name && k.keyHash.equals(s.keyHash));
  return (note, header, checkpoint) => {
    const opened = openNote(note, [...logs, ...witnesses]);
    if (!opened.ok) return { ok: false, reason: opened.reason === 'unverified' ? 'no signature by a trusted log key' : opened.error };
    if (!opened.note.verified.some(by(logs))) return { ok: false, reason: 'no signature by a trusted log key' };
    const cp = parseCheckpoint(opened.note.text);
    if (!cp.ok) return { ok: false, reason: cp.error };
    if (cp.checkpoint.origin !== header.origin) return { ok: false, reason: `the checkpoint is for another log (${cp.checkpoint.origin})` };
    let timestamps = 0;
    for (const a of tsaCaPems.length > 0 ? (checkpoint?.anchors ?? []) : []) {
      if (a.kind !== 'rfc3161') continue;
      const v = verifyTimeStampToken(Buffer.from(a.receipt, 'base64'), Buffer.from(opened.note.text), { trusted: [...tsaCaPems] });
      if (!v.ok) return { ok: false, reason: `the time-stamp by ${a.anchor} does not verify: ${v.reason}` };
      timestamps++;
    }
    return { ok: true, size: cp.checkpoint.size, root: cp.checkpoint.root, cosignatures: opened.note.verified.filter(by(witnesses)).length, timestamps };
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
  /** Accept entries after the last signed checkpoint (their leaves are still checked, but nothing signs them). */
  allowUnsignedTail?: boolean;
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
    ...(opts.allowUnsignedTail ? { allowUnsignedTail: true } : {}),
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
  return { ...r, trusted: pinned ? 'pinned' : 'export' };
}
