/**
 * Versions (RFC 7644 §3.14): every resource carries `meta.version` and an `ETag` of `W/"<version>"`; a write with
 * `If-Match` naming another version is refused with 412, so a client that read an old copy does not overwrite a
 * newer one. The check runs after the row is locked (membership.ts lockRow), so it cannot race the write.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { preconditionFailed } from './errors.js';
import { etag } from './resources.js';

/** Throws 412 when `If-Match` is present and names neither `*` nor this version (weak or strong form). */
export function checkIfMatch(req: FastifyRequest, version: number): void {
  const header = req.headers['if-match'];
  if (header === undefined) return;
  const tags = header.split(',').map((t) => t.trim());
  const current = etag(version);
  if (tags.some((t) => t === '*' || t === current || `W/${t}` === current)) return;
  throw preconditionFailed(`the resource is at version ${current}, not ${header}`);
}

export function setEtag(reply: FastifyReply, version: number): void {
  void reply.header('etag', etag(version));
}

/**
 * A 204 answer, sent by Fastify after the handler returns, so after the pipeline's transaction commits. Sending it
 * from inside the handler (`reply.code(204).send()`) would answer before the commit, and the transaction would then
 * wait on the reply (a thenable) and roll back if the client closed the connection first.
 */
export function noContent(reply: FastifyReply): null {
  void reply.code(204);
  return null;
}
