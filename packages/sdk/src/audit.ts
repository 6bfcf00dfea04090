import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { Approval, AuditCheckpoint, AuditEvent, AuditEventPage, AuditLogInfo, AuditQuery, ConsistencyProof, CreateHoldRequest, InclusionProof, LegalHold } from '@palisade/core';
import { withQuery, type Transport } from './transport.js';

/** The audit ledger: queries, proofs, checkpoints, exports, legal holds, erasure. */
export class AuditClient {
  constructor(private readonly t: Transport) {}

  query(q: AuditQuery = {}): Promise<AuditEventPage> {
    return this.t.send('GET', withQuery('/v1/audit/events', q));
  }
  /** Every matching event, following cursors, up to `max`. */
  async *events(q: Omit<AuditQuery, 'cursor'> = {}, max = Infinity): AsyncGenerator<AuditEvent> {
    let cursor: string | undefined;
    let n = 0;
    do {
      const page = await this.query({ ...q, ...(cursor ? { cursor } : {}) });
      for (const e of page.events) {
        if (n++ >= max) return;
        yield e;
      }
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
  }
  get(index: number): Promise<AuditEvent> {
    return this.t.send('GET', `/v1/audit/events/${index}`);
  }
  /** An event's personal fields, decrypted (needs `audit:personal:read`). */
  personal(index: number): Promise<Record<string, unknown>> {
    return this.t.send('GET', `/v1/audit/events/${index}/personal`);
  }
  log(): Promise<AuditLogInfo> {
    return this.t.send('GET', '/v1/audit/log');
  }
  /** The latest signed checkpoint (or the one of `size`), with cosignatures and time-stamps. */
  checkpoint(size?: number): Promise<AuditCheckpoint> {
    return this.t.send('GET', withQuery('/v1/audit/checkpoint', { size }));
  }
  inclusionProof(index: number, treeSize: number): Promise<InclusionProof> {
    return this.t.send('GET', withQuery('/v1/audit/proof/inclusion', { index, tree_size: treeSize }));
  }
  consistencyProof(from: number, to: number): Promise<ConsistencyProof> {
    return this.t.send('GET', withQuery('/v1/audit/proof/consistency', { from, to }));
  }
  /** The export as a stream of NDJSON bytes (needs `audit:events:export`; the export is itself audited). */
  async exportStream(to?: number): Promise<Readable> {
    return this.t.stream(withQuery('/v1/audit/export', { to }));
  }
  /** The export, line by line. */
  async *exportLines(to?: number): AsyncGenerator<string> {
    yield* createInterface({ input: await this.exportStream(to), crlfDelay: Infinity });
  }
  hash(value: string): Promise<{ hash: string }> {
    return this.t.send('POST', '/v1/audit/hash', { value });
  }
  createHold(req: CreateHoldRequest): Promise<LegalHold> {
    return this.t.send('POST', '/v1/audit/holds', req);
  }
  listHolds(all = false): Promise<{ holds: LegalHold[] }> {
    return this.t.send('GET', withQuery('/v1/audit/holds', { all: all || undefined }));
  }
  getHold(id: string): Promise<LegalHold> {
    return this.t.send('GET', `/v1/audit/holds/${encodeURIComponent(id)}`);
  }
  /** Releasing needs a second principal: this returns the approval request (202). */
  releaseHold(id: string, reason?: string): Promise<Approval> {
    return this.t.send('POST', `/v1/audit/holds/${encodeURIComponent(id)}/release`, reason ? { reason } : {});
  }
  eraseSubject(subject: string): Promise<{ subject_ref: string; erased_at: string; had_data: boolean }> {
    return this.t.send('POST', '/v1/audit/subjects/erase', { subject });
  }
}
