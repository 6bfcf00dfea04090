/**
 * SPKI pinning (the seed's `certificate_pinning`): a pin is `sha256/<base64 of the SHA-256 of the
 * SubjectPublicKeyInfo DER>`, the format of HPKP (RFC 7469), so pins made by `openssl` recipes match.
 */
import { createHash, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import type { DetailedPeerCertificate } from 'node:tls';

const PIN = /^sha256\/[A-Za-z0-9+/]{43}=$/;
/** The seed's `backup_pins: 2`: the key in use plus two backups. */
export const MIN_PINS = 3;

/** The pin of a certificate's (or a public or private key's) public key, from its PEM. */
export function spkiPin(pem: string | Buffer): string {
  const text = pem.toString();
  return pinOf(/-----BEGIN CERTIFICATE-----/.test(text) ? new X509Certificate(text).publicKey : createPublicKey(text));
}

function pinOf(key: KeyObject): string {
  return `sha256/${createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('base64')}`;
}

/** Check a pin set: well-formed, distinct, and at least MIN_PINS of them. */
export function validatePins(pins: readonly string[]): Set<string> {
  const bad = pins.filter((p) => !PIN.test(p));
  if (bad.length > 0) throw new Error(`pins must look like sha256/<base64 of 32 bytes> (spkiPin() makes them); not: ${bad.join(', ')}`);
  const set = new Set(pins);
  if (set.size < MIN_PINS) {
    throw new Error(`pins: give the pin of the key in use and at least ${MIN_PINS - 1} backup pins of keys not yet deployed (${set.size} distinct given), so that a key change does not lock this client out`);
  }
  return set;
}

/** undefined when a certificate of the presented chain has a pinned key, else the error that refuses the connection. */
export function checkPins(pins: ReadonlySet<string>, leaf: DetailedPeerCertificate): Error | undefined {
  const seen: string[] = [];
  // issuerCertificate links the chain up to the root by name and key id only: a certificate counts only while each
  // link is also proven by its signature, so a forged "issuer" carrying a pinned key cannot satisfy the pins.
  let child: X509Certificate | null = null;
  for (let cert: DetailedPeerCertificate | undefined = leaf; cert?.raw && !seen.includes(cert.fingerprint256); cert = cert.issuerCertificate) {
    seen.push(cert.fingerprint256);
    const x = new X509Certificate(cert.raw);
    if (child && !child.verify(x.publicKey)) break;
    if (pins.has(pinOf(x.publicKey))) return undefined;
    child = x;
  }
  const presented = pinOf(new X509Certificate(leaf.raw).publicKey);
  return Object.assign(new Error(`certificate pinning: no key of the server's certificate chain matches the configured pins (the server's key is ${presented})`), { code: 'ERR_PALISADE_PIN_MISMATCH' });
}
