import { Type } from '@sinclair/typebox';

/** RFC 9457 problem document, as every error response of the public API. */
export const Problem = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String({ description: 'stable error code from docs/errors.md' }),
    instance: Type.Optional(Type.String()),
    request_id: Type.Optional(Type.String()),
  },
  { additionalProperties: true },
);
