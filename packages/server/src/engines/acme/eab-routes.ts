import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { EabKeys } from './eab.js';

const tags = ['acme'];
const security = [{ bearer: [] }];

const EabKeyInfo = Type.Object({
  key_id: Type.String({ description: 'the EAB key id (kid) to give the ACME client' }),
  name: Type.String(),
  reusable: Type.Boolean({ description: 'may bind more than one account' }),
  created_at: Type.String({ format: 'date-time' }),
  created_by: Type.String(),
  expires_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  used_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  used_by: Type.Union([Type.String({ description: 'the first ACME account it bound' }), Type.Null()]),
  revoked_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});
const CreatedEabKey = Type.Intersect([EabKeyInfo, Type.Object({ hmac_key: Type.String({ description: 'base64url HMAC key, shown only now' }) })]);
const CreateEabKey = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100, description: 'who or what it is for' }),
    reusable: Type.Optional(Type.Boolean({ default: false, description: 'single-use (one account) unless true' })),
    expires_in_days: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650 })),
  },
  { additionalProperties: false },
);
const KeyIdParams = Type.Object({ key_id: Type.String({ maxLength: 64 }) });

/** EAB keys for ACME enrolment, under /v1 with the pipeline's bearer authentication. */
export function eabRoutes(eab: EabKeys): FastifyPluginAsync {
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();

    app.post('/acme/eab-keys', {
      schema: { tags, security, summary: 'Create an External Account Binding key for ACME enrolment (the HMAC key is shown once)', body: CreateEabKey, response: { 201: CreatedEabKey } },
      config: { permission: 'acme:eab:create', audit: 'acme.eab_key.create' },
      handler: async (req, reply) => {
        const created = await eab.create(req.tx, { name: req.body.name, reusable: req.body.reusable ?? false, expires_in_days: req.body.expires_in_days ?? null, created_by: req.principal!.principal_id });
        req.auditRecord.resource = { type: 'acme_eab_key', id: created.key_id };
        req.auditRecord.details = { name: created.name, reusable: created.reusable, expires_at: created.expires_at };
        void reply.code(201);
        return created;
      },
    });

    app.get('/acme/eab-keys', {
      schema: { tags, security, summary: 'List EAB keys (never their HMAC keys)', response: { 200: Type.Object({ eab_keys: Type.Array(EabKeyInfo) }) } },
      config: { permission: 'acme:eab:list' },
      handler: async (req) => ({ eab_keys: await eab.list(req.tx) }),
    });

    app.delete('/acme/eab-keys/:key_id', {
      schema: { tags, security, summary: 'Revoke an EAB key (accounts it bound stay)', params: KeyIdParams, response: { 200: EabKeyInfo } },
      config: { permission: 'acme:eab:revoke', audit: 'acme.eab_key.revoke' },
      handler: async (req) => {
        req.auditRecord.resource = { type: 'acme_eab_key', id: req.params.key_id };
        return eab.revoke(req.tx, req.params.key_id);
      },
    });
  };
}
