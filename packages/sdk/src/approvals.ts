import type { Approval, ApprovalList, ListApprovalsQuery } from '@palisade/core';
import { withQuery, type Transport } from './transport.js';

/** Multi-person approval requests. */
export class ApprovalsClient {
  constructor(private readonly t: Transport) {}

  list(q: ListApprovalsQuery = {}): Promise<ApprovalList> {
    return this.t.send('GET', withQuery('/v1/approvals', q));
  }
  get(id: string): Promise<Approval> {
    return this.t.send('GET', `/v1/approvals/${encodeURIComponent(id)}`);
  }
  approve(id: string, comment?: string): Promise<Approval> {
    return this.t.send('POST', `/v1/approvals/${encodeURIComponent(id)}/approve`, comment === undefined ? {} : { comment });
  }
  reject(id: string, comment?: string): Promise<Approval> {
    return this.t.send('POST', `/v1/approvals/${encodeURIComponent(id)}/reject`, comment === undefined ? {} : { comment });
  }
}

/** True when a call answered with an approval request instead of doing the action (HTTP 202). */
export const isApproval = (x: object): x is Approval => 'action' in x && 'requested_by' in x && 'status' in x;
