import 'reflect-metadata';
import { webcrypto, X509Certificate } from 'node:crypto';
import { mkdir, readFile, writeFile, rename } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { randomBytes } from '@palisade/core';
import { coversNames, type ListenerCertificateSource } from './listener-tls.js';

x509.cryptoProvider.set(webcrypto as never);
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const DAY_MS = 86_400_000;
const ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIG = { name: 'ECDSA', hash: 'SHA-256' } as const;
const CA_DAYS = 5 * 365;
const SERVER_DAYS = 90;
const RENEW_BEFORE_DAYS = 30;

export interface ServerTls {
  key: string;
  cert: string;
  ca: string;
  caFile: string;
  /** True when a server certificate was issued on this start. */
  issued: boolean;
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f; // positive INTEGER
  return b.toString('hex');
}

function pem(label: string, der: ArrayBuffer | Buffer): string {
  const b64 = Buffer.from(der as ArrayBuffer).toString('base64').replace(/(.{64})/g, '$1\n').trimEnd();
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

function pemBody(text: string): Buffer {
  return Buffer.from(text.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

async function readMaybe(path: string): Promise<Buffer | null> {
  try {
    return await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

async function writeAtomic(path: string, data: string | Buffer, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, data, { mode });
  await rename(tmp, path);
}

/**
 * The bootstrap CA and the server certificate: created on first start, the server certificate re-issued when it
 * has less than 30 days left or does not cover the configured names. Private keys are files of mode 0600, like any
 * TLS listener's, so that a sealed server still serves HTTPS for `operator init` and `unseal` (ADR 0003);
 * clients trust `<data>/tls/ca.pem`. The PKI engine replaces this CA with the real intermediate.
 */
export async function ensureServerTls(dataDir: string, names: string[], now: Date = new Date()): Promise<ServerTls> {
  const dir = join(dataDir, 'tls');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const caFile = join(dir, 'ca.pem');
  const caKeyFile = join(dir, 'ca-key.pem');

  let caPem = (await readMaybe(caFile))?.toString();
  let caKeyBlob = await readMaybe(caKeyFile);
  let caKey: CryptoKey;
  if (!caPem || !caKeyBlob) {
    const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: 'CN=Palisade Bootstrap CA,O=Palisade',
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + CA_DAYS * DAY_MS),
      signingAlgorithm: SIG,
      keys,
      extensions: [
        // path length 2: it also certifies the Palisade root (cross-certificate), above the intermediate
        new x509.BasicConstraintsExtension(true, 2, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    caPem = cert.toString('pem') + '\n';
    caKeyBlob = Buffer.from(pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)));
    await writeAtomic(caKeyFile, caKeyBlob, 0o600);
    await writeAtomic(caFile, caPem, 0o644);
    caKey = keys.privateKey;
  } else {
    caKey = await webcrypto.subtle.importKey('pkcs8', pemBody(caKeyBlob.toString()), ALG, false, ['sign']);
  }
  const ca = new x509.X509Certificate(caPem);

  const certFile = join(dir, 'server.pem');
  const keyFile = join(dir, 'server-key.pem');
  const existingCert = (await readMaybe(certFile))?.toString();
  const existingKey = await readMaybe(keyFile);
  if (existingCert && existingKey && stillGood(existingCert, caPem, names, now)) {
    return { cert: existingCert, key: existingKey.toString(), ca: caPem, caFile, issued: false };
  }

  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const sans = names.map((n) => (isIP(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n }));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${names.find((n) => !isIP(n)) ?? 'palisade'},O=Palisade`,
    issuer: ca.subject,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + SERVER_DAYS * DAY_MS),
    signingAlgorithm: SIG,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
      new x509.SubjectAlternativeNameExtension(sans, false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca, false),
    ],
  });
  const certPem = cert.toString('pem') + '\n';
  const keyPem = pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  await writeAtomic(keyFile, keyPem, 0o600);
  await writeAtomic(certFile, certPem, 0o644);
  return { cert: certPem, key: keyPem, ca: caPem, caFile, issued: true };
}

function stillGood(certPem: string, caPem: string, names: string[], now: Date): boolean {
  try {
    const cert = new X509Certificate(certPem);
    if (!cert.verify(new X509Certificate(caPem).publicKey)) return false;
    if (Date.parse(cert.validTo) - now.getTime() < RENEW_BEFORE_DAYS * DAY_MS) return false;
    return coversNames(cert, names);
  } catch {
    return false;
  }
}

/**
 * The bootstrap files as the listener's certificate source. Every poll re-runs the start-up check, so the server
 * certificate is re-issued once it has less than 30 days left, without a restart. Client certificates chain to the
 * bootstrap CA until the PKI engine supplies its own source.
 */
export function bootstrapCertificateSource(dataDir: string, names: string[], clock: () => Date): ListenerCertificateSource {
  return {
    async current() {
      const tls = await ensureServerTls(dataDir, names, clock());
      return { key: tls.key, chain: tls.cert, trust: [tls.ca] };
    },
  };
}
