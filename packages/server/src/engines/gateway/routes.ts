import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { CreatedSigningKey, CreateSigningKeyRequest, ListSigningKeysQuery, PalisadeError, SigningKeyInfo, SigningKeyList } from '@palisade/core';
import type { Decision, RequestFacts, ResourceAttrs } from '../../kernel/auth/decision.js';
import type { Executor } from '../../storage/database.js';
import type { SigningKeys } from './signing-keys.js';

const tags = ['gateway'];
const security = [{ bearer: [] }];
const IdParams = Type.Object({ id: Type.String({ maxLength: 64 }) });

/** Whoever holds it creates, lists and revokes the signing keys of every principal, not only their own. */
export const MANAGE_SIGNING_KEYS = 'gateway:signing-keys:manage';

export interface GatewayRoutesDeps {
  signingKeys: SigningKeys;
  authz: { authorize(facts: RequestFacts, action: string, resource: ResourceAttrs, db?: Executor): Promise<Decision> };
}

/**
 * Request-signing keys (`/v1/gateway/signing-keys`): a principal holding `gateway:signing-keys:create` creates,
 * lists and revokes keys of its own; keys of other principals need `gateway:signing-keys:manage` as well, decided
 * by the authorization engine like any permission (bindings and policy rules apply). The secret is in the create
 * answer only: never in the audit event, the list, or a log.
 */
export function gatewayRoutes(deps: GatewayRoutesDeps): FastifyPluginAsync {
  const { signingKeys } = deps;

  /** Unless `principal_id` is the caller's, the caller must hold gateway:signing-keys:manage (403 otherwise). */
  async function mayActFor(req: FastifyRequest, principal_id: string, what: string, resource: ResourceAttrs): Promise<void> {
    const self = req.principal!;
    if (principal_id === self.principal_id) return;
    const d = await deps.authz.authorize({ principal: self, source_ip: req.ip }, MANAGE_SIGNING_KEYS, resource, req.tx);
    if (d.decision !== 'allow') {
      throw new PalisadeError('PAL_FORBIDDEN', `${what} of another principal requires ${MANAGE_SIGNING_KEYS}: ${d.reason}`, { extensions: { permission: MANAGE_SIGNING_KEYS, reason: d.reason } });
    }
  }

  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();

    app.post('/gateway/signing-keys', {
      schema: {
        tags,
        security,
        summary: 'Create a request-signing (HMAC-SHA256) key for yourself, or with gateway:signing-keys:manage for another principal; the secret is shown once',
        body: CreateSigningKeyRequest,
        response: { 201: CreatedSigningKey },
      },
      config: { permission: 'gateway:signing-keys:create', audit: 'gateway.signing_key.create' },
      handler: async (req, reply) => {
        const principal_id = req.body.principal_id ?? req.principal!.principal_id;
        req.auditRecord.details = { principal_id };
        await mayActFor(req, principal_id, 'creating a signing key', { type: 'signing_key', id: null });
        const created = await signingKeys.create(req.tx, { principal_id, name: req.body.name, created_by: req.principal!.principal_id });
        req.auditRecord.resource = { type: 'signing_key', id: created.id };
        void reply.code(201);
        return created;
      },
    });

    app.get('/gateway/signing-keys', {
      schema: {
        tags,
        security,
        summary: 'Your signing keys (never their secrets); with gateway:signing-keys:manage, every principal\'s, or the one given',
        querystring: ListSigningKeysQuery,
        response: { 200: SigningKeyList },
      },
      config: { permission: 'gateway:signing-keys:create' },
      handler: async (req) => {
        const self = req.principal!.principal_id;
        const wanted = req.query.principal_id;
        if (wanted !== undefined) {
          await mayActFor(req, wanted, 'listing the signing keys', { type: 'signing_key', id: null });
          return { signing_keys: await signingKeys.list(req.tx, wanted) };
        }
        const d = await deps.authz.authorize({ principal: req.principal!, source_ip: req.ip }, MANAGE_SIGNING_KEYS, { type: 'signing_key', id: null }, req.tx);
        return { signing_keys: await signingKeys.list(req.tx, d.decision === 'allow' ? undefined : self) };
      },
    });

    app.delete('/gateway/signing-keys/:id', {
      schema: { tags, security, summary: 'Revoke a signing key of yours (another principal\'s with gateway:signing-keys:manage); its signatures are refused from then on', params: IdParams, response: { 200: SigningKeyInfo } },
      config: { permission: 'gateway:signing-keys:create', audit: 'gateway.signing_key.revoke' },
      handler: async (req) => {
        req.auditRecord.resource = { type: 'signing_key', id: req.params.id };
        const key = await signingKeys.get(req.tx, req.params.id);
        req.auditRecord.details = { principal_id: key.principal_id };
        await mayActFor(req, key.principal_id, 'revoking the signing key', { type: 'signing_key', id: key.id });
        return signingKeys.revoke(req.tx, key.id);
      },
    });
  };
}
