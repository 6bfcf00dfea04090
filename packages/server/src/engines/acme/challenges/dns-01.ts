/** dns-01 (RFC 8555 §8.4): a TXT record at _acme-challenge.<name> holding base64url(SHA-256(key authorization)). */
import { createHash } from 'node:crypto';
import { problem, type AcmeProblem } from '../problem.js';
import { txtOf, type AddressPolicy } from './addresses.js';

export async function validateDns01(a: { name: string; keyAuthorization: string; policy: AddressPolicy }): Promise<AcmeProblem | null> {
  const expected = createHash('sha256').update(a.keyAuthorization).digest('base64url');
  const at = `_acme-challenge.${a.name}`;
  const records = await txtOf(at, a.policy);
  if (!Array.isArray(records)) return records;
  return records.includes(expected) ? null : problem('unauthorized', `no TXT record at ${at} matches the key authorization (${records.length} found)`);
}
