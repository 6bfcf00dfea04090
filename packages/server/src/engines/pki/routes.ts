import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import {
  CaList,
  Certificate,
  CertificateAuthority,
  CertificateList,
  ExportRootKeyRequest,
  ExportRootKeyResponse,
  InitRootRequest,
  InitRootResponse,
  InstallCertificateRequest,
  IssueCertificateRequest,
  IssuedCertificate,
  ListCertificatesQuery,
  RevokeRequest,
  RotateIntermediateRequest,
  SerialParams,
  SignCertificateRequest,
  SignIntermediateRequest,
  PalisadeError,
} from '@palisade/core';
import type { Storage } from '../../storage/database.js';
import type { AuditLedger } from '../../kernel/audit/ledger.js';
import { opContext, runAsSystem } from '../../kernel/op-context.js';
import { caView } from './cas.js';
import { crlToPem } from './crl.js';
import { ocspRequestFromGetPath } from './ocsp.js';
import type { PkiService } from './service.js';
import { toPem } from './x509.js';

const tags = ['pki'];
const security = [{ bearer: [] }];
const IdParams = Type.Object({ id: Type.String({ pattern: '^ca_[a-z0-9]{1,40}$' }) });
const OCSP_MAX_BYTES = 64 * 1024;

export interface PkiRouteDeps {
  pki: PkiService;
  storage: Storage;
  ledger: AuditLedger;
}

