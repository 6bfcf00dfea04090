import { ERROR_CATALOGUE } from './catalogue.js';

/** `docs/errors.md`, rendered from the catalogue (`npm run docs:errors`); a test fails when the file drifts. */
export function renderErrorsDoc(): string {
  const rows = Object.entries(ERROR_CATALOGUE).map(([code, spec]) => `| \`${code}\` | ${spec.status} | ${spec.title} | ${spec.description.replace(/\|/g, '\\|')} |`);
  return [
    '# Error catalogue',
    '',
    'Every error Palisade answers over HTTP is an RFC 9457 problem document (`application/problem+json`):',
    '',
    '```json',
    '{ "type": "https://palisade.dev/errors/PAL_KMS_DECRYPT_FAILED", "title": "Decryption failed", "status": 400,',
    '  "detail": "...", "code": "PAL_KMS_DECRYPT_FAILED", "instance": "/v1/keys/key_.../decrypt", "request_id": "..." }',
    '```',
    '',
    '`code` is stable: clients branch on it, never on `detail`. This file is generated from',
    '`packages/core/src/errors/catalogue.ts` by `npm run docs:errors`; a test fails when they disagree.',
    '',
    '| code | HTTP status | title | meaning |',
    '|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}
