// Offline verification of a Palisade audit export (NDJSON): the same code runs in the CLI and in auditors' own code
// through @palisade/sdk, and trusts nothing but the checkpoint keys it is given.
import { canonicalJson } from '../canonical/index.js';
import { constantTimeEqual } from '../crypto/index.js';
import { leafHash } from './hash.js';
import { CompactRange } from './tree.js';

export const AUDIT_EXPORT_FORMAT = 'palisade-audit-export/v1';

export interface AuditExportHeader {
  format: string;
  origin: string;
  verifier_keys: string[];
  size: number;
  exported_at: string;
}

/** What a checkpoint's signed note says, once its signatures checked out; or why it did not. */
export type NoteCheck = { ok: true; size: number; root: Uint8Array; cosignatures: number; timestamps?: number } | { ok: false; reason: string };

export interface VerifyExportOptions {
  /**
   * Checks a checkpoint's signed note against the keys the auditor trusts (the log's key, and witnesses' keys for
   * cosignatures) and returns the size and root it signs. @palisade/sdk's `verifyAuditExport` passes one built from
   * C2SP signed notes; without it, only the tree is recomputed.
   */
  checkNote?: (note: string, header: AuditExportHeader, checkpoint: ExportCheckpoint) => NoteCheck;
  /** Fail unless at least this many checkpoints are present (1 by default: an export must end on a signed root). */
  minCheckpoints?: number;
  /**
   * Cosignatures the latest checkpoint must carry (the one an auditor relies on; 0 by default). Earlier checkpoints
   * may lack some — a witness that was down receives only the newest checkpoint when it is back — and consistency
   * with the latest covers them.
   */
  minCosignatures?: number;
  /** Accept entries after the last signed checkpoint (an export made with `to` past it); off by default. */
  allowUnsignedTail?: boolean;
  onProgress?: (checked: number, total: number) => void;
}

export type VerifyExportResult =
  | { ok: true; origin: string; size: number; root: string; checkpoints: number; cosignatures: number; timestamps: number; purged: number }
  | { ok: false; first_bad_index: number | null; reason: string };

export interface ExportCheckpoint {
  size: number;
  root_hash: string;
  note: string;
  /** Receipts of the anchors: `{ anchor, kind: 'witness' | 'rfc3161', receipt }`. */
  anchors?: Array<{ anchor: string; kind: string; receipt: string }>;
}

/**
 * Verify an export line by line: the header; every checkpoint's signatures (through `checkNote`) and that it signs the
 * root it claims; then every entry, in order, without gaps — its leaf recomputed from the event (RFC 8785 canonical
 * JSON), the tree rebuilt, and its root compared at every checkpoint size. Names the first index where anything
 * disagrees. Memory stays O(log n + checkpoints).
 */
