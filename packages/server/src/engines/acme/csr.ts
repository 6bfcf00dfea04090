import 'reflect-metadata';
import { Pkcs10CertificateRequest, SubjectAlternativeNameExtension } from '@peculiar/x509';
import { canonicalIp } from './identifiers.js';
import type { AcmeIdentifier } from './ports.js';
import { acmeError } from './problem.js';

const OID_CN = '2.5.4.3';

/**
 * The identifiers a CSR asks for: its subjectAltName dNSName and iPAddress entries, plus its CN (which must then
 * be one of them). badCSR when it cannot be parsed. Signature and key checks are the CA's.
 */
export function csrIdentifiers(der: Buffer): AcmeIdentifier[] {
  let csr: Pkcs10CertificateRequest;
  try {
    csr = new Pkcs10CertificateRequest(der);
  } catch {
    throw acmeError('PAL_ACME_BAD_CSR', 'the CSR is not a DER PKCS#10 certification request');
  }
  const ids = new Map<string, AcmeIdentifier>();
  const san = csr.extensions.find((e): e is SubjectAlternativeNameExtension => e instanceof SubjectAlternativeNameExtension);
  for (const name of san?.names.items ?? []) {
    if (name.type === 'dns') ids.set(`dns:${name.value.toLowerCase()}`, { type: 'dns', value: name.value.toLowerCase() });
    else if (name.type === 'ip') {
      const ip = canonicalIp(name.value);
      if (ip === null) throw acmeError('PAL_ACME_BAD_CSR', `the CSR names an IP address this server cannot read (${name.value})`);
      ids.set(`ip:${ip}`, { type: 'ip', value: ip });
    } else throw acmeError('PAL_ACME_BAD_CSR', `the CSR asks for a ${name.type} name; only DNS names and IP addresses are issued through ACME`);
  }
  for (const cn of csr.subjectName.getField(OID_CN)) {
    const ip = canonicalIp(cn);
    const id: AcmeIdentifier = ip ? { type: 'ip', value: ip } : { type: 'dns', value: cn.toLowerCase() };
    if (!ids.has(`${id.type}:${id.value}`)) throw acmeError('PAL_ACME_BAD_CSR', `the CSR's common name ${cn} is not among its subjectAltNames`);
  }
  return [...ids.values()];
}

/** The CSR's subject public key, SPKI DER (csrIdentifiers has already refused what does not parse). */
export function csrPublicKey(der: Buffer): Buffer {
  return Buffer.from(new Pkcs10CertificateRequest(der).publicKey.rawData);
}
