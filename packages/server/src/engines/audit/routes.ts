import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { AuditEvent, AuditEventPage, AuditQuery, PalisadeError } from '@palisade/core';
import type { AuditLedger } from '../../kernel/audit/ledger.js';

const tags = ['audit'];
const security = [{ bearer: [] }];

/** Reading the audit ledger. Reads are not themselves audited events (they change nothing); they need audit:events:read. */
export function auditRoutes(ledger: Pick<AuditLedger, 'query' | 'get'>): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();

    app.get('/audit/events', {
      schema: { tags, security, summary: 'Query audit events (newest first by default)', querystring: AuditQuery, response: { 200: AuditEventPage } },
      config: { permission: 'audit:events:read' },
      handler: async (req) => ledger.query(req.query),
    });

    app.get('/audit/events/:index', {
      schema: { tags, security, summary: 'One audit event by its index in the log', params: Type.Object({ index: Type.Integer({ minimum: 0 }) }), response: { 200: AuditEvent } },
      config: { permission: 'audit:events:read' },
      handler: async (req) => {
        const e = await ledger.get(req.params.index);
        if (!e) throw new PalisadeError('PAL_AUDIT_EVENT_NOT_FOUND', `the log has no entry ${req.params.index}`);
        return e;
      },
    });
  };
}
