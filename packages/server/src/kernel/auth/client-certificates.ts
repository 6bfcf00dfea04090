/**
 * mTLS client authentication: a client certificate chain becomes a principal named by its SPIFFE id, with the
 * permissions that `tls.client_auth.identities` grants that id (none unless configured: least privilege).
 */
import 'reflect-metadata';
import { createHash, X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import * as x509 from '@peculiar/x509';
import { PalisadeError } from '@palisade/core';
import type { Principal } from './api-keys.js';

/** Authenticates the certificate chain a client presented in the TLS handshake. */
export interface ClientCertificateAuthenticator {
  /** `chain`: DER, the client's certificate first. Throws PAL_AUTH_INVALID with `reason` (a ClientCertificateRefusal). */
  authenticate(chain: Buffer[]): Promise<Principal>;
}

/** Revoked certificates, from the PKI engine (its CRL data). */
export interface RevocationSource {
  /** Serial numbers of every revoked certificate, lowercase hex (leading zeros are ignored). */
  revokedSerials(): Promise<Set<string>>;
}

export type ClientCertificateRefusal = 'expired' | 'not_yet_valid' | 'untrusted_issuer' | 'revoked' | 'revocation_unavailable' | 'no_client_auth_eku' | 'no_identity';

const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
/** A SPIFFE id as X509-SVIDs carry it: `spiffe://<trust domain>/<path>`. */
const SPIFFE_ID = /^spiffe:\/\/[a-z0-9._-]+(\/[A-Za-z0-9._-]+)+$/;
const MAX_CHAIN = 8;
const CACHE_LIMIT = 10_000;

function refuse(reason: ClientCertificateRefusal): PalisadeError {
  return new PalisadeError('PAL_AUTH_INVALID', `client certificate refused: ${reason.replace(/_/g, ' ')}`, { extensions: { reason } });
}

export function normalizeSerial(hex: string): string {
  return hex.toLowerCase().replace(/^0+(?=.)/, '');
}

/** A SPIFFE id glob as a RegExp: `*` is one path segment (or part of one), `**` any number of them. */
export function spiffeGlob(glob: string): RegExp {
  const body = glob
    .split('**')
    .map((part) =>
      part
        .split('*')
        .map((s) => s.replace(/[.+?^${}()|[\]\\/]/g, '\\$&'))
        .join('[^/]*'),
    )
    .join('.*');
  return new RegExp(`^${body}$`);
}

/** The client's certificate chain as DER (leaf first), or [] when the connection is not TLS or none was sent. */
export function peerCertificateChain(socket: Socket): Buffer[] {
  if (!(socket instanceof TLSSocket)) return [];
  const chain: Buffer[] = [];
  let cert = socket.getPeerCertificate(true);
  const seen = new Set<string>();
  while (cert?.raw && !seen.has(cert.fingerprint256) && chain.length < MAX_CHAIN) {
    seen.add(cert.fingerprint256);
    chain.push(cert.raw);
    cert = cert.issuerCertificate;
  }
  return chain;
}

/** What a chain proved, kept per chain so that signatures are checked once; time and revocation are re-checked on every use. */
interface Verified {
  principal: Principal;
  /** Every certificate on the path, the trust root last, with its validity window. */
  path: Array<{ serial: string; notBefore: number; notAfter: number; root: boolean }>;
}

export interface X509ClientAuthenticatorOptions {
  /** The current trust roots (the listener's). A new array means new roots: the cache is dropped. */
  trust: () => readonly X509Certificate[];
  revocation: RevocationSource;
  /**
   * CA certificates that may complete a path when the client does not send them. A resumed TLS session reports
   * only the leaf, so without these a client of an intermediate is refused on every reconnect.
   */
  intermediates?: () => Promise<readonly X509Certificate[]>;
  /** SPIFFE id glob → permissions; a principal holds the union of every matching entry. */
  identities: Record<string, string[]>;
  /** The revoked set is re-read at most this often: a revocation takes effect within this bound. */
  revocationCheckSeconds: number;
  clock: () => Date;
}

/**
 * The default authenticator, over node:crypto: the chain must lead to a trust root (each link's signature and
 * name, issuers that are CAs allowed to sign certificates), every certificate on it be valid at the clock's time and
 * unrevoked, and the client certificate carry the clientAuth extended key usage and exactly one URI SAN that is a
 * SPIFFE id. The SPIFFE id is the principal id.
 */
export class X509ClientAuthenticator implements ClientCertificateAuthenticator {
  readonly #identities: Array<{ pattern: RegExp; permissions: string[] }>;
  readonly #verified = new Map<string, Verified>();
  #roots: readonly X509Certificate[] | null = null;
  #revoked: { serials: Set<string>; at: number } | null = null;
  #revokedLoading: Promise<Set<string>> | null = null;

  constructor(private readonly opts: X509ClientAuthenticatorOptions) {
    this.#identities = Object.entries(opts.identities).map(([glob, permissions]) => ({ pattern: spiffeGlob(glob), permissions }));
  }

  async authenticate(chain: Buffer[]): Promise<Principal> {
    if (chain.length === 0) throw new PalisadeError('PAL_AUTH_REQUIRED');
    const roots = this.opts.trust();
    if (roots !== this.#roots) {
      this.#verified.clear();
      this.#roots = roots;
    }
    const key = createHash('sha256');
    for (const der of chain) key.update(der);
    const cacheKey = key.digest('base64');
    let verified = this.#verified.get(cacheKey);
    if (!verified) {
      verified = this.#verify(chain, roots, (await this.opts.intermediates?.()) ?? []);
      if (this.#verified.size >= CACHE_LIMIT) this.#verified.clear();
      this.#verified.set(cacheKey, verified);
    }
    const now = this.opts.clock().getTime();
    for (const c of verified.path) {
      if (now > c.notAfter) throw refuse('expired');
      if (now < c.notBefore) throw refuse('not_yet_valid');
    }
    const revoked = await this.#revokedSerials(now);
    if (verified.path.some((c) => !c.root && revoked.has(c.serial))) throw refuse('revoked');
    return verified.principal;
  }

  #verify(chain: Buffer[], roots: readonly X509Certificate[], known: readonly X509Certificate[]): Verified {
    let certs: X509Certificate[];
    try {
      certs = chain.slice(0, MAX_CHAIN).map((der) => new X509Certificate(der));
    } catch {
      throw refuse('untrusted_issuer');
    }
    const leaf = certs[0]!;
    const path = [leaf];
    let root = roots.find((r) => issuedBy(leaf, r));
    while (!root) {
      const cur = path[path.length - 1]!;
      const next = [...certs, ...known].find((c) => !path.includes(c) && c.ca && issuedBy(cur, c));
      if (!next) throw refuse('untrusted_issuer');
      path.push(next);
      root = roots.find((r) => issuedBy(next, r));
    }
    // RFC 5280 §4.2.1.9: the leaf is no CA, and each CA (the root too) allows as many CAs below it as the path holds.
    const full = [...path, root];
    if (leaf.ca || full.some((c, i) => i > 0 && pathLength(c) < i - 1)) throw refuse('untrusted_issuer');
    if (!(leaf.keyUsage ?? []).includes(EKU_CLIENT_AUTH)) throw refuse('no_client_auth_eku');
    const principal_id = spiffeId(leaf);
    const permissions = [...new Set(this.#identities.filter((i) => i.pattern.test(principal_id)).flatMap((i) => i.permissions))];
    const window = (c: X509Certificate, isRoot: boolean) => ({ serial: normalizeSerial(c.serialNumber), notBefore: Date.parse(c.validFrom), notAfter: Date.parse(c.validTo), root: isRoot });
    return { principal: { principal_id, api_key_id: null, permissions }, path: [...path.map((c) => window(c, false)), window(root, true)] };
  }

  /** The revoked set, re-read once it is older than revocationCheckSeconds; refused (fail closed) when it cannot be read. */
  async #revokedSerials(now: number): Promise<Set<string>> {
    if (this.#revoked && now - this.#revoked.at < this.opts.revocationCheckSeconds * 1000) return this.#revoked.serials;
    this.#revokedLoading ??= this.opts.revocation
      .revokedSerials()
      .then((set) => {
        const serials = new Set([...set].map(normalizeSerial));
        this.#revoked = { serials, at: now };
        return serials;
      })
      .finally(() => (this.#revokedLoading = null));
    try {
      return await this.#revokedLoading;
    } catch {
      throw refuse('revocation_unavailable');
    }
  }
}

/** A CA certificate's pathLenConstraint; unlimited when absent. */
function pathLength(cert: X509Certificate): number {
  const bc = new x509.X509Certificate(new Uint8Array(cert.raw)).getExtension(x509.BasicConstraintsExtension);
  return bc?.pathLength ?? Number.POSITIVE_INFINITY;
}

/** `issuer` issued `cert`: names and key identifiers match, it may sign certificates, and the signature verifies. */
function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/** The one SPIFFE id among the certificate's URI SANs (X509-SVID: exactly one URI SAN). */
function spiffeId(cert: X509Certificate): string {
  let uris: string[];
  try {
    const san = new x509.X509Certificate(cert.raw).getExtension(x509.SubjectAlternativeNameExtension);
    uris = (san?.names.items ?? []).filter((n) => n.type === 'url').map((n) => n.value);
  } catch {
    throw refuse('no_identity');
  }
  const [uri] = uris;
  if (uris.length !== 1 || !uri || !SPIFFE_ID.test(uri)) throw refuse('no_identity');
  return uri;
}
