import { parseVerifierKey, type NoteVerifier } from '@palisade/core';
import { addCheckpoint, verifyCosignatureLine } from '../../../witness/client.js';
import type { Anchor, AnchorContext, SignedCheckpoint } from './anchor.js';

/**
 * A C2SP tlog-witness (`palisade witness`, or any conformant one) cosigns each checkpoint, given a consistency proof
 * from the last size it cosigned for this log. The witness answers 409 with its own latest size when ours is stale
 * (a restart, a lost receipt): the request is made again from that size. A witness that saw a larger tree than the
 * log now has means the log was rolled back or forked: that is refused loudly, never papered over.
 */
export class WitnessAnchor implements Anchor {
  readonly kind = 'witness';
  readonly #key: NoteVerifier;

  constructor(private readonly opts: { name: string; url: string; key: string; caPem?: string; timeoutMs?: number }) {
    this.#key = parseVerifierKey(opts.key);
  }

  get name(): string {
    return this.opts.name;
  }

  async anchor(cp: SignedCheckpoint, ctx: AnchorContext): Promise<string> {
    let old = await ctx.lastAnchoredSize();
    for (let attempt = 0; attempt < 3; attempt++) {
      if (old > cp.size) throw new Error(`witness ${this.name} has cosigned a tree of ${old} entries, larger than this log's ${cp.size}: the log was rolled back or forked`);
      const proof = old === 0 ? [] : await ctx.consistencyProof(old, cp.size);
      const r = await addCheckpoint(this.opts.url, { oldSize: old, proof, note: cp.note }, { ...(this.opts.caPem ? { ca: Buffer.from(this.opts.caPem) } : {}), timeoutMs: this.opts.timeoutMs ?? 10_000 });
      if (!r.ok) {
        old = r.conflictSize;
        continue;
      }
      for (const line of r.cosignatures) if (verifyCosignatureLine(this.#key, cp.body, line).ok) return line;
      throw new Error(`witness ${this.name} answered without a valid cosignature by ${this.#key.name}`);
    }
    throw new Error(`witness ${this.name} kept answering 409: its state keeps changing`);
  }
}
