/**
 * A real, independent SAML 2.0 identity provider for tests: samlify (a different code base from node-saml, which the
 * service provider uses) parses our AuthnRequests and issues, signs and encrypts the responses. Nothing here writes
 * an XML signature by hand; tests that attack signatures start from a response samlify signed and then tamper with it.
 *
 * Keys are made at fixture start: the IdP's signing key and certificate, a rogue key with its own certificate (to
 * sign responses the SP must refuse), and the SP's encryption key pair (what an SP operator would configure as
 * `sp_decryption_key` / `sp_certificate`). RSA, because SAML deployments (Azure AD, Okta) sign with RSA-SHA256.
 */
import 'reflect-metadata';
import { randomBytes, randomUUID, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import * as xmllint from '@authenio/samlify-node-xmllint';
import { createRequire } from 'node:module';

// samlify's type declarations import @xmldom/xmldom's, which reference TypeScript's DOM lib and so switch it on for
// the whole test program (DOM's BufferSource and BodyInit then refuse Node Buffers everywhere). Loaded untyped.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- see above
const samlify: any = createRequire(import.meta.url)('samlify');

x509.cryptoProvider.set(webcrypto as never);

const RSA = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 } as const;
const BINDING_REDIRECT = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect';
const PASSWORD_PROTECTED = 'urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport';
export const NAMEID_EMAIL = 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress';

export interface KeyPair {
  /** PKCS#8 private key PEM. */
  key: string;
  /** Self-signed certificate PEM. */
  cert: string;
}

/** An RSA-2048 key and a self-signed certificate for it. */
export async function makeRsaKeyPair(name: string): Promise<KeyPair> {
  const keys = (await webcrypto.subtle.generateKey(RSA, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x10;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString('hex'),
    name: `CN=${name}`,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: RSA,
    keys,
  });
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const key = `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n').trimEnd()}\n-----END PRIVATE KEY-----\n`;
  return { key, cert: cert.toString('pem') + '\n' };
}

export interface LoginResponseOptions {
  /** The SP's metadata XML (`SamlServiceProvider.metadata()`): the IdP learns the ACS, audience and encryption key from it. */
  spMetadata: string;
  /** InResponseTo (Response and SubjectConfirmationData); omitted for an IdP-initiated response. */
  inResponseTo?: string;
  nameId: string;
  nameIdFormat?: string;
  sessionIndex?: string;
  attributes?: Record<string, string[]>;
  /** Defaults to the SP's entity id from its metadata. */
  audience?: string;
  /** Defaults to the ACS from the SP's metadata. */
  recipient?: string;
  /** Defaults to this IdP's entity id. */
  issuer?: string;
  /** Issue instant, NotBefore; defaults to now. */
  now?: Date;
  /** Lifetime of Conditions and SubjectConfirmationData; default 5 minutes. */
  lifetimeSeconds?: number;
  /** Sign the assertion (default true). When false, samlify signs the response instead. */
  signAssertion?: boolean;
  /** Also sign the whole response (default false). */
  signResponse?: boolean;
  /** Encrypt the assertion to the SP's encryption certificate from its metadata (default false). */
  encrypt?: boolean;
  /** Sign with the rogue key (whose certificate the SP does not trust) instead of the IdP's. */
  rogue?: boolean;
}

export interface SamlIdpFixture {
  entityId: string;
  ssoUrl: string;
  /** The IdP's signing certificate (PEM), what the SP trusts. */
  certificate: string;
  /** The rogue signer's certificate; not trusted by the SP. */
  rogueCertificate: string;
  /** The SP's encryption key pair. */
  spEncryption: KeyPair;
  /** Parse an SP-initiated redirect URL as the IdP would (schema-validated by xmllint). */
  parseRedirect(url: string, spMetadata: string): Promise<{ requestId: string; relayState: string | null; acsUrl: string | null; issuer: string | null }>;
  /** A base64 SAMLResponse for the HTTP-POST binding, issued by samlify. */
  loginResponse(opts: LoginResponseOptions): Promise<string>;
}

let validatorSet = false;

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** The `<AttributeStatement>` fragment, values escaped; samlify then signs the assertion that contains it. */
function attributeStatement(attributes: Record<string, string[]>): string {
  const attrs = Object.entries(attributes).map(
    ([name, values]) =>
      `<saml:Attribute Name="${escapeXml(name)}" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified">` +
      values.map((v) => `<saml:AttributeValue xsi:type="xs:string">${escapeXml(v)}</saml:AttributeValue>`).join('') +
      '</saml:Attribute>',
  );
  return attrs.length ? `<saml:AttributeStatement>${attrs.join('')}</saml:AttributeStatement>` : '';
}

