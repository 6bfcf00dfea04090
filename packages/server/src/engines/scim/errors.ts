/**
 * SCIM error documents (RFC 7644 §3.12). Inside the server every failure is a PalisadeError with a catalogue code;
 * a SCIM-specific `scimType` rides in its extensions, and this file turns either into the document an IdP expects
 * (Okta and Azure AD read `status` as a string and branch on `scimType`, e.g. `uniqueness` to link an account).
 */
import { PalisadeError, type ErrorCode } from '@palisade/core';
import { toPalisadeError } from '../../http/problem.js';

export const SCIM_ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';
export const SCIM_CONTENT_TYPE = 'application/scim+json; charset=utf-8';

export type ScimType = 'invalidFilter' | 'tooMany' | 'uniqueness' | 'mutability' | 'invalidSyntax' | 'invalidPath' | 'noTarget' | 'invalidValue' | 'invalidVers' | 'sensitive';

export interface ScimErrorDocument {
  schemas: [typeof SCIM_ERROR_SCHEMA];
  status: string;
  scimType?: ScimType;
  detail: string;
}

/** A 400 with the given `scimType`. */
export function scimError(scimType: ScimType, detail: string): PalisadeError {
  return new PalisadeError('PAL_VALIDATION_FAILED', detail, { extensions: { scimType } });
}

/** `If-Match` named another version: RFC 7644 §3.14 answers 412. */
export function preconditionFailed(detail: string): PalisadeError {
  return new PalisadeError('PAL_PRECONDITION_FAILED', detail);
}

/** Catalogue codes whose SCIM form has a `scimType` of its own. */
const TYPES: Partial<Record<ErrorCode, ScimType>> = {
  PAL_IDENTITY_USER_EXISTS: 'uniqueness',
  PAL_IDENTITY_GROUP_EXISTS: 'uniqueness',
  PAL_MALFORMED_JSON: 'invalidSyntax',
  PAL_IDENTITY_UNKNOWN_ROLE: 'invalidValue',
  PAL_VALIDATION_FAILED: 'invalidValue',
};

/** Any error thrown while serving a SCIM request, as its status and SCIM error document. */
export function toScimError(err: unknown): { pe: PalisadeError; body: ScimErrorDocument } {
  const pe = toPalisadeError(err);
  const ext = pe.extensions as { scimType?: ScimType };
  const status = pe.status;
  const scimType = ext.scimType ?? TYPES[pe.code];
  // Catalogue messages are written for callers; an unexpected error's cause stays in the log (PAL_INTERNAL's title).
  return { pe, body: { schemas: [SCIM_ERROR_SCHEMA], status: String(status), ...(scimType ? { scimType } : {}), detail: pe.message } };
}
