/* global document, navigator, location, URL */
// The sign-in page (/login and /login/recovery): password, then the second factor the server asks for (TOTP code,
// security key / passkey, or a recovery code) on the same page; or a passkey alone (usernameless); or a link to a
// federated identity provider. The session cookie is set by the API; this page only moves the user on afterwards.
import { api, assertionJSON, busy, requestOptions, safeNext, say, webauthnAvailable, webauthnMessage } from './common.js';

const $ = (id) => document.getElementById(id);
const DEFAULT_NEXT = '/account/security';
const LABELS = { totp: 'totp-form', webauthn: 'webauthn-step', recovery_code: 'recovery-form' };

const state = { mfaToken: null, methods: [], recovery: location.pathname === '/login/recovery' };

const error = (text) => say($('error'), text);
const status = (text) => say($('status'), text);

function done(result) {
  if (!result || result.status !== 'authenticated') throw new Error('The server did not sign you in.');
  status('Signed in. Redirecting…');
  // Policy requires a second factor this account does not have yet: enrolment comes before anything else.
  location.assign(result.mfa_enrollment_required ? DEFAULT_NEXT : safeNext(DEFAULT_NEXT));
}

/** Show one second-factor form, and links to the other methods the server offered. */
function showMethod(method) {
  for (const [m, id] of Object.entries(LABELS)) $(id).hidden = m !== method;
  const others = state.methods.filter((m) => m !== method && LABELS[m]);
  $('method-switch').hidden = others.length === 0;
  for (const b of document.querySelectorAll('#method-switch [data-method]')) b.parentElement.hidden = !others.includes(b.dataset.method);
  const focus = { totp: 'totp-code', webauthn: 'security-key-button', recovery_code: 'recovery-code' }[method];
  if (focus) $(focus).focus();
}

function startMfa(result) {
  state.mfaToken = result.mfa_token;
  state.methods = (result.methods || []).filter((m) => m in LABELS && (m !== 'webauthn' || webauthnAvailable()));
  if (state.methods.length === 0) {
    error('Your account needs a second factor that this browser cannot use. Ask an administrator for help.');
    return;
  }
  $('step-password').hidden = true;
  $('step-mfa').hidden = false;
  const preferred = state.recovery && state.methods.includes('recovery_code') ? 'recovery_code' : state.methods[0];
  showMethod(preferred);
}

async function onPassword(ev) {
  ev.preventDefault();
  error('');
  const form = ev.currentTarget;
  const username = $('username').value.trim();
  const password = $('password').value;
  if (!username || !password) {
    error('Enter your username and password.');
    return;
  }
  await busy(form, async () => {
    try {
      const result = await api('POST', '/v1/auth/login', { username, password });
      $('password').value = '';
      if (result && result.status === 'mfa_required') startMfa(result);
      else done(result);
    } catch (e) {
      error(e.message);
    }
  });
}

async function onCode(ev, path, inputId) {
  ev.preventDefault();
  error('');
  const code = $(inputId).value.replace(/\s+/g, '');
  if (!code) {
    error('Enter the code.');
    return;
  }
  await busy(ev.currentTarget, async () => {
    try {
      done(await api('POST', path, { mfa_token: state.mfaToken, code }));
    } catch (e) {
      $(inputId).value = '';
      error(e.message);
    }
  });
}

/** WebAuthn assertion: as the second factor (with the mfa_token), or as a whole passkey sign-in (without). */
async function withAuthenticator(button, mfaToken) {
  error('');
  await busy(button, async () => {
    try {
      const start = await api('POST', '/v1/auth/login/webauthn/options', mfaToken ? { mfa_token: mfaToken } : {});
      status('Waiting for your authenticator…');
      const cred = await navigator.credentials.get({ publicKey: requestOptions(start.options) });
      if (!cred) throw new Error('No credential was chosen.');
      const body = { challenge_id: start.challenge_id, response: assertionJSON(cred) };
      if (mfaToken) body.mfa_token = mfaToken;
      done(await api('POST', '/v1/auth/login/webauthn', body));
    } catch (e) {
      status('');
      error(webauthnMessage(e));
    }
  });
}

async function loadProviders() {
  let list;
  try {
    list = (await api('GET', '/v1/auth/providers')).providers || [];
  } catch {
    return; // federation is optional; the page works without it
  }
  const ul = $('provider-list');
  for (const p of list) {
    let url;
    try {
      url = new URL(p.login_url, location.origin);
    } catch {
      continue;
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') continue; // never javascript: or data:
    const next = safeNext('');
    if (next && url.origin === location.origin && !url.searchParams.has('next')) url.searchParams.set('next', next);
    const a = document.createElement('a');
    a.href = url.href;
    a.className = 'button';
    a.textContent = p.name;
    a.dataset.kind = p.kind;
    const li = document.createElement('li');
    li.append(a);
    ul.append(li);
  }
  $('providers').hidden = ul.children.length === 0;
}

function init() {
  if (state.recovery) {
    $('recovery-hint').hidden = false;
    $('recovery-link').parentElement.hidden = true;
    document.title = 'Sign in with a recovery code · Palisade';
  }
  // keep next= across the page's own links
  const next = safeNext('');
  if (next) for (const a of document.querySelectorAll('a[href="/login"], a[href="/login/recovery"]')) a.href = `${a.getAttribute('href')}?next=${encodeURIComponent(next)}`;

  $('password-form').addEventListener('submit', onPassword);
  $('totp-form').addEventListener('submit', (ev) => onCode(ev, '/v1/auth/login/totp', 'totp-code'));
  $('recovery-form').addEventListener('submit', (ev) => onCode(ev, '/v1/auth/login/recovery-code', 'recovery-code'));
  $('security-key-button').addEventListener('click', (ev) => withAuthenticator(ev.currentTarget, state.mfaToken));
  for (const b of document.querySelectorAll('#method-switch [data-method]')) {
    b.addEventListener('click', () => {
      error('');
      showMethod(b.dataset.method);
    });
  }
  if (webauthnAvailable()) $('passkey-button').addEventListener('click', (ev) => withAuthenticator(ev.currentTarget, null));
  else $('passkey-block').hidden = true;
  void loadProviders();
  $('username').focus();
}

init();
