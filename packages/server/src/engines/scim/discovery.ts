/**
 * Discovery (RFC 7644 §4): /ServiceProviderConfig, /ResourceTypes and /Schemas, generated from the schema table so
 * they describe exactly what the endpoints do. They are public, as the RFC allows: they are static, and they are
 * what tells a client how to authenticate.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { PalisadeError } from '@palisade/core';
import { MAX_RESULTS } from './list.js';
import { GROUP, LIST_RESPONSE, USER, type ResourceSchema } from './schema.js';

const SPC = 'urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig';
const RESOURCE_TYPE = 'urn:ietf:params:scim:schemas:core:2.0:ResourceType';
const SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Schema';
const SCHEMAS: readonly ResourceSchema[] = [USER, GROUP];

const listOf = (resources: unknown[]) => ({ schemas: [LIST_RESPONSE], totalResults: resources.length, startIndex: 1, itemsPerPage: resources.length, Resources: resources });

function resourceType(s: ResourceSchema, base: string) {
  return { schemas: [RESOURCE_TYPE], id: s.name, name: s.name, endpoint: s.endpoint, description: s.description, schema: s.id, meta: { resourceType: 'ResourceType', location: `${base}/ResourceTypes/${s.name}` } };
}

function schemaDocument(s: ResourceSchema, base: string) {
  return { schemas: [SCHEMA], id: s.id, name: s.name, description: s.description, attributes: s.attributes, meta: { resourceType: 'Schema', location: `${base}/Schemas/${s.id}` } };
}

const notFound = (what: string) => new PalisadeError('PAL_NOT_FOUND', `no ${what}`);

export function discoveryRoutes(app: FastifyInstance, baseOf: (req: FastifyRequest) => string): void {
  const open = { config: { permission: null } };
  const id = (req: FastifyRequest) => (req.params as { id: string }).id;

  app.get('/ServiceProviderConfig', { ...open, schema: { tags: ['scim'], summary: 'SCIM service provider configuration' } }, async (req) => ({
    schemas: [SPC],
    patch: { supported: true },
    bulk: { supported: false, maxOperations: 0, maxPayloadSize: 0 },
    filter: { supported: true, maxResults: MAX_RESULTS },
    changePassword: { supported: false },
    sort: { supported: false },
    etag: { supported: true },
    authenticationSchemes: [
      {
        type: 'oauthbearertoken',
        name: 'Bearer API key',
        description: 'A Palisade API key carrying scim:* (or scim:users:* and scim:groups:*), sent as Authorization: Bearer pal_...',
        primary: true,
      },
    ],
    meta: { resourceType: 'ServiceProviderConfig', location: `${baseOf(req)}/ServiceProviderConfig` },
  }));

  app.get('/ResourceTypes', { ...open, schema: { tags: ['scim'], summary: 'SCIM resource types' } }, async (req) => listOf(SCHEMAS.map((s) => resourceType(s, baseOf(req)))));
  app.get('/ResourceTypes/:id', { ...open, schema: { tags: ['scim'], summary: 'A SCIM resource type' } }, async (req) => {
    const s = SCHEMAS.find((x) => x.name === id(req));
    if (!s) throw notFound(`resource type ${id(req)}`);
    return resourceType(s, baseOf(req));
  });

  app.get('/Schemas', { ...open, schema: { tags: ['scim'], summary: 'SCIM schemas' } }, async (req) => listOf(SCHEMAS.map((s) => schemaDocument(s, baseOf(req)))));
  app.get('/Schemas/:id', { ...open, schema: { tags: ['scim'], summary: 'A SCIM schema' } }, async (req) => {
    const s = SCHEMAS.find((x) => x.id === id(req));
    if (!s) throw notFound(`schema ${id(req)}`);
    return schemaDocument(s, baseOf(req));
  });
}
