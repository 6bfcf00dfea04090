/**
 * WebAuthn / FIDO2 (passkeys and security keys) over @simplewebauthn/server.
 *
 * This module is pure ceremony logic: it makes options, verifies what the browser sends back and turns every
 * failure into one error code. It stores nothing: the caller keeps the challenge (server-side, single use) and the
 * credentials. Two rules matter for safety and are enforced here rather than left to callers:
 *  - the browser's JSON is untrusted input: its shape is validated before the library sees it, so that a malformed
 *    body is a 401 PAL_AUTH_WEBAUTHN_FAILED and never a 500 from a TypeError deep in a decoder;
 *  - a signature counter that does not increase is refused (WebAuthn L3 §7.2 step 21: a cloned authenticator).
 */
import { PalisadeError } from '@palisade/core';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';

export type { PublicKeyCredentialCreationOptionsJSON, PublicKeyCredentialRequestOptionsJSON };

export interface WebAuthnSettings {
  /** The relying party id: the server's registrable domain (e.g. `localhost`, `palisade.example.com`). */
  rpId: string;
  /** Shown by the authenticator when a credential is created. */
  rpName: string;
  /** Every origin the pages are served from (`https://host[:port]`); clientDataJSON.origin must be one of them. */
  origins: string[];
  userVerification: 'required' | 'preferred';
}

export interface StoredCredential {
  /** base64url of the credential id (rawId). */
  credential_id: string;
  /** The COSE public key, as the authenticator gave it. */
  public_key: Buffer;
  counter: number;
  transports: string[];
  user_id: string;
  backed_up: boolean;
  device_type: 'singleDevice' | 'multiDevice';
}

/** ES256, EdDSA, RS256 (COSE ids): what platform authenticators and security keys actually use. */
const ALGORITHMS = [-7, -8, -257];
/** How long the browser waits for the user (ms). The caller's challenge lifetime should be at least this. */
const TIMEOUT_MS = 120_000;
const BASE64URL = /^[A-Za-z0-9_-]*$/;
/** Credential ids are at most 1023 bytes (WebAuthn L3 §5.8.3), so at most 1364 base64url characters. */
const MAX_ID_CHARS = 1364;
/** Generous bound for attestation objects (which may hold certificate chains) and other fields. */
const MAX_FIELD_CHARS = 64 * 1024;
const TRANSPORTS = new Set(['ble', 'cable', 'hybrid', 'internal', 'nfc', 'smart-card', 'usb']);

