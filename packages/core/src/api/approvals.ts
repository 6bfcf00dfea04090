import { Type, type Static } from '@sinclair/typebox';
import { enumOf } from './kms.js';

export const APPROVAL_STATUSES = ['pending', 'approved', 'rejected', 'expired'] as const;
export type ApprovalStatus = (typeof APPROVAL_STATUSES)[number];

/** A request for an action that needs a second, different principal (multi-person approval). */
export const Approval = Type.Object({
  id: Type.String(),
  action: Type.String({ description: 'what will run once approved, e.g. kms.key.rotate' }),
  permission: Type.String({ description: 'what the approver must hold besides approvals:requests:decide' }),
  resource: Type.Object({ type: Type.String(), id: Type.String() }),
  status: enumOf(APPROVAL_STATUSES),
  requested_by: Type.String(),
  requested_at: Type.String({ format: 'date-time' }),
  expires_at: Type.String({ format: 'date-time' }),
  reason: Type.Union([Type.String(), Type.Null()]),
  decided_by: Type.Union([Type.String(), Type.Null()]),
  decided_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  details: Type.Record(Type.String(), Type.Unknown()),
  result: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null(), Type.Unknown()], { description: 'what the approved action returned' }),
});
export type Approval = Static<typeof Approval>;

export const ApprovalList = Type.Object({ approvals: Type.Array(Approval) });
export type ApprovalList = Static<typeof ApprovalList>;

export const ListApprovalsQuery = Type.Object({ status: Type.Optional(enumOf(APPROVAL_STATUSES)), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100 })) }, { additionalProperties: false });
export type ListApprovalsQuery = Static<typeof ListApprovalsQuery>;

export const DecideApprovalRequest = Type.Object({ comment: Type.Optional(Type.String({ maxLength: 1000 })) }, { additionalProperties: false });
export type DecideApprovalRequest = Static<typeof DecideApprovalRequest>;
