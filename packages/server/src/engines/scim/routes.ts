import type { FastifyPluginAsync } from 'fastify';
import type { Directory } from '../identity/directory.js';

export interface ScimDeps {
  directory: Directory;
}

/** SCIM 2.0 (RFC 7643/7644) provisioning at /scim/v2. */
export function scimRoutes(_deps: ScimDeps): FastifyPluginAsync {
  return async () => {};
}