export async function verifyExportLines(lines: AsyncIterable<string> | Iterable<string>, opts: VerifyExportOptions = {}): Promise<VerifyExportResult> {
  const fail = (first_bad_index: number | null, reason: string): VerifyExportResult => ({ ok: false, first_bad_index, reason });
  let header: AuditExportHeader | null = null;
  const checkpoints = new Map<number, Uint8Array>();
  let cosignatures = 0;
  let timestamps = 0;
  let latest = { size: 0, cosignatures: 0 };
  const unexplained: number[] = [];
  const purgeRuns: Array<[number, number]> = [];
  const range = new CompactRange();
  let purged = 0;
  let lineNo = 0;
  for await (const raw of lines) {
    lineNo++;
    if (raw.trim() === '') continue;
    let obj: Record<string, unknown>;
    try {
      obj = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      return fail(header ? range.size : null, `line ${lineNo} is not JSON`);
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return fail(header ? range.size : null, `line ${lineNo} is not a JSON object`);
    if (!header) {
      if (obj.format !== AUDIT_EXPORT_FORMAT || typeof obj.origin !== 'string' || !Number.isSafeInteger(obj.size) || !Array.isArray(obj.verifier_keys)) return fail(null, `line 1 is not a ${AUDIT_EXPORT_FORMAT} header`);
      header = obj as unknown as AuditExportHeader;
      continue;
    }
    if ('checkpoint' in obj) {
      const cp = obj.checkpoint as ExportCheckpoint;
      if (range.size > 0) return fail(range.size, `line ${lineNo}: checkpoints must come before the entries`);
      if (!cp || !Number.isSafeInteger(cp.size) || cp.size < 1 || cp.size > header.size || typeof cp.root_hash !== 'string' || typeof cp.note !== 'string') return fail(null, `line ${lineNo}: malformed checkpoint`);
      const root = Buffer.from(cp.root_hash, 'base64');
      if (opts.checkNote) {
        const c = opts.checkNote(cp.note, header, cp);
        if (!c.ok) return fail(null, `checkpoint of size ${cp.size}: ${c.reason}`);
        if (c.size !== cp.size || !constantTimeEqual(c.root, root)) return fail(null, `checkpoint of size ${cp.size}: its signed note says size ${c.size} with another root`);
        cosignatures += c.cosignatures;
        timestamps += c.timestamps ?? 0;
        if (cp.size > latest.size) latest = { size: latest.size, cosignatures: c.cosignatures };
      }
      const seen = checkpoints.get(cp.size);
      if (seen && !constantTimeEqual(seen, root)) return fail(null, `two signed checkpoints of size ${cp.size} with different roots: the log forked`);
      checkpoints.set(cp.size, root);
      if (cp.size > latest.size) latest.size = cp.size;
      continue;
    }
    const index = range.size;
    if (obj.index !== index) return fail(index, obj.index === undefined ? `line ${lineNo} is neither a checkpoint nor an entry` : `entry ${index} is missing (found ${String(obj.index)})`);
    const stored = typeof obj.leaf_hash === 'string' ? Buffer.from(obj.leaf_hash, 'base64') : null;
    if (!stored || stored.length !== 32) return fail(index, 'entry has no valid leaf_hash');
    let leaf: Buffer;
    if (obj.event === null) {
      if (typeof obj.purged_at !== 'string') return fail(index, 'entry has neither an event nor a purge date');
      leaf = stored;
      purged++;
      unexplained.push(index);
    } else {
      const event = obj.event as { index?: unknown };
      if (typeof event !== 'object' || event.index !== index) return fail(index, 'the event carries another index');
      leaf = leafHash(Buffer.from(canonicalJson(event), 'utf8'));
      if (!constantTimeEqual(leaf, stored)) return fail(index, 'the event does not hash to its leaf');
      // Each purge run is itself an event naming the range it purged: every purged entry must fall in one.
      const e = event as { type?: unknown; details?: { first_index?: unknown; last_index?: unknown } };
      if (e.type === 'audit.purge' && typeof e.details?.first_index === 'number' && typeof e.details.last_index === 'number') purgeRuns.push([e.details.first_index, e.details.last_index]);
    }
    range.append(leaf);
    const want = checkpoints.get(range.size);
    if (want && !constantTimeEqual(range.root(), want)) return fail(index, `the entries up to ${index} do not produce the root of the signed checkpoint of size ${range.size}`);
    if (range.size % 10_000 === 0) opts.onProgress?.(range.size, header.size);
  }
  if (!header) return fail(null, 'the export is empty');
  opts.onProgress?.(range.size, header.size);
  if (range.size !== header.size) return fail(range.size, `the export ends after ${range.size} of ${header.size} entries`);
  if (checkpoints.size < (opts.minCheckpoints ?? 1)) return fail(null, `the export has ${checkpoints.size} signed checkpoints (at least ${opts.minCheckpoints ?? 1} needed)`);
  if (checkpoints.size > 0 && latest.size !== range.size && !opts.allowUnsignedTail) return fail(latest.size, `the export goes on after its last signed checkpoint (size ${latest.size}): entries from ${latest.size} on are not signed`);
  const hidden = unexplained.find((i) => !purgeRuns.some(([a, b]) => i >= a && i <= b));
  if (hidden !== undefined) return fail(hidden, 'the entry is marked purged but no audit.purge event covers it');
  if (latest.cosignatures < (opts.minCosignatures ?? 0)) return fail(null, `the latest checkpoint (size ${latest.size}) is cosigned by ${latest.cosignatures} trusted witnesses, ${opts.minCosignatures} required`);
  return { ok: true, origin: header.origin, size: range.size, root: range.root().toString('base64'), checkpoints: checkpoints.size, cosignatures, timestamps, purged };
}
