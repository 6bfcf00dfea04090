/**
 * The acceptance test of issue 6's login pages: a real Palisade server over HTTPS, a user created by the owner,
 * and headless Chromium (Debian's package, through playwright-core) with a CDP virtual authenticator. In the
 * browser: sign in with the password on /login, add a passkey on /account/security, sign out, and sign in again
 * with "Sign in with a passkey" (usernameless: no username is typed, the authenticator names the account).
 *
 * Two details make WebAuthn work against a test server:
 *  - The RP id is `localhost` and the page must be https://localhost:<port> with that exact origin known to the
 *    server (PALISADE_PUBLIC_URL) before it starts. The harness listens on a random port it picks itself, so the
 *    browser talks to a fixed free port that is a plain TCP relay to it: TLS, the Host header and the Origin all
 *    stay end-to-end, only the port number differs.
 *  - Chromium refuses WebAuthn on a page with a certificate error, so it trusts the server's key through
 *    `--ignore-certificate-errors-spki-list` (see testing/browser.ts); the test checks the page is a secure context.
 *
 * Sessions live in Redis when the test run started one (always in CI), in the database otherwise.
 * Without /usr/bin/chromium: skipped loudly, or a failure when CI=true.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { getFreePort } from '@palisade/testkit';
import { startServer, type TestServer } from '../../packages/server/src/testing/harness.js';
import { addVirtualAuthenticator, launchChromium, requireChromium, servedCertificate, type TestBrowser, type VirtualAuthenticator } from '../../packages/server/src/testing/browser.js';
import { PAGE_CSP, pagesDir } from '../../packages/server/src/engines/identity/pages.js';

const SERVER_ROOT = fileURLToPath(new URL('../../packages/server/', import.meta.url));

describe('identity pages: where the files are found', () => {
  it('the same directory from the TypeScript sources and from the build (tsc does not copy the assets)', () => {
    const expected = join(SERVER_ROOT, 'src/engines/identity/pages');
    expect(pagesDir(join(SERVER_ROOT, 'src/engines/identity/pages.ts'))).toBe(expected);
    expect(pagesDir(join(SERVER_ROOT, 'dist/engines/identity/pages.js'))).toBe(expected);
    expect(pagesDir()).toBe(expected);
    expect(() => pagesDir('/nowhere/at/all.js')).toThrow(/package\.json/);
    expect(dirname(expected)).toMatch(/identity$/);
  });
});

/** A TCP relay from 127.0.0.1:`port` to `target` (host:port). */
async function relay(port: number, target: string): Promise<{ close(): Promise<void> }> {
  const [host, targetPort] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const sockets = new Set<Socket>();
  const server: Server = createServer((inbound) => {
    const outbound = connect(targetPort, host);
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const chromium = requireChromium('e2e: passkey registration and sign-in in headless Chromium');

describe.skipIf(!chromium.available)('passkeys in headless Chromium', () => {
  const USERNAME = 'ada.lovelace';
  const PASSWORD = 'analytical engine notes, 1843';
  let srv: TestServer;
  let front: { close(): Promise<void> } | null = null;
  let browser: TestBrowser | null = null;
  let origin = '';
  let userId = '';
  const problems: string[] = [];

  beforeAll(async () => {
    const port = await getFreePort();
    origin = `https://localhost:${port}`;
    // Sessions in Redis when the test run has one (always in CI: issue 6 wants Redis-backed sessions there).
    const redisUrl = inject('redisUrl');
    srv = await startServer('sqlite', { env: { PALISADE_PUBLIC_URL: origin }, mutate: (c) => void (redisUrl && (c.redis_url = redisUrl)) });
    front = await relay(port, srv.addr);
    const created = await srv.client.transport.send<{ id: string }>('POST', '/v1/users', { username: USERNAME, password: PASSWORD, display_name: 'Ada Lovelace' });
    userId = created.id;
    const leaf = await servedCertificate(srv.addr, 'localhost', srv.ca);
    browser = await launchChromium({ trust: [leaf, srv.ca] });
    browser.page.setDefaultTimeout(15_000); // a step that hangs fails with its own message, well before the test's timeout
    // Anything the browser itself refuses (a CSP violation, a script error) fails the test at the end.
    browser.page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    browser.page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) problems.push(`console: ${m.text()}`);
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await front?.close();
    await srv?.close();
  });

  it('serves the pages and assets with their content types and a same-origin-only CSP', async () => {
    const expectations: Array<[string, RegExp]> = [
      ['/login', /^text\/html/],
      ['/login/recovery', /^text\/html/],
      ['/account/security', /^text\/html/],
      ['/assets/identity/login.js', /^text\/javascript/],
      ['/assets/identity/security.js', /^text\/javascript/],
      ['/assets/identity/common.js', /^text\/javascript/],
      ['/assets/identity/identity.css', /^text\/css/],
    ];
    for (const [path, type] of expectations) {
      const res = await srv.client.transport.raw('GET', path, undefined, { accept: '*/*' });
      expect(res.status, path).toBe(200);
      expect(res.contentType, path).toMatch(type);
    }
    // through Chromium (the relay on the public origin): the page's own policy, and nothing inline that it would block
    const res = await browser!.page.goto(`${origin}/login`);
    expect(res?.status()).toBe(200);
    expect(res?.headers()['content-security-policy']).toBe(PAGE_CSP);
    expect(res?.headers()['x-frame-options']).toBe('DENY');
    expect(await res?.text()).not.toMatch(/<script>|<style>|\sstyle=|\son[a-z]+=/i);
  });

  it('registers a passkey after a password sign-in, then signs in with it alone (usernameless)', async () => {
    const page = browser!.page;
    const authenticator: VirtualAuthenticator = await addVirtualAuthenticator(page);

    // 1. password sign-in; a next= pointing elsewhere is ignored
    await page.goto(`${origin}/login?next=${encodeURIComponent('//evil.example/steal')}`);
    expect(await page.evaluate(() => (globalThis as unknown as { isSecureContext: boolean }).isSecureContext)).toBe(true);
    await page.getByLabel('Username').fill(USERNAME);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL(`${origin}/account/security`);
    await expect.poll(() => page.locator('#who-username').textContent()).toBe(USERNAME);

    // 2. add a passkey
    expect(await authenticator.credentials()).toHaveLength(0);
    await page.getByLabel('Name for this passkey').fill('virtual authenticator');
    await page.getByRole('button', { name: 'Add a passkey' }).click();
    await expect.poll(() => page.locator('#factor-list li[data-kind="webauthn"]').count(), { timeout: 15_000 }).toBe(1);
    expect(await page.locator('#error').isHidden()).toBe(true);
    await expect.poll(() => page.locator('#factor-list').textContent()).toContain('virtual authenticator');
    const stored = await authenticator.credentials();
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({ isResidentCredential: true, rpId: 'localhost' });
    // the user handle is the user's id, so a usernameless assertion names the account
    expect(Buffer.from(stored[0]!.userHandle ?? '', 'base64').toString('utf8')).toBe(userId);
    const countAfterRegistration = stored[0]!.signCount;

    // 3. sign out: the session is gone
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${origin}/login`);
    expect(await page.evaluate(async () => (await fetch('/v1/auth/session')).status)).toBe(401);

    // 4. sign in with the passkey alone
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.waitForURL(`${origin}/account/security`, { timeout: 15_000 });
    await expect.poll(() => page.locator('#who-username').textContent()).toBe(USERNAME);
    const session = await page.evaluate(async () => (await fetch('/v1/auth/session')).json() as Promise<{ user_id: string; username: string }>);
    expect(session).toMatchObject({ user_id: userId, username: USERNAME });

    // still one credential on the authenticator, and it signed once more
    const after = await authenticator.credentials();
    expect(after).toHaveLength(1);
    expect(after[0]!.credentialId).toBe(stored[0]!.credentialId);
    expect(after[0]!.signCount).toBeGreaterThan(countAfterRegistration);

    // 5. eleven minutes later, removing the passkey needs a fresh second factor: the page asks, the user steps up
    //    with the passkey itself (no authenticator app), and the removal goes through
    srv.clock.advanceDays(11 / 1440);
    const remove = page.getByRole('button', { name: 'Remove virtual authenticator' });
    await remove.click();
    await remove.click();
    await expect.poll(() => page.locator('#stepup-form').isVisible()).toBe(true);
    await page.getByRole('button', { name: 'Use a passkey or security key instead' }).click();
    await expect.poll(() => page.locator('#factor-list li[data-kind="webauthn"]').count(), { timeout: 15_000 }).toBe(0);
    const stepUps = (await srv.client.audit.query({ type: 'mfa.verify', limit: 50 })).events.filter((e) => e.details?.step_up === true);
    expect(stepUps.map((e) => [e.outcome, e.details?.method])).toEqual([['success', 'webauthn']]);

    expect(problems).toEqual([]);
  }, 90_000);
});
