/**
 * Test helper (not exported by the package): an in-memory append-only log that signs C2SP checkpoints with an
 * Ed25519 note key, built on the core Merkle tree (CompactRange, consistencyProof).
 */
import { randomBytes } from 'node:crypto';
import { CompactRange, consistencyProof, ed25519NoteSigner, formatCheckpoint, generateSignerKey, leafHash, signNote, type NoteSigner } from '@palisade/core';

export class TestLog {
  readonly origin: string;
  readonly skey: string;
  readonly vkey: string;
  readonly leaves: Buffer[] = [];
  #signer: NoteSigner;

  constructor(origin = `log.example/${randomBytes(4).toString('hex')}`, key = generateSignerKey(origin)) {
    this.origin = origin;
    this.skey = key.skey;
    this.vkey = key.vkey;
    this.#signer = ed25519NoteSigner(key.skey);
  }

  append(n: number, tag = 'entry'): this {
    for (let i = 0; i < n; i++) this.leaves.push(leafHash(Buffer.from(`${tag} ${this.leaves.length}`)));
    return this;
  }

  root(size = this.leaves.length): Buffer {
    const r = new CompactRange();
    for (const l of this.leaves.slice(0, size)) r.append(l);
    return r.root();
  }

  text(size = this.leaves.length): string {
    return formatCheckpoint({ origin: this.origin, size, root: this.root(size) });
  }

  /** The checkpoint note at `size`, signed by this log's key (or by `signers`). */
  async note(size = this.leaves.length, signers: NoteSigner[] = [this.#signer]): Promise<string> {
    return signNote(this.text(size), signers);
  }

  proof(from: number, to = this.leaves.length): Buffer[] {
    if (from === 0 || from === to) return [];
    return consistencyProof(from, to, (i) => this.leaves[i]!);
  }

  /** The add-checkpoint request body from `old` to `size`. */
  async request(old: number, size = this.leaves.length): Promise<string> {
    const proof = this.proof(old, size);
    return `old ${old}\n${proof.map((h) => `${h.toString('base64')}\n`).join('')}\n${await this.note(size)}`;
  }

  /** A log with the same origin and key whose leaves diverge from this one after `common` leaves. */
  fork(common: number): TestLog {
    const other = new TestLog(this.origin, { skey: this.skey, vkey: this.vkey });
    other.leaves.push(...this.leaves.slice(0, common));
    return other;
  }
}
