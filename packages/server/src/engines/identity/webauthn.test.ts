/**
 * WebAuthnVerifier against a small software authenticator (ES256, "none" attestation) built here from the spec, so
 * that wrong challenges, origins, RP ids, users and counters can be forged precisely. The browser test
 * (test/e2e/passkey.test.ts) proves the same flows against Chromium's own authenticator.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isoCBOR } from '@simplewebauthn/server/helpers';
import { describe, expect, it } from 'vitest';
import { WebAuthnVerifier, userHandleOf, type StoredCredential } from './webauthn.js';

const ORIGIN = 'https://localhost:8443';
const settings = { rpId: 'localhost', rpName: 'Palisade', origins: [ORIGIN], userVerification: 'required' as const };
const user = { id: 'usr_0123456789', username: 'alice', display_name: 'Alice Liddell' };
const b64u = (b: Uint8Array | Buffer): string => Buffer.from(b).toString('base64url');
const sha256 = (b: Uint8Array | string): Buffer => createHash('sha256').update(b).digest();

/** FLAGS: UP = user present, UV = user verified, AT = attested credential data follows. */
const UP = 0x01;
const UV = 0x04;
const AT = 0x40;

class SoftAuthenticator {
  readonly credentialId = randomBytes(32);
  readonly #key: KeyObject;
  readonly #cose: Uint8Array;
  counter = 0;

  constructor() {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.#key = privateKey;
    const jwk = publicKey.export({ format: 'jwk' });
    const cose = new Map<number, number | Uint8Array>([
      [1, 2], // kty: EC2
      [3, -7], // alg: ES256
      [-1, 1], // crv: P-256
      [-2, Buffer.from(jwk.x!, 'base64url')],
      [-3, Buffer.from(jwk.y!, 'base64url')],
    ]);
    this.#cose = isoCBOR.encode(cose);
  }

  #authData(rpId: string, flags: number, attested: boolean): Buffer {
    const count = Buffer.alloc(4);
    count.writeUInt32BE(this.counter);
    const parts = [sha256(rpId), Buffer.from([flags | (attested ? AT : 0)]), count];
    if (attested) {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(this.credentialId.length);
      parts.push(Buffer.alloc(16), len, this.credentialId, Buffer.from(this.#cose));
    }
    return Buffer.concat(parts);
  }

  create(challenge: string, o: { origin?: string; rpId?: string; flags?: number } = {}): Record<string, unknown> {
    const clientData = Buffer.from(JSON.stringify({ type: 'webauthn.create', challenge, origin: o.origin ?? ORIGIN, crossOrigin: false }));
    const authData = this.#authData(o.rpId ?? 'localhost', o.flags ?? UP | UV, true);
    const attestationObject = isoCBOR.encode(new Map<string, unknown>([['fmt', 'none'], ['attStmt', new Map()], ['authData', new Uint8Array(authData)]]) as never);
    const id = b64u(this.credentialId);
    return { id, rawId: id, type: 'public-key', clientExtensionResults: {}, authenticatorAttachment: 'platform', response: { clientDataJSON: b64u(clientData), attestationObject: b64u(attestationObject), transports: ['internal', 'bogus'] } };
  }

  get(challenge: string, o: { origin?: string; rpId?: string; flags?: number; userHandle?: string; counter?: number } = {}): Record<string, unknown> {
    this.counter = o.counter ?? this.counter + 1;
    const clientData = Buffer.from(JSON.stringify({ type: 'webauthn.get', challenge, origin: o.origin ?? ORIGIN, crossOrigin: false }));
    const authData = this.#authData(o.rpId ?? 'localhost', o.flags ?? UP | UV, false);
    const signature = sign('sha256', Buffer.concat([authData, sha256(clientData)]), this.#key);
    const id = b64u(this.credentialId);
    return {
      id,
      rawId: id,
      type: 'public-key',
      clientExtensionResults: {},
      response: { clientDataJSON: b64u(clientData), authenticatorData: b64u(authData), signature: b64u(signature), userHandle: o.userHandle ?? userHandleOf(user.id) },
    };
  }
}

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as { code?: string; message: string };
    return { code: err.code ?? 'none', message: err.message };
  }
  throw new Error('expected a failure');
}

async function registered(v: WebAuthnVerifier): Promise<{ auth: SoftAuthenticator; cred: StoredCredential }> {
  const auth = new SoftAuthenticator();
  const { challenge } = await v.registrationOptions(user, []);
  const cred = await v.verifyRegistration(auth.create(challenge), challenge, user.id);
  return { auth, cred };
}

