/**
 * An anchor takes a signed checkpoint somewhere the log's operator does not control, and returns a receipt that a
 * verifier can check without trusting the log: a witness's cosignature, an RFC 3161 time-stamp token, ... The
 * checkpointer calls each configured anchor for each new checkpoint and stores the receipt in `audit_anchors`.
 */
export interface SignedCheckpoint {
  /** Origin line of the checkpoint (the log's name). */
  origin: string;
  size: number;
  root: Buffer;
  /** The checkpoint body (origin, size, base64 root, each followed by a newline), what signatures cover. */
  body: string;
  /** The whole signed note: body, blank line, signature lines. */
  note: string;
}

export interface AnchorContext {
  /** RFC 9162 consistency proof between two sizes of this log (empty when from === to or from === 0). */
  consistencyProof(from: number, to: number): Promise<Buffer[]>;
  /** The size this anchor last accepted, from the stored receipts (0 if none). */
  lastAnchoredSize(): Promise<number>;
}

export interface Anchor {
  readonly name: string;
  readonly kind: 'witness' | 'rfc3161' | (string & {});
  /** Anchor one checkpoint; resolves to the receipt to store (text: a signature line, base64 DER, ...). */
  anchor(cp: SignedCheckpoint, ctx: AnchorContext): Promise<string>;
}
