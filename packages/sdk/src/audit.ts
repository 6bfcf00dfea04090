import type { AuditEvent, AuditEventPage, AuditQuery } from '@palisade/core';
import { withQuery, type Transport } from './transport.js';

/** Reading the audit ledger (needs `audit:events:read`). */
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
}
