import { PalisadeError, type ErrorCode } from '@palisade/core';
import { toPalisadeError } from '../../http/problem.js';
import type { AcmeIdentifier } from './ports.js';

export const ACME_ERROR = 'urn:ietf:params:acme:error:';

/** An RFC 8555 §6.7 problem document (also what a failed challenge or order carries in `error`). */
export interface AcmeProblem {
  type: string;
  detail: string;
  status: number;
  identifier?: AcmeIdentifier;
  subproblems?: AcmeProblem[];
  algorithms?: string[];
}

/** Catalogue code → ACME error type. Other client errors answer `malformed`, server errors `serverInternal`. */
const TYPES: Partial<Record<ErrorCode, string>> = {
  PAL_ACME_MALFORMED: 'malformed',
  PAL_ACME_BAD_NONCE: 'badNonce',
  PAL_ACME_BAD_SIGNATURE_ALGORITHM: 'badSignatureAlgorithm',
  PAL_ACME_BAD_PUBLIC_KEY: 'badPublicKey',
  PAL_ACME_UNAUTHORIZED: 'unauthorized',
  PAL_ACME_ACCOUNT_DOES_NOT_EXIST: 'accountDoesNotExist',
  PAL_ACME_EXTERNAL_ACCOUNT_REQUIRED: 'externalAccountRequired',
  PAL_ACME_USER_ACTION_REQUIRED: 'userActionRequired',
  PAL_ACME_INVALID_CONTACT: 'invalidContact',
  PAL_ACME_UNSUPPORTED_CONTACT: 'unsupportedContact',
  PAL_ACME_REJECTED_IDENTIFIER: 'rejectedIdentifier',
  PAL_ACME_UNSUPPORTED_IDENTIFIER: 'unsupportedIdentifier',
  PAL_ACME_ORDER_NOT_READY: 'orderNotReady',
  PAL_ACME_BAD_CSR: 'badCSR',
  PAL_ACME_BAD_REVOCATION_REASON: 'badRevocationReason',
  PAL_ACME_ALREADY_REVOKED: 'alreadyRevoked',
  PAL_ACME_ALREADY_REPLACED: 'alreadyReplaced',
  PAL_ACME_RATE_LIMITED: 'rateLimited',
  PAL_ACME_NOT_FOUND: 'malformed',
  PAL_ACME_CONFLICT: 'malformed',
};

/** Any error thrown while serving an ACME request, as the problem document the client gets. */
export function toAcmeProblem(err: unknown): AcmeProblem {
  const pe = toPalisadeError(err);
  const type = TYPES[pe.code] ?? (pe.status >= 500 ? 'serverInternal' : 'malformed');
  const { subproblems, algorithms } = pe.extensions as Pick<AcmeProblem, 'subproblems' | 'algorithms'>;
  return {
    type: ACME_ERROR + type,
    detail: pe.message,
    status: pe.status,
    ...(subproblems ? { subproblems } : {}),
    ...(algorithms ? { algorithms } : {}),
  };
}

/** A problem for one identifier (subproblems, failed challenges). */
export function problem(type: string, detail: string, status = 400, identifier?: AcmeIdentifier): AcmeProblem {
  return { type: ACME_ERROR + type, detail, status, ...(identifier ? { identifier } : {}) };
}

export const acmeError = (code: ErrorCode, detail: string, extensions?: Record<string, unknown>): PalisadeError =>
  new PalisadeError(code, detail, extensions ? { extensions } : {});
