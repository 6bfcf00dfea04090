/**
 * The identity pages: sign-in (`/login`, and `/login/recovery` which is the same page opening on the recovery-code
 * step), and account security (`/account/security`: factors, passkey and authenticator-app enrolment, recovery
 * codes, sign-out). They are static files with no server-side templating: everything user-specific comes from the
 * JSON API (`/v1/auth/...`) that the page scripts call with the session cookie, so the dashboard can reuse the same
 * files and the same API.
 *
 * Where the files live. The assets are kept as plain files in `src/engines/identity/pages/` (editable as HTML/JS/CSS,
 * lintable) and are NOT copied by `tsc -b` into dist. So this module finds them relative to the package root, not
 * to itself: it walks up from its own location to the `package.json` of `@palisade/server` and reads
 * `<package root>/src/engines/identity/pages/`. That one computation holds both when vitest runs the TypeScript
 * source (`src/engines/identity/pages.ts`) and when node runs the build (`dist/engines/identity/pages.js`). A
 * package that ships only dist must therefore also ship that folder. The files are read once, when the plugin is
 * registered, so a missing file fails the start instead of a request, and requests are served from memory.
 *
 * Headers. The API's default Content-Security-Policy is `default-src 'none'` (security-headers.ts, an app-level
 * onSend hook). These routes replace it, from a route-level onSend hook (route hooks run after the app's), with a
 * policy that lets the pages load their own scripts, styles and API and nothing else: no inline script or style, no
 * framing, no foreign form targets.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, onSendHookHandler } from 'fastify';

export const PAGE_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const SERVER_PACKAGE = '@palisade/server';

/** The pages directory: `<root of @palisade/server>/src/engines/identity/pages` (see the module comment). */
export function pagesDir(from: string = fileURLToPath(import.meta.url)): string {
  let dir = dirname(from);
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      const name = (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown }).name;
      if (name === SERVER_PACKAGE) return join(dir, 'src', 'engines', 'identity', 'pages');
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`identity pages: no package.json of ${SERVER_PACKAGE} above ${from}`);
    dir = up;
  }
}

/** The assets under /assets/identity/, with their content types (a fixed list: no path ever comes from a request). */
const ASSETS: Record<string, string> = {
  'identity.css': 'text/css; charset=utf-8',
  'common.js': 'text/javascript; charset=utf-8',
  'login.js': 'text/javascript; charset=utf-8',
  'security.js': 'text/javascript; charset=utf-8',
};

/** Page routes and the file each serves. */
const PAGES: Record<string, string> = {
  '/login': 'login.html',
  '/login/recovery': 'login.html',
  '/account/security': 'security.html',
};

interface Loaded {
  body: Buffer;
  type: string;
  etag: string;
}

function load(dir: string, file: string, type: string): Loaded {
  const body = readFileSync(join(dir, file));
  return { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
}

/** Route-level: replaces the API's `default-src 'none'` with the pages' policy (runs after the app-level hook). */
const pageHeaders: onSendHookHandler = async (_req, reply, payload) => {
  void reply.header('content-security-policy', PAGE_CSP);
  return payload;
};

function send(f: Loaded, cacheControl: string) {
  return async (req: FastifyRequest, reply: FastifyReply) => {
    void reply.header('cache-control', cacheControl).header('etag', f.etag).header('x-content-type-options', 'nosniff');
    if (req.headers['if-none-match'] === f.etag) return reply.code(304).send();
    return reply.type(f.type).send(f.body);
  };
}

/**
 * Public GET routes for the pages and their assets. Public (`permission: null`): they hold no data; the API calls
 * they make are authenticated on their own. Not served while sealed, like the sign-in API behind them.
 */
export function identityPages(opts: { dir?: string } = {}): FastifyPluginAsync {
  return async (app) => {
    const dir = opts.dir ?? pagesDir();
    const config = { permission: null, allowSealed: false };
    const schema = { hide: true };
    for (const [url, file] of Object.entries(PAGES)) {
      // HTML is never cached: it is tiny, and a stale page could call an API that has moved on.
      app.get(url, { config, schema, onSend: pageHeaders }, send(load(dir, file, 'text/html; charset=utf-8'), 'no-store'));
    }
    for (const [file, type] of Object.entries(ASSETS)) {
      // Assets are revalidated on each use (ETag), so a new release is picked up at once.
      app.get(`/assets/identity/${file}`, { config, schema, onSend: pageHeaders }, send(load(dir, file, type), 'no-cache'));
    }
  };
}
