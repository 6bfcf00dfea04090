/**
 * Listing and filtering (RFC 7644 §3.4.2): `filter`, `startIndex` (1-based), `count`, `attributes`,
 * `excludedAttributes`. An unfiltered list is one directory page. A filter with an indexed equality in its
 * `and`-chain (`userName eq`, `externalId eq`, `id eq`, `displayName eq`: what Okta and Azure AD send before every
 * create) reads only those candidates; any other filter scans the directory page by page, evaluating each row's
 * SCIM representation, holding no more than one page and the answer in memory.
 */
import { scimError } from './errors.js';
import { compileFilter, indexedEquality, parseFilter, type Predicate } from './filter.js';
import { parseProjection, project, type Projection } from './projection.js';
import type { Resource } from './resources.js';
import { LIST_RESPONSE, type ResourceSchema } from './schema.js';

/** `filter.maxResults` in ServiceProviderConfig: a page never holds more. */
export const MAX_RESULTS = 200;
const DEFAULT_COUNT = 100;
const SCAN_PAGE = 500;

export interface ListQuery {
  predicate: Predicate | null;
  indexed: { attr: string; value: string } | null;
  /** 1-based. */
  startIndex: number;
  count: number;
  projection: Projection;
}

/** A query parameter by name, whatever its case; the first if repeated. */
export function param(query: unknown, name: string): string | undefined {
  if (typeof query !== 'object' || query === null) return undefined;
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(query as Record<string, unknown>)) {
    if (k.toLowerCase() !== lower) continue;
    const first: unknown = Array.isArray(v) ? v[0] : v;
    return typeof first === 'string' ? first : undefined;
  }
  return undefined;
}

function integer(query: unknown, name: string): number | undefined {
  const raw = param(query, name);
  if (raw === undefined || raw.trim() === '') return undefined;
  if (!/^-?\d{1,15}$/.test(raw.trim())) throw scimError('invalidValue', `${name} must be an integer`);
  return Number(raw.trim());
}

export function readListQuery(schema: ResourceSchema, query: unknown, indexedAttributes: readonly string[]): ListQuery {
  const text = param(query, 'filter');
  const ast = text === undefined || text.trim() === '' ? null : parseFilter(text);
  // RFC 7644 §3.4.2.4: startIndex below 1 counts as 1, a negative count as 0.
  const startIndex = Math.max(1, integer(query, 'startIndex') ?? 1);
  const count = Math.min(MAX_RESULTS, Math.max(0, integer(query, 'count') ?? DEFAULT_COUNT));
  return {
    predicate: ast ? compileFilter(ast, schema) : null,
    indexed: ast ? indexedEquality(ast, schema, indexedAttributes) : null,
    startIndex,
    count,
    projection: parseProjection(schema, param(query, 'attributes'), param(query, 'excludedAttributes')),
  };
}

export interface ListSource<T> {
  /** One page of the directory in a stable order, with the total. */
  page(offset: number, limit: number): Promise<{ total: number; items: T[] }>;
  /** Every row the indexed equality selects. */
  lookup(attr: string, value: string): Promise<T[]>;
  /** Rows as SCIM representations (one batched read for a page). */
  represent(items: T[]): Promise<Resource[]>;
}

export async function list<T>(q: ListQuery, source: ListSource<T>): Promise<{ total: number; resources: Resource[] }> {
  const skip = q.startIndex - 1;
  if (!q.predicate) {
    const { total, items } = await source.page(skip, q.count);
    return { total, resources: q.count === 0 ? [] : await source.represent(items) };
  }
  const predicate = q.predicate;
  if (q.indexed) {
    const matches = (await source.represent(await source.lookup(q.indexed.attr, q.indexed.value))).filter(predicate);
    return { total: matches.length, resources: matches.slice(skip, skip + q.count) };
  }
  const resources: Resource[] = [];
  let total = 0;
  for (let offset = 0; ; offset += SCAN_PAGE) {
    const { items } = await source.page(offset, SCAN_PAGE);
    for (const r of await source.represent(items)) {
      if (!predicate(r)) continue;
      if (total >= skip && resources.length < q.count) resources.push(r);
      total++;
    }
    if (items.length < SCAN_PAGE) break;
  }
  return { total, resources };
}

export function listResponse(q: ListQuery, result: { total: number; resources: Resource[] }): Record<string, unknown> {
  return {
    schemas: [LIST_RESPONSE],
    totalResults: result.total,
    startIndex: q.startIndex,
    itemsPerPage: result.resources.length,
    Resources: result.resources.map((r) => project(r, q.projection)),
  };
}
