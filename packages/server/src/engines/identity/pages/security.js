/* global document, navigator, location, DOMParser */
// The account security page (/account/security): who is signed in, their second factors (list, remove), enrolment
// of a passkey / security key and of an authenticator app (TOTP), recovery codes (shown once), and sign-out.
// Everything goes through the JSON API with the session cookie; without a session the page sends the user to /login.
import { ApiError, api, assertionJSON, busy, creationOptions, registrationJSON, requestOptions, say, webauthnAvailable, webauthnMessage } from './common.js';

const $ = (id) => document.getElementById(id);
const KIND = { totp: 'Authenticator app', webauthn: 'Passkey / security key', recovery_codes: 'Recovery codes' };

const error = (text) => say($('error'), text);
const status = (text) => say($('status'), text);

function toLogin() {
  location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
}

/** The action waiting for a step-up (a fresh TOTP code), run again once the code is accepted. */
let pendingStepUp = null;

function askStepUp(retry) {
  pendingStepUp = retry;
  $('stepup-form').hidden = false;
  $('stepup-code').focus();
}

async function stepUp(ev) {
  ev.preventDefault();
  const code = $('stepup-code').value.replace(/\s+/g, '');
  if (!code) {
    error('Enter the code your app shows.');
    return;
  }
  await act(ev.currentTarget, async () => {
    await api('POST', '/v1/auth/step-up', { code });
    $('stepup-code').value = '';
    $('stepup-form').hidden = true;
    const retry = pendingStepUp;
    pendingStepUp = null;
    if (retry) await retry();
  });
}

/** Step up with a passkey or security key (for users without an authenticator app). */
async function stepUpWithKey(ev) {
  await act(ev.currentTarget, async () => {
    const start = await api('POST', '/v1/auth/step-up/webauthn/options', {});
    const cred = await navigator.credentials.get({ publicKey: requestOptions(start.options) });
    await api('POST', '/v1/auth/step-up', { challenge_id: start.challenge_id, response: assertionJSON(cred) });
    $('stepup-form').hidden = true;
    const retry = pendingStepUp;
    pendingStepUp = null;
    if (retry) await retry();
  });
}

/**
 * Run an action. A 401 (session expired or revoked meanwhile) goes back to sign-in; a 403 asking for a fresh second
 * factor (removing a factor) asks for a TOTP code and then runs the action again; other errors are shown.
 */
async function act(target, fn) {
  error('');
  status('');
  await busy(target, async () => {
    try {
      await fn();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401 && e.code !== 'PAL_AUTH_WEBAUTHN_FAILED' && e.code !== 'PAL_AUTH_MFA_INVALID') toLogin();
      else if (e instanceof ApiError && e.code === 'PAL_AUTH_STEP_UP_REQUIRED') askStepUp(fn);
      else error(webauthnMessage(e));
    }
  });
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : 'never');

function factorItem(f, remaining) {
  const li = document.createElement('li');
  li.dataset.factorId = f.id;
  li.dataset.kind = f.kind;
  const name = document.createElement('strong');
  name.textContent = f.name || KIND[f.kind] || f.kind;
  const meta = document.createElement('span');
  meta.className = 'meta';
  const extra = f.kind === 'recovery_codes' && typeof remaining === 'number' ? ` · ${remaining} left` : '';
  const added = f.created_at ? ` · added ${when(f.created_at)}` : '';
  meta.textContent = `${KIND[f.kind] || f.kind}${added} · last used ${when(f.last_used_at)}${extra}`;
  const remove = document.createElement('button');
  remove.type = 'button';
  remove.className = 'danger';
  remove.textContent = 'Remove';
  remove.setAttribute('aria-label', `Remove ${name.textContent}`);
  // Two clicks instead of window.confirm(): no modal dialog, and the second click is a deliberate act.
  remove.addEventListener('click', () => {
    if (remove.dataset.armed !== 'true') {
      remove.dataset.armed = 'true';
      remove.textContent = 'Confirm removal';
      return;
    }
    void act(remove, async () => {
      await api('DELETE', `/v1/auth/mfa/factors/${encodeURIComponent(f.id)}`);
      status(`Removed ${name.textContent}.`);
      await loadFactors();
    });
  });
  li.append(name, meta, remove);
  return li;
}

async function loadFactors() {
  const data = await api('GET', '/v1/auth/mfa/factors');
  const list = $('factor-list');
  list.replaceChildren(...(data.factors || []).map((f) => factorItem(f, data.recovery_codes_remaining)));
  $('no-factors').hidden = list.children.length > 0;
  const policy = $('mfa-policy');
  policy.textContent = data.mfa_required ? 'Your organisation requires a second factor: you cannot remove your last one.' : '';
  policy.hidden = !data.mfa_required;
  const remaining = data.recovery_codes_remaining;
  $('codes-remaining').textContent = typeof remaining === 'number' && remaining > 0 ? `You have ${remaining} unused recovery codes.` : 'You have no recovery codes.';
}

