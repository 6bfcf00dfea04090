import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import {
  BatchDecryptRequest,
  BatchDecryptResponse,
  BatchEncryptRequest,
  BatchEncryptResponse,
  CancelDestructionRequest,
  CreateKeyRequest,
  DataKeyRequest,
  DataKeyResponse,
  DecryptRequest,
  EncryptedData,
  EncryptRequest,
  HmacRequest,
  HmacResponse,
  HmacVerifyRequest,
  KeyIdParams,
  KeyList,
  KeyMetadata,
  Approval,
  ImportKeyRequest,
  WrappingKey,
  ExportKeyRequest,
  ExportedKey,
  sha256,
  ListKeysQuery,
  MAX_BATCH,
  PalisadeError,
  PlaintextResponse,
  PublicKeyResponse,
  RewrapRequest,
  ScheduleDestructionRequest,
  SignRequest,
  SignResponse,
  UpdateKeyRequest,
  VerifyRequest,
  VerifyResponse,
} from '@palisade/core';
import { toPalisadeError } from '../../http/problem.js';
import type { KmsService } from './service.js';
import { opContext } from '../../kernel/op-context.js';
import type { KmsMetrics } from './metrics.js';

const tags = ['kms'];
const security = [{ bearer: [] }];

const op = opContext;

function onKey(req: FastifyRequest, details: Record<string, unknown> = {}): void {
  req.auditRecord.resource = { type: 'kms_key', id: (req.params as { key_id: string }).key_id };
  req.auditRecord.details = details;
}

/** 201 with the new key, and what its audit event records of it. */
function created(req: FastifyRequest, reply: FastifyReply, meta: KeyMetadata): KeyMetadata {
  req.auditRecord.resource = { type: 'kms_key', id: meta.key_id };
  req.auditRecord.details = { key_type: meta.key_type, algorithm: meta.algorithm, classification: meta.classification, usage: meta.usage, origin: meta.origin, exportable: meta.exportable };
  void reply.code(201);
  return meta;
}

const b = (s: string) => Buffer.from(s, 'base64');

