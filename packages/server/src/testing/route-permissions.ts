/**
 * Every HTTP route and the permission it declares (`config.permission`), read from the real application: the same
 * `buildApp` the server runs, with its services replaced by inert stand-ins (registering routes touches none of
 * them). Used by `docs/authz.md` (`npm run docs:authz`) and by the role × permission tests, so a new route shows up
 * in both without anyone listing it by hand.
 *
 * Fastify has no public list of routes with their options, so the routes are enumerated from `printRoutes()` (the
 * router's tree) and each is then asked once with `inject()` while the app reports itself draining: the pipeline
 * refuses every request before authentication or any handler, and an `onResponse` hook reads the matched route's
 * method, URL pattern and config. The two lists must agree, so a change in either format fails loudly here.
 */
import { buildApp, type AppDeps } from '../app.js';
import { createLogger } from '../logging.js';
import { createRegistry } from '../metrics/registry.js';
import type { RoutePermission } from '../engines/authz/doc.js';

export type { RoutePermission };

/** A stand-in for a service: any property is another stand-in, any call returns one; never a thenable. */
function inert(path: string): unknown {
  const target = function () {};
  return new Proxy(target, {
    get(_t, key) {
      if (key === 'then' || typeof key === 'symbol') return undefined;
      return inert(`${path}.${key}`);
    },
    apply: () => inert(`${path}()`),
    construct: () => inert(`new ${path}`) as object,
  });
}

const SERVICES = ['storage', 'seal', 'ledger', 'auditLog', 'retention', 'apiKeys', 'kms', 'pki', 'approvals', 'identity', 'authz', 'kmsMetrics', 'acme', 'signingKeys'] as const;

/** `printRoutes()` as (method, URL pattern) pairs: each line's label extends its parent's path. */
export function parseRouteTree(tree: string): Array<{ method: string; url: string }> {
  const out: Array<{ method: string; url: string }> = [];
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const at = line.indexOf('── ');
    if (at < 0) continue;
    const depth = (at - 1) / 4; // "└── " at column 0 is depth 0; each level indents by four
    if (!Number.isInteger(depth)) throw new Error(`unexpected printRoutes line: ${JSON.stringify(line)}`);
    const rest = line.slice(at + 3);
    const m = /^(.*?)(?: \(([A-Z, ]+)\))?$/.exec(rest)!;
    const path = (depth === 0 ? '' : stack[depth - 1]!) + m[1]!;
    stack[depth] = path;
    stack.length = depth + 1;
    for (const method of m[2]?.split(', ') ?? []) out.push({ method, url: path });
  }
  return out;
}

/** A URL that the pattern matches: parameters and wildcards filled in. */
function concrete(pattern: string): string {
  return pattern.replace(/:[A-Za-z0-9_]+(\([^)]*\))?/g, 'x1').replace(/\*/g, 'x1');
}

/**
 * Every route with its permission, sorted by URL then method. HEAD routes Fastify adds for GET routes are left
 * out (they share the GET route's config).
 */
export async function routePermissions(): Promise<RoutePermission[]> {
  const deps: Record<string, unknown> = { log: createLogger('silent'), registry: createRegistry(), clock: () => new Date(), bodyLimit: 1024 * 1024, metricsPublic: false, isDraining: () => true };
  for (const s of SERVICES) deps[s] = inert(s);
  const app = await buildApp(deps as unknown as AppDeps);
  const seen = new Map<string, RoutePermission>();
  app.addHook('onResponse', async (req) => {
    const o = req.routeOptions;
    if (o.url === undefined) return; // not found
    seen.set(`${o.method} ${o.url}`, { method: String(o.method), url: o.url, permission: o.config.permission ?? null });
  });
  try {
    await app.ready();
    const listed = parseRouteTree(app.printRoutes());
    for (const { method, url } of listed) {
      await app.inject({ method: method as 'GET', url: concrete(url) });
      if (!seen.has(`${method} ${url}`)) throw new Error(`${method} ${concrete(url)} did not reach the route ${url}`);
    }
    if (seen.size !== listed.length) throw new Error(`printRoutes listed ${listed.length} routes, ${seen.size} answered`);
  } finally {
    await app.close();
  }
  const gets = new Set([...seen.values()].filter((r) => r.method === 'GET').map((r) => r.url));
  return [...seen.values()].filter((r) => !(r.method === 'HEAD' && gets.has(r.url))).sort((a, b) => (a.url === b.url ? a.method.localeCompare(b.method) : a.url < b.url ? -1 : 1));
}
