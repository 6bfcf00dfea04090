/**
 * The HTTPS listener's certificate, kept current without a restart: the certificate source is polled, and a new
 * key/chain/trust set replaces the server's secure context. Handshakes from then on use the new certificate; open
 * connections keep the session they negotiated. Client certificates are requested according to `client_auth`, and
 * OCSP staples are served when a stapler is plugged in.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { ServerOptions } from 'node:https';
import { isIP } from 'node:net';
import type { SecureContextOptions, Server as TlsServer } from 'node:tls';
import type { Logger } from 'pino';
import { StapleCache, type OcspStapler } from './ocsp-staple.js';
import { tlsProtocolOptions, type TlsMinVersion } from './tls.js';

/** What the listener serves, as PEM. */
export interface ListenerMaterial {
  /** The server's private key (PKCS#8 or SEC1 PEM). */
  key: string;
  /** The server certificate first, then its intermediates (not the root). */
  chain: string;
  /** Roots that client certificates must chain to (also sent to clients as the acceptable CA names). */
  trust: string[];
}

/** Where the listener's certificate comes from: the bootstrap CA files now, the PKI engine's issuance later. */
export interface ListenerCertificateSource {
  /** The material to serve now; may renew it first. Called at start and every `tls.reload_check_seconds`. */
  current(): Promise<ListenerMaterial>;
}

/**
 * - `off`: no certificate is requested.
 * - `optional`: a certificate is requested but not required, and a bad one does not fail the handshake
 *   (`rejectUnauthorized: false`): the request pipeline answers 401 with the reason, and audits it.
 * - `require`: the handshake fails without a certificate that chains to the trust roots (a TLS alert, no HTTP answer
 *   at all, even for /healthz); the pipeline still checks revocation, key usage and identity.
 */
export type ClientAuthMode = 'off' | 'optional' | 'require';

export interface ListenerTlsOptions {
  source: ListenerCertificateSource;
  minVersion: TlsMinVersion;
  clientAuth: ClientAuthMode;
  /** How often the source is asked for its current material. */
  reloadCheckSeconds: number;
  /** OCSP responses for the served certificate; without one, nothing is stapled. */
  staple?: OcspStapler;
  clock: () => Date;
  log: Pick<Logger, 'info' | 'error'>;
}

const CERTIFICATE_PEM = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every certificate in a PEM text, in order. */
export function parsePemCertificates(text: string): X509Certificate[] {
  return (text.match(CERTIFICATE_PEM) ?? []).map((pem) => new X509Certificate(pem));
}

/**
 * Whether a listener certificate was issued for every configured name: IPs as addresses, DNS names compared
 * literally with its DNS SANs (so a wildcard in `tls.names` is found as itself and does not force a new certificate
 * at every check).
 */
export function coversNames(cert: X509Certificate, names: readonly string[]): boolean {
  const dns = (cert.subjectAltName ?? '').split(', ').filter((n) => n.startsWith('DNS:')).map((n) => n.slice(4).toLowerCase());
  return names.every((n) => (isIP(n) ? cert.checkIP(n) !== undefined : dns.includes(n.toLowerCase())));
}

interface Parsed {
  material: ListenerMaterial;
  leaf: X509Certificate;
  /** The leaf's issuer (DER), from the chain or the trust roots; null when neither holds it. */
  issuer: Buffer | null;
  trust: X509Certificate[];
}

/** Check that the material is usable (a key that matches its certificate) before it replaces the current one. */
function parse(material: ListenerMaterial): Parsed {
  const chain = parsePemCertificates(material.chain);
  const leaf = chain[0];
  if (!leaf) throw new Error('the listener certificate chain holds no certificate');
  if (!leaf.checkPrivateKey(createPrivateKey(material.key))) throw new Error('the listener key does not match its certificate');
  const trust = material.trust.flatMap(parsePemCertificates);
  const issuer = [...chain.slice(1), ...trust].find((c) => leaf.checkIssued(c) && leaf.verify(c.publicKey));
  return { material, leaf, issuer: issuer?.raw ?? null, trust };
}

const same = (a: ListenerMaterial, b: ListenerMaterial): boolean => a.key === b.key && a.chain === b.chain && a.trust.join('\n') === b.trust.join('\n');

export class ListenerTls {
  #current: Parsed;
  #server: TlsServer | null = null;
  #timer: NodeJS.Timeout | null = null;
  readonly #staples: StapleCache | null;

  private constructor(
    private readonly opts: ListenerTlsOptions,
    first: Parsed,
  ) {
    this.#current = first;
    this.#staples = opts.staple ? new StapleCache(opts.staple, opts.clock, (err) => opts.log.error({ err }, 'OCSP staple fetch failed')) : null;
  }

  /** Read the first material from the source (a failure here stops start-up). */
  static async open(opts: ListenerTlsOptions): Promise<ListenerTls> {
    return new ListenerTls(opts, parse(await opts.source.current()));
  }

  /** The certificate served to new handshakes. */
  get certificate(): X509Certificate {
    return this.#current.leaf;
  }

  /** The roots client certificates must chain to; a new array whenever they change. */
  get trustRoots(): readonly X509Certificate[] {
    return this.#current.trust;
  }

  /** The secure-context part: protocol settings, key, chain and (when client certificates are asked for) the trust roots. */
  secureContextOptions(): SecureContextOptions {
    const { material } = this.#current;
    const ca = this.opts.clientAuth !== 'off' && material.trust.length > 0 ? { ca: material.trust } : {};
    return { ...tlsProtocolOptions(this.opts.minVersion), key: material.key, cert: material.chain, ...ca };
  }

  /** Options for https.createServer (Fastify's `https`). */
  serverOptions(): ServerOptions {
    return { ...this.secureContextOptions(), requestCert: this.opts.clientAuth !== 'off', rejectUnauthorized: this.opts.clientAuth === 'require' };
  }

  /** Take charge of a server created with serverOptions(): staple OCSP responses and poll the source. */
  attach(server: TlsServer): void {
    if (this.#server) throw new Error('ListenerTls is already attached to a server');
    this.#server = server;
    const staples = this.#staples;
    if (staples) {
      server.on('OCSPRequest', (certificate: Buffer, issuer: Buffer | null, callback: (err: Error | null, resp: Buffer | null) => void) => {
        const issuerDer = issuer ?? this.#current.issuer;
        if (!issuerDer) return callback(null, null);
        staples.get(certificate, issuerDer).then(
          (resp) => callback(null, resp),
          () => callback(null, null),
        );
      });
      this.#prefetch();
    }
    this.#timer = setInterval(() => {
      this.reload().catch((err: unknown) => this.opts.log.error({ err }, 'listener certificate reload failed; still serving the previous one'));
    }, this.opts.reloadCheckSeconds * 1000);
    this.#timer.unref();
  }

  /** Ask the source for its current material; when it changed, new handshakes use it. True when it changed. */
  async reload(): Promise<boolean> {
    const next = await this.opts.source.current();
    if (same(next, this.#current.material)) return false;
    this.#current = parse(next);
    this.#server?.setSecureContext(this.secureContextOptions());
    this.#prefetch();
    this.opts.log.info({ fingerprint256: this.#current.leaf.fingerprint256, not_after: this.#current.leaf.validTo }, 'listener certificate replaced');
    return true;
  }

  #prefetch(): void {
    if (this.#staples && this.#current.issuer) this.#staples.prefetch(this.#current.leaf.raw, this.#current.issuer);
  }

  /** Stop polling (the server itself is closed by its owner). */
  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }
}
