export { HASH_BYTES, emptyRoot, leafHash, nodeHash } from './hash.js';
export { CompactRange, rootFromLeafHashes } from './tree.js';
export type { CompactRangeJSON } from './tree.js';
export { consistencyProof, consistencyRanges, foldSubtrees, inclusionProof, inclusionRanges, perfectSubtrees, verifyConsistency, verifyInclusion } from './proof.js';
export type { LeafHashSource, LeafRange } from './proof.js';
export { AUDIT_EXPORT_FORMAT, verifyExportLines } from './audit-export.js';
export type { AuditExportHeader, ExportCheckpoint, NoteCheck, VerifyExportOptions, VerifyExportResult } from './audit-export.js';