describe('WebAuthnVerifier options', () => {
  const v = new WebAuthnVerifier(settings);

  it('registration options ask for a discoverable credential, ES256/EdDSA/RS256, and exclude existing credentials', async () => {
    const existing: StoredCredential = { credential_id: 'AAECAw', public_key: Buffer.alloc(0), counter: 0, transports: ['usb'], user_id: user.id, backed_up: false, device_type: 'singleDevice' };
    const { options, challenge } = await v.registrationOptions(user, [existing]);
    expect(challenge).toBe(options.challenge);
    expect(challenge).toMatch(/^[A-Za-z0-9_-]{43,}$/);
    expect(options.rp).toEqual({ id: 'localhost', name: 'Palisade' });
    expect(options.user).toEqual({ id: userHandleOf(user.id), name: 'alice', displayName: 'Alice Liddell' });
    expect(options.pubKeyCredParams.map((p) => p.alg)).toEqual([-7, -8, -257]);
    expect(options.authenticatorSelection).toMatchObject({ residentKey: 'required', requireResidentKey: true, userVerification: 'required' });
    expect(options.attestation).toBe('none');
    expect(options.excludeCredentials).toEqual([{ id: 'AAECAw', type: 'public-key', transports: ['usb'] }]);
    // a fresh challenge every time
    expect((await v.registrationOptions(user, [])).challenge).not.toBe(challenge);
  });

  it('the display name falls back to the username', async () => {
    const { options } = await v.registrationOptions({ ...user, display_name: null }, []);
    expect(options.user.displayName).toBe('alice');
  });

  it('authentication options: allow-list for the MFA step, none (discoverable) for passkey sign-in', async () => {
    const cred: StoredCredential = { credential_id: 'AAECAw', public_key: Buffer.alloc(0), counter: 0, transports: ['internal'], user_id: user.id, backed_up: false, device_type: 'singleDevice' };
    const mfa = await v.authenticationOptions([cred]);
    expect(mfa.options.rpId).toBe('localhost');
    expect(mfa.options.allowCredentials).toEqual([{ id: 'AAECAw', type: 'public-key', transports: ['internal'] }]);
    expect(mfa.challenge).toBe(mfa.options.challenge);
    const passkey = await v.authenticationOptions(null);
    expect(passkey.options.allowCredentials ?? []).toEqual([]);
    expect(passkey.options.userVerification).toBe('required');
  });

  it('needs an expected origin', () => {
    expect(() => new WebAuthnVerifier({ ...settings, origins: [] })).toThrow(/origin/);
  });
});