export async function startSamlIdp(opts: { entityId?: string; ssoUrl?: string } = {}): Promise<SamlIdpFixture> {
  if (!validatorSet) {
    samlify.setSchemaValidator(xmllint);
    validatorSet = true;
  }
  const entityId = opts.entityId ?? 'https://idp.test/saml/metadata';
  const ssoUrl = opts.ssoUrl ?? 'https://idp.test/saml/sso';
  const [signer, rogue, spEncryption] = await Promise.all([makeRsaKeyPair('SAML IdP signing'), makeRsaKeyPair('Rogue IdP'), makeRsaKeyPair('SAML SP encryption')]);

  const idpFor = (o: { rogue?: boolean; encrypt?: boolean }) => {
    const keys = o.rogue ? rogue : signer;
    return samlify.IdentityProvider({
      entityID: entityId,
      privateKey: keys.key,
      signingCert: keys.cert,
      nameIDFormat: [NAMEID_EMAIL],
      singleSignOnService: [{ Binding: BINDING_REDIRECT, Location: ssoUrl }],
      singleLogoutService: [{ Binding: BINDING_REDIRECT, Location: ssoUrl.replace(/\/sso$/, '/slo') }],
      isAssertionEncrypted: o.encrypt ?? false,
      wantAuthnRequestsSigned: false,
    });
  };

  return {
    entityId,
    ssoUrl,
    certificate: signer.cert,
    rogueCertificate: rogue.cert,
    spEncryption,

    async parseRedirect(url, spMetadata) {
      const u = new URL(url);
      const query = Object.fromEntries(u.searchParams);
      const sp = samlify.ServiceProvider({ metadata: spMetadata });
      const parsed = await idpFor({}).parseLoginRequest(sp, 'redirect', { query });
      const req = (parsed.extract.request ?? {}) as Record<string, string | undefined>;
      const issuer = parsed.extract.issuer;
      return {
        requestId: req.id ?? '',
        relayState: query.RelayState ?? null,
        acsUrl: req.assertionConsumerServiceUrl ?? null,
        issuer: typeof issuer === 'string' ? issuer : null,
      };
    },

    async loginResponse(o) {
      const signAssertion = o.signAssertion ?? true;
      // The SP's own metadata says WantAssertionsSigned="true"; an IdP that ignores it is modelled by editing what
      // this IdP read, not by editing what the SP sends.
      const metadata = signAssertion ? o.spMetadata : o.spMetadata.replace(/WantAssertionsSigned="true"/, 'WantAssertionsSigned="false"');
      const sp = samlify.ServiceProvider({ metadata, wantMessageSigned: o.signResponse ?? false });
      const idp = idpFor(o);
      const spMeta = sp.entityMeta as { getEntityID(): string; getAssertionConsumerService(binding: string): string };
      const now = o.now ?? new Date();
      const until = new Date(now.getTime() + (o.lifetimeSeconds ?? 300) * 1000).toISOString();
      const id = '_' + randomUUID();
      const values: Record<string, string | null> = {
        ID: id,
        AssertionID: '_' + randomUUID(),
        Destination: o.recipient ?? spMeta.getAssertionConsumerService('post'),
        Audience: o.audience ?? spMeta.getEntityID(),
        SubjectRecipient: o.recipient ?? spMeta.getAssertionConsumerService('post'),
        Issuer: o.issuer ?? entityId,
        IssueInstant: now.toISOString(),
        StatusCode: 'urn:oasis:names:tc:SAML:2.0:status:Success',
        ConditionsNotBefore: now.toISOString(),
        ConditionsNotOnOrAfter: until,
        SubjectConfirmationDataNotOnOrAfter: until,
        NameIDFormat: o.nameIdFormat ?? NAMEID_EMAIL,
        NameID: o.nameId,
        // samlify drops an attribute whose value is null: an IdP-initiated response carries no InResponseTo at all.
        InResponseTo: o.inResponseTo ?? null,
      };
      const authn =
        `<saml:AuthnStatement AuthnInstant="${now.toISOString()}" SessionIndex="${escapeXml(o.sessionIndex ?? '_session-' + randomUUID())}">` +
        `<saml:AuthnContext><saml:AuthnContextClassRef>${PASSWORD_PROTECTED}</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>`;
      const result = await idp.createLoginResponse(sp, { extract: {} }, 'post', { email: o.nameId }, {
        customTagReplacement: (template: string) => {
          const withStatements = template.replace('{AuthnStatement}', authn).replace('{AttributeStatement}', attributeStatement(o.attributes ?? {}));
          return { id, context: samlify.SamlLib.replaceTagsByValue(withStatements, values) };
        },
      });
      if (!('context' in result) || typeof result.context !== 'string') throw new Error('samlify returned no POST context');
      return result.context;
    },
  };
}
