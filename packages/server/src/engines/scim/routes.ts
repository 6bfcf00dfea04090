/**
 * SCIM 2.0 (RFC 7643/7644) provisioning at /scim/v2, inside the one request pipeline: every route declares its
 * permission (`scim:users:*`, `scim:groups:*`; an IdP gets an API key carrying `scim:*`) and every write its audit
 * event. Like ACME, this plugin speaks its protocol's dialect at the edge: bodies in `application/scim+json` (or
 * `application/json`), answers in `application/scim+json`, and every error, including the pipeline's 401/403/503
 * (hooks fail into this plugin's error handler) and unknown routes, as a SCIM error document.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import { PalisadeError } from '@palisade/core';
import type { Directory } from '../identity/directory.js';
import { discoveryRoutes } from './discovery.js';
import { SCIM_CONTENT_TYPE, toScimError } from './errors.js';
import { groupRoutes } from './groups.js';
import { userRoutes } from './users.js';

export interface ScimDeps {
  directory: Directory;
}

/** SCIM 2.0 (RFC 7643/7644) provisioning at /scim/v2. */
export function scimRoutes(deps: ScimDeps): FastifyPluginAsync {
  return async (app: FastifyInstance) => {
    const prefix = app.prefix;
    /** Absolute URIs for `meta.location` and `$ref`, as the client reached us. */
    const baseOf = (req: FastifyRequest) => `${req.protocol}://${req.host}${prefix}`;

    // The same parser (and prototype-poisoning guard) as application/json.
    app.addContentTypeParser('application/scim+json', { parseAs: 'string' }, app.getDefaultJsonParser('error', 'error'));

    app.setErrorHandler((err, req, reply) => {
      const { pe, body } = toScimError(err);
      if (pe.status >= 500) req.log.error({ err: pe.cause ?? err, code: pe.code }, 'SCIM request failed');
      else req.log.info({ code: pe.code }, pe.message);
      if (pe.status === 401) void reply.header('www-authenticate', 'Bearer realm="palisade-scim"');
      void reply.status(Number(body.status)).type(SCIM_CONTENT_TYPE).send(body);
    });
    app.setNotFoundHandler((req, reply) => {
      const { body } = toScimError(new PalisadeError('PAL_NOT_FOUND', `no SCIM endpoint at ${req.method} ${req.url.split('?')[0]}`));
      void reply.status(404).type(SCIM_CONTENT_TYPE).send(body);
    });
    app.addHook('onSend', async (_req, reply, payload) => {
      if (reply.statusCode === 204) {
        void reply.removeHeader('content-type');
        return null;
      }
      const type = reply.getHeader('content-type');
      if (typeof type === 'string' && type.startsWith('application/json')) void reply.header('content-type', SCIM_CONTENT_TYPE);
      return payload;
    });

    discoveryRoutes(app, baseOf);
    userRoutes(app, deps.directory, baseOf);
    groupRoutes(app, deps.directory, baseOf);
  };
}
