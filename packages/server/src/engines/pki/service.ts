/**
 * Issuance and revocation: certificates by template (server-generated key or CSR), for ACME orders, and for
 * Palisade's own listener; revocation with RFC 5280 reasons, the CRL of each CA and the status OCSP answers.
 * Every issued certificate is an audit event in the transaction that stores it.
 */
import { X509Certificate, createHash, createPublicKey, generateKeyPair as generateKeyPairCb, type KeyPairKeyObjectResult } from 'node:crypto';
import { isIP } from 'node:net';
import { promisify } from 'node:util';
import { PalisadeError, type PKI_LEAF_KEY_ALGORITHMS } from '@palisade/core';
import type { Executor } from '../../storage/database.js';
import type { PkiCertificateTable } from '../../storage/schema.js';
import type { OpContext } from '../../kernel/op-context.js';
import type { AcmeCertificateAuthority } from '../acme/ports.js';
import { BACKDATE_MS, CaHierarchy, subjectOf } from './cas.js';
import { buildCrl } from './crl.js';
import { buildOcspResponse, certIdFor, matchesIssuer, ocspErrorResponse, parseOcspRequest } from './ocsp.js';
import { authorize, renderTemplate, type IssueVariables, type PkiNaming, type PolicyRule, type Template } from './templates.js';
import { REVOCATION_REASONS, reasonName, type CertificateStatus, type RevocationReason } from './types.js';
import { authorityKeyId, buildCertificate, newSerial, parseCsr, serialOf, spkiOf, toPem, type SubjectAltNames } from './x509.js';

const generateKeyPair = promisify(generateKeyPairCb) as (type: string, options?: object) => Promise<KeyPairKeyObjectResult>;
const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

export type LeafKeyAlgorithm = (typeof PKI_LEAF_KEY_ALGORITHMS)[number];

export interface PkiSettings extends PkiNaming {
  environment: string;
  templates: Record<string, Template>;
  policy: PolicyRule[];
  crlValidityHours: number;
  ocspValidityHours: number;
}

export interface IssueRequest extends Omit<IssueVariables, 'environment' | 'namespace'> {
  template: string;
  environment?: string | undefined;
  namespace?: string | undefined;
  ttl_days?: number | undefined;
}

type ResolvedRequest = IssueVariables & { template: string; ttl_days?: number | undefined };

export interface IssuedCertificate {
  serial: string;
  ca_id: string;
  certificate_pem: string;
  /** The certificate, then the intermediate(s) above it (not the root). */
  chain_pem: string;
  not_before: string;
  not_after: string;
  subject_dn: string;
  sans: string[];
}

export interface CertificateView {
  serial: string;
  ca_id: string;
  subject_dn: string;
  sans: string[];
  template: string;
  service: string | null;
  requested_by: string;
  acme_order_id: string | null;
  not_before: string;
  not_after: string;
  status: 'valid' | 'revoked' | 'expired';
  revoked_at: string | null;
  revocation_reason: RevocationReason | null;
  fingerprint_sha256: string;
  certificate_pem: string;
}

export interface PkiDeps {
  cas: CaHierarchy;
  clock: () => Date;
  settings: PkiSettings;
}

function sanStrings(s: SubjectAltNames): string[] {
  return [...(s.dns ?? []).map((d) => `dns:${d}`), ...(s.ip ?? []).map((i) => `ip:${i}`), ...(s.uri ?? []).map((u) => `uri:${u}`)];
}

export class PkiService {
  readonly #caListeners: Array<() => Promise<void>> = [];
  constructor(private readonly deps: PkiDeps) {}

  /** Called after a change to the CA hierarchy committed (a new root or intermediate): the listener re-issues. */
  onCaChange(fn: () => Promise<void>): void {
    this.#caListeners.push(fn);
  }

  async caChanged(): Promise<void> {
    await Promise.all(this.#caListeners.map((fn) => fn()));
  }

  get cas(): CaHierarchy {
    return this.deps.cas;
  }

  templates(): Record<string, Template> {
    return this.deps.settings.templates;
  }

  #template(name: string): Template {
    const t = this.deps.settings.templates[name];
    if (!t) throw new PalisadeError('PAL_PKI_TEMPLATE_NOT_FOUND', `no template ${name}`, { extensions: { templates: Object.keys(this.deps.settings.templates) } });
    return t;
  }

