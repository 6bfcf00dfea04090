export { HASH_BYTES, emptyRoot, leafHash, nodeHash } from './hash.js';
export { CompactRange, rootFromLeafHashes } from './tree.js';
export type { CompactRangeJSON } from './tree.js';
export { consistencyProof, inclusionProof, verifyConsistency, verifyInclusion } from './proof.js';
export type { LeafHashSource } from './proof.js';
