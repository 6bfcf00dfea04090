/**
 * The CA hierarchy: one root (kept offline once its intermediate exists, if the operator wants) and intermediates
 * that issue everything. CA keys are KMS system keys (`system/pki/<ca id>`), never rotated in place: rotating an
 * intermediate creates a new one, the previous one retires and keeps answering OCSP and CRLs for what it issued.
 * The root's key may instead live in the HSM (key store `hsm`, with the pkcs11 seal): generated in the token as
 * `palisade-ca-<ca id>`, non-extractable, every root signature made there.
 */
import { createPublicKey, X509Certificate } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest, CertificationRequestInfo } from '@peculiar/asn1-csr';
import * as asn from '@peculiar/asn1-x509';
import { PalisadeError, randomId } from '@palisade/core';
import type { Executor } from '../../storage/database.js';
import type { PkiCaTable } from '../../storage/schema.js';
import type { OpContext } from '../../kernel/op-context.js';
import type { Pkcs11CaKeys } from '../../kernel/seal/pkcs11-ca-keys.js';
import type { KmsService } from '../kms/service.js';
import { CA_KEY_PREFIX } from '../kms/service.js';
import { signedDer } from './signature.js';
import type { CaAlgorithm, CaSigner, SigningCa } from './types.js';
import { buildCertificate, fromPem, nameDer, newSerial, parseCsr, spkiOf, toPem, type SubjectName } from './x509.js';

const DAY_MS = 86_400_000;
/** CKA_LABEL (and CKA_ID) of a CA key pair in the HSM: this prefix and the CA id. */
export const HSM_LABEL_PREFIX = 'palisade-ca-';
/** Certificates are back-dated this much against clock skew between us and relying parties. */
export const BACKDATE_MS = 60_000;

export interface CaSettings {
  organization: string;
  country: string;
  root: { algorithm: CaAlgorithm; validity_days: number; common_name: string };
  intermediate: { algorithm: CaAlgorithm; validity_days: number; common_name: string };
  /** scheme://host[:port] written into certificates. */
  baseUrl: () => string;
}

export interface CaView {
  id: string;
  name: string;
  kind: 'root' | 'intermediate';
  parent_id: string | null;
  status: PkiCaTable['status'];
  key_store: PkiCaTable['key_store'];
  algorithm: string;
  subject_dn: string;
  not_before: string | null;
  not_after: string | null;
  created_at: string;
  certificate_pem: string | null;
  csr_pem: string | null;
}

export interface CaDeps {
  kms: Pick<KmsService, 'createCaKey' | 'caSign' | 'exportCaKey'>;
  /** CA keys in the seal's PKCS#11 token (key store `hsm`); absent unless the seal is pkcs11. */
  hsm?: Pick<Pkcs11CaKeys, 'createKey' | 'sign'> | undefined;
  clock: () => Date;
  settings: CaSettings;
}

/** Whether the server can sign with this CA's key (in the KMS or in the HSM). */
/** What signing a CA needs of its row. */
const SIGNER_COLUMNS = ['id', 'name', 'status', 'key_store', 'key_ref', 'algorithm', 'certificate'] as const;
type SignerRow = Pick<PkiCaTable, (typeof SIGNER_COLUMNS)[number]>;

export function keyHeld(row: Pick<PkiCaTable, 'key_store'>): boolean {
  return row.key_store === 'kms' || row.key_store === 'hsm';
}

export function caView(row: PkiCaTable): CaView {
  return {
    id: row.id,
    name: row.name,
    kind: row.kind,
    parent_id: row.parent_id,
    status: row.status,
    key_store: row.key_store,
    algorithm: row.algorithm,
    subject_dn: row.subject_dn,
    not_before: row.not_before,
    not_after: row.not_after,
    created_at: row.created_at,
    certificate_pem: row.certificate ? toPem(row.certificate) : null,
    csr_pem: row.csr ? toPem(row.csr, 'CERTIFICATE REQUEST') : null,
  };
}

export class CaHierarchy {
  constructor(private readonly deps: CaDeps) {}

  /** URLs a certificate issued by `caId` carries. */
  urls(caId: string): { crlUrl: string; ocspUrl: string; caIssuersUrl: string } {
    const base = this.deps.settings.baseUrl();
    return { crlUrl: `${base}/pki/crl/${caId}.crl`, ocspUrl: `${base}/pki/ocsp`, caIssuersUrl: `${base}/pki/ca/${caId}.crt` };
  }

