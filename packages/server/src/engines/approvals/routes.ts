import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { Approval, ApprovalList, DecideApprovalRequest, ListApprovalsQuery } from '@palisade/core';
import type { ApprovalService } from '../../kernel/approvals/approvals.js';
import type { Tx } from '../../storage/database.js';
import type { AuthzEngine } from '../authz/engine.js';

const tags = ['approvals'];
const security = [{ bearer: [] }];
const IdParams = Type.Object({ id: Type.String({ maxLength: 64 }) });

/** Multi-person approval requests: list, read, approve (runs the action), reject. */
export function approvalRoutes(approvals: ApprovalService, authz: Pick<AuthzEngine, 'authorize'>): FastifyPluginAsync {
  const decide = async (req: FastifyRequest, id: string, comment: string | undefined, decision: 'approve' | 'reject') => {
    req.auditRecord.resource = { type: 'approval', id };
    const a = await approvals.decide(
      { db: req.tx as Tx, emit: (e) => req.auditRecord.extra.push({ actor: { principal_id: req.principal!.principal_id, api_key_id: req.principal!.api_key_id, source_ip: req.ip }, request_id: req.id, ...e }), afterCommit: (fn) => req.auditRecord.afterCommit.push(fn), onRollback: (fn) => req.auditRecord.onRollback.push(fn) },
      id,
      req.principal!,
      decision,
      async (permission) => (await authz.authorize({ principal: req.principal!, source_ip: req.ip }, permission, { type: 'approval', id }, req.tx)).decision === 'allow',
    );
    req.auditRecord.details = { action: a.action, target: a.resource, requested_by: a.requested_by, comment: comment ?? null };
    return a;
  };

  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();

    app.get('/approvals', {
      schema: { tags, security, summary: 'Approval requests, newest first', querystring: ListApprovalsQuery, response: { 200: ApprovalList } },
      config: { permission: 'approvals:requests:list' },
      handler: async (req) => ({ approvals: await approvals.list(req.tx, req.query) }),
    });

    app.get('/approvals/:id', {
      schema: { tags, security, summary: 'One approval request', params: IdParams, response: { 200: Approval } },
      config: { permission: 'approvals:requests:read' },
      handler: async (req) => approvals.get(req.tx, req.params.id),
    });

    app.post('/approvals/:id/approve', {
      schema: { tags, security, summary: 'Approve (a different principal holding the action\'s permission); the action runs now', params: IdParams, body: DecideApprovalRequest, response: { 200: Approval } },
      config: { permission: 'approvals:requests:decide', audit: 'approval.approve' },
      handler: async (req) => decide(req, req.params.id, req.body.comment, 'approve'),
    });

    app.post('/approvals/:id/reject', {
      schema: { tags, security, summary: 'Reject (a different principal holding the action\'s permission)', params: IdParams, body: DecideApprovalRequest, response: { 200: Approval } },
      config: { permission: 'approvals:requests:decide', audit: 'approval.reject' },
      handler: async (req) => decide(req, req.params.id, req.body.comment, 'reject'),
    });
  };
}
