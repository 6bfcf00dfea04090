/**
 * tls-alpn-01 (RFC 8737; RFC 8738 §6 for IP addresses): a TLS handshake with ALPN acme-tls/1 and SNI naming the
 * identifier must present a certificate whose only subjectAltName is the identifier and whose critical
 * id-pe-acmeIdentifier extension holds SHA-256 of the key authorization.
 */
import 'reflect-metadata';
import { createHash } from 'node:crypto';
import { connect, type TLSSocket } from 'node:tls';
import { SubjectAlternativeNameExtension, X509Certificate } from '@peculiar/x509';
import { canonicalIp, reverseName } from '../identifiers.js';
import type { AcmeIdentifier } from '../ports.js';
import { problem, type AcmeProblem } from '../problem.js';
import { addressesOf, type AddressPolicy } from './addresses.js';

const ALPN = 'acme-tls/1';
const ID_PE_ACME_IDENTIFIER = '1.3.6.1.5.5.7.1.31';

function handshake(ip: string, port: number, servername: string, signal: AbortSignal): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Error('timed out'));
    const socket = connect({ host: ip, port, servername, ALPNProtocols: [ALPN], rejectUnauthorized: false, minVersion: 'TLSv1.2' });
    // an abort listener added to an already-aborted signal never fires: checked above, so the socket never outlives it
    const abort = () => socket.destroy(new Error('timed out'));
    signal.addEventListener('abort', abort, { once: true });
    socket.once('secureConnect', () => {
      signal.removeEventListener('abort', abort);
      resolve(socket);
    });
    socket.once('error', (e) => {
      signal.removeEventListener('abort', abort);
      reject(e);
    });
  });
}

/** Null when the certificate proves the key authorization for the identifier, else why not. */
export function checkAlpnCertificate(der: Buffer, id: AcmeIdentifier, keyAuthorization: string): string | null {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der);
  } catch {
    return 'the certificate cannot be parsed';
  }
  const names = cert.getExtension(SubjectAlternativeNameExtension)?.names.items ?? [];
  if (names.length !== 1) return `the certificate must carry exactly one subjectAltName, it has ${names.length}`;
  const [name] = names;
  const matches = id.type === 'dns' ? name!.type === 'dns' && name!.value.toLowerCase() === id.value : name!.type === 'ip' && canonicalIp(name!.value) === id.value;
  if (!matches) return `the certificate's subjectAltName is ${name!.type}:${name!.value}, not ${id.value}`;
  const ext = cert.extensions.find((e) => e.type === ID_PE_ACME_IDENTIFIER);
  if (!ext) return 'the certificate has no acmeIdentifier extension';
  if (!ext.critical) return 'the acmeIdentifier extension must be critical';
  const expected = Buffer.concat([Buffer.of(0x04, 0x20), createHash('sha256').update(keyAuthorization).digest()]);
  if (!Buffer.from(ext.value).equals(expected)) return 'the acmeIdentifier extension does not hold the key authorization digest';
  return null;
}

export async function validateTlsAlpn01(a: { id: AcmeIdentifier; keyAuthorization: string; port: number; policy: AddressPolicy; signal: AbortSignal }): Promise<AcmeProblem | null> {
  const addresses = await addressesOf(a.id.value, a.policy);
  if (!Array.isArray(addresses)) return addresses;
  const servername = a.id.type === 'ip' ? reverseName(a.id.value) : a.id.value;
  let lastError = '';
  for (const ip of addresses) {
    let socket: TLSSocket;
    try {
      socket = await handshake(ip, a.port, servername, a.signal);
    } catch (e) {
      lastError = `${ip}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
      if (a.signal.aborted) break;
      continue;
    }
    try {
      if (socket.alpnProtocol !== ALPN) return problem('tls', `${ip}:${a.port} did not negotiate ALPN ${ALPN}`);
      const peer = socket.getPeerX509Certificate();
      if (!peer) return problem('tls', `${ip}:${a.port} presented no certificate`);
      const why = checkAlpnCertificate(peer.raw, a.id, a.keyAuthorization);
      return why ? problem('incorrectResponse', why) : null;
    } finally {
      socket.destroy();
    }
  }
  return problem('tls', `no TLS handshake with ${a.id.value} on port ${a.port} (${lastError})`);
}
