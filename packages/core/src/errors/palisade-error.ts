import { ERROR_CATALOGUE, type ErrorCode } from './catalogue.js';

/** RFC 9457 problem details, as every HTTP error leaves Palisade. */
export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  instance?: string;
  request_id?: string;
  [extension: string]: unknown;
}

export const PROBLEM_TYPE_BASE = 'https://palisade.dev/errors/';

/**
 * The only error type that crosses a boundary. `message` is public; `cause` is for logs and is never serialized;
 * `extensions` are public, machine-readable fields (never secrets or plaintext).
 */
export class PalisadeError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly extensions: Record<string, unknown>;

  constructor(code: ErrorCode, message?: string, options: { cause?: unknown; extensions?: Record<string, unknown> } = {}) {
    const spec = ERROR_CATALOGUE[code];
    super(message ?? spec.title, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PalisadeError';
    this.code = code;
    this.status = spec.status;
    this.extensions = options.extensions ?? {};
  }

  toProblem(instance?: string, requestId?: string): ProblemDetails {
    const spec = ERROR_CATALOGUE[this.code];
    return {
      ...this.extensions,
      type: PROBLEM_TYPE_BASE + this.code,
      title: spec.title,
      status: this.status,
      detail: this.message,
      code: this.code,
      ...(instance === undefined ? {} : { instance }),
      ...(requestId === undefined ? {} : { request_id: requestId }),
    };
  }

  /** Never leak `cause` (it may hold key material or plaintext-bearing errors) when serialized. */
  toJSON(): ProblemDetails {
    return this.toProblem();
  }
}

export function isPalisadeError(e: unknown): e is PalisadeError {
  return e instanceof PalisadeError;
}
