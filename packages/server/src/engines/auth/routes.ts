import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ApiKeyInfo, ApiKeyList, CreateApiKeyRequest, CreatedApiKey, PalisadeError, randomId, WhoAmI } from '@palisade/core';
import type { ApiKeyService } from '../../kernel/auth/api-keys.js';
import { canDelegate } from '../../kernel/auth/permissions.js';

const tags = ['auth'];
const security = [{ bearer: [] }];
const DAY_MS = 86_400_000;

/** API keys for services and people: created with a subset of the creator's permissions, stored hashed, revocable. */
export function authRoutes(apiKeys: ApiKeyService, clock: () => Date): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();

    app.get('/auth/whoami', {
      schema: { tags, security, summary: 'The principal behind this credential', response: { 200: WhoAmI } },
      config: { permission: 'auth:self:read' },
      handler: async (req) => {
        const p = req.principal!;
        return { principal_id: p.principal_id, api_key_id: p.api_key_id, permissions: p.permissions };
      },
    });

    app.post('/auth/api-keys', {
      schema: { tags, security, summary: 'Create an API key (token shown once)', body: CreateApiKeyRequest, response: { 201: CreatedApiKey } },
      config: { permission: 'auth:api-keys:create', audit: 'auth.api_key.create' },
      handler: async (req, reply) => {
        const held = req.principal!.permissions;
        const excess = req.body.permissions.filter((p) => !canDelegate(held, p));
        if (excess.length > 0) throw new PalisadeError('PAL_AUTH_GRANT_EXCEEDS', `you do not hold ${excess.join(', ')}`, { extensions: { permissions: excess } });
        const expires_at = req.body.expires_in_days ? new Date(clock().getTime() + req.body.expires_in_days * DAY_MS).toISOString() : null;
        const created = await apiKeys.create(req.tx, { name: req.body.name, principal_id: randomId('svc'), permissions: req.body.permissions, expires_at, created_by: req.principal!.principal_id });
        req.auditRecord.resource = { type: 'api_key', id: created.id };
        req.auditRecord.details = { name: created.name, permissions: created.permissions, expires_at, principal_id: created.principal_id };
        void reply.code(201);
        return created;
      },
    });

    app.get('/auth/api-keys', {
      schema: { tags, security, summary: 'List API keys (never their tokens)', response: { 200: ApiKeyList } },
      config: { permission: 'auth:api-keys:list' },
      handler: async (req) => ({ api_keys: await apiKeys.list(req.tx) }),
    });

    app.delete('/auth/api-keys/:id', {
      schema: { tags, security, summary: 'Revoke an API key', params: Type.Object({ id: Type.String({ maxLength: 64 }) }), response: { 200: ApiKeyInfo } },
      config: { permission: 'auth:api-keys:revoke', audit: 'auth.api_key.revoke' },
      handler: async (req) => {
        req.auditRecord.resource = { type: 'api_key', id: req.params.id };
        return apiKeys.revoke(req.tx, req.params.id);
      },
    });
  };
}
