export { HASH_BYTES, emptyRoot, leafHash, nodeHash } from './hash.js';
export { CompactRange, rootFromLeafHashes } from './tree.js';
export type { CompactRangeJSON } from './tree.js';
export { consistencyProof, consistencyRanges, foldSubtrees, inclusionProof, inclusionRanges, perfectSubtrees, verifyConsistency, verifyInclusion } from './proof.js';
export type { LeafHashSource, LeafRange } from './proof.js';
export { AUDIT_EXPORT_FORMAT, verifyExportLines } from './audit-export.js';
export type { AuditExportHeader, ExportCheckpoint, NoteCheck, VerifyExportOptions, VerifyExportResult } from './audit-export.js';
export {
  MAX_NOTE_SIGNATURES,
  NOTE_COSIGNATURE_V1,
  NOTE_ED25519,
  NoteKeyError,
  cosignCheckpoint,
  cosignatureMessage,
  cosignatureSigner,
  cosignatureTimestamp,
  cosignatureVerifierKey,
  ed25519NoteSigner,
  encodeSignerKey,
  encodeVerifierKey,
  formatCheckpoint,
  formatNote,
  formatSignatureLine,
  generateSignerKey,
  isValidKeyName,
  noteKeyHash,
  openNote,
  parseCheckpoint,
  parseNote,
  parseSignatureLine,
  parseSignerKey,
  parseVerifierKey,
  signNote,
  verifyCosignature,
} from './note.js';
export type {
  Checkpoint,
  CheckpointParseResult,
  CosignatureCheck,
  NoteKeyType,
  NoteOpenError,
  NoteOpenResult,
  NoteParseResult,
  NoteSignature,
  NoteSigner,
  NoteSignerKey,
  NoteVerifier,
  OpenedNote,
  ParsedNote,
} from './note.js';
