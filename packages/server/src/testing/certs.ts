/**
 * Test certificates: CAs, intermediates and leaves (ECDSA P-256) made in-process with @peculiar/x509, for TLS,
 * mTLS and pinning tests.
 */
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as never);

const ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIG = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

export interface TestCa {
  cert: x509.X509Certificate;
  pem: string;
  privateKey: webcrypto.CryptoKey;
}

export interface TestLeaf {
  /** Certificate PEM. */
  cert: string;
  /** PKCS#8 private key PEM. */
  key: string;
  der: Buffer;
  /** Lowercase hex. */
  serial: string;
}

export interface Validity {
  notBefore?: Date;
  notAfter?: Date;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x10; // positive, no leading zero byte
  return b.toString('hex');
}

async function keyPem(key: webcrypto.CryptoKey): Promise<string> {
  const b64 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key)).toString('base64').replace(/(.{64})/g, '$1\n').trimEnd();
  return `-----BEGIN PRIVATE KEY-----\n${b64}\n-----END PRIVATE KEY-----\n`;
}

const window = (v: Validity) => ({ notBefore: v.notBefore ?? new Date(Date.now() - 60_000), notAfter: v.notAfter ?? new Date(Date.now() + 30 * DAY_MS) });

/** A root CA, or an intermediate when `issuer` is given. */
export async function makeCa(name: string, opts: Validity & { issuer?: TestCa } = {}): Promise<TestCa> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const extensions = [
    new x509.BasicConstraintsExtension(true, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  const cert = opts.issuer
    ? await x509.X509CertificateGenerator.create({
        serialNumber: serial(),
        subject: `CN=${name}`,
        issuer: opts.issuer.cert.subject,
        ...window(opts),
        signingAlgorithm: SIG,
        publicKey: keys.publicKey,
        signingKey: opts.issuer.privateKey,
        extensions: [...extensions, await x509.AuthorityKeyIdentifierExtension.create(opts.issuer.cert, false)],
      })
    : await x509.X509CertificateGenerator.createSelfSigned({ serialNumber: serial(), name: `CN=${name}`, ...window(opts), signingAlgorithm: SIG, keys, extensions });
  return { cert, pem: cert.toString('pem') + '\n', privateKey: keys.privateKey };
}

/** A CA from its PEM files (e.g. the bootstrap CA in `<data>/tls/`). */
export async function loadCa(certPem: string, keyPem: string): Promise<TestCa> {
  const der = Buffer.from(keyPem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const privateKey = await webcrypto.subtle.importKey('pkcs8', der, ALG, false, ['sign']);
  return { cert: new x509.X509Certificate(certPem), pem: certPem, privateKey };
}

export interface LeafOptions extends Validity {
  cn?: string;
  /** DNS names and IP addresses. */
  names?: string[];
  uris?: string[];
  /** Extended key usages; [] for none at all (no extension). */
  eku?: Array<'serverAuth' | 'clientAuth'>;
}

/** An end-entity certificate signed by `issuer`. */
export async function makeLeaf(issuer: TestCa, opts: LeafOptions = {}): Promise<TestLeaf> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const eku = opts.eku ?? ['serverAuth', 'clientAuth'];
  const sans = [
    ...(opts.names ?? []).map((n) => (isIP(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n })),
    ...(opts.uris ?? []).map((u) => ({ type: 'url' as const, value: u })),
  ];
  const serialNumber = serial();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber,
    subject: `CN=${opts.cn ?? 'test leaf'}`,
    issuer: issuer.cert.subject,
    ...window(opts),
    signingAlgorithm: SIG,
    publicKey: keys.publicKey,
    signingKey: issuer.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      ...(eku.length > 0 ? [new x509.ExtendedKeyUsageExtension(eku.map((e) => x509.ExtendedKeyUsage[e]), false)] : []),
      ...(sans.length > 0 ? [new x509.SubjectAlternativeNameExtension(sans, false)] : []),
      await x509.AuthorityKeyIdentifierExtension.create(issuer.cert, false),
    ],
  });
  return { cert: cert.toString('pem') + '\n', key: await keyPem(keys.privateKey), der: Buffer.from(cert.rawData), serial: serialNumber };
}
