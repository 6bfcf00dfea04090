/**
 * The SAML service provider against a real, independent IdP (samlify, see testing/saml-idp.ts). Every "valid"
 * response is issued and signed by samlify; every attack starts from one of those and tampers with it, the way an
 * attacker holding a genuine response for their own account would.
 */
import { parseDomFromString, xpath } from '@node-saml/node-saml/lib/xml.js';
import { PalisadeError } from '@palisade/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { makeRsaKeyPair, startSamlIdp } from '../../testing/saml-idp.js';
import type { LoginResponseOptions, SamlIdpFixture } from '../../testing/saml-idp.js';
import { MemorySamlReplayCache, SamlServiceProvider } from './saml-sp.js';
import type { SamlProviderSettings } from './saml-sp.js';

const AZURE_GROUPS = 'http://schemas.microsoft.com/ws/2008/06/identity/claims/groups';
const ASSERTION_NS = 'urn:oasis:names:tc:SAML:2.0:assertion';
const PROTOCOL_NS = 'urn:oasis:names:tc:SAML:2.0:protocol';

/** The slice of xmldom's DOM the attacks use (the project's TypeScript has no DOM lib). */
interface El {
  localName: string;
  textContent: string | null;
  firstChild: El | null;
  parentNode: El | null;
  nextSibling: El | null;
  ownerDocument: Doc;
  getAttribute(n: string): string | null;
  setAttribute(n: string, v: string): void;
  cloneNode(deep: boolean): El;
  appendChild(c: El): El;
  insertBefore(c: El, ref: El | null): El;
  removeChild(c: El): El;
}
interface Doc {
  documentElement: El;
  createElementNS(ns: string, qname: string): El;
  createTextNode(s: string): El;
  toString(): string;
}

async function parse(b64: string): Promise<Doc> {
  return (await parseDomFromString(Buffer.from(b64, 'base64').toString('utf8'))) as unknown as Doc;
}
const select = (node: El | Doc, path: string): El[] => xpath.selectElements(node as never, path) as unknown as El[];
const encode = (doc: Doc | string): string => Buffer.from(doc.toString(), 'utf8').toString('base64');
const theAssertion = (doc: Doc): El => select(doc, "/*[local-name()='Response']/*[local-name()='Assertion']")[0]!;
const child = (el: El, name: string): El => select(el, `./*[local-name()='${name}']`)[0]!;
const nameIdOf = (assertion: El): El => select(assertion, "./*[local-name()='Subject']/*[local-name()='NameID']")[0]!;
function setText(el: El, text: string): void {
  while (el.firstChild) el.removeChild(el.firstChild);
  el.appendChild(el.ownerDocument.createTextNode(text));
}

async function refusal(p: Promise<unknown>): Promise<PalisadeError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PalisadeError);
  const pe = err as PalisadeError;
  expect(pe.code).toBe('PAL_AUTH_IDP_FAILED');
  expect(pe.status).toBe(401);
  return pe;
}
async function refused(p: Promise<unknown>, reason: string): Promise<PalisadeError> {
  const pe = await refusal(p);
  expect(pe.extensions.reason).toBe(reason);
  return pe;
}

let idp: SamlIdpFixture;
beforeAll(async () => {
  idp = await startSamlIdp();
});

function settings(over: Partial<SamlProviderSettings> = {}): SamlProviderSettings {
  return {
    name: 'azure',
    idp_entity_id: idp.entityId,
    idp_sso_url: idp.ssoUrl,
    idp_certificates: [idp.certificate],
    sp_entity_id: 'https://palisade.example/v1/auth/saml/azure/metadata',
    acs_url: 'https://palisade.example/v1/auth/saml/azure/acs',
    sp_decryption_key: idp.spEncryption.key,
    sp_certificate: idp.spEncryption.cert,
    allow_idp_initiated: false,
    groups_attribute: AZURE_GROUPS,
    ...over,
  };
}

class TestClock {
  t = Date.now();
  now = (): Date => new Date(this.t);
  advance(ms: number): void {
    this.t += ms;
  }
}

function makeSp(over: Partial<SamlProviderSettings> = {}) {
  const clock = new TestClock();
  const sp = new SamlServiceProvider(settings(over), { clock: clock.now, replay: new MemorySamlReplayCache(clock.now) });
  return { sp, clock };
}

