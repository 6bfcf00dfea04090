/**
 * Test-only: an AcmeCertificateAuthority backed by a throwaway in-memory CA (ECDSA P-256 root, @peculiar/x509),
 * for tests of the ACME engine that must not depend on the PKI engine. It counts issue calls, so tests can prove
 * that nothing was issued.
 */
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { PalisadeError } from '@palisade/core';
import type { AcmeCertificateAuthority, AcmeIdentifier, CaCertificate } from '../engines/acme/ports.js';

x509.cryptoProvider.set(webcrypto as never);

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export class TestingCa implements AcmeCertificateAuthority {
  readonly #certs = new Map<string, CaCertificate>();
  issueCalls = 0;

  private constructor(
    readonly root: x509.X509Certificate,
    private readonly keys: webcrypto.CryptoKeyPair,
    private readonly clock: () => Date,
  ) {}

  static async create(clock: () => Date = () => new Date()): Promise<TestingCa> {
    const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const now = clock();
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=Palisade ACME test CA',
      notBefore: new Date(now.getTime() - 3600_000),
      notAfter: new Date(now.getTime() + 365 * 86_400_000),
      keys,
      signingAlgorithm: EC,
      extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true), await x509.SubjectKeyIdentifierExtension.create(keys.publicKey)],
    });
    return new TestingCa(root, keys, clock);
  }

  get rootPem(): string {
    return this.root.toString('pem');
  }

  async issue(_ctx: unknown, req: { csr: Buffer; identifiers: AcmeIdentifier[] }): Promise<{ serial: string; chain_pem: string; not_before: string; not_after: string }> {
    this.issueCalls++;
    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(req.csr);
    } catch {
      throw new PalisadeError('PAL_PKI_CSR_INVALID', 'the CSR cannot be parsed');
    }
    if (!(await csr.verify())) throw new PalisadeError('PAL_PKI_CSR_INVALID', 'the CSR signature does not verify');
    const bc = csr.extensions.find((e): e is x509.BasicConstraintsExtension => e instanceof x509.BasicConstraintsExtension);
    if (bc?.ca) throw new PalisadeError('PAL_PKI_CSR_INVALID', 'the CSR asks for CA:TRUE');
    const serialBytes = randomBytes(16);
    serialBytes[0] = (serialBytes[0]! & 0x7f) | 0x01;
    const serial = serialBytes.toString('hex');
    const now = this.clock();
    const notBefore = new Date(now.getTime() - 60_000);
    const notAfter = new Date(now.getTime() + 90 * 86_400_000);
    const ski = this.root.getExtension(x509.SubjectKeyIdentifierExtension)!;
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject: '',
      issuer: this.root.subject,
      notBefore,
      notAfter,
      publicKey: csr.publicKey,
      signingKey: this.keys.privateKey,
      signingAlgorithm: EC,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension(req.identifiers.map((i) => ({ type: i.type, value: i.value })), true),
        new x509.AuthorityKeyIdentifierExtension(ski.keyId),
      ],
    });
    this.#certs.set(serial, {
      serial,
      der: Buffer.from(cert.rawData),
      status: 'valid',
      not_before: notBefore.toISOString(),
      not_after: notAfter.toISOString(),
      aki: Buffer.from(ski.keyId, 'hex'),
      public_key_spki: Buffer.from(cert.publicKey.rawData),
      sans: req.identifiers,
    });
    return { serial, chain_pem: `${cert.toString('pem')}\n`, not_before: notBefore.toISOString(), not_after: notAfter.toISOString() };
  }

  async find(_db: unknown, by: { der: Buffer } | { serial: string }): Promise<CaCertificate | null> {
    if ('serial' in by) return this.#certs.get(by.serial) ?? null;
    return [...this.#certs.values()].find((c) => c.der.equals(by.der)) ?? null;
  }

  async revoke(_ctx: unknown, serial: string): Promise<void> {
    const cert = this.#certs.get(serial);
    if (!cert) throw new PalisadeError('PAL_PKI_CERTIFICATE_NOT_FOUND');
    if (cert.status === 'revoked') throw new PalisadeError('PAL_PKI_ALREADY_REVOKED');
    cert.status = 'revoked';
  }
}
