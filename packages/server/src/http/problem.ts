import { isPalisadeError, PalisadeError } from '@palisade/core';
import type { FastifyError, FastifyInstance } from 'fastify';

interface ValidationItem {
  path: string;
  message: string;
}

/** Map anything thrown in a request to the one error catalogue. Unknown errors become PAL_INTERNAL (and are logged). */
export function toPalisadeError(err: unknown): PalisadeError {
  if (isPalisadeError(err)) return err;
  const e = err as Omit<FastifyError, 'validation'> & { validation?: Array<{ instancePath?: string; message?: string; keyword?: string; schema?: unknown; params?: Record<string, unknown> }>; validationContext?: string };
  if (Array.isArray(e.validation)) {
    const where = e.validationContext ?? 'body';
    const errors: ValidationItem[] = e.validation.map((v) => {
      const extra = v.keyword === 'additionalProperties' ? ` '${String(v.params?.additionalProperty)}'` : '';
      return { path: `${where}${v.instancePath ?? ''}`, message: `${v.message ?? 'is invalid'}${extra}` };
    });
    const base64 = e.validation.find((v) => v.keyword === 'format' && v.params?.format === 'base64');
    if (base64) return new PalisadeError('PAL_BAD_BASE64', `${where}${base64.instancePath ?? ''} is not valid standard base64`, { extensions: { errors } });
    const first = errors[0];
    return new PalisadeError('PAL_VALIDATION_FAILED', first ? `${first.path} ${first.message}` : 'request is invalid', { extensions: { errors } });
  }
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new PalisadeError('PAL_BODY_TOO_LARGE');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new PalisadeError('PAL_UNSUPPORTED_MEDIA_TYPE');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new PalisadeError('PAL_MALFORMED_JSON', 'the body is empty but Content-Type is application/json');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new PalisadeError('PAL_VALIDATION_FAILED', 'Content-Length does not match the body');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new PalisadeError('PAL_MALFORMED_JSON');
  }
  if (err instanceof SyntaxError && e.statusCode === 400) return new PalisadeError('PAL_MALFORMED_JSON', 'the body is not valid JSON');
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return new PalisadeError('PAL_VALIDATION_FAILED', 'the request is invalid', { cause: err });
  }
  return new PalisadeError('PAL_INTERNAL', undefined, { cause: err });
}

/** RFC 9457 answers for every error and for unknown routes. */
export function registerProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err, req, reply) => {
    const pe = toPalisadeError(err);
    if (pe.status >= 500) req.log.error({ err: pe.cause ?? err, code: pe.code }, 'request failed');
    else req.log.info({ code: pe.code }, pe.message);
    void reply.status(pe.status).type('application/problem+json').send(pe.toProblem(req.url.split('?')[0], req.id));
  });
  app.setNotFoundHandler((req, reply) => {
    const pe = new PalisadeError('PAL_NOT_FOUND', `no route for ${req.method} ${req.url.split('?')[0]}`);
    void reply.status(404).type('application/problem+json').send(pe.toProblem(req.url.split('?')[0], req.id));
  });
}