const USER = {
  nameId: 'alice@example.com',
  attributes: {
    [AZURE_GROUPS]: ['0f6a0e7c-admins', '8b1d2c3e-developers'],
    'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress': ['alice@example.com'],
    'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name': ['Alice Example'],
  },
};

/** The SP-initiated round trip up to the ACS POST: redirect, the IdP parses it, the IdP answers it. */
async function spInitiated(sp: SamlServiceProvider, over: Partial<LoginResponseOptions> = {}) {
  const { url, pending } = await sp.authorizationRequest();
  const request = await idp.parseRedirect(url, sp.metadata());
  const SAMLResponse = await idp.loginResponse({ spMetadata: sp.metadata(), inResponseTo: request.requestId, ...USER, ...over });
  return { url, pending, request, body: { SAMLResponse, RelayState: pending.relay_state } };
}

describe('SAML service provider: SP-initiated', () => {
  it('sends an AuthnRequest the IdP accepts, and maps the signed assertion to an identity', async () => {
    const { sp } = makeSp();
    const { url, pending, request, body } = await spInitiated(sp, { sessionIndex: '_sess-1' });
    expect(url.startsWith(idp.ssoUrl + '?')).toBe(true);
    expect(new URL(url).searchParams.get('RelayState')).toBe(pending.relay_state);
    expect(request).toEqual({ requestId: pending.request_id, relayState: pending.relay_state, acsUrl: settings().acs_url, issuer: settings().sp_entity_id });
    expect(pending.provider).toBe('azure');

    const id = await sp.complete(body, pending);
    expect(id).toMatchObject({
      issuer: idp.entityId,
      name_id: 'alice@example.com',
      name_id_format: 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',
      session_index: '_sess-1',
      email: 'alice@example.com',
      groups: ['0f6a0e7c-admins', '8b1d2c3e-developers'],
      in_response_to: pending.request_id,
    });
    expect(id.attributes['http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name']).toEqual(['Alice Example']);
    expect(id.assertion_id).toMatch(/^_/);
    expect(Date.parse(id.not_on_or_after!)).toBeGreaterThan(Date.now());
  });

  it('reads a single-valued group as a one-element list, and the email from the configured attribute', async () => {
    const { sp } = makeSp({ groups_attribute: 'groups', email_attribute: 'mail' });
    const { pending, body } = await spInitiated(sp, { nameId: 'u-123', nameIdFormat: 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent', attributes: { groups: ['ops'], mail: ['bob@example.com'] } });
    const id = await sp.complete(body, pending);
    expect(id).toMatchObject({ name_id: 'u-123', email: 'bob@example.com', groups: ['ops'] });
  });

  it('accepts an encrypted assertion with the SP key, and refuses it without one', async () => {
    const { sp } = makeSp();
    const { pending, body } = await spInitiated(sp, { encrypt: true });
    expect(Buffer.from(body.SAMLResponse, 'base64').toString()).toContain('EncryptedAssertion');
    expect(Buffer.from(body.SAMLResponse, 'base64').toString()).not.toContain('alice@example.com');
    expect((await sp.complete(body, pending)).groups).toEqual(USER.attributes[AZURE_GROUPS]);

    // Unsolicited (so no request binding gets in the way), encrypted to this SP's certificate.
    const encrypted = await idp.loginResponse({ spMetadata: sp.metadata(), ...USER, encrypt: true });
    const noKey = makeSp({ sp_decryption_key: undefined, sp_certificate: undefined, allow_idp_initiated: true });
    await refused(noKey.sp.complete({ SAMLResponse: encrypted }, null), 'decryption_failed');
    const wrong = await makeRsaKeyPair('another SP');
    const wrongKey = makeSp({ sp_decryption_key: wrong.key, sp_certificate: wrong.cert, allow_idp_initiated: true });
    await refused(wrongKey.sp.complete({ SAMLResponse: encrypted }, null), 'decryption_failed');
    const rightKey = makeSp({ allow_idp_initiated: true });
    expect((await rightKey.sp.complete({ SAMLResponse: encrypted }, null)).name_id).toBe('alice@example.com');
  });

  it('accepts a response that is signed as well as its assertion', async () => {
    const { sp } = makeSp({ want_response_signed: true });
    const { pending, body } = await spInitiated(sp, { signResponse: true });
    expect((await sp.complete(body, pending)).name_id).toBe('alice@example.com');
    // want_response_signed: an assertion-only signature is no longer enough.
    const other = await spInitiated(sp);
    await refused(sp.complete(other.body, other.pending), 'invalid_signature');
  });

  it('refuses an unsigned assertion, even inside a signed response', async () => {
    const { sp } = makeSp();
    const { pending, body } = await spInitiated(sp, { signAssertion: false });
    const doc = await parse(body.SAMLResponse);
    expect(select(theAssertion(doc), "./*[local-name()='Signature']")).toHaveLength(0);
    expect(select(doc.documentElement, "./*[local-name()='Signature']")).toHaveLength(1);
    await refused(sp.complete(body, pending), 'unsigned_assertion');

    // And with the signature stripped off a signed assertion.
    const signed = await spInitiated(sp);
    const d2 = await parse(signed.body.SAMLResponse);
    const a = theAssertion(d2);
    a.removeChild(child(a, 'Signature'));
    await refused(sp.complete({ ...signed.body, SAMLResponse: encode(d2) }, signed.pending), 'unsigned_assertion');
  });

  it('refuses a response signed by a key it does not trust', async () => {
    const { sp } = makeSp();
    const { pending, body } = await spInitiated(sp, { rogue: true });
    await refused(sp.complete(body, pending), 'invalid_signature');
    // The same rogue response verifies once its certificate is configured, so the refusal was about the key.
    const trusting = new SamlServiceProvider(settings({ idp_certificates: [idp.certificate, idp.rogueCertificate] }), { replay: new MemorySamlReplayCache() });
    expect((await trusting.complete(body, pending)).name_id).toBe('alice@example.com');
  });

  it('refuses an assertion for another audience', async () => {
    const { sp } = makeSp();
    const { pending, body } = await spInitiated(sp, { audience: 'https://other-sp.example/metadata' });
    await refused(sp.complete(body, pending), 'audience_mismatch');
  });

  it('refuses an assertion from another issuer, even signed with the trusted key', async () => {
    const { sp } = makeSp();
    const { pending, body } = await spInitiated(sp, { issuer: 'https://other-idp.example/' });
    await refused(sp.complete(body, pending), 'issuer_mismatch');
  });

  it('refuses a response addressed to another ACS', async () => {
    const { sp } = makeSp();
    const { pending, body } = await spInitiated(sp, { recipient: 'https://other-sp.example/acs' });
    await refused(sp.complete(body, pending), 'recipient_mismatch');
  });

  it('refuses an expired assertion and one not valid yet (by the injected clock, 60 s skew)', async () => {
    const { sp, clock } = makeSp();
    const { pending, body } = await spInitiated(sp, { lifetimeSeconds: 120 });
    clock.advance(120_000 + 61_000);
    await refused(sp.complete(body, pending), 'expired');

    const fresh = makeSp();
    const early = await spInitiated(fresh.sp, { now: new Date(Date.now() + 5 * 60_000) });
    await refused(fresh.sp.complete(early.body, early.pending), 'not_yet_valid');
  });

  it('accepts within the skew and refuses past it', async () => {
    const { sp, clock } = makeSp();
    const { pending, body } = await spInitiated(sp, { lifetimeSeconds: 60 });
    clock.advance(60_000 + 30_000);
    expect((await sp.complete(body, pending)).name_id).toBe('alice@example.com');
  });

  it('refuses the answer to another request (InResponseTo), and a response that answers none', async () => {
    const { sp } = makeSp();
    const first = await spInitiated(sp);
    const { pending: second } = await sp.authorizationRequest();
    // An attacker posts a response obtained for their own request into the victim's flow.
    await refused(sp.complete({ ...first.body, RelayState: second.relay_state }, second), 'in_response_to_mismatch');
    // An unsolicited response posted into an SP-initiated flow.
    const unsolicited = await idp.loginResponse({ spMetadata: sp.metadata(), ...USER });
    await refused(sp.complete({ SAMLResponse: unsolicited, RelayState: second.relay_state }, second), 'in_response_to_mismatch');
    // The Response's unsigned InResponseTo forged to match: the signed SubjectConfirmationData still does not.
    const doc = await parse(unsolicited);
    doc.documentElement.setAttribute('InResponseTo', second.request_id);
    await refused(sp.complete({ SAMLResponse: encode(doc), RelayState: second.relay_state }, second), 'in_response_to_mismatch');
  });

  it('refuses a foreign RelayState and a stale request', async () => {
    const { sp, clock } = makeSp();
    const { pending, body } = await spInitiated(sp);
    await refused(sp.complete({ ...body, RelayState: 'another-browser' }, pending), 'relay_state_mismatch');
    await refused(sp.complete({ SAMLResponse: body.SAMLResponse }, pending), 'relay_state_mismatch');
    await refused(sp.complete(body, { ...pending, provider: 'okta' }), 'relay_state_mismatch');
    clock.advance(10 * 60_000);
    await refused(sp.complete(body, pending), 'request_expired');
  });

  it('refuses the same response posted twice', async () => {
    const { sp } = makeSp();
    const { pending, body } = await spInitiated(sp);
    await sp.complete(body, pending);
    await refused(sp.complete(body, pending), 'replayed');
  });
});

describe('SAML service provider: IdP-initiated', () => {
  it('is refused by default', async () => {
    const { sp } = makeSp();
    const SAMLResponse = await idp.loginResponse({ spMetadata: sp.metadata(), ...USER });
    await refused(sp.complete({ SAMLResponse }, null), 'idp_initiated_not_allowed');
  });

  it('is accepted when allowed, once', async () => {
    const { sp } = makeSp({ allow_idp_initiated: true });
    const SAMLResponse = await idp.loginResponse({ spMetadata: sp.metadata(), ...USER });
    const id = await sp.complete({ SAMLResponse, RelayState: 'https://palisade.example/dashboard' }, null);
    expect(id).toMatchObject({ name_id: 'alice@example.com', in_response_to: null, groups: USER.attributes[AZURE_GROUPS] });
    // No request id to consume, so only the assertion-id cache stops a replay.
    await refused(sp.complete({ SAMLResponse }, null), 'replayed');
  });

  it('refuses, as unsolicited, a response that answers some request', async () => {
    const { sp } = makeSp({ allow_idp_initiated: true });
    const { body } = await spInitiated(sp);
    await refused(sp.complete({ SAMLResponse: body.SAMLResponse }, null), 'in_response_to_mismatch');
    // With the unsigned Response-level InResponseTo removed, the signed SubjectConfirmationData still names the request.
    const doc = await parse(body.SAMLResponse);
    doc.documentElement.setAttribute('InResponseTo', '');
    const stripped = doc.toString().replace(/ InResponseTo=""/, '');
    await refused(sp.complete({ SAMLResponse: encode(stripped) }, null), 'in_response_to_mismatch');
  });
});

describe('SAML service provider: XML signature wrapping', () => {
  /** A fresh, genuine, signed response for the attacker's own account (mallory), to be tampered with. */
  async function genuine(sp: SamlServiceProvider) {
    const r = await spInitiated(sp, { nameId: 'mallory@example.com', attributes: { [AZURE_GROUPS]: ['users'] } });
    return { ...r, doc: await parse(r.body.SAMLResponse) };
  }
  /** The attacker's assertion: a copy of the signed one claiming to be the admin, in the admins group. */
  function evilCopy(signed: El, id: string, keepSignature: boolean): El {
    const evil = signed.cloneNode(true);
    evil.setAttribute('ID', id);
    if (!keepSignature) evil.removeChild(child(evil, 'Signature'));
    setText(nameIdOf(evil), 'admin@example.com');
    for (const v of select(evil, ".//*[local-name()='AttributeValue']")) setText(v, '0f6a0e7c-admins');
    return evil;
  }

  it('XSW1: an evil unsigned assertion before the signed one', async () => {
    const { sp } = makeSp();
    const { pending, body, doc } = await genuine(sp);
    const signed = theAssertion(doc);
    doc.documentElement.insertBefore(evilCopy(signed, '_evil1', false), signed);
    await refused(sp.complete({ ...body, SAMLResponse: encode(doc) }, pending), 'invalid_signature');
  });

  it('XSW2: the evil assertion after the signed one, carrying a copy of its signature', async () => {
    const { sp } = makeSp();
    const { pending, body, doc } = await genuine(sp);
    const signed = theAssertion(doc);
    doc.documentElement.appendChild(evilCopy(signed, '_evil2', true));
    await refused(sp.complete({ ...body, SAMLResponse: encode(doc) }, pending), 'invalid_signature');
  });

  it('XSW3: the signed assertion moved into samlp:Extensions, an evil one (same ID, copied signature) in its place', async () => {
    const { sp } = makeSp();
    const { pending, body, doc } = await genuine(sp);
    const response = doc.documentElement;
    const signed = theAssertion(doc);
    const evil = evilCopy(signed, signed.getAttribute('ID')!, true);
    const extensions = doc.createElementNS(PROTOCOL_NS, 'samlp:Extensions');
    response.insertBefore(extensions, child(response, 'Issuer').nextSibling);
    response.insertBefore(evil, signed);
    extensions.appendChild(response.removeChild(signed));
    await refused(sp.complete({ ...body, SAMLResponse: encode(doc) }, pending), 'invalid_signature');
  });

  it('XSW4: the signed assertion moved into samlp:Extensions, an evil one (new ID, copied signature) in its place', async () => {
    const { sp } = makeSp();
    const { pending, body, doc } = await genuine(sp);
    const response = doc.documentElement;
    const signed = theAssertion(doc);
    const evil = evilCopy(signed, '_evil4', true);
    const extensions = doc.createElementNS(PROTOCOL_NS, 'samlp:Extensions');
    response.insertBefore(extensions, child(response, 'Issuer').nextSibling);
    response.insertBefore(evil, signed);
    extensions.appendChild(response.removeChild(signed));
    await refused(sp.complete({ ...body, SAMLResponse: encode(doc) }, pending), 'invalid_signature');
  });

  it('XSW5: the signed assertion wrapped inside the evil one (in an Advice element)', async () => {
    const { sp } = makeSp();
    const { pending, body, doc } = await genuine(sp);
    const response = doc.documentElement;
    const signed = theAssertion(doc);
    const evil = evilCopy(signed, '_evil5', true);
    const advice = doc.createElementNS(ASSERTION_NS, 'saml:Advice');
    evil.insertBefore(advice, child(evil, 'Conditions').nextSibling);
    response.insertBefore(evil, signed);
    advice.appendChild(response.removeChild(signed));
    await refused(sp.complete({ ...body, SAMLResponse: encode(doc) }, pending), 'invalid_signature');
  });

  it('XSW6: the evil assertion with the original signature inside which the signed assertion is hidden', async () => {
    const { sp } = makeSp();
    const { pending, body, doc } = await genuine(sp);
    const response = doc.documentElement;
    const signed = theAssertion(doc);
    const evil = evilCopy(signed, signed.getAttribute('ID')!, true);
    const evilSignature = child(evil, 'Signature');
    const object = doc.createElementNS('http://www.w3.org/2000/09/xmldsig#', 'ds:Object');
    evilSignature.appendChild(object);
    response.insertBefore(evil, signed);
    object.appendChild(response.removeChild(signed));
    await refused(sp.complete({ ...body, SAMLResponse: encode(doc) }, pending), 'invalid_signature');
  });

  it('refuses a changed NameID or group inside the signed assertion', async () => {
    const { sp } = makeSp();
    const a = await genuine(sp);
    setText(nameIdOf(theAssertion(a.doc)), 'admin@example.com');
    await refused(sp.complete({ ...a.body, SAMLResponse: encode(a.doc) }, a.pending), 'invalid_signature');

    const b = await genuine(sp);
    for (const v of select(theAssertion(b.doc), ".//*[local-name()='AttributeValue']")) setText(v, '0f6a0e7c-admins');
    await refused(sp.complete({ ...b.body, SAMLResponse: encode(b.doc) }, b.pending), 'invalid_signature');
  });

  it('refuses an evil assertion next to a signed response (response-level signature wrapping)', async () => {
    const { sp } = makeSp({ want_response_signed: true });
    const r = await spInitiated(sp, { nameId: 'mallory@example.com', signResponse: true });
    const doc = await parse(r.body.SAMLResponse);
    const signed = theAssertion(doc);
    doc.documentElement.insertBefore(evilCopy(signed, '_evil7', true), signed);
    await refused(sp.complete({ ...r.body, SAMLResponse: encode(doc) }, r.pending), 'invalid_signature');
  });

  it('a comment inside the signed NameID yields the full text, never the truncated one', async () => {
    const { sp } = makeSp({ email_attribute: 'email' });
    // The attacker owns user@evil.com.example.com at the IdP and hopes the SP reads only the first text node.
    const r = await spInitiated(sp, { nameId: 'user@evil.com.example.com', attributes: { email: ['user@evil.com.example.com'] } });
    const xml = Buffer.from(r.body.SAMLResponse, 'base64').toString('utf8');
    const injected = xml.replaceAll('>user@evil.com.example.com<', '>user@evil.com<!---->.example.com<');
    expect(injected).not.toBe(xml);
    const outcome = await sp.complete({ ...r.body, SAMLResponse: encode(injected) }, r.pending).then(
      (id) => id,
      (e: unknown) => e,
    );
    if (outcome instanceof PalisadeError) {
      expect(outcome.code).toBe('PAL_AUTH_IDP_FAILED');
    } else {
      const id = outcome as Awaited<ReturnType<SamlServiceProvider['complete']>>;
      expect(id.name_id).toBe('user@evil.com.example.com');
      expect(id.email).toBe('user@evil.com.example.com');
    }
  });
});

describe('SAML service provider: malformed input', () => {
  it('answers malformed base64, XML and documents with `malformed`, never a crash', async () => {
    const { sp } = makeSp({ allow_idp_initiated: true });
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const cases: (string | undefined)[] = [
      undefined,
      '',
      'not base64 at all!!',
      'QUJD=QUJD',
      b64('<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"'),
      b64('not xml'),
      b64('<html><body>login</body></html>'),
      b64('<Response>no namespace</Response>'),
      b64('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&b;</samlp:Response>'),
      b64('<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_x" Version="2.0"/>'),
      'A'.repeat(2 * 1024 * 1024),
    ];
    for (const SAMLResponse of cases) {
      await refused(sp.complete(SAMLResponse === undefined ? {} : { SAMLResponse }, null), 'malformed');
    }
  });

  it('reports an IdP error status as `idp_status`', async () => {
    const { sp } = makeSp({ allow_idp_initiated: true });
    const xml =
      '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_e" Version="2.0" IssueInstant="2024-01-01T00:00:00Z">' +
      `<saml:Issuer>${idp.entityId}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Responder"/></samlp:Status></samlp:Response>`;
    await refused(sp.complete({ SAMLResponse: Buffer.from(xml).toString('base64') }, null), 'idp_status');
  });

  it('keeps the assertion out of the error it serializes', async () => {
    const { sp } = makeSp();
    const { pending, body } = await spInitiated(sp, { audience: 'https://other-sp.example/metadata' });
    const err = await refused(sp.complete(body, pending), 'audience_mismatch');
    const json = JSON.stringify(err);
    expect(json).not.toContain('alice@example.com');
    expect(json).not.toContain('other-sp.example');
    expect(json).not.toContain(body.SAMLResponse.slice(0, 40));
  });
});

describe('SAML service provider: metadata and settings', () => {
  it('publishes entity id, ACS, signed-assertion requirement and the encryption certificate', async () => {
    const { sp } = makeSp();
    const xml = sp.metadata();
    const s = settings();
    expect(xml).toContain(`entityID="${s.sp_entity_id}"`);
    expect(xml).toContain(`Location="${s.acs_url}"`);
    expect(xml).toContain('urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST');
    expect(xml).toContain('WantAssertionsSigned="true"');
    expect(xml).toContain('use="encryption"');
    const certBody = idp.spEncryption.cert.replace(/-----[A-Z ]+-----|\s/g, '');
    expect(xml.replace(/\s/g, '')).toContain(certBody);
    expect(makeSp({ sp_decryption_key: undefined, sp_certificate: undefined }).sp.metadata()).not.toContain('use="encryption"');
  });

  it('refuses unusable settings at construction', () => {
    const replay = new MemorySamlReplayCache();
    const bad = (over: Partial<SamlProviderSettings>) => () => new SamlServiceProvider(settings(over), { replay });
    expect(bad({ idp_certificates: [] })).toThrow(PalisadeError);
    expect(bad({ idp_certificates: ['-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'] })).toThrow(PalisadeError);
    expect(bad({ sp_certificate: undefined })).toThrow(PalisadeError);
    expect(bad({ acs_url: 'not a url' })).toThrow(PalisadeError);
  });

  it('keys the replay cache per provider and forgets ids after they expire', async () => {
    const clock = new TestClock();
    const cache = new MemorySamlReplayCache(clock.now);
    const until = new Date(clock.t + 60_000);
    expect(await cache.firstUse('azure:_a', until)).toBe(true);
    expect(await cache.firstUse('azure:_a', until)).toBe(false);
    expect(await cache.firstUse('okta:_a', until)).toBe(true);
    clock.advance(61_000);
    expect(await cache.firstUse('azure:_a', new Date(clock.t + 60_000))).toBe(true);
  });
});
