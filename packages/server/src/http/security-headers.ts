/**
 * Security headers on every answer of the API: successes, problem documents, 404s, and answers the pipeline gives
 * before a route runs. The API serves no HTML, so its Content-Security-Policy allows nothing (the gateway sets its own
 * policy for the pages it serves).
 */
import type { FastifyInstance } from 'fastify';

/** HSTS per the seed: one year, subdomains, preload. */
export const SECURITY_HEADERS = {
  'strict-transport-security': 'max-age=31536000; includeSubDomains; preload',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
} as const;

/** Answers are not cached unless a route says otherwise (keys, tokens and audit data must not linger in caches). */
const DEFAULT_CACHE_CONTROL = 'no-store';

export function installSecurityHeaders(app: FastifyInstance): void {
  app.addHook('onSend', async (_req, reply, payload) => {
    void reply.headers(SECURITY_HEADERS);
    if (!reply.hasHeader('cache-control')) void reply.header('cache-control', DEFAULT_CACHE_CONTROL);
    return payload;
  });
}
