/**
 * How the gateway answers by itself (refusals, upstream failures): RFC 9457 problem documents with the seed's
 * response headers, on a response object or, for what Node's parser refused before there was one, on the socket.
 */
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { STATUS_CODES } from 'node:http';
import type { PalisadeError } from '@palisade/core';
import type { GatewayConfig } from './config.js';

/** The seed's response headers (`api_gateway_security.response_security`), set on every answer of the gateway. */
export function securityHeaders(h: GatewayConfig['headers']): Record<string, string> {
  return {
    'strict-transport-security': h.strict_transport_security,
    'content-security-policy': h.content_security_policy,
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'referrer-policy': h.referrer_policy,
  };
}

interface ProblemContext {
  path: string;
  requestId: string;
  headers: Record<string, string>;
  extra?: Record<string, string>;
}

/** The problem document and the headers that go with it (the seed's, the route's extras, its type and length). */
function problem(pe: PalisadeError, ctx: ProblemContext, close: boolean): { body: string; headers: Record<string, string | number> } {
  const body = JSON.stringify(pe.toProblem(ctx.path, ctx.requestId));
  return {
    body,
    headers: {
      ...ctx.headers,
      ...ctx.extra,
      'content-type': 'application/problem+json',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
      'x-request-id': ctx.requestId,
      ...(close ? { connection: 'close' } : {}),
    },
  };
}

/** A problem document as the answer; `close` ends the connection (its framing or body can no longer be trusted). */
export function sendProblem(res: ServerResponse, pe: PalisadeError, ctx: ProblemContext & { close?: boolean }): void {
  if (res.headersSent) {
    res.destroy(); // mid-stream: the only honest signal left is an aborted response
    return;
  }
  const p = problem(pe, ctx, ctx.close === true);
  res.writeHead(pe.status, p.headers);
  res.end(p.body);
}

/** A problem written straight to a socket (a request Node's parser refused, or a refused WebSocket upgrade), then closed. */
export function writeSocketProblem(socket: Duplex, pe: PalisadeError, ctx: ProblemContext): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const p = problem(pe, ctx, true);
  const head = [`HTTP/1.1 ${pe.status} ${STATUS_CODES[pe.status] ?? 'Error'}`, ...Object.entries(p.headers).map(([k, v]) => `${k}: ${v}`)].join('\r\n');
  socket.end(`${head}\r\n\r\n${p.body}`);
}