  /** A CA ready to sign in `db` (its certificate and a signer bound to this transaction). */
  signing(db: Executor, row: SignerRow): SigningCa {
    if (!row.certificate) throw new PalisadeError('PAL_PKI_CA_STATE', `CA ${row.name} has no certificate yet`, { extensions: { status: row.status } });
    const name = row.key_ref;
    if (!keyHeld(row) || !name) throw new PalisadeError('PAL_PKI_CA_OFFLINE', `the key of CA ${row.name} is not held by the server`);
    const algorithm = row.algorithm as CaAlgorithm;
    const sign = row.key_store === 'hsm' ? (tbs: Buffer) => this.#hsm().sign(name, algorithm, tbs) : (tbs: Buffer) => this.deps.kms.caSign(db, name, tbs);
    return { id: row.id, certificate: row.certificate, signer: { algorithm, sign } };
  }

  #hsm(): NonNullable<CaDeps['hsm']> {
    if (!this.deps.hsm) throw new PalisadeError('PAL_PKI_HSM_UNAVAILABLE');
    return this.deps.hsm;
  }

  async get(db: Executor, id: string): Promise<PkiCaTable> {
    const row = await db.selectFrom('pki_cas').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new PalisadeError('PAL_PKI_CA_NOT_FOUND', `no CA ${id}`);
    return row;
  }

  /** The intermediates whose key the server holds (they answer OCSP), without their CRL and CSR blobs. */
  async answering(db: Executor): Promise<SignerRow[]> {
    return db.selectFrom('pki_cas').select(SIGNER_COLUMNS).where('kind', '=', 'intermediate').where('key_store', 'in', ['kms', 'hsm']).where('certificate', 'is not', null).execute();
  }

  async list(db: Executor): Promise<PkiCaTable[]> {
    return db.selectFrom('pki_cas').selectAll().orderBy('created_at').orderBy('id').execute();
  }

  async root(db: Executor): Promise<PkiCaTable | null> {
    return (await db.selectFrom('pki_cas').selectAll().where('kind', '=', 'root').executeTakeFirst()) ?? null;
  }

  /** The intermediate that issues now: the newest active one whose key the server holds. */
  async issuing(db: Executor): Promise<SignerRow & Pick<PkiCaTable, 'not_after'>> {
    const row = await db
      .selectFrom('pki_cas')
      .select([...SIGNER_COLUMNS, 'not_after'])
      .where('kind', '=', 'intermediate')
      .where('status', '=', 'active')
      .where('key_store', '=', 'kms')
      .orderBy('activated_at', 'desc')
      .executeTakeFirst();
    if (!row) throw new PalisadeError('PAL_PKI_NOT_INITIALIZED', 'there is no active intermediate CA: run `palisade pki init-root`');
    return row;
  }

  /**
   * Create the root and its first intermediate. The root's key is a KMS system key, or with `key_store: 'hsm'` a key
   * pair generated in the seal's PKCS#11 token (labelled `palisade-ca-<ca id>`) that signs there and never leaves it.
   */
  async initRoot(ctx: OpContext, opts: Partial<CaSettings['root']> & { key_store?: 'kms' | 'hsm' | undefined } = {}): Promise<{ root: PkiCaTable; intermediate: PkiCaTable }> {
    if (await this.root(ctx.db)) throw new PalisadeError('PAL_PKI_ROOT_EXISTS');
    const { key_store: keyStore = 'kms', ...settings } = opts;
    const s = { ...this.deps.settings.root, ...settings };
    const now = this.deps.clock();
    const id = newCaId();
    const hsm = keyStore === 'hsm' ? this.#hsm() : null;
    const keyRef = hsm ? `${HSM_LABEL_PREFIX}${id}` : `${CA_KEY_PREFIX}${id}`;
    const key = hsm ? { key_id: null, public_key: await hsm.createKey(keyRef, s.algorithm) } : await this.deps.kms.createCaKey(ctx, keyRef, s.algorithm, s.validity_days);
    const subject = nameDer({ CN: s.common_name, O: this.deps.settings.organization, C: this.deps.settings.country });
    const notBefore = new Date(now.getTime() - BACKDATE_MS);
    const notAfter = new Date(now.getTime() + s.validity_days * DAY_MS);
    const signer: CaSigner = { algorithm: s.algorithm, sign: hsm ? (tbs) => hsm.sign(keyRef, s.algorithm, tbs) : (tbs) => this.deps.kms.caSign(ctx.db, keyRef, tbs) };
    const der = await buildCertificate({ kind: 'root', serial: newSerial(), subject, publicKey: key.public_key, notBefore, notAfter }, signer);
    const root: PkiCaTable = {
      ...baseRow(id, 'root', now),
      name: 'root',
      status: 'active',
      key_store: keyStore,
      key_ref: keyRef,
      algorithm: s.algorithm,
      subject_dn: subjectOf(der),
      certificate: der,
      not_before: notBefore.toISOString(),
      not_after: notAfter.toISOString(),
      activated_at: now.toISOString(),
    };
    await ctx.db.insertInto('pki_cas').values(root).execute();
    emitCreated(ctx, root, key.key_id);
    const intermediate = await this.rotateIntermediate(ctx);
    return { root, intermediate };
  }

  /**
   * A new intermediate. With the root online it is signed at once and becomes the issuer (the previous one retires
   * but keeps answering for its certificates); with the root offline it waits, as a CSR, for `install`.
   */
  async rotateIntermediate(ctx: OpContext, opts: Partial<CaSettings['intermediate']> = {}): Promise<PkiCaTable> {
    const root = await this.root(ctx.db);
    if (!root?.certificate) throw new PalisadeError('PAL_PKI_NOT_INITIALIZED', 'create the root first: `palisade pki init-root`');
    const s = { ...this.deps.settings.intermediate, ...opts };
    const now = this.deps.clock();
    const id = newCaId();
    const keyName = `${CA_KEY_PREFIX}${id}`;
    const key = await this.deps.kms.createCaKey(ctx, keyName, s.algorithm, s.validity_days);
    const name: SubjectName = { CN: `${s.common_name} ${now.toISOString().slice(0, 10)} ${id.slice(-6)}`, O: this.deps.settings.organization, C: this.deps.settings.country };
    const subject = nameDer(name);
    const self: CaSigner = { algorithm: s.algorithm, sign: (tbs) => this.deps.kms.caSign(ctx.db, keyName, tbs) };
    const row: PkiCaTable = { ...baseRow(id, 'intermediate', now), parent_id: root.id, status: 'pending', key_store: 'kms', key_ref: keyName, algorithm: s.algorithm, subject_dn: `CN=${name.CN}, O=${name.O}, C=${name.C}`, csr: await buildCsr(subject, key.public_key, self) };
    if (keyHeld(root)) {
      const { der } = await certifyIntermediate({ root: root.certificate, subject, publicKey: key.public_key, validityDays: s.validity_days, now, signer: this.signing(ctx.db, root).signer, caIssuersUrl: this.urls(root.id).caIssuersUrl });
      await ctx.db.insertInto('pki_cas').values(row).execute();
      emitCreated(ctx, row, key.key_id);
      return this.#activate(ctx, row, der);
    }
    await ctx.db.insertInto('pki_cas').values(row).execute();
    emitCreated(ctx, row, key.key_id);
    return row;
  }

  /** Install the certificate an offline root signed for a pending intermediate, and make it the issuer. */
  async install(ctx: OpContext, id: string, certificatePem: string): Promise<PkiCaTable> {
    const row = await this.get(ctx.db, id);
    if (row.status !== 'pending') throw new PalisadeError('PAL_PKI_CA_STATE', `CA ${row.name} is ${row.status}, not waiting for a certificate`, { extensions: { status: row.status } });
    const root = (await this.root(ctx.db))!;
    const der = fromPem(certificatePem)[0];
    if (!der) throw new PalisadeError('PAL_PKI_INTERMEDIATE_INVALID', 'no PEM certificate in the body');
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(der);
    } catch {
      throw new PalisadeError('PAL_PKI_INTERMEDIATE_INVALID', 'the certificate cannot be parsed');
    }
    const rootCert = new X509Certificate(root.certificate!);
    const pending = AsnConvert.parse(row.csr!, CertificationRequest).certificationRequestInfo;
    if (!spkiOf(der).equals(Buffer.from(AsnConvert.serialize(pending.subjectPKInfo)))) throw new PalisadeError('PAL_PKI_INTERMEDIATE_INVALID', 'the certificate does not carry the pending intermediate\'s key');
    const subject = Buffer.from(AsnConvert.serialize(AsnConvert.parse(der, asn.Certificate).tbsCertificate.subject));
    if (!subject.equals(Buffer.from(AsnConvert.serialize(pending.subject)))) throw new PalisadeError('PAL_PKI_INTERMEDIATE_INVALID', 'the certificate does not name the subject the CSR asked for');
    if (Date.parse(cert.validTo) > Date.parse(rootCert.validTo)) throw new PalisadeError('PAL_PKI_INTERMEDIATE_INVALID', 'the certificate outlives the root');
    if (!cert.ca) throw new PalisadeError('PAL_PKI_INTERMEDIATE_INVALID', 'the certificate is not a CA certificate (basicConstraints CA:TRUE)');
    if (!cert.checkIssued(rootCert) || !cert.verify(rootCert.publicKey)) throw new PalisadeError('PAL_PKI_INTERMEDIATE_INVALID', 'the certificate is not signed by the root');
    if (Date.parse(cert.validTo) <= this.deps.clock().getTime()) throw new PalisadeError('PAL_PKI_INTERMEDIATE_INVALID', 'the certificate has expired');
    return this.#activate(ctx, row, der);
  }

  async #activate(ctx: OpContext, row: PkiCaTable, der: Buffer): Promise<PkiCaTable> {
    const cert = new X509Certificate(der);
    const now = this.deps.clock().toISOString();
    await ctx.db.updateTable('pki_cas').set({ status: 'retired' }).where('kind', '=', 'intermediate').where('status', '=', 'active').where('key_store', '=', 'kms').execute();
    const patch = { certificate: der, status: 'active' as const, not_before: new Date(cert.validFrom).toISOString(), not_after: new Date(cert.validTo).toISOString(), activated_at: now, subject_dn: subjectOf(der) };
    await ctx.db.updateTable('pki_cas').set(patch).where('id', '=', row.id).execute();
    return { ...row, ...patch };
  }

  /** Root signs a CSR for an intermediate whose key lives elsewhere (another Palisade, another CA); recorded, never issuing here. */
  async signExternal(ctx: OpContext, csrDer: Buffer, validityDays: number): Promise<PkiCaTable> {
    const root = await this.root(ctx.db);
    if (!root?.certificate) throw new PalisadeError('PAL_PKI_NOT_INITIALIZED', 'create the root first: `palisade pki init-root`');
    const csr = await parseCsr(csrDer);
    const now = this.deps.clock();
    const id = newCaId();
    const { der, notAfter } = await certifyIntermediate({ root: root.certificate, subject: csr.subject, publicKey: csr.publicKey, validityDays, now, signer: this.signing(ctx.db, root).signer, caIssuersUrl: this.urls(root.id).caIssuersUrl });
    const row: PkiCaTable = { ...baseRow(id, 'intermediate', now), parent_id: root.id, status: 'active', key_store: 'external', algorithm: algorithmOf(csr.publicKey), subject_dn: subjectOf(der), certificate: der, not_before: new Date(now.getTime() - BACKDATE_MS).toISOString(), not_after: notAfter.toISOString(), activated_at: now.toISOString() };
    await ctx.db.insertInto('pki_cas').values(row).execute();
    emitCreated(ctx, row, null);
    return row;
  }

  /** Take the root offline: its key as an encrypted PKCS#8 PEM, erased here when `remove`. */
  async exportRootKey(ctx: OpContext, passphrase: string, remove: boolean): Promise<string> {
    const root = await this.root(ctx.db);
    if (!root) throw new PalisadeError('PAL_PKI_NOT_INITIALIZED');
    if (root.key_store === 'hsm') throw new PalisadeError('PAL_PKI_KEY_NOT_EXPORTABLE', `the root key was generated in the HSM as non-extractable (token object "${root.key_ref}"); keep the token offline instead`);
    if (root.key_store !== 'kms' || !root.key_ref) throw new PalisadeError('PAL_PKI_CA_OFFLINE', 'the root key was taken offline before');
    const pem = await this.deps.kms.exportCaKey(ctx.db, root.key_ref, passphrase, remove);
    if (remove) await ctx.db.updateTable('pki_cas').set({ key_store: 'offline', key_ref: null }).where('id', '=', root.id).execute();
    return pem;
  }
}

