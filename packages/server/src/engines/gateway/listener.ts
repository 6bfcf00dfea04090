/**
 * The gateway's own listener: HTTPS with the server's certificate (client certificates asked for, so routes can take
 * them), Node's strict HTTP parser, and the seed's limits on headers and slow clients. What the parser refuses
 * (ambiguous framing, malformed or oversized headers, a client too slow to send its request) never reaches the
 * gateway's handler: `clientError` answers it, audits it and closes the connection.
 */
import { createServer as createHttpServer, type Server as HttpServer, type ServerOptions as HttpOptions } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsOptions } from 'node:https';
import type { GatewayConfig } from './config.js';
import type { Gateway } from './gateway.js';

/** `tls` absent: plain HTTP, for tests on loopback and for a TLS-terminating balancer in front (not the default). */
export function createGatewayServer(gateway: Gateway, limits: GatewayConfig['limits'], tls?: HttpsOptions): HttpServer {
  const options: HttpOptions = {
    maxHeaderSize: limits.header_bytes,
    headersTimeout: limits.headers_timeout_ms,
    requestTimeout: limits.request_timeout_ms,
    keepAliveTimeout: limits.keep_alive_timeout_ms,
    // How often Node looks for connections past headersTimeout / requestTimeout (its default, 30 s, would let a slow
    // client hold a connection far beyond the configured limit).
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.headers_timeout_ms / 4))),
    requireHostHeader: true,
    joinDuplicateHeaders: false,
    insecureHTTPParser: false,
  };
  const server = tls ? createHttpsServer({ ...tls, ...options }) : createHttpServer(options);
  server.on('request', (req, res) => gateway.handle(req, res));
  server.on('upgrade', (req, socket, head: Buffer) => gateway.upgrade(req, socket, head));
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => void gateway.clientError(err, socket));
  return server;
}
