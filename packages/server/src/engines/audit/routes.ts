import { Readable } from 'node:stream';
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import {
  Approval,
  AuditCheckpoint,
  AuditEvent,
  AuditEventPage,
  AuditHashRequest,
  AuditHashResponse,
  AuditLogInfo,
  AuditQuery,
  ConsistencyProof,
  ConsistencyProofQuery,
  CreateHoldRequest,
  EraseSubjectRequest,
  EraseSubjectResponse,
  InclusionProof,
  InclusionProofQuery,
  LegalHold,
  PalisadeError,
} from '@palisade/core';
import type { AuditLedger } from '../../kernel/audit/ledger.js';
import type { AuditRetention } from '../../kernel/audit/retention.js';
import type { Barrier } from '../../kernel/seal/barrier.js';
import { opContext } from '../../kernel/op-context.js';
import type { AuditLog } from './log.js';

const tags = ['audit'];
const security = [{ bearer: [] }];
const b64 = (b: Buffer) => b.toString('base64');
const IndexParams = Type.Object({ index: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }) });
const IdParams = Type.Object({ id: Type.String({ maxLength: 64 }) });

export interface AuditRouteDeps {
  ledger: AuditLedger;
  log: AuditLog;
  retention: AuditRetention;
  barrier: () => Barrier;
  clock: () => Date;
}

/**
 * The audit ledger's API: queries, proofs anyone can check against a signed checkpoint, exports for offline
 * verification, legal holds, erasure of a data subject's personal data. Reads change nothing and are not audited,
 * except an export (it hands out the log).
 */
