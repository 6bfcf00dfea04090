/**
 * Headless Chromium for browser tests: Debian's `chromium` package (not a browser downloaded by Playwright), driven
 * through playwright-core, plus a CDP virtual authenticator for WebAuthn.
 *
 * Trusting the test server's certificate. WebAuthn only runs in a secure context, and Chromium also refuses it on a
 * page whose certificate had an error, even one the user clicked through; so `ignoreHTTPSErrors` is not enough.
 * Instead Chromium is started with `--ignore-certificate-errors-spki-list=<base64 SHA-256 of an SPKI>,...` naming
 * the test server's leaf (and its CA): Chromium's certificate verifier then treats a chain holding one of those keys
 * as valid, so the page has no certificate error at all. The flag only works together with `--user-data-dir`, which
 * we pass anyway (a fresh profile per launch, removed on close). Nothing is written to a system or user trust store.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { chromium, type BrowserContext, type CDPSession, type Page } from 'playwright-core';
import { INSTALL_HINT, isCI } from '@palisade/testkit';

/** Debian's Chromium (`apt-get install chromium`; scripts/install-services.sh installs it). */
export const CHROMIUM = '/usr/bin/chromium';

export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox', // tests run as root in containers, where Chromium's sandbox cannot start
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
] as const;

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const warned = new Set<string>();

/**
 * The CI-or-skip-loudly rule of @palisade/testkit's requireService, for Chromium (which testkit does not list):
 * with CI=true a missing browser throws; otherwise one console.warn line and `{ available: false }`.
 */
export function requireChromium(suite: string): { available: boolean; reason?: string } {
  if (executable(CHROMIUM)) return { available: true };
  const reason = `chromium not found (no executable ${CHROMIUM})`;
  if (isCI()) throw new Error(`[palisade testkit] ${reason}, and CI=true forbids skipping "${suite}" — the CI image must run: ${INSTALL_HINT}`);
  if (!warned.has(suite)) {
    warned.add(suite);
    console.warn(`[palisade testkit] SKIPPING ${suite}: ${reason} — run: ${INSTALL_HINT}`);
  }
  return { available: false, reason };
}

/** base64 of the SHA-256 of a certificate's SubjectPublicKeyInfo: the form `--ignore-certificate-errors-spki-list` takes. */
export function spkiSha256(pem: string): string {
  const der = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

/** Every certificate in a PEM bundle. */
export function pemCertificates(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/**
 * The certificate a TLS server actually presents for `servername` (PEM), verified against `ca`: what Chromium will
 * see, whichever source (bootstrap CA or PKI engine) issued it.
 */
export function servedCertificate(addr: string, servername: string, ca: string): Promise<string> {
  const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const sock = tlsConnect({ host, port, servername, ca, ALPNProtocols: ['http/1.1'] }, () => {
      const raw = sock.getPeerCertificate().raw;
      sock.end();
      resolve(new X509Certificate(raw).toString());
    });
    sock.once('error', reject);
  });
}

export interface TestBrowser {
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

/**
 * Start headless Chromium with a fresh profile, trusting the certificates in `trust` (PEM; each one's public key).
 * One page is opened; `context` can open more.
 */
export async function launchChromium(opts: { trust?: string[] } = {}): Promise<TestBrowser> {
  const profile = mkdtempSync(join(tmpdir(), 'palisade-chromium-'));
  const spkis = [...new Set((opts.trust ?? []).flatMap(pemCertificates).map(spkiSha256))];
  const args: string[] = [...CHROMIUM_FLAGS];
  if (spkis.length > 0) args.push(`--ignore-certificate-errors-spki-list=${spkis.join(',')}`);
  let context: BrowserContext;
  try {
    // launchPersistentContext passes `--user-data-dir=<profile>` itself (launch() refuses that flag in `args`).
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args, chromiumSandbox: false, timeout: 60_000 });
  } catch (e) {
    rmSync(profile, { recursive: true, force: true });
    throw e;
  }
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    async close() {
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export interface VirtualCredential {
  credentialId: string;
  isResidentCredential: boolean;
  rpId?: string;
  userHandle?: string;
  signCount: number;
}

export interface VirtualAuthenticator {
  cdp: CDPSession;
  authenticatorId: string;
  /** The credentials the authenticator holds (CDP `WebAuthn.getCredentials`). */
  credentials(): Promise<VirtualCredential[]>;
  remove(): Promise<void>;
}

/**
 * A CTAP2 platform authenticator (transport `internal`) with resident keys and user verification, that always
 * verifies the user and simulates presence, attached to `page` (it lives as long as the page's target, across
 * navigations).
 */
export async function addVirtualAuthenticator(page: Page): Promise<VirtualAuthenticator> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  });
  return {
    cdp,
    authenticatorId,
    async credentials() {
      const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
      return credentials.map((c) => ({
        credentialId: c.credentialId,
        isResidentCredential: c.isResidentCredential,
        signCount: c.signCount,
        ...(c.rpId === undefined ? {} : { rpId: c.rpId }),
        ...(c.userHandle === undefined ? {} : { userHandle: c.userHandle }),
      }));
    },
    async remove() {
      await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId });
    },
  };
}