function fail(message: string, cause?: unknown): PalisadeError {
  return new PalisadeError('PAL_AUTH_WEBAUTHN_FAILED', message, cause === undefined ? {} : { cause });
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function b64url(obj: Record<string, unknown>, key: string, where: string, opts: { optional?: boolean; max?: number } = {}): string | undefined {
  const v = obj[key];
  if (v === undefined || v === null) {
    if (opts.optional) return undefined;
    throw fail(`${where}.${key} is missing`);
  }
  if (typeof v !== 'string' || !BASE64URL.test(v) || v.length > (opts.max ?? MAX_FIELD_CHARS)) throw fail(`${where}.${key} is not a base64url string`);
  if (v.length === 0 && !opts.optional) throw fail(`${where}.${key} is empty`);
  return v;
}

/** The fields every PublicKeyCredential JSON has: id, rawId (equal), type, response, clientExtensionResults. */
function credentialEnvelope(response: unknown): { id: string; inner: Record<string, unknown>; outer: Record<string, unknown> } {
  if (!isRecord(response)) throw fail('the WebAuthn response is not an object');
  const id = b64url(response, 'id', 'response', { max: MAX_ID_CHARS })!;
  const rawId = b64url(response, 'rawId', 'response', { max: MAX_ID_CHARS })!;
  if (id !== rawId) throw fail('response.id and response.rawId differ');
  if (response.type !== 'public-key') throw fail('response.type must be "public-key"');
  if (!isRecord(response.response)) throw fail('response.response is not an object');
  if (response.clientExtensionResults !== undefined && !isRecord(response.clientExtensionResults)) throw fail('response.clientExtensionResults is not an object');
  if (response.authenticatorAttachment !== undefined && response.authenticatorAttachment !== null && response.authenticatorAttachment !== 'platform' && response.authenticatorAttachment !== 'cross-platform') {
    throw fail('response.authenticatorAttachment is not "platform" or "cross-platform"');
  }
  return { id, inner: response.response, outer: response };
}

function attachment(outer: Record<string, unknown>): { authenticatorAttachment?: 'platform' | 'cross-platform' } {
  const a = outer.authenticatorAttachment;
  return a === 'platform' || a === 'cross-platform' ? { authenticatorAttachment: a } : {};
}

/** A RegistrationResponseJSON rebuilt from validated fields only (nothing else reaches the library). */
function registrationShape(response: unknown): RegistrationResponseJSON {
  const { id, inner, outer } = credentialEnvelope(response);
  const where = 'response.response';
  const transports = inner.transports;
  if (transports !== undefined && (!Array.isArray(transports) || transports.length > 16 || !transports.every((t) => typeof t === 'string' && t.length <= 32))) {
    throw fail(`${where}.transports is not a list of transport names`);
  }
  const authenticatorData = b64url(inner, 'authenticatorData', where, { optional: true });
  const publicKey = b64url(inner, 'publicKey', where, { optional: true });
  const alg = inner.publicKeyAlgorithm;
  if (alg !== undefined && alg !== null && !Number.isInteger(alg)) throw fail(`${where}.publicKeyAlgorithm is not an integer`);
  return {
    id,
    rawId: id,
    type: 'public-key',
    clientExtensionResults: {},
    ...attachment(outer),
    response: {
      clientDataJSON: b64url(inner, 'clientDataJSON', where)!,
      attestationObject: b64url(inner, 'attestationObject', where)!,
      ...(authenticatorData ? { authenticatorData } : {}),
      ...(publicKey ? { publicKey } : {}),
      ...(typeof alg === 'number' ? { publicKeyAlgorithm: alg } : {}),
      ...(Array.isArray(transports) ? { transports: transports as string[] } : {}),
    },
  };
}

/** An AuthenticationResponseJSON rebuilt from validated fields only. */
function authenticationShape(response: unknown): AuthenticationResponseJSON {
  const { id, inner, outer } = credentialEnvelope(response);
  const where = 'response.response';
  const userHandle = b64url(inner, 'userHandle', where, { optional: true, max: 128 });
  return {
    id,
    rawId: id,
    type: 'public-key',
    clientExtensionResults: {},
    ...attachment(outer),
    response: {
      clientDataJSON: b64url(inner, 'clientDataJSON', where)!,
      authenticatorData: b64url(inner, 'authenticatorData', where)!,
      signature: b64url(inner, 'signature', where)!,
      ...(userHandle ? { userHandle } : {}),
    },
  };
}

/**
 * The WebAuthn user handle for a user: the UTF-8 bytes of the user id, so that a usernameless assertion's
 * userHandle names the user it was created for (and is checked against the credential's owner).
 */
export function userHandleOf(userId: string): string {
  return Buffer.from(userId, 'utf8').toString('base64url');
}

export class WebAuthnVerifier {
  readonly #s: WebAuthnSettings;

  constructor(settings: WebAuthnSettings) {
    if (settings.origins.length === 0) throw new Error('WebAuthn needs at least one expected origin');
    this.#s = { ...settings, origins: [...settings.origins] };
  }

  /**
   * Options for navigator.credentials.create(): a discoverable credential (a passkey, so that usernameless sign-in
   * works), no attestation (we trust the key, not the make), and the user's existing credentials excluded so that
   * one authenticator is not registered twice.
   */
  async registrationOptions(
    user: { id: string; username: string; display_name: string | null },
    existing: StoredCredential[],
  ): Promise<{ options: PublicKeyCredentialCreationOptionsJSON; challenge: string }> {
    const options = await generateRegistrationOptions({
      rpName: this.#s.rpName,
      rpID: this.#s.rpId,
      userName: user.username,
      userID: new Uint8Array(Buffer.from(user.id, 'utf8')),
      userDisplayName: user.display_name ?? user.username,
      timeout: TIMEOUT_MS,
      attestationType: 'none',
      excludeCredentials: existing.map((c) => ({ id: c.credential_id, transports: c.transports })),
      authenticatorSelection: { residentKey: 'required', requireResidentKey: true, userVerification: this.#s.userVerification },
      supportedAlgorithmIDs: ALGORITHMS,
    });
    return { options, challenge: options.challenge };
  }

  /** Verify an attestation for `userId` against the challenge the caller issued; the credential to store. */
  async verifyRegistration(response: unknown, expectedChallenge: string, userId: string): Promise<StoredCredential> {
    const body = registrationShape(response);
    let result: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
    try {
      result = await verifyRegistrationResponse({
        response: body,
        expectedChallenge,
        expectedOrigin: this.#s.origins,
        expectedRPID: this.#s.rpId,
        requireUserPresence: true,
        requireUserVerification: this.#s.userVerification === 'required',
        supportedAlgorithmIDs: ALGORITHMS,
      });
    } catch (e) {
      throw fail(`registration refused: ${(e as Error).message}`, e);
    }
    if (!result.verified) throw fail('registration refused: the attestation does not verify');
    const info = result.registrationInfo;
    return {
      credential_id: info.credential.id,
      public_key: Buffer.from(info.credential.publicKey),
      counter: info.credential.counter,
      transports: (body.response.transports ?? []).filter((t) => TRANSPORTS.has(t)),
      user_id: userId,
      backed_up: info.credentialBackedUp,
      device_type: info.credentialDeviceType,
    };
  }

  /**
   * Options for navigator.credentials.get(). With `allow` (the MFA step after a password) only that user's
   * credentials are offered; with null the authenticator picks a discoverable credential (passkey sign-in).
   */
  async authenticationOptions(allow: StoredCredential[] | null): Promise<{ options: PublicKeyCredentialRequestOptionsJSON; challenge: string }> {
    const options = await generateAuthenticationOptions({
      rpID: this.#s.rpId,
      timeout: TIMEOUT_MS,
      userVerification: allow === null ? 'required' : this.#s.userVerification,
      ...(allow === null ? {} : { allowCredentials: allow.map((c) => ({ id: c.credential_id, transports: c.transports })) }),
    });
    return { options, challenge: options.challenge };
  }

  /**
   * Verify an assertion made with `credential` (looked up by credentialIdOf). The caller stores `newCounter`.
   * A passkey sign-in (no password before it) must be two factors in one (possession + the PIN or biometric), so its
   * caller passes `{ requireUserVerification: true }`; as an MFA step after a password, the settings decide.
   */
  async verifyAuthentication(
    response: unknown,
    expectedChallenge: string,
    credential: StoredCredential,
    opts: { requireUserVerification?: boolean } = {},
  ): Promise<{ newCounter: number }> {
    const body = authenticationShape(response);
    if (body.id !== credential.credential_id) throw fail('the assertion was made with another credential');
    const handle = body.response.userHandle;
    if (handle !== undefined && handle !== userHandleOf(credential.user_id)) throw fail('the assertion names another user than the credential\'s');
    let result: Awaited<ReturnType<typeof verifyAuthenticationResponse>>;
    try {
      result = await verifyAuthenticationResponse({
        response: body,
        expectedChallenge,
        expectedOrigin: this.#s.origins,
        expectedRPID: this.#s.rpId,
        credential: { id: credential.credential_id, publicKey: new Uint8Array(credential.public_key), counter: credential.counter, transports: credential.transports },
        requireUserVerification: opts.requireUserVerification ?? this.#s.userVerification === 'required',
      });
    } catch (e) {
      throw fail(`assertion refused: ${(e as Error).message}`, e);
    }
    if (!result.verified) throw fail('assertion refused: the signature does not verify');
    const next = result.authenticationInfo.newCounter;
    // The library already refuses this; checked again here because it is the clone-detection rule we promise.
    if ((next > 0 || credential.counter > 0) && next <= credential.counter) {
      throw fail(`assertion refused: the signature counter did not increase (${next} <= ${credential.counter}); the authenticator may be cloned`);
    }
    return { newCounter: next };
  }

  /** The credential id an assertion names (to look the credential up before verifying). */
  credentialIdOf(response: unknown): string {
    return authenticationShape(response).id;
  }
}