/** Sign a CSR for an intermediate offline (`palisade pki sign-intermediate`), exactly as the online root would. */
export async function signIntermediateOffline(opts: { rootPem: string; rootKey: CaSigner; csrPem: string; validityDays: number; caIssuersUrl?: string; now?: Date }): Promise<string> {
  const root = fromPem(opts.rootPem)[0];
  if (!root) throw new PalisadeError('PAL_VALIDATION_FAILED', 'no certificate in the root PEM');
  const csr = await parseCsr(opts.csrPem);
  const { der } = await certifyIntermediate({ root, subject: csr.subject, publicKey: csr.publicKey, validityDays: opts.validityDays, now: opts.now ?? new Date(), signer: opts.rootKey, ...(opts.caIssuersUrl ? { caIssuersUrl: opts.caIssuersUrl } : {}) });
  return toPem(der);
}

/** An intermediate under `root`: issues leaves only (path length 0), back-dated, and never outliving the root. */
async function certifyIntermediate(p: { root: Buffer; subject: Buffer; publicKey: Buffer; validityDays: number; now: Date; signer: CaSigner; caIssuersUrl?: string }): Promise<{ der: Buffer; notAfter: Date }> {
  const notAfter = new Date(Math.min(p.now.getTime() + p.validityDays * DAY_MS, Date.parse(new X509Certificate(p.root).validTo)));
  const der = await buildCertificate(
    { kind: 'intermediate', serial: newSerial(), subject: p.subject, issuer: p.root, publicKey: p.publicKey, notBefore: new Date(p.now.getTime() - BACKDATE_MS), notAfter, pathLength: 0, ...(p.caIssuersUrl ? { caIssuersUrl: p.caIssuersUrl } : {}) },
    p.signer,
  );
  return { der, notAfter };
}