describe('WebAuthnVerifier verification', () => {
  const v = new WebAuthnVerifier(settings);

  it('registers and authenticates a software authenticator, with the counter moving forward', async () => {
    const { auth, cred } = await registered(v);
    expect(cred).toMatchObject({ credential_id: b64u(auth.credentialId), counter: 0, transports: ['internal'], user_id: user.id, backed_up: false, device_type: 'singleDevice' });
    expect(cred.public_key.length).toBeGreaterThan(64);
    const { challenge } = await v.authenticationOptions(null);
    const response = auth.get(challenge);
    expect(v.credentialIdOf(response)).toBe(cred.credential_id);
    expect(await v.verifyAuthentication(response, challenge, cred)).toEqual({ newCounter: 1 });
  });

  const garbage: Array<[string, unknown]> = [
    ['null', null],
    ['a string', 'hello'],
    ['an array', [1, 2]],
    ['an empty object', {}],
    ['no response member', { id: 'AAAA', rawId: 'AAAA', type: 'public-key' }],
    ['id that is not base64url', { id: 'a+b/', rawId: 'a+b/', type: 'public-key', response: {} }],
    ['id and rawId differ', { id: 'AAAA', rawId: 'AAAB', type: 'public-key', response: {} }],
    ['wrong type', { id: 'AAAA', rawId: 'AAAA', type: 'password', response: {} }],
    ['numbers instead of strings', { id: 1, rawId: 1, type: 'public-key', response: { clientDataJSON: 5 } }],
    ['response fields missing', { id: 'AAAA', rawId: 'AAAA', type: 'public-key', response: {} }],
    ['clientDataJSON that is not JSON', { id: 'AAAA', rawId: 'AAAA', type: 'public-key', response: { clientDataJSON: 'AAAA', attestationObject: 'AAAA', authenticatorData: 'AAAA', signature: 'AAAA' } }],
    ['a huge id', { id: 'A'.repeat(5000), rawId: 'A'.repeat(5000), type: 'public-key', response: {} }],
  ];

  it.each(garbage)('malformed registration response (%s) → PAL_AUTH_WEBAUTHN_FAILED', async (_name, body) => {
    const { challenge } = await v.registrationOptions(user, []);
    expect((await failure(v.verifyRegistration(body, challenge, user.id))).code).toBe('PAL_AUTH_WEBAUTHN_FAILED');
  });

  it.each(garbage)('malformed authentication response (%s) → PAL_AUTH_WEBAUTHN_FAILED', async (name, body) => {
    const cred: StoredCredential = { credential_id: 'AAAA', public_key: Buffer.from([0xa0]), counter: 0, transports: [], user_id: user.id, backed_up: false, device_type: 'singleDevice' };
    const { challenge } = await v.authenticationOptions(null);
    expect((await failure(v.verifyAuthentication(body, challenge, cred))).code).toBe('PAL_AUTH_WEBAUTHN_FAILED');
    // the lookup helper validates the shape too; only a well-formed body with garbage inside gets past it
    if (name === 'clientDataJSON that is not JSON') expect(v.credentialIdOf(body)).toBe('AAAA');
    else expect(() => v.credentialIdOf(body)).toThrow(expect.objectContaining({ code: 'PAL_AUTH_WEBAUTHN_FAILED' }));
  });

  it('a garbage attestation object and a garbage public key are refused, not crashes', async () => {
    const auth = new SoftAuthenticator();
    const { challenge } = await v.registrationOptions(user, []);
    const body = auth.create(challenge) as { response: Record<string, unknown> };
    body.response.attestationObject = b64u(randomBytes(40));
    expect((await failure(v.verifyRegistration(body, challenge, user.id))).code).toBe('PAL_AUTH_WEBAUTHN_FAILED');
    const { cred } = await registered(v);
    const broken = { ...cred, public_key: randomBytes(20) };
    const { challenge: c2 } = await v.authenticationOptions(null);
    const { auth: a2 } = await registered(v);
    const forged = a2.get(c2);
    expect((await failure(v.verifyAuthentication(forged, c2, { ...broken, credential_id: b64u(a2.credentialId) }))).code).toBe('PAL_AUTH_WEBAUTHN_FAILED');
  });

  it('registration: wrong challenge, origin, RP id, or no user verification → refused', async () => {
    const auth = new SoftAuthenticator();
    const { challenge } = await v.registrationOptions(user, []);
    const other = (await v.registrationOptions(user, [])).challenge;
    const cases = [
      ['challenge', auth.create(other)],
      ['origin', auth.create(challenge, { origin: 'https://evil.example' })],
      ['RP ID', auth.create(challenge, { rpId: 'evil.example' })],
      ['verified', auth.create(challenge, { flags: UP })],
    ] as const;
    for (const [word, body] of cases) {
      const f = await failure(v.verifyRegistration(body, challenge, user.id));
      expect(f.code, word).toBe('PAL_AUTH_WEBAUTHN_FAILED');
      expect(f.message.toLowerCase(), word).toContain(word.toLowerCase());
    }
  });

  it('authentication: wrong challenge, origin, RP id, signature, credential or user → refused', async () => {
    const { auth, cred } = await registered(v);
    const { challenge } = await v.authenticationOptions([cred]);
    const other = (await v.authenticationOptions([cred])).challenge;
    const tampered = auth.get(challenge) as { response: Record<string, string> };
    tampered.response.signature = b64u(sign('sha256', Buffer.from('something else'), generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey));
    const { auth: stranger } = await registered(v);
    const cases: Array<[string, unknown]> = [
      ['challenge', auth.get(other)],
      ['origin', auth.get(challenge, { origin: 'https://evil.example' })],
      ['RP ID', auth.get(challenge, { rpId: 'evil.example' })],
      ['signature', tampered],
      ['another credential', stranger.get(challenge)],
      ['another user', auth.get(challenge, { userHandle: userHandleOf('usr_somebody_else') })],
      ['verified', auth.get(challenge, { flags: UP })],
    ];
    for (const [word, body] of cases) {
      const f = await failure(v.verifyAuthentication(body, challenge, cred));
      expect(f.code, word).toBe('PAL_AUTH_WEBAUTHN_FAILED');
      expect(f.message.toLowerCase(), word).toContain(word.toLowerCase());
    }
  });

  it('a counter that does not increase is refused (cloned authenticator); zero counters are allowed', async () => {
    const { auth, cred } = await registered(v);
    let c = (await v.authenticationOptions(null)).challenge;
    const { newCounter } = await v.verifyAuthentication(auth.get(c, { counter: 5 }), c, cred);
    expect(newCounter).toBe(5);
    const stored = { ...cred, counter: newCounter };
    c = (await v.authenticationOptions(null)).challenge;
    expect((await failure(v.verifyAuthentication(auth.get(c, { counter: 5 }), c, stored))).message).toMatch(/counter/);
    c = (await v.authenticationOptions(null)).challenge;
    expect((await failure(v.verifyAuthentication(auth.get(c, { counter: 3 }), c, stored))).code).toBe('PAL_AUTH_WEBAUTHN_FAILED');
    c = (await v.authenticationOptions(null)).challenge;
    expect(await v.verifyAuthentication(auth.get(c, { counter: 6 }), c, stored)).toEqual({ newCounter: 6 });
    // authenticators that keep no counter (many synced passkeys) always say 0
    c = (await v.authenticationOptions(null)).challenge;
    expect(await v.verifyAuthentication(auth.get(c, { counter: 0 }), c, cred)).toEqual({ newCounter: 0 });
  });

  it('"preferred" user verification accepts a user-present-only assertion unless the caller requires it', async () => {
    const lax = new WebAuthnVerifier({ ...settings, userVerification: 'preferred' });
    const { auth, cred } = await registered(lax);
    let c = (await lax.authenticationOptions([cred])).challenge;
    expect(await lax.verifyAuthentication(auth.get(c, { flags: UP }), c, cred)).toEqual({ newCounter: 1 });
    c = (await lax.authenticationOptions(null)).challenge;
    const f = await failure(lax.verifyAuthentication(auth.get(c, { flags: UP }), c, { ...cred, counter: 1 }, { requireUserVerification: true }));
    expect(f.code).toBe('PAL_AUTH_WEBAUTHN_FAILED');
  });
});
