/* global window, navigator, location, fetch, atob, btoa, URL, URLSearchParams, HTMLFormElement */
// Shared code of the identity pages (sign-in, account security), loaded as an ES module by each page's script.
// No framework and no build step: the files are served as they are, under the CSP default-src 'self'.
//
// WebAuthn needs binary fields (challenge, ids, attestation) as ArrayBuffers in the browser and as base64url strings
// on the wire; the conversions below produce exactly the JSON shapes @simplewebauthn/server verifies
// (PublicKeyCredentialCreationOptionsJSON / RequestOptionsJSON in, RegistrationResponseJSON /
// AuthenticationResponseJSON out). They are written by hand rather than relying on PublicKeyCredential.toJSON() and
// parseCreationOptionsFromJSON(), which older browsers lack.

/** An API answer that was not 2xx: carries the RFC 9457 problem document when there is one. */
export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `The server answered ${status}`);
    this.status = status;
    this.code = problem && problem.code;
    this.problem = problem;
  }
}

/**
 * Call the JSON API with the session cookie (same origin only). `body` undefined sends no body at all, so that
 * DELETE and body-less POSTs do not trip the JSON parser on an empty document.
 */
export async function api(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { accept: 'application/json' }, cache: 'no-store' };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

/** base64url (no padding) -> ArrayBuffer. */
export function fromB64url(s) {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}

/** ArrayBuffer or view -> base64url (no padding). */
export function toB64url(buf) {
  const bytes = buf instanceof ArrayBuffer ? new Uint8Array(buf) : new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  let bin = '';
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

const descriptors = (list) => (list || []).map((c) => ({ ...c, id: fromB64url(c.id) }));

/** PublicKeyCredentialCreationOptionsJSON -> what navigator.credentials.create() takes. */
export function creationOptions(json) {
  return { ...json, challenge: fromB64url(json.challenge), user: { ...json.user, id: fromB64url(json.user.id) }, excludeCredentials: descriptors(json.excludeCredentials) };
}

/** PublicKeyCredentialRequestOptionsJSON -> what navigator.credentials.get() takes. */
export function requestOptions(json) {
  const out = { ...json, challenge: fromB64url(json.challenge) };
  if (json.allowCredentials) out.allowCredentials = descriptors(json.allowCredentials);
  return out;
}

function common(cred) {
  const out = { id: cred.id, rawId: toB64url(cred.rawId), type: cred.type, clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {} };
  if (cred.authenticatorAttachment) out.authenticatorAttachment = cred.authenticatorAttachment;
  return out;
}

/** The PublicKeyCredential from create() -> RegistrationResponseJSON. */
export function registrationJSON(cred) {
  const r = cred.response;
  const response = { clientDataJSON: toB64url(r.clientDataJSON), attestationObject: toB64url(r.attestationObject), transports: typeof r.getTransports === 'function' ? r.getTransports() : [] };
  if (typeof r.getAuthenticatorData === 'function') response.authenticatorData = toB64url(r.getAuthenticatorData());
  if (typeof r.getPublicKeyAlgorithm === 'function') response.publicKeyAlgorithm = r.getPublicKeyAlgorithm();
  if (typeof r.getPublicKey === 'function') {
    const pk = r.getPublicKey();
    if (pk) response.publicKey = toB64url(pk);
  }
  return { ...common(cred), response };
}

/** The PublicKeyCredential from get() -> AuthenticationResponseJSON. */
export function assertionJSON(cred) {
  const r = cred.response;
  const response = { clientDataJSON: toB64url(r.clientDataJSON), authenticatorData: toB64url(r.authenticatorData), signature: toB64url(r.signature) };
  if (r.userHandle && r.userHandle.byteLength > 0) response.userHandle = toB64url(r.userHandle);
  return { ...common(cred), response };
}

export const webauthnAvailable = () => typeof window.PublicKeyCredential === 'function' && !!navigator.credentials;

/** A readable sentence for a failed WebAuthn call (the user cancelled, timed out, or the key is already there). */
export function webauthnMessage(e) {
  if (e instanceof ApiError) return e.message;
  if (e && e.name === 'NotAllowedError') return 'The request was cancelled or timed out. Try again.';
  if (e && e.name === 'InvalidStateError') return 'This authenticator is already registered.';
  if (e && e.name === 'SecurityError') return 'Passkeys are not available on this address (a trusted HTTPS origin is needed).';
  return (e && e.message) || 'Something went wrong.';
}

/**
 * The `next=` parameter, only when it is a same-origin relative path (`/...`, not `//host` or `/\host`, which
 * browsers treat as another host): anything else would make the sign-in page an open redirect.
 */
export function safeNext(fallback) {
  const raw = new URLSearchParams(location.search).get('next');
  if (!raw || raw[0] !== '/' || raw[1] === '/' || raw[1] === '\\' || Array.from(raw).some((ch) => ch.charCodeAt(0) < 0x20)) return fallback;
  try {
    const url = new URL(raw, location.origin);
    if (url.origin !== location.origin) return fallback;
    return url.pathname + url.search + url.hash;
  } catch {
    return fallback;
  }
}

/** Show a message in a role=alert / role=status element (textContent only: nothing from the server becomes HTML). */
export function say(el, text) {
  el.textContent = text || '';
  el.hidden = !text;
}

/** Disable a form's controls (or one button) while a request runs, so a double click does not send twice. */
export async function busy(target, fn) {
  const controls = target instanceof HTMLFormElement ? Array.from(target.elements) : [target];
  for (const c of controls) c.disabled = true;
  try {
    return await fn();
  } finally {
    for (const c of controls) c.disabled = false;
  }
}