  #variables(req: IssueRequest): ResolvedRequest {
    return { ...req, environment: req.environment || this.deps.settings.environment, namespace: req.namespace || 'default' };
  }

  /** Issue with a key generated here; the private key is returned once and never stored. */
  async issue(ctx: OpContext, principal: string, req: IssueRequest & { key_algorithm?: LeafKeyAlgorithm }): Promise<IssuedCertificate & { private_key_pem: string }> {
    const v = this.#variables(req);
    authorize(this.deps.settings.policy, principal, v.template, v);
    const { publicKey, privateKey } = await generateLeafKey(req.key_algorithm ?? 'ECDSA-P384');
    const out = await this.#issueTemplate(ctx, principal, v, publicKey);
    return { ...out, private_key_pem: privateKey };
  }

  /** Issue for the key of a CSR; the names come from the template, so the CSR may only ask for names it renders. */
  async sign(ctx: OpContext, principal: string, req: IssueRequest & { csr: string }): Promise<IssuedCertificate> {
    const v = this.#variables(req);
    authorize(this.deps.settings.policy, principal, v.template, v);
    const csr = await parseCsr(req.csr);
    if (csr.asksForCa) throw new PalisadeError('PAL_PKI_CSR_INVALID', 'the CSR asks for CA:TRUE; intermediates are created by `palisade pki` only');
    const rendered = renderTemplate(this.#template(v.template), v, this.deps.settings);
    const allowed = new Set(sanStrings(rendered.sans));
    const asked = sanStrings(csr.sans);
    const extra = asked.filter((n) => !allowed.has(n));
    if (extra.length > 0 || csr.sans.other > 0) throw new PalisadeError('PAL_PKI_NAME_NOT_ALLOWED', `the CSR asks for names the template does not give this request: ${extra.join(', ') || 'other name types'}`, { extensions: { name: extra[0] ?? '' } });
    return this.#issueTemplate(ctx, principal, v, csr.publicKey);
  }

  async #issueTemplate(ctx: OpContext, principal: string, v: ResolvedRequest, publicKey: Buffer): Promise<IssuedCertificate> {
    const t = this.#template(v.template);
    const ttl = v.ttl_days ?? t.ttl_days;
    if (ttl > t.max_ttl_days) throw new PalisadeError('PAL_PKI_TTL_EXCEEDS', `ttl_days ${ttl} exceeds the template's maximum of ${t.max_ttl_days}`);
    const r = renderTemplate(t, v, this.deps.settings);
    return this.#store(ctx, {
      principal,
      template: v.template,
      service: r.service,
      subject: r.subject,
      sans: r.sans,
      publicKey,
      ttlDays: ttl,
      keyUsage: t.key_usage,
      extKeyUsage: t.ext_key_usage,
      acmeOrderId: null,
    });
  }

  async #store(
    ctx: OpContext,
    p: { principal: string; template: string; service: string | null; subject: Parameters<typeof buildCertificate>[0]['subject']; sans: SubjectAltNames; publicKey: Buffer; ttlDays: number; keyUsage: Template['key_usage']; extKeyUsage: Template['ext_key_usage']; acmeOrderId: string | null },
  ): Promise<IssuedCertificate> {
    const ca = await this.deps.cas.issuing(ctx.db);
    const now = this.deps.clock();
    const notBefore = new Date(now.getTime() - BACKDATE_MS);
    const caEnd = Date.parse(ca.not_after!);
    if (now.getTime() + p.ttlDays * DAY_MS > caEnd) throw new PalisadeError('PAL_PKI_TTL_EXCEEDS', `the issuing CA expires at ${ca.not_after}; rotate the intermediate or ask for fewer days`);
    const notAfter = new Date(now.getTime() + p.ttlDays * DAY_MS);
    const serial = newSerial();
    const der = await buildCertificate(
      { kind: 'leaf', serial, subject: p.subject, issuer: ca.certificate!, publicKey: p.publicKey, notBefore, notAfter, sans: p.sans, keyUsage: p.keyUsage, extKeyUsage: p.extKeyUsage, ...this.deps.cas.urls(ca.id) },
      this.deps.cas.signing(ctx.db, ca).signer,
    );
    const row: PkiCertificateTable = {
      serial,
      ca_id: ca.id,
      fingerprint: createHash('sha256').update(der).digest('hex'),
      subject_dn: subjectOf(der),
      sans: JSON.stringify(sanStrings(p.sans)),
      template: p.template,
      service: p.service,
      requested_by: p.principal,
      acme_order_id: p.acmeOrderId,
      not_before: notBefore.toISOString(),
      not_after: notAfter.toISOString(),
      certificate: der,
      status: 'valid',
      revoked_at: null,
      revocation_reason: null,
      created_at: now.toISOString(),
    };
    await ctx.db.insertInto('pki_certificates').values(row).execute();
    ctx.emit?.({
      type: 'pki.certificate.issue',
      outcome: 'success',
      resource: { type: 'certificate', id: serial },
      details: { ca_id: ca.id, serial, subject_dn: row.subject_dn, sans: sanStrings(p.sans), profile: p.template, not_before: row.not_before, not_after: row.not_after, ...(p.acmeOrderId ? { acme_order_id: p.acmeOrderId } : {}) },
    });
    return {
      serial,
      ca_id: ca.id,
      certificate_pem: toPem(der),
      // intermediates sit right under the root (path length 0): the chain above a leaf is its issuer
      chain_pem: toPem(der) + toPem(ca.certificate!),
      not_before: row.not_before,
      not_after: row.not_after,
      subject_dn: row.subject_dn,
      sans: sanStrings(p.sans),
    };
  }

  /** Palisade's own listener certificate (P-256: handshakes sign with it), audited by the caller's context. */
  async issueListener(ctx: OpContext, names: string[], ttlDays: number): Promise<IssuedCertificate & { private_key_pem: string }> {
    const { publicKey, privateKey } = await generateLeafKey('ECDSA-P256');
    const dns = names.filter((n) => isIP(n) === 0);
    const ip = names.filter((n) => isIP(n) !== 0);
    const out = await this.#store(ctx, {
      principal: 'system:pki',
      template: 'listener',
      service: 'palisade',
      subject: { CN: dns[0] ?? 'palisade', O: this.deps.settings.organization },
      sans: { dns, ip },
      publicKey,
      ttlDays,
      keyUsage: ['digitalSignature'],
      extKeyUsage: ['serverAuth', 'clientAuth'],
      acmeOrderId: null,
    });
    return { ...out, private_key_pem: privateKey };
  }

  // ------------------------------------------------------------------------------------------------ ACME port

  /** The port the ACME engine issues and revokes through. */
  acmeAuthority(): AcmeCertificateAuthority {
    return { issue: (ctx, req) => this.issueForOrder(ctx, req), find: (db, by) => this.find(db, by), revoke: (ctx, serial, reason) => this.revoke(ctx, serial, reason) };
  }

  /** AcmeCertificateAuthority.issue: names were proven by the order's challenges. */
  async issueForOrder(ctx: OpContext, req: { csr: Buffer; identifiers: Array<{ type: 'dns' | 'ip'; value: string }>; order_id: string; account_id: string }): Promise<{ serial: string; chain_pem: string; not_before: string; not_after: string }> {
    const csr = await parseCsr(req.csr);
    if (csr.asksForCa) throw new PalisadeError('PAL_PKI_CSR_INVALID', 'the CSR asks for CA:TRUE');
    const dns = req.identifiers.filter((i) => i.type === 'dns').map((i) => i.value.toLowerCase());
    const ip = req.identifiers.filter((i) => i.type === 'ip').map((i) => i.value);
    const out = await this.#store(ctx, {
      principal: `acme:${req.account_id}`,
      template: 'acme',
      service: null,
      subject: dns[0] ? { CN: dns[0] } : {},
      sans: { dns, ip },
      publicKey: csr.publicKey,
      ttlDays: 90,
      keyUsage: isRsa(csr.publicKey) ? ['digitalSignature', 'keyEncipherment'] : ['digitalSignature'],
      extKeyUsage: ['serverAuth', 'clientAuth'],
      acmeOrderId: req.order_id,
    });
    return { serial: out.serial, chain_pem: out.chain_pem, not_before: out.not_before, not_after: out.not_after };
  }

  async find(db: Executor, by: { der: Buffer } | { serial: string }): Promise<{ serial: string; der: Buffer; status: 'valid' | 'revoked'; not_before: string; not_after: string; aki: Buffer; public_key_spki: Buffer; sans: Array<{ type: 'dns' | 'ip'; value: string }> } | null> {
    const q = db.selectFrom('pki_certificates').selectAll();
    const row = 'der' in by ? await q.where('fingerprint', '=', createHash('sha256').update(by.der).digest('hex')).executeTakeFirst() : await q.where('serial', '=', by.serial.toLowerCase()).executeTakeFirst();
    if (!row) return null;
    const sans: Array<{ type: 'dns' | 'ip'; value: string }> = [];
    for (const n of JSON.parse(row.sans) as string[]) {
      if (n.startsWith('dns:')) sans.push({ type: 'dns', value: n.slice(4) });
      else if (n.startsWith('ip:')) sans.push({ type: 'ip', value: n.slice(3) });
    }
    return { serial: row.serial, der: row.certificate, status: row.status, not_before: row.not_before, not_after: row.not_after, aki: authorityKeyId(row.certificate) ?? Buffer.alloc(0), public_key_spki: spkiOf(row.certificate), sans };
  }

  // ------------------------------------------------------------------------------------------------ revocation

  /** Revoke; the CA's CRL is re-signed on its next fetch (its cached copy is dropped in the same transaction). */
  async revoke(ctx: OpContext, serial: string, reason: RevocationReason): Promise<void> {
    const row = await ctx.db.selectFrom('pki_certificates').select(['serial', 'ca_id', 'status']).where('serial', '=', serial.toLowerCase()).executeTakeFirst();
    if (!row) throw new PalisadeError('PAL_PKI_CERTIFICATE_NOT_FOUND', `no certificate with serial ${serial}`);
    if (row.status === 'revoked') throw new PalisadeError('PAL_PKI_ALREADY_REVOKED');
    const at = this.deps.clock().toISOString();
    await ctx.db.updateTable('pki_certificates').set({ status: 'revoked', revoked_at: at, revocation_reason: REVOCATION_REASONS[reason] }).where('serial', '=', row.serial).execute();
    await ctx.db.updateTable('pki_cas').set({ crl: null, crl_next_update: null }).where('id', '=', row.ca_id).execute();
    ctx.emit?.({ type: 'pki.certificate.revoke', outcome: 'success', resource: { type: 'certificate', id: row.serial }, details: { ca_id: row.ca_id, serial: row.serial, reason } });
  }

  /** What OCSP says about a serial of a CA. */
  async status(db: Executor, caId: string, serial: string): Promise<CertificateStatus> {
    const row = await db.selectFrom('pki_certificates').select(['status', 'revoked_at', 'revocation_reason', 'ca_id']).where('serial', '=', serial).executeTakeFirst();
    if (!row || row.ca_id !== caId) return { status: 'unknown' };
    if (row.status === 'revoked') return { status: 'revoked', revokedAt: new Date(row.revoked_at!), reason: reasonName(row.revocation_reason ?? 0) };
    return { status: 'good' };
  }

  /**
   * The CA's current CRL (DER): the cached one while it is fresh (less than half its validity old and no revocation
   * since), else a new one with the next CRL number, audited as pki.crl.publish.
   */
  async crl(ctx: OpContext, caId: string): Promise<Buffer> {
    const ca = await this.deps.cas.get(ctx.db, caId);
    const now = this.deps.clock();
    const validity = this.deps.settings.crlValidityHours * HOUR_MS;
    if (this.#fresh(ca.crl, ca.crl_next_update)) return ca.crl!;
    const signing = this.deps.cas.signing(ctx.db, ca);
    const entries = await ctx.db.selectFrom('pki_certificates').select(['serial', 'revoked_at', 'revocation_reason']).where('ca_id', '=', caId).where('status', '=', 'revoked').where('not_after', '>', now.toISOString()).orderBy('serial').execute();
    const crlNumber = Number(ca.crl_number) + 1;
    const nextUpdate = new Date(now.getTime() + validity);
    const der = await buildCrl({
      ca: signing,
      crlNumber: BigInt(crlNumber),
      thisUpdate: new Date(now.getTime() - BACKDATE_MS),
      nextUpdate,
      entries: entries.map((e) => ({ serial: e.serial, revokedAt: new Date(e.revoked_at!), reason: reasonName(e.revocation_reason ?? 0) })),
    });
    // CRL numbers only grow: when another node published number N+1 meanwhile, serve its CRL rather than a second N+1.
    const won = await ctx.db.updateTable('pki_cas').set({ crl: der, crl_number: crlNumber, crl_next_update: nextUpdate.toISOString() }).where('id', '=', caId).where('crl_number', '=', ca.crl_number).executeTakeFirst();
    if (won.numUpdatedRows !== 1n) {
      const other = await this.deps.cas.get(ctx.db, caId);
      if (other.crl) return other.crl;
      throw new PalisadeError('PAL_UNAVAILABLE', 'the CRL is being re-signed; retry');
    }
    ctx.emit?.({ type: 'pki.crl.publish', outcome: 'success', resource: { type: 'ca', id: caId }, details: { crl_number: crlNumber, entries: entries.length, next_update: nextUpdate.toISOString() } });
    return der;
  }

  /**
   * Answer a DER OCSP request (RFC 6960): every CertID must name the same CA that signs here, else `unauthorized`;
   * a malformed request gets `malformedRequest`. Answers are signed by the CA's own key (no delegated responder).
   */
  async ocsp(db: Executor, der: Buffer): Promise<Buffer> {
    const req = parseOcspRequest(der);
    if (!req) return ocspErrorResponse('malformedRequest');
    // Only intermediates answer: the root issues no leaves, and its key (perhaps in an HSM) signs nothing on demand.
    const cas = await this.deps.cas.answering(db);
    const ca = cas.find((c) => matchesIssuer(req.requests[0]!, c.certificate!));
    if (!ca || !req.requests.every((r) => matchesIssuer(r, ca.certificate!))) return ocspErrorResponse('unauthorized');
    const now = this.deps.clock();
    const nextUpdate = new Date(now.getTime() + this.deps.settings.ocspValidityHours * HOUR_MS);
    const responses = [];
    for (const certId of req.requests) responses.push({ certId, status: await this.status(db, ca.id, certId.serial), thisUpdate: now, nextUpdate });
    return buildOcspResponse({ ca: this.deps.cas.signing(db, ca), producedAt: now, responses, nonce: req.nonce });
  }

  /** The cached CRL while it is fresh (a read, no transaction), else null. */
  async freshCrl(db: Executor, caId: string): Promise<Buffer | null> {
    const ca = await this.deps.cas.get(db, caId);
    return this.#fresh(ca.crl, ca.crl_next_update) ? ca.crl : null;
  }

  #fresh(crl: Buffer | null, nextUpdate: string | null): boolean {
    return crl !== null && nextUpdate !== null && Date.parse(nextUpdate) - this.deps.clock().getTime() > (this.deps.settings.crlValidityHours * HOUR_MS) / 2;
  }

  /** A signed OCSP answer for one certificate of ours (no nonce): the listener staples it. Null for a foreign one. */
  async ocspFor(db: Executor, leafDer: Buffer, issuerDer: Buffer): Promise<Buffer | null> {
    const serial = serialOf(leafDer);
    const ca = (await this.deps.cas.answering(db)).find((c) => c.certificate?.equals(issuerDer));
    if (!ca) return null;
    const now = this.deps.clock();
    const nextUpdate = new Date(now.getTime() + this.deps.settings.ocspValidityHours * HOUR_MS);
    const responses = [{ certId: certIdFor(serial, issuerDer), status: await this.status(db, ca.id, serial), thisUpdate: now, nextUpdate }];
    return buildOcspResponse({ ca: this.deps.cas.signing(db, ca), producedAt: now, responses, nonce: null });
  }

  /** Serials of revoked certificates not yet expired (mTLS refuses them on new connections). */
  async revokedSerials(db: Executor): Promise<Set<string>> {
    const rows = await db.selectFrom('pki_certificates').select('serial').where('status', '=', 'revoked').where('not_after', '>', this.deps.clock().toISOString()).execute();
    return new Set(rows.map((r) => r.serial));
  }

  /** The intermediates' certificates (active and retired), for client-certificate paths a resumed TLS session reports leaf-only. */
  async intermediateCertificates(db: Executor): Promise<X509Certificate[]> {
    const rows = await db.selectFrom('pki_cas').select('certificate').where('kind', '=', 'intermediate').where('status', 'in', ['active', 'retired']).execute();
    return rows.flatMap((r) => (r.certificate ? [new X509Certificate(r.certificate)] : []));
  }

  // ------------------------------------------------------------------------------------------------ queries

  async get(db: Executor, serial: string): Promise<CertificateView> {
    const row = await db.selectFrom('pki_certificates').selectAll().where('serial', '=', serial.toLowerCase()).executeTakeFirst();
    if (!row) throw new PalisadeError('PAL_PKI_CERTIFICATE_NOT_FOUND', `no certificate with serial ${serial}`);
    return this.#view(row);
  }

  async list(db: Executor, q: { service?: string | undefined; status?: 'valid' | 'revoked' | 'expired' | undefined; ca_id?: string | undefined; limit: number; cursor?: string | undefined }): Promise<{ certificates: CertificateView[]; next_cursor: string | null }> {
    const now = this.deps.clock().toISOString();
    let query = db.selectFrom('pki_certificates').selectAll().orderBy('serial').limit(q.limit + 1);
    if (q.service) query = query.where('service', '=', q.service);
    if (q.ca_id) query = query.where('ca_id', '=', q.ca_id);
    if (q.status === 'revoked') query = query.where('status', '=', 'revoked');
    if (q.status === 'valid') query = query.where('status', '=', 'valid').where('not_after', '>', now);
    if (q.status === 'expired') query = query.where('status', '=', 'valid').where('not_after', '<=', now);
    if (q.cursor) query = query.where('serial', '>', q.cursor);
    const rows = await query.execute();
    const page = rows.slice(0, q.limit);
    return { certificates: page.map((r) => this.#view(r)), next_cursor: rows.length > q.limit ? page[page.length - 1]!.serial : null };
  }

  #view(row: PkiCertificateTable): CertificateView {
    const expired = row.status === 'valid' && Date.parse(row.not_after) <= this.deps.clock().getTime();
    return {
      serial: row.serial,
      ca_id: row.ca_id,
      subject_dn: row.subject_dn,
      sans: JSON.parse(row.sans) as string[],
      template: row.template,
      service: row.service,
      requested_by: row.requested_by,
      acme_order_id: row.acme_order_id,
      not_before: row.not_before,
      not_after: row.not_after,
      status: expired ? 'expired' : row.status,
      revoked_at: row.revoked_at,
      revocation_reason: row.revocation_reason === null ? null : reasonName(row.revocation_reason),
      fingerprint_sha256: row.fingerprint,
      certificate_pem: toPem(row.certificate),
    };
  }
}

function isRsa(spki: Buffer): boolean {
  return createPublicKey({ key: spki, format: 'der', type: 'spki' }).asymmetricKeyType === 'rsa';
}

const KEYGEN: Record<LeafKeyAlgorithm, () => Promise<KeyPairKeyObjectResult>> = {
  'ECDSA-P256': () => generateKeyPair('ec', { namedCurve: 'P-256' }),
  'ECDSA-P384': () => generateKeyPair('ec', { namedCurve: 'P-384' }),
  ED25519: () => generateKeyPair('ed25519'),
  'RSA-2048': () => generateKeyPair('rsa', { modulusLength: 2048 }),
  'RSA-3072': () => generateKeyPair('rsa', { modulusLength: 3072 }),
};

/** A leaf key pair generated here (off the event loop): SPKI DER to certify, PKCS#8 PEM to hand out once. */
async function generateLeafKey(alg: LeafKeyAlgorithm): Promise<{ publicKey: Buffer; privateKey: string }> {
  const kp = await KEYGEN[alg]();
  return { publicKey: kp.publicKey.export({ type: 'spki', format: 'der' }), privateKey: kp.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}