function newCaId(): string {
  return randomId('ca', 10);
}

function baseRow(id: string, kind: PkiCaTable['kind'], now: Date): PkiCaTable {
  return { id, name: kind === 'root' ? 'root' : `intermediate-${id.slice(3)}`, kind, parent_id: null, status: 'pending', key_store: 'kms', key_ref: null, algorithm: '', subject_dn: '', certificate: null, csr: null, not_before: null, not_after: null, created_at: now.toISOString(), activated_at: null, crl_number: 0, crl: null, crl_next_update: null };
}

function emitCreated(ctx: OpContext, row: PkiCaTable, keyId: string | null): void {
  ctx.emit?.({
    type: 'pki.ca.create',
    outcome: 'success',
    resource: { type: 'ca', id: row.id },
    details: { name: row.name, kind: row.kind, key_id: keyId, key_store: row.key_store, subject_dn: row.subject_dn, parent_ca_id: row.parent_id, not_after: row.not_after, status: row.status },
  });
}

export function subjectOf(der: Buffer): string {
  return new X509Certificate(der).subject.split('\n').join(', ');
}

function algorithmOf(spki: Buffer): string {
  const k = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  const d = k.asymmetricKeyDetails ?? {};
  if (k.asymmetricKeyType === 'ec') return d.namedCurve === 'secp384r1' ? 'ECDSA-P384' : 'ECDSA-P256';
  if (k.asymmetricKeyType === 'rsa') return `RSA-${d.modulusLength}`;
  return String(k.asymmetricKeyType).toUpperCase();
}

/** A PKCS#10 request for a pending intermediate, signed by its own (KMS) key. */
async function buildCsr(subject: Buffer, spki: Buffer, signer: CaSigner): Promise<Buffer> {
  const info = new CertificationRequestInfo({
    version: 0,
    subject: AsnConvert.parse(subject, asn.Name),
    subjectPKInfo: AsnConvert.parse(spki, asn.SubjectPublicKeyInfo),
  });
  const tbs = Buffer.from(AsnConvert.serialize(info));
  return signedDer(signer, tbs, createPublicKey({ key: spki, format: 'der', type: 'spki' }));
}