export function auditRoutes(deps: AuditRouteDeps): FastifyPluginAsync {
  const { ledger, log, retention } = deps;
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();

    app.get('/audit/events', {
      schema: { tags, security, summary: 'Query audit events (newest first by default)', querystring: AuditQuery, response: { 200: AuditEventPage } },
      config: { permission: 'audit:events:read' },
      handler: async (req) => ledger.query(req.query),
    });

    app.get('/audit/events/:index', {
      schema: { tags, security, summary: 'One audit event by its index, exactly as its leaf hashes it (410 once purged)', params: IndexParams, response: { 200: AuditEvent } },
      config: { permission: 'audit:events:read' },
      handler: async (req) => {
        const e = await ledger.get(req.params.index);
        if (!e) throw new PalisadeError('PAL_AUDIT_EVENT_NOT_FOUND', `the log has no entry ${req.params.index}`);
        return e;
      },
    });

    app.get('/audit/events/:index/personal', {
      schema: {
        tags,
        security,
        summary: "An event's personal fields, decrypted with its subject's key (409 once the subject is erased)",
        params: IndexParams,
        response: { 200: Type.Record(Type.String(), Type.Unknown()) },
      },
      config: { permission: 'audit:personal:read' },
      handler: async (req) => {
        const p = await ledger.personal(req.params.index);
        if (p === null) throw new PalisadeError('PAL_AUDIT_SUBJECT_ERASED');
        return p ?? {};
      },
    });

    app.get('/audit/log', {
      schema: { tags, security, summary: "The log's name, its checkpoint verifier keys and its current size and root", response: { 200: AuditLogInfo } },
      config: { permission: 'audit:events:read' },
      handler: async () => {
        const head = await ledger.head();
        return { origin: await log.origin(), verifier_keys: await log.verifierKeys(), size: head.size, root_hash: b64(head.root) };
      },
    });

    app.get('/audit/checkpoint', {
      schema: { tags, security, summary: 'The latest signed checkpoint, with its cosignatures and time-stamps', querystring: Type.Object({ size: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })) }, { additionalProperties: false }), response: { 200: AuditCheckpoint } },
      config: { permission: 'audit:events:read' },
      handler: async (req) => log.checkpoint(req.query.size),
    });

    app.get('/audit/proof/inclusion', {
      schema: { tags, security, summary: 'RFC 9162 inclusion proof of an entry in the tree of a given size', querystring: InclusionProofQuery, response: { 200: InclusionProof } },
      config: { permission: 'audit:events:read' },
      handler: async (req) => {
        const p = await ledger.inclusionProof(req.query.index, req.query.tree_size);
        return { leaf_index: p.leaf_index, tree_size: p.tree_size, leaf_hash: b64(p.leaf_hash), hashes: p.hashes.map(b64) };
      },
    });

    app.get('/audit/proof/consistency', {
      schema: { tags, security, summary: 'RFC 9162 consistency proof between two tree sizes', querystring: ConsistencyProofQuery, response: { 200: ConsistencyProof } },
      config: { permission: 'audit:events:read' },
      handler: async (req) => ({ from: req.query.from, to: req.query.to, hashes: (await ledger.consistencyProof(req.query.from, req.query.to)).map(b64) }),
    });

    app.get('/audit/export', {
      schema: {
        tags,
        security,
        summary: 'Export entries, checkpoints and anchors as NDJSON, for `palisade audit verify --file` or the SDK verifier on another machine',
        querystring: Type.Object({ to: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'tree size to export up to; the latest checkpoint by default' })) }, { additionalProperties: false }),
        produces: ['application/x-ndjson'],
      },
      config: { permission: 'audit:events:export', audit: 'audit.export' },
      handler: async (req, reply) => {
        const lines = await log.exportLines(req.query.to, req.tx);
        req.auditRecord.resource = { type: 'audit_log', id: await log.origin(req.tx) };
        req.auditRecord.details = { to: lines.to };
        void reply.type('application/x-ndjson');
        // Returned, not sent: the pipeline commits the audit event first, then the stream starts reading.
        return Readable.from(lines.stream());
      },
    });

    app.post('/audit/hash', {
      schema: { tags, security, summary: 'HMAC a value the way sensitive values appear in audit events, to search for it', body: AuditHashRequest, response: { 200: AuditHashResponse } },
      config: { permission: 'audit:hash', audit: 'audit.hash' },
      handler: async (req) => ({ hash: deps.barrier().auditHmac(req.body.value) }),
    });

    app.post('/audit/holds', {
      schema: { tags, security, summary: 'Place a legal hold: what it covers is kept regardless of retention until it is released', body: CreateHoldRequest, response: { 201: LegalHold } },
      config: { permission: 'audit:holds:create', audit: 'audit.hold.create' },
      handler: async (req, reply) => {
        const hold = await retention.createHold({ db: req.tx }, req.body, req.principal!.principal_id);
        req.auditRecord.resource = { type: 'audit_hold', id: hold.id };
        req.auditRecord.details = { name: hold.name, filter: hold.filter };
        void reply.code(201);
        return hold;
      },
    });

    app.get('/audit/holds', {
      schema: { tags, security, summary: 'Legal holds (active ones unless all=true)', querystring: Type.Object({ all: Type.Optional(Type.Boolean()) }, { additionalProperties: false }), response: { 200: Type.Object({ holds: Type.Array(LegalHold) }) } },
      config: { permission: 'audit:holds:read' },
      handler: async (req) => ({ holds: await retention.listHolds(req.tx, req.query.all ?? false) }),
    });

    app.get('/audit/holds/:id', {
      schema: { tags, security, summary: 'One legal hold', params: IdParams, response: { 200: LegalHold } },
      config: { permission: 'audit:holds:read' },
      handler: async (req) => retention.getHold(req.tx, req.params.id),
    });

    app.post('/audit/holds/:id/release', {
      schema: {
        tags,
        security,
        summary: 'Ask to release a legal hold: a different principal holding audit:holds:release must approve (202)',
        params: IdParams,
        body: Type.Object({ reason: Type.Optional(Type.String({ maxLength: 1024 })) }, { additionalProperties: false }),
        response: { 202: Approval },
      },
      config: { permission: 'audit:holds:release', audit: 'audit.hold.release.request' },
      handler: async (req, reply) => {
        req.auditRecord.resource = { type: 'audit_hold', id: req.params.id };
        const approval = await retention.requestRelease(opContext(req), req.params.id, req.principal!.principal_id, req.body.reason);
        req.auditRecord.details = { approval_id: approval.id, state: 'awaiting_approval' };
        void reply.code(202);
        return approval;
      },
    });

    app.post('/audit/subjects/erase', {
      schema: { tags, security, summary: "Erase a data subject: destroy the key of its personal data in the log (proofs stay valid)", body: EraseSubjectRequest, response: { 200: EraseSubjectResponse } },
      config: { permission: 'audit:subjects:erase', audit: 'audit.subject.erase' },
      handler: async (req) => {
        const now = deps.clock();
        const out = await ledger.subjects.erase(req.tx, req.body.subject, now);
        req.auditRecord.resource = { type: 'audit_subject', id: out.subject_ref };
        req.auditRecord.details = { had_data: out.existed };
        return { subject_ref: out.subject_ref, erased_at: now.toISOString(), had_data: out.existed };
      },
    });
  };
}
