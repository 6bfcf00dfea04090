/**
 * The TLS settings of the listener, from the seed's `tls_configuration` (§1.1): TLS 1.3 only by default, its three
 * AEAD suites in the seed's order, ECDHE on the named curves, the server's preference order.
 */
import { constants } from 'node:crypto';
import type { SecureContextOptions } from 'node:tls';

export type TlsMinVersion = 'TLSv1.3' | 'TLSv1.2';

/** The seed's TLS 1.3 suites, in its order (OpenSSL's names are the IANA names for TLS 1.3). */
export const TLS13_CIPHERSUITES = ['TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256'] as const;

/**
 * TLS 1.2 fallback (only with `tls.min_version: TLSv1.2`): the seed's ECDHE-RSA AEAD suites, each preceded by its
 * ECDSA counterpart because Palisade's certificates carry ECDSA keys. Nothing without forward secrecy, nothing CBC.
 */
export const TLS12_CIPHERS = ['ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305'] as const;

/**
 * Key-exchange groups, most preferred first. The seed names secp384r1 and secp256r1; X25519 is kept in front of
 * them because it is what nearly every TLS 1.3 client offers in its first key share (a client whose share the
 * server refuses pays a HelloRetryRequest round trip), it is constant-time by construction, and it is at least as
 * strong as P-256. Removing it would buy no security and cost a round trip on most handshakes.
 */
export const ECDH_CURVES = ['X25519', 'P-384', 'P-256'] as const;

/**
 * Session resumption. TLS 1.3 tickets are kept: OpenSSL resumes only with `psk_dhe_ke` (a fresh ECDHE on every
 * resumption, SSL_OP_ALLOW_NO_DHE_KEX stays off), so a stolen ticket key does not expose recorded traffic, and
 * Node gives tickets a 300 s lifetime. TLS 1.2 tickets carry the master secret itself under a ticket key that is
 * never rotated, which would undo forward secrecy: when TLS 1.2 is allowed, tickets are off (no resumption at all,
 * since Node keeps no server-side session cache).
 */
function secureOptions(minVersion: TlsMinVersion): number {
  return minVersion === 'TLSv1.2' ? constants.SSL_OP_NO_TICKET : 0;
}

/** The protocol part of a secure context (no key material): what every context of the listener shares. */
export function tlsProtocolOptions(minVersion: TlsMinVersion): SecureContextOptions {
  return {
    minVersion,
    maxVersion: 'TLSv1.3',
    // Node splits this list: `TLS_*` names configure TLS 1.3 (SSL_CTX_set_ciphersuites), the rest TLS 1.2.
    ciphers: [...TLS13_CIPHERSUITES, ...TLS12_CIPHERS].join(':'),
    ecdhCurve: ECDH_CURVES.join(':'),
    honorCipherOrder: true,
    secureOptions: secureOptions(minVersion),
  };
}
