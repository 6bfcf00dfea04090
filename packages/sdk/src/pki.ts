import type {
  CaList,
  Certificate,
  CertificateAuthority,
  CertificateList,
  ExportRootKeyResponse,
  InitRootRequest,
  InitRootResponse,
  IssueCertificateRequest,
  IssuedCertificate,
  ListCertificatesQuery,
  RotateIntermediateRequest,
  SignCertificateRequest,
  PkiRevocationReason,
} from '@palisade/core';
import { withQuery, type Transport } from './transport.js';

type Optional<T, K extends keyof T> = Omit<T, K> & Partial<Pick<T, K>>;

/** The internal PKI: the CA hierarchy, issuance by template, revocation, and the public CRL/OCSP/root endpoints. */
export class PkiClient {
  constructor(private readonly t: Transport) {}

  initRoot(req: InitRootRequest = {}): Promise<InitRootResponse> {
    return this.t.send('POST', '/v1/pki/root', req);
  }
  listCas(): Promise<CaList> {
    return this.t.send('GET', '/v1/pki/cas');
  }
  getCa(id: string): Promise<CertificateAuthority> {
    return this.t.send('GET', `/v1/pki/cas/${encodeURIComponent(id)}`);
  }
  rotateIntermediate(req: RotateIntermediateRequest = {}): Promise<CertificateAuthority> {
    return this.t.send('POST', '/v1/pki/intermediates', req);
  }
  installIntermediate(id: string, certificatePem: string): Promise<CertificateAuthority> {
    return this.t.send('POST', `/v1/pki/cas/${encodeURIComponent(id)}/certificate`, { certificate_pem: certificatePem });
  }
  signIntermediate(csr: string, validityDays?: number): Promise<CertificateAuthority> {
    return this.t.send('POST', '/v1/pki/intermediates/sign', { csr, ...(validityDays ? { validity_days: validityDays } : {}) });
  }
  exportRootKey(passphrase: string, remove = true): Promise<ExportRootKeyResponse> {
    return this.t.send('POST', '/v1/pki/root/export-key', { passphrase, remove });
  }
  issue(req: Optional<IssueCertificateRequest, 'template'>): Promise<IssuedCertificate> {
    return this.t.send('POST', '/v1/pki/issue', req);
  }
  sign(req: Optional<SignCertificateRequest, 'template'>): Promise<IssuedCertificate> {
    return this.t.send('POST', '/v1/pki/sign', req);
  }
  list(q: Partial<ListCertificatesQuery> = {}): Promise<CertificateList> {
    return this.t.send('GET', withQuery('/v1/pki/certificates', q));
  }
  get(serial: string): Promise<Certificate> {
    return this.t.send('GET', `/v1/pki/certificates/${encodeURIComponent(serial)}`);
  }
  revoke(serial: string, reason?: PkiRevocationReason): Promise<Certificate> {
    return this.t.send('POST', `/v1/pki/certificates/${encodeURIComponent(serial)}/revoke`, reason ? { reason } : {});
  }
  /** The root certificate, PEM (public). */
  async rootPem(): Promise<string> {
    return (await this.t.raw('GET', '/pki/root.pem', undefined, { accept: 'application/x-pem-file' })).body.toString();
  }
  /** A CA's CRL, DER (public). */
  async crl(caId: string): Promise<Buffer> {
    const res = await this.t.raw('GET', `/pki/crl/${encodeURIComponent(caId)}.crl`, undefined, { accept: 'application/pkix-crl' });
    if (res.status !== 200) throw new Error(`CRL fetch failed: HTTP ${res.status}`);
    return res.body;
  }
}
