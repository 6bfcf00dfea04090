/**
 * ACME Renewal Information (RFC 9773): certificate ids and the suggested renewal window.
 * certID = base64url(AuthorityKeyIdentifier keyIdentifier) "." base64url(DER content octets of the serial INTEGER).
 */
import type { CaCertificate } from './ports.js';
import { acmeError } from './problem.js';

const PART = /^[A-Za-z0-9_-]+$/;

/** The serial's INTEGER content octets: minimal, with a 0x00 in front when the first bit is set (serials are positive). */
function serialBytes(serialHex: string): Buffer {
  let b = Buffer.from(serialHex.length % 2 ? `0${serialHex}` : serialHex, 'hex');
  while (b.length > 1 && b[0] === 0 && (b[1]! & 0x80) === 0) b = b.subarray(1);
  return (b[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.of(0), b]) : b;
}

/** Lowercase hex of the serial without the sign byte: the form the CA names serials by. */
function serialHex(bytes: Buffer): string {
  let b = bytes;
  while (b.length > 1 && b[0] === 0) b = b.subarray(1);
  return b.toString('hex');
}

export function certId(aki: Buffer, serial: string): string {
  return `${aki.toString('base64url')}.${serialBytes(serial).toString('base64url')}`;
}

export function parseCertId(id: string): { aki: Buffer; serial: string } {
  const parts = id.split('.');
  if (parts.length !== 2 || !PART.test(parts[0]!) || !PART.test(parts[1]!)) throw acmeError('PAL_ACME_MALFORMED', 'a certificate id is base64url(AKI) "." base64url(serial)');
  const serial = Buffer.from(parts[1]!, 'base64url');
  if (serial.length === 0 || serial.length > 20) throw acmeError('PAL_ACME_MALFORMED', 'the certificate id has no valid serial number');
  return { aki: Buffer.from(parts[0]!, 'base64url'), serial: serialHex(serial) };
}

export const RETRY_AFTER_SECONDS = 6 * 3600;

/**
 * When to renew: the middle third of the validity (renew before the last third begins); for a revoked certificate a
 * window that has passed already, so clients renew at once.
 */
export function suggestedWindow(cert: Pick<CaCertificate, 'status' | 'not_before' | 'not_after'>, now: Date): { start: string; end: string } {
  if (cert.status === 'revoked') return { start: new Date(now.getTime() - 2 * 3600_000).toISOString(), end: new Date(now.getTime() - 3600_000).toISOString() };
  const nb = Date.parse(cert.not_before);
  const life = Date.parse(cert.not_after) - nb;
  return { start: new Date(nb + life / 3).toISOString(), end: new Date(nb + (2 * life) / 3).toISOString() };
}