async function addPasskey(ev) {
  ev.preventDefault();
  const form = ev.currentTarget;
  await act(form, async () => {
    const start = await api('POST', '/v1/auth/mfa/webauthn/register/options', {});
    status('Follow the instructions of your browser or security key…');
    const cred = await navigator.credentials.create({ publicKey: creationOptions(start.options) });
    if (!cred) throw new Error('No passkey was created.');
    const name = $('passkey-name').value.trim() || 'Passkey';
    await api('POST', '/v1/auth/mfa/webauthn/register', { challenge_id: start.challenge_id, response: registrationJSON(cred), name });
    $('passkey-name').value = '';
    status(`Passkey "${name}" added.`);
    await loadFactors();
  });
}

/**
 * Put the server's QR SVG into the page as DOM nodes, keeping only <svg>/<path>/<rect>/<g> and their drawing
 * attributes: no innerHTML, so even a tampered answer cannot add scripts or event handlers.
 */
function showQr(svgText) {
  const doc = new DOMParser().parseFromString(svgText, 'image/svg+xml');
  const root = doc.documentElement;
  const box = $('totp-qr');
  box.replaceChildren();
  if (!root || root.nodeName !== 'svg') return;
  const NS = 'http://www.w3.org/2000/svg';
  const ALLOWED = new Set(['svg', 'path', 'rect', 'g']);
  const ATTRS = new Set(['viewBox', 'width', 'height', 'd', 'fill', 'stroke', 'stroke-width', 'x', 'y', 'shape-rendering', 'transform']);
  const copy = (node) => {
    if (!ALLOWED.has(node.nodeName)) return null;
    const el = document.createElementNS(NS, node.nodeName);
    for (const a of Array.from(node.attributes)) if (ATTRS.has(a.name) && !/url\(|javascript:/i.test(a.value)) el.setAttribute(a.name, a.value);
    for (const child of Array.from(node.children)) {
      const c = copy(child);
      if (c) el.append(c);
    }
    return el;
  };
  const svg = copy(root);
  if (svg) {
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', 'QR code');
    box.append(svg);
  }
}

const totp = { factorId: null };

async function startTotp(ev) {
  await act(ev.currentTarget, async () => {
    const e = await api('POST', '/v1/auth/mfa/totp/enroll', {});
    totp.factorId = e.factor_id;
    showQr(e.qr_svg || '');
    $('totp-secret').textContent = e.secret;
    $('totp-enrol').hidden = false;
    $('totp-code').focus();
  });
}

async function confirmTotp(ev) {
  ev.preventDefault();
  const code = $('totp-code').value.replace(/\s+/g, '');
  if (!code) {
    error('Enter the code your app shows.');
    return;
  }
  await act(ev.currentTarget, async () => {
    await api('POST', '/v1/auth/mfa/totp/verify', { factor_id: totp.factorId, code });
    totp.factorId = null;
    $('totp-code').value = '';
    $('totp-secret').textContent = '';
    $('totp-qr').replaceChildren();
    $('totp-enrol').hidden = true;
    status('Authenticator app added.');
    await loadFactors();
  });
}

async function generateCodes(ev) {
  await act(ev.currentTarget, async () => {
    const { codes } = await api('POST', '/v1/auth/mfa/recovery-codes', {});
    const list = $('codes-list');
    list.replaceChildren(
      ...codes.map((c) => {
        const li = document.createElement('li');
        li.textContent = c;
        return li;
      }),
    );
    $('codes-shown').hidden = false;
    await loadFactors();
  });
}

async function logout(ev) {
  await act(ev.currentTarget, async () => {
    await api('POST', '/v1/auth/logout');
    location.assign('/login');
  });
}

async function init() {
  $('logout-button').addEventListener('click', logout);
  $('stepup-form').addEventListener('submit', stepUp);
  $('stepup-key').addEventListener('click', stepUpWithKey);
  $('stepup-key').hidden = !webauthnAvailable();
  $('stepup-cancel').addEventListener('click', () => {
    pendingStepUp = null;
    $('stepup-form').hidden = true;
  });
  $('totp-start').addEventListener('click', startTotp);
  $('totp-form').addEventListener('submit', confirmTotp);
  $('codes-generate').addEventListener('click', generateCodes);
  if (webauthnAvailable()) $('passkey-form').addEventListener('submit', addPasskey);
  else {
    $('passkey-form').hidden = true;
    $('passkey-unavailable').hidden = false;
  }
  let session;
  try {
    session = await api('GET', '/v1/auth/session');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return toLogin();
    error(e.message);
    return;
  }
  const who = $('who');
  who.textContent = 'Signed in as ';
  const strong = document.createElement('strong');
  strong.id = 'who-username';
  strong.textContent = session.username;
  who.append(strong);
  if (session.display_name) who.append(` (${session.display_name})`);
  try {
    await loadFactors();
  } catch (e) {
    error(e.message);
  }
  document.querySelector('main').setAttribute('aria-busy', 'false');
}

void init();