/** Routes of the KMS engine, mounted under /v1. Every state change and every cryptographic operation is audited. */
export function kmsRoutes(service: KmsService, metrics: KmsMetrics): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();

    // Routes on one key are decided on that key: its name (and the project it starts with) and its classification.
    app.addHook('onRoute', (route) => {
      if (route.url.includes(':key_id') && route.config) route.config.resource ??= (req) => service.attributes(req.tx, (req.params as { key_id: string }).key_id);
    });

    // Refusals of decryption never reach the service: count them here for the UnauthorizedDecryption alert.
    app.addHook('onResponse', async (req, reply) => {
      if ((reply.statusCode === 401 || reply.statusCode === 403) && req.routeOptions.config.permission === 'kms:decrypt') {
        metrics.decryption('unknown', 'unknown', 'unauthorized');
      }
    });

    app.post('/keys', {
      schema: { tags, security, summary: 'Create a key', body: CreateKeyRequest, response: { 201: KeyMetadata } },
      config: { permission: 'kms:keys:create', audit: 'kms.key.create' },
      handler: async (req, reply) => {
        return created(req, reply, await service.create(op(req), req.body));
      },
    });

    app.get('/keys', {
      schema: { tags, security, summary: 'List keys (paged, filterable)', querystring: ListKeysQuery, response: { 200: KeyList } },
      config: { permission: 'kms:keys:list' },
      handler: async (req) => service.list(req.tx, req.query),
    });

    app.get('/keys/:key_id', {
      schema: { tags, security, summary: 'Show a key and its versions', params: KeyIdParams, response: { 200: KeyMetadata } },
      config: { permission: 'kms:keys:read' },
      handler: async (req) => service.get(req.tx, req.params.key_id),
    });

    app.patch('/keys/:key_id', {
      schema: { tags, security, summary: 'Change min_decryption_version or rotation period', params: KeyIdParams, body: UpdateKeyRequest, response: { 200: KeyMetadata } },
      config: { permission: 'kms:keys:update', audit: 'kms.key.update' },
      handler: async (req) => {
        onKey(req, { ...req.body });
        return service.update(op(req), req.params.key_id, req.body);
      },
    });

    app.post('/keys/rewrap-all', {
      schema: {
        tags,
        security,
        summary: 'Move every key still wrapped under an older KEK version to the current one, now (progress: the system KEKs\' rewrap)',
        response: { 202: Type.Object({ pending: Type.Integer({ description: 'key versions still to rewrap when the request was accepted' }) }) },
      },
      config: { permission: 'kms:keys:rotate', audit: 'kms.kek.rewrap_all' },
      handler: async (req, reply) => {
        const pending = await service.rewrapBacklog(req.tx);
        req.auditRecord.details = { pending };
        req.auditRecord.afterCommit.push(async () => service.kekRotated());
        void reply.code(202);
        return { pending };
      },
    });

    app.get('/keys/import/wrapping-key', {
      schema: { tags, security, summary: 'The RSA-4096 public key to wrap keys for import (RSA_AES_KEY_WRAP_SHA_256)', response: { 200: WrappingKey } },
      config: { permission: 'kms:keys:import' },
      handler: async (req) => ({ public_key_pem: (await service.wrappingKey(req.tx)).publicKeyPem, algorithm: 'RSA-4096' as const, format: 'RSA_AES_KEY_WRAP_SHA_256' as const }),
    });

    app.post('/keys/import', {
      schema: { tags, security, summary: 'Import (bring your own key): version 1 is the unwrapped material; later versions are generated here', body: ImportKeyRequest, response: { 201: KeyMetadata } },
      config: { permission: 'kms:keys:import', audit: 'kms.key.import' },
      handler: async (req, reply) => {
        return created(req, reply, await service.importKey(op(req), req.body));
      },
    });

    app.post('/keys/:key_id/export', {
      schema: { tags, security, summary: "Export a version wrapped for the receiver's RSA public key (exportable keys only)", params: KeyIdParams, body: ExportKeyRequest, response: { 200: ExportedKey } },
      config: { permission: 'kms:keys:export', audit: 'kms.key.export' },
      handler: async (req) => {
        const out = await service.exportKey(req.tx, req.params.key_id, req.body);
        onKey(req, { version: out.version, receiver_sha256: sha256(Buffer.from(req.body.public_key_pem)).toString('hex') });
        return out;
      },
    });

    app.post('/keys/:key_id/rotate', {
      schema: {
        tags,
        security,
        summary: 'Rotate: a new version encrypts from now on (200); if the key type\'s policy requires approval, an approval request (202)',
        params: KeyIdParams,
        response: { 200: KeyMetadata, 202: Approval },
      },
      config: { permission: 'kms:keys:rotate', audit: 'kms.key.rotate' },
      handler: async (req, reply) => {
        onKey(req, { reason: 'manual' });
        const out = await service.requestRotation(op(req), req.params.key_id, req.principal!.principal_id, 'manual');
        if ('approval' in out) {
          req.auditRecord.details = { reason: 'manual', approval_id: out.approval.id, state: 'awaiting_approval' };
          void reply.code(202);
          return out.approval;
        }
        const meta = out.rotated;
        req.auditRecord.details = { reason: 'manual', version: meta.version };
        if (meta.rewrap?.pending) req.auditRecord.afterCommit.push(async () => service.kekRotated()); // start the rewrap now
        return meta;
      },
    });

    for (const [action, enabled] of [['disable', false], ['enable', true]] as const) {
      app.post(`/keys/:key_id/${action}`, {
        schema: { tags, security, summary: `${action === 'disable' ? 'Disable' : 'Enable'} a key`, params: KeyIdParams, response: { 200: KeyMetadata } },
        config: { permission: `kms:keys:${action}`, audit: `kms.key.${action}` },
        handler: async (req) => {
          onKey(req);
          return service.setEnabled(op(req), req.params.key_id, enabled);
        },
      });
    }

    app.post('/keys/:key_id/schedule-destruction', {
      schema: {
        tags,
        security,
        summary: 'Schedule destruction of a key or one version after 7-30 days; refused while it may protect data unless forced, which needs an approval (202)',
        params: KeyIdParams,
        body: ScheduleDestructionRequest,
        response: { 200: KeyMetadata, 202: Approval },
      },
      config: { permission: 'kms:keys:destroy', audit: 'kms.key.schedule_destruction' },
      handler: async (req, reply) => {
        onKey(req, { ...req.body });
        const out = await service.requestDestruction(op(req), req.params.key_id, req.body, req.principal!.principal_id);
        if ('scheduled' in out) return out.scheduled;
        req.auditRecord.details = { ...req.body, approval_id: out.approval.id, state: 'awaiting_approval' };
        void reply.code(202);
        return out.approval;
      },
    });

    app.post('/keys/:key_id/cancel-destruction', {
      schema: { tags, security, summary: 'Cancel a scheduled destruction', params: KeyIdParams, body: Type.Optional(CancelDestructionRequest), response: { 200: KeyMetadata } },
      config: { permission: 'kms:keys:destroy', audit: 'kms.key.cancel_destruction' },
      handler: async (req) => {
        onKey(req, { ...(req.body ?? {}) });
        return service.cancelDestruction(op(req), req.params.key_id, req.body?.version);
      },
    });

    app.get('/keys/:key_id/public-key', {
      schema: { tags, security, summary: 'Public key of a signing key (PEM)', params: KeyIdParams, querystring: Type.Object({ version: Type.Optional(Type.Integer({ minimum: 1 })) }), response: { 200: PublicKeyResponse } },
      config: { permission: 'kms:keys:read' },
      handler: async (req) => service.publicKey(req.tx, req.params.key_id, req.query.version),
    });

    app.post('/keys/:key_id/encrypt', {
      schema: { tags, security, summary: 'Encrypt with the current version; context is bound as AAD', params: KeyIdParams, body: EncryptRequest, response: { 200: EncryptedData } },
      config: { permission: 'kms:encrypt', audit: 'kms.encrypt' },
      handler: async (req) => {
        const out = await service.encrypt(op(req), req.params.key_id, b(req.body.plaintext), req.body.context);
        onKey(req, { key_version: out.key_version });
        return out;
      },
    });

    app.post('/keys/:key_id/decrypt', {
      schema: { tags, security, summary: 'Decrypt; any change to ciphertext, iv, tag, version or context fails with PAL_KMS_DECRYPT_FAILED', params: KeyIdParams, body: DecryptRequest, response: { 200: PlaintextResponse } },
      config: { permission: 'kms:decrypt', audit: 'kms.decrypt' },
      handler: async (req) => {
        onKey(req, { key_version: req.body.key_version });
        const plaintext = await service.decrypt(req.tx, req.params.key_id, req.body, req.body.context);
        return { plaintext: plaintext.toString('base64') };
      },
    });

    app.post('/keys/:key_id/encrypt/batch', {
      schema: { tags, security, summary: `Encrypt up to ${MAX_BATCH} items; results per item`, params: KeyIdParams, body: BatchEncryptRequest, response: { 200: BatchEncryptResponse } },
      config: { permission: 'kms:encrypt', audit: 'kms.encrypt.batch' },
      handler: async (req) => {
        if (req.body.items.length > MAX_BATCH) throw new PalisadeError('PAL_KMS_BATCH_TOO_LARGE', `${req.body.items.length} items; at most ${MAX_BATCH}`);
        const ctx = op(req);
        const results = [];
        for (const item of req.body.items) {
          try {
            results.push({ ok: true as const, data: await service.encrypt(ctx, req.params.key_id, b(item.plaintext), item.context) });
          } catch (e) {
            results.push({ ok: false as const, error: itemError(e) });
          }
        }
        onKey(req, { items: results.length, failed: results.filter((r) => !r.ok).length });
        return { results };
      },
    });

    app.post('/keys/:key_id/decrypt/batch', {
      schema: { tags, security, summary: `Decrypt up to ${MAX_BATCH} items; results per item`, params: KeyIdParams, body: BatchDecryptRequest, response: { 200: BatchDecryptResponse } },
      config: { permission: 'kms:decrypt', audit: 'kms.decrypt.batch' },
      handler: async (req) => {
        if (req.body.items.length > MAX_BATCH) throw new PalisadeError('PAL_KMS_BATCH_TOO_LARGE', `${req.body.items.length} items; at most ${MAX_BATCH}`);
        const results = [];
        for (const item of req.body.items) {
          try {
            results.push({ ok: true as const, plaintext: (await service.decrypt(req.tx, req.params.key_id, item, item.context)).toString('base64') });
          } catch (e) {
            results.push({ ok: false as const, error: itemError(e) });
          }
        }
        onKey(req, { items: results.length, failed: results.filter((r) => !r.ok).length });
        return { results };
      },
    });

    app.post('/keys/:key_id/data-key', {
      schema: { tags, security, summary: 'Generate a data key: plaintext and wrapped under this key (envelope encryption)', params: KeyIdParams, body: DataKeyRequest, response: { 200: DataKeyResponse } },
      config: { permission: 'kms:data-key', audit: 'kms.data_key' },
      handler: async (req) => {
        const out = await service.dataKey(op(req), req.params.key_id, req.body.bytes ?? 32, req.body.context);
        onKey(req, { key_version: out.ciphertext.key_version, bytes: req.body.bytes ?? 32 });
        return out;
      },
    });

    app.post('/keys/:key_id/rewrap', {
      schema: { tags, security, summary: 'Re-encrypt under the current version without returning plaintext', params: KeyIdParams, body: RewrapRequest, response: { 200: EncryptedData } },
      config: { permission: 'kms:rewrap', audit: 'kms.rewrap' },
      handler: async (req) => {
        const out = await service.rewrap(op(req), req.params.key_id, req.body, req.body.context);
        onKey(req, { from_version: req.body.key_version, to_version: out.key_version });
        return out;
      },
    });

    app.post('/keys/:key_id/sign', {
      schema: { tags, security, summary: 'Sign a message with the current version', params: KeyIdParams, body: SignRequest, response: { 200: SignResponse } },
      config: { permission: 'kms:sign', audit: 'kms.sign' },
      handler: async (req) => {
        const out = await service.sign(op(req), req.params.key_id, b(req.body.message));
        onKey(req, { key_version: out.key_version });
        return out;
      },
    });

    app.post('/keys/:key_id/verify', {
      schema: { tags, security, summary: 'Verify a signature (current version unless key_version is given)', params: KeyIdParams, body: VerifyRequest, response: { 200: VerifyResponse } },
      config: { permission: 'kms:verify', audit: 'kms.verify' },
      handler: async (req) => {
        const out = await service.verify(req.tx, req.params.key_id, b(req.body.message), b(req.body.signature), req.body.key_version);
        onKey(req, { key_version: out.key_version, valid: out.valid });
        return out;
      },
    });

    app.post('/keys/:key_id/hmac', {
      schema: { tags, security, summary: 'HMAC-SHA256 of data', params: KeyIdParams, body: HmacRequest, response: { 200: HmacResponse } },
      config: { permission: 'kms:hmac', audit: 'kms.hmac' },
      handler: async (req) => {
        const out = await service.sign(op(req), req.params.key_id, b(req.body.data));
        onKey(req, { key_version: out.key_version });
        return { mac: out.signature, key_id: out.key_id, key_version: out.key_version };
      },
    });

    app.post('/keys/:key_id/hmac/verify', {
      schema: { tags, security, summary: 'Verify an HMAC in constant time', params: KeyIdParams, body: HmacVerifyRequest, response: { 200: VerifyResponse } },
      config: { permission: 'kms:hmac', audit: 'kms.hmac.verify' },
      handler: async (req) => {
        const out = await service.verify(req.tx, req.params.key_id, b(req.body.data), b(req.body.mac), req.body.key_version);
        onKey(req, { key_version: out.key_version, valid: out.valid });
        return out;
      },
    });
  };
}

function itemError(e: unknown): { code: string; status: number; detail: string } {
  const pe = toPalisadeError(e);
  if (pe.status >= 500) throw e; // an item's server failure fails the batch: never a partial answer on our fault
  return { code: pe.code, status: pe.status, detail: pe.message };
}