/** The PKI admin API under /v1/pki (bearer), and the public endpoints certificates point at under /pki. */
export function pkiRoutes(deps: PkiRouteDeps): FastifyPluginAsync {
  const { pki } = deps;
  return async (plain) => {
    const app = plain.withTypeProvider<TypeBoxTypeProvider>();
    const primary = (req: Parameters<typeof opContext>[0]) => opContext(req, { primary: true });
    /** After a change to the hierarchy commits, Palisade's own listener moves to the new issuer. */
    const hierarchyChanged = (req: Parameters<typeof opContext>[0]) => req.auditRecord.afterCommit.push(async () => pki.caChanged());

    app.post('/v1/pki/root', {
      schema: { tags, security, summary: 'Create the root CA and its first intermediate (once)', body: InitRootRequest, response: { 201: InitRootResponse } },
      config: { permission: 'pki:ca:create', audit: 'pki.ca.create' },
      handler: async (req, reply) => {
        hierarchyChanged(req);
        const out = await pki.cas.initRoot(primary(req), req.body);
        void reply.code(201);
        return { root: caView(out.root), intermediate: caView(out.intermediate) };
      },
    });

    app.get('/v1/pki/cas', {
      schema: { tags, security, summary: 'The root and every intermediate', response: { 200: CaList } },
      config: { permission: 'pki:ca:read' },
      handler: async (req) => ({ cas: (await pki.cas.list(req.tx)).map(caView) }),
    });

    app.get('/v1/pki/cas/:id', {
      schema: { tags, security, summary: 'One CA', params: IdParams, response: { 200: CertificateAuthority } },
      config: { permission: 'pki:ca:read' },
      handler: async (req) => caView(await pki.cas.get(req.tx, req.params.id)),
    });

    app.post('/v1/pki/intermediates', {
      schema: {
        tags,
        security,
        summary: 'Rotate the intermediate: signed at once while the root is online (the new one issues, the old one retires), else pending with a CSR for the offline root',
        body: RotateIntermediateRequest,
        response: { 201: CertificateAuthority },
      },
      config: { permission: 'pki:ca:create', audit: 'pki.ca.create' },
      handler: async (req, reply) => {
        void reply.code(201);
        hierarchyChanged(req);
        return caView(await pki.cas.rotateIntermediate(primary(req), req.body));
      },
    });

    app.post('/v1/pki/cas/:id/certificate', {
      schema: { tags, security, summary: 'Install the certificate the offline root signed for a pending intermediate; it becomes the issuer', params: IdParams, body: InstallCertificateRequest, response: { 200: CertificateAuthority } },
      config: { permission: 'pki:ca:create', audit: 'pki.ca.install' },
      handler: async (req) => {
        hierarchyChanged(req);
        const row = await pki.cas.install(opContext(req), req.params.id, req.body.certificate_pem);
        req.auditRecord.resource = { type: 'ca', id: row.id };
        req.auditRecord.details = { name: row.name, subject_dn: row.subject_dn, not_after: row.not_after };
        return caView(row);
      },
    });

    app.post('/v1/pki/intermediates/sign', {
      schema: { tags, security, summary: 'The root signs a CSR for an intermediate whose key lives elsewhere', body: SignIntermediateRequest, response: { 201: CertificateAuthority } },
      config: { permission: 'pki:ca:create', audit: 'pki.ca.create' },
      handler: async (req, reply) => {
        void reply.code(201);
        return caView(await pki.cas.signExternal(primary(req), Buffer.from(req.body.csr), req.body.validity_days));
      },
    });

    app.post('/v1/pki/root/export-key', {
      schema: { tags, security, summary: "Take the root offline: its key as an encrypted PKCS#8 PEM, erased from the server unless remove is false", body: ExportRootKeyRequest, response: { 200: ExportRootKeyResponse } },
      config: { permission: 'pki:ca:export', audit: 'pki.ca.export_key' },
      handler: async (req) => {
        const pem = await pki.cas.exportRootKey(opContext(req), req.body.passphrase, req.body.remove);
        const root = (await pki.cas.root(req.tx))!;
        req.auditRecord.resource = { type: 'ca', id: root.id };
        req.auditRecord.details = { removed: req.body.remove };
        return { encrypted_private_key_pem: pem, removed: req.body.remove };
      },
    });

    app.get('/v1/pki/templates', {
      schema: { tags, security, summary: 'Issuance templates', response: { 200: Type.Object({ templates: Type.Record(Type.String(), Type.Unknown()) }) } },
      config: { permission: 'pki:certificates:read' },
      handler: async () => ({ templates: pki.templates() }),
    });

    app.post('/v1/pki/issue', {
      schema: { tags, security, summary: 'Issue a certificate by template with a key generated here (returned once, never stored)', body: IssueCertificateRequest, response: { 201: IssuedCertificate } },
      config: { permission: 'pki:certificates:issue', audit: 'pki.certificate.issue' },
      handler: async (req, reply) => {
        void reply.code(201);
        return pki.issue(primary(req), req.principal!.principal_id, req.body);
      },
    });

    app.post('/v1/pki/sign', {
      schema: { tags, security, summary: "Issue a certificate by template for a CSR's key", body: SignCertificateRequest, response: { 201: IssuedCertificate } },
      config: { permission: 'pki:certificates:issue', audit: 'pki.certificate.issue' },
      handler: async (req, reply) => {
        void reply.code(201);
        return pki.sign(primary(req), req.principal!.principal_id, req.body);
      },
    });

    app.get('/v1/pki/certificates', {
      schema: { tags, security, summary: 'Issued certificates', querystring: ListCertificatesQuery, response: { 200: CertificateList } },
      config: { permission: 'pki:certificates:read' },
      handler: async (req) => pki.list(req.tx, req.query),
    });

    app.get('/v1/pki/certificates/:serial', {
      schema: { tags, security, summary: 'One certificate by serial (hex)', params: SerialParams, response: { 200: Certificate } },
      config: { permission: 'pki:certificates:read' },
      handler: async (req) => pki.get(req.tx, req.params.serial),
    });

    app.post('/v1/pki/certificates/:serial/revoke', {
      schema: { tags, security, summary: 'Revoke with an RFC 5280 reason; the CRL and OCSP say so at once', params: SerialParams, body: RevokeRequest, response: { 200: Certificate } },
      config: { permission: 'pki:certificates:revoke', audit: 'pki.certificate.revoke' },
      handler: async (req) => {
        await pki.revoke(primary(req), req.params.serial, req.body.reason ?? 'unspecified');
        return pki.get(req.tx, req.params.serial);
      },
    });

    // ------------------------------------------------------------------------------------------------ public

    const der = (reply: FastifyReply, type: string, body: Buffer) => reply.header('content-type', type).header('cache-control', 'public, max-age=300').send(body);

    app.get('/pki/root.pem', {
      schema: { tags, summary: 'The root certificate (PEM): what clients trust' },
      config: { permission: null },
      handler: async (req, reply) => {
        const root = await pki.cas.root(req.tx);
        if (!root?.certificate) throw new PalisadeError('PAL_PKI_NOT_INITIALIZED');
        return reply.header('content-type', 'application/x-pem-file').send(toPem(root.certificate));
      },
    });

    app.get('/pki/ca/:file', {
      schema: { tags, summary: "A CA's certificate, DER (the caIssuers URL of certificates)", params: Type.Object({ file: Type.String({ pattern: '^ca_[a-z0-9]{1,40}\\.crt$' }) }) },
      config: { permission: null },
      handler: async (req, reply) => {
        const ca = await pki.cas.get(req.tx, req.params.file.slice(0, -4));
        if (!ca.certificate) throw new PalisadeError('PAL_PKI_CA_STATE', 'this CA has no certificate yet', { extensions: { status: ca.status } });
        return der(reply, 'application/pkix-cert', ca.certificate);
      },
    });

    app.get('/pki/crl/:file', {
      schema: { tags, summary: "A CA's CRL, DER (`.crl`) or PEM (`.pem`); re-signed when half its validity passed or after a revocation", params: Type.Object({ file: Type.String({ pattern: '^ca_[a-z0-9]{1,40}\\.(crl|pem)$' }) }) },
      config: { permission: null },
      handler: async (req, reply) => {
        const id = req.params.file.replace(/\.(crl|pem)$/, '');
        const crl =
          (await pki.freshCrl(req.tx, id)) ??
          (await runAsSystem(deps.storage, deps.ledger, 'system:pki', (ctx) => pki.crl(ctx, id), req.id));
        return req.params.file.endsWith('.pem') ? reply.header('content-type', 'application/x-pem-file').send(crlToPem(crl)) : der(reply, 'application/pkix-crl', crl);
      },
    });

    await app.register(async (ocspScope) => {
      ocspScope.addContentTypeParser('application/ocsp-request', { parseAs: 'buffer', bodyLimit: OCSP_MAX_BYTES }, (_req, body, done) => done(null, body));
      const answer = async (reply: FastifyReply, request: Buffer | null, tx: Parameters<PkiService['ocsp']>[0]) =>
        reply.header('content-type', 'application/ocsp-response').header('cache-control', 'no-store').send(await pki.ocsp(tx, request ?? Buffer.alloc(0)));
      ocspScope.post('/pki/ocsp', {
        schema: { tags, summary: 'OCSP responder (RFC 6960), POST application/ocsp-request' },
        config: { permission: null },
        handler: async (req, reply) => answer(reply, Buffer.isBuffer(req.body) ? req.body : null, req.tx),
      });
      ocspScope.get('/pki/ocsp/*', {
        schema: { tags, summary: 'OCSP responder (RFC 6960 Appendix A GET: base64 DER in the path)' },
        config: { permission: null },
        handler: async (req, reply) => answer(reply, ocspRequestFromGetPath((req.params as { '*': string })['*']), req.tx),
      });
    });
  };
}
