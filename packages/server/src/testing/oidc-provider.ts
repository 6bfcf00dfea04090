/**
 * Test-only: a real OpenID Provider (the `oidc-provider` package, in process) on 127.0.0.1 over plain HTTP, so the
 * relying party is tested against an implementation it did not write rather than against mocks of one.
 *
 * One confidential client (client_secret_basic, PKCE required), a few accounts with `email`, `name` and `groups`
 * claims (scopes `email`, `profile`, `groups`), and a minimal interaction endpoint standing in for the login and
 * consent pages: it signs in the account named in its `login` query parameter and grants what was asked, or denies
 * with `deny=1`. `authorize()` plays the browser: it follows the redirects with a cookie jar from the authorization
 * URL to the RP's callback and returns the callback's query parameters.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import type { JWK } from 'jose';
// @ts-expect-error -- oidc-provider ships no type declarations; the part of it used here is typed below.
import UntypedProvider from 'oidc-provider';

interface Interaction {
  uid: string;
  prompt: { name: string };
  params: Record<string, unknown>;
}

interface OidcProviderInstance {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<Interaction>;
  interactionFinished(req: IncomingMessage, res: ServerResponse, result: Record<string, unknown>, opts?: { mergeWithLastSubmission?: boolean }): Promise<void>;
  Grant: new (init: { accountId: string; clientId: string }) => { addOIDCScope(scope: string): void; save(): Promise<string> };
  on(event: string, listener: (...args: unknown[]) => void): void;
}

const Provider = UntypedProvider as new (issuer: string, config: Record<string, unknown>) => OidcProviderInstance;

export interface TestAccount {
  email: string;
  email_verified: boolean;
  name: string;
  /** Absent for an account with no groups; a plain string to exercise providers that flatten a single group. */
  groups?: string | string[];
}

export const TEST_ACCOUNTS: Readonly<Record<string, TestAccount>> = {
  alice: { email: 'alice@example.test', email_verified: true, name: 'Alice Liddell', groups: ['engineering', 'palisade-admins'] },
  bob: { email: 'bob@example.test', email_verified: false, name: 'Bob Builder', groups: 'operators' },
  carol: { email: 'carol@example.test', email_verified: true, name: 'Carol Danvers' },
};

export interface OidcTestProviderOptions {
  /** The callback registered for the client. Never fetched: `authorize()` stops at it. */
  redirectUri?: string;
  /** The client's ID token algorithm (both an RSA and a P-256 key are published). Default RS256. */
  idTokenAlg?: 'RS256' | 'ES256';
  /**
   * oidc-provider keeps ID tokens thin in the code flow (profile claims and groups only at UserInfo, as Okta does);
   * true puts every granted claim in the ID token as well (as Azure AD does).
   */
  fullIdToken?: boolean;
}

export interface OidcTestProvider {
  issuer: string;
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  /** The provider's public signing keys, as its JWKS publishes them. */
  publicJwks: JWK[];
  /**
   * Plays the browser from `authorizationUrl` to the redirect URI: the provider's redirects, the interaction (signed
   * in as `login`, default alice, or denied), back to the provider, to the callback. Returns the callback's query.
   */
  authorize(authorizationUrl: string, as?: { login?: string; deny?: boolean }): Promise<Record<string, string>>;
  close(): Promise<void>;
}

async function signingKey(alg: 'RS256' | 'ES256'): Promise<{ priv: JWK; pub: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = `${alg.toLowerCase()}-${randomBytes(6).toString('hex')}`;
  return { priv: { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' }, pub: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

export async function startOidcProvider(opts: OidcTestProviderOptions = {}): Promise<OidcTestProvider> {
  const redirectUri = opts.redirectUri ?? 'https://palisade.test/v1/auth/oidc/test/callback';
  const clientId = 'palisade-test';
  const clientSecret = randomBytes(32).toString('base64url');
  const keys = await Promise.all([signingKey('RS256'), signingKey('ES256')]);

  let handle: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.writeHead(503).end();
  const server = createServer((req, res) => handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [redirectUri],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
        id_token_signed_response_alg: opts.idTokenAlg ?? 'RS256',
      },
    ],
    pkce: { required: () => true },
    scopes: ['openid', 'email', 'profile', 'groups'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
    conformIdTokenClaims: opts.fullIdToken !== true,
    // Set explicitly only to keep oidc-provider from printing a notice per artifact kind.
    ttl: { AccessToken: 600, AuthorizationCode: 60, Grant: 600, IdToken: 600, Interaction: 600, Session: 600 },
    findAccount: (_ctx: unknown, id: string) => {
      const account = TEST_ACCOUNTS[id];
      if (!account) return undefined;
      return { accountId: id, claims: () => ({ sub: id, ...account }) };
    },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    jwks: { keys: keys.map((k) => k.priv) },
  });
  provider.on('server_error', (_ctx, err) => console.error('oidc-provider server_error', err));

  /** The stand-in for the login and consent pages: finishes the interaction at once with the chosen outcome. */
  async function interaction(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const details = await provider.interactionDetails(req, res);
    const query = new URL(req.url ?? '/', issuer).searchParams;
    if (query.get('deny') === '1') {
      await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'the user declined' }, { mergeWithLastSubmission: false });
      return;
    }
    const login = query.get('login') ?? 'alice';
    if (!TEST_ACCOUNTS[login]) {
      res.writeHead(400).end(`no test account ${login}`);
      return;
    }
    const grant = new provider.Grant({ accountId: login, clientId: String(details.params.client_id) });
    grant.addOIDCScope(String(details.params.scope));
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { login: { accountId: login }, consent: { grantId } }, { mergeWithLastSubmission: false });
  }

  const callback = provider.callback();
  handle = (req, res) => {
    if (req.url?.startsWith('/interaction/')) {
      interaction(req, res).catch((err: unknown) => {
        console.error('oidc-provider fixture interaction failed', err);
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
      return;
    }
    callback(req, res);
  };

  async function authorize(authorizationUrl: string, as: { login?: string; deny?: boolean } = {}): Promise<Record<string, string>> {
    const jar = new Map<string, string>();
    let url = new URL(authorizationUrl);
    for (let hop = 0; hop < 10; hop++) {
      if (url.href.startsWith(redirectUri)) return Object.fromEntries(url.searchParams);
      if (url.origin === issuer && url.pathname.startsWith('/interaction/')) {
        if (as.deny) url.searchParams.set('deny', '1');
        else url.searchParams.set('login', as.login ?? 'alice');
      }
      const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
      const res = await fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
      for (const c of res.headers.getSetCookie()) {
        const [pair = ''] = c.split(';');
        const eq = pair.indexOf('=');
        const name = pair.slice(0, eq).trim();
        const value = pair.slice(eq + 1).trim();
        if (value === '' || /expires=Thu, 01 Jan 1970/i.test(c)) jar.delete(name);
        else jar.set(name, value);
      }
      const location = res.headers.get('location');
      if (res.status < 300 || res.status >= 400 || !location) {
        throw new Error(`authorize: ${url.pathname} answered ${res.status}: ${(await res.text()).slice(0, 500)}`);
      }
      await res.arrayBuffer();
      url = new URL(location, url);
    }
    throw new Error('authorize: too many redirects');
  }

  return {
    issuer,
    clientId,
    clientSecret,
    redirectUri,
    publicJwks: keys.map((k) => k.pub),
    authorize,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
