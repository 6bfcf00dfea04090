/**
 * A throwaway CA for the revocation codec tests (CRL, OCSP): node:crypto keys, @peculiar/x509 certificates, a
 * CaSigner over the KeyObject, and the openssl CLI to check what the codecs produce.
 */
import 'reflect-metadata';
import { execFile } from 'node:child_process';
import { generateKeyPair, sign, webcrypto, type KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import type { CaAlgorithm, CaSigner, SigningCa } from '../engines/pki/types.js';

x509.cryptoProvider.set(webcrypto as never);

export const KEYS: Record<CaAlgorithm, { hash: 'sha256' | 'sha384'; webcrypto: webcrypto.RsaHashedImportParams | webcrypto.EcKeyImportParams; sign: webcrypto.Algorithm | webcrypto.EcdsaParams; name: string }> = {
  'ECDSA-P256': { hash: 'sha256', webcrypto: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams, name: 'ecdsa-with-SHA256' },
  'ECDSA-P384': { hash: 'sha384', webcrypto: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: 'SHA-384' } as webcrypto.EcdsaParams, name: 'ecdsa-with-SHA384' },
  'RSA-4096': { hash: 'sha256', webcrypto: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, sign: { name: 'RSASSA-PKCS1-v1_5' }, name: 'sha256WithRSAEncryption' },
};

function newKeyPair(alg: CaAlgorithm): Promise<{ publicKey: KeyObject; privateKey: KeyObject }> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, publicKey: KeyObject, privateKey: KeyObject) => (err ? reject(err) : resolve({ publicKey, privateKey }));
    if (alg === 'RSA-4096') generateKeyPair('rsa', { modulusLength: 4096 }, done);
    else generateKeyPair('ec', { namedCurve: alg === 'ECDSA-P256' ? 'P-256' : 'P-384' }, done);
  });
}

export interface SigningTestCa {
  ca: SigningCa;
  pem: string;
  issue(serial: string): Promise<string>;
}

export async function testCa(alg: CaAlgorithm, cn: string): Promise<SigningTestCa> {
  const { hash, webcrypto: params, sign: signing } = KEYS[alg];
  const pair = await newKeyPair(alg);
  const keys = {
    privateKey: await webcrypto.subtle.importKey('pkcs8', pair.privateKey.export({ format: 'der', type: 'pkcs8' }), params, true, ['sign']),
    publicKey: await webcrypto.subtle.importKey('spki', pair.publicKey.export({ format: 'der', type: 'spki' }), params, true, ['verify']),
  };
  const notBefore = new Date(Date.now() - 3600_000);
  const notAfter = new Date(Date.now() + 30 * 86400_000);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=${cn}`,
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: signing,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const signer: CaSigner = { algorithm: alg, sign: async (tbs) => sign(hash, tbs, { key: pair.privateKey, dsaEncoding: 'der' }) };
  return {
    ca: { id: cn, certificate: Buffer.from(cert.rawData), signer },
    pem: cert.toString('pem'),
    async issue(serial) {
      const leafKeys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
      const leaf = await x509.X509CertificateGenerator.create({
        serialNumber: serial,
        subject: `CN=leaf ${serial}`,
        issuer: cert.subject,
        notBefore,
        notAfter,
        signingKey: keys.privateKey,
        publicKey: leafKeys.publicKey,
        signingAlgorithm: signing,
        extensions: [new x509.BasicConstraintsExtension(false), await x509.AuthorityKeyIdentifierExtension.create(cert)],
      });
      return leaf.toString('pem');
    },
  };
}

export function run(args: string[], cwd: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile('openssl', args, { cwd }, (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, output: `${stdout}${stderr}` }));
  });
}

/** The openssl CLI's output (stdout then stderr); `FAILED ...` when it exits non-zero. */
export async function openssl(args: string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile('openssl', args, (err, stdout, stderr) => resolve(`${err ? 'FAILED ' : ''}${stdout}${stderr}`));
  });
}
