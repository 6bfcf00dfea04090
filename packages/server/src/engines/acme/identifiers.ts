import { isIP } from 'node:net';
import type { AcmeIdentifier } from './ports.js';
import { ACME_ERROR, acmeError, problem, type AcmeProblem } from './problem.js';

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** IPv6 in its RFC 5952 form (what URL parsing produces), IPv4 as is; null when not an address. */
export function canonicalIp(value: string): string | null {
  const family = isIP(value);
  if (family === 4) return value.split('.').some((o) => o.length > 1 && o.startsWith('0')) ? null : value;
  if (family === 6) {
    if (value.includes('%')) return null; // a zone id names an interface of some host, never a certificate identity
    try {
      return new URL(`http://[${value}]/`).hostname.slice(1, -1);
    } catch {
      return null;
    }
  }
  return null;
}

/** A DNS name fit for a certificate (lower-case LDH labels, a wildcard only as the whole left-most label). */
function dnsProblem(value: string): string | null {
  if (value.length > 253) return 'is longer than 253 characters';
  const labels = value.split('.');
  const [first, ...rest] = labels;
  if (first === '*') {
    if (rest.length < 2) return 'a wildcard needs at least two labels under it';
  } else if (!LABEL.test(first ?? '')) return 'is not a valid DNS name';
  if (!rest.every((l) => LABEL.test(l))) return 'is not a valid DNS name';
  if (value.includes('*', 1)) return 'has a wildcard that is not the whole left-most label';
  // Resolvers and URL parsers read a name whose last label is a number (0x7f.1, 127.1) as an IPv4 address.
  if (canonicalIp(value) !== null || /^(0x[0-9a-f]+|[0-9]+)$/.test(labels[labels.length - 1] ?? '')) return 'is an IP address: order it as an ip identifier';
  return null;
}

const MAX_IDENTIFIERS = 100;

/**
 * The order's identifiers, normalized (dns lower-case, ip canonical), de-duplicated and sorted. Throws
 * rejectedIdentifier (unsupportedIdentifier when only types are unknown) with one subproblem per bad identifier.
 */
export function normalizeIdentifiers(input: unknown): AcmeIdentifier[] {
  if (!Array.isArray(input) || input.length === 0 || input.length > MAX_IDENTIFIERS) throw acmeError('PAL_ACME_MALFORMED', `identifiers must be an array of 1 to ${MAX_IDENTIFIERS} identifiers`);
  const problems: AcmeProblem[] = [];
  const out = new Map<string, AcmeIdentifier>();
  for (const raw of input as unknown[]) {
    const r = raw as Partial<AcmeIdentifier> | null;
    if (typeof r !== 'object' || r === null || typeof r.type !== 'string' || typeof r.value !== 'string') throw acmeError('PAL_ACME_MALFORMED', 'each identifier needs a string type and value');
    if (r.type === 'dns') {
      const value = r.value.toLowerCase();
      const why = dnsProblem(value);
      if (why) problems.push(problem('rejectedIdentifier', `${r.value} ${why}`, 400, { type: 'dns', value: r.value }));
      else out.set(`dns:${value}`, { type: 'dns', value });
    } else if (r.type === 'ip') {
      const value = canonicalIp(r.value);
      if (value === null) problems.push(problem('rejectedIdentifier', `${r.value} is not an IP address`, 400, { type: 'ip', value: r.value }));
      else out.set(`ip:${value}`, { type: 'ip', value });
    } else {
      problems.push(problem('unsupportedIdentifier', `identifier type ${JSON.stringify(r.type)} is not supported (dns, ip)`, 400));
    }
  }
  if (problems.length > 0) {
    const unsupported = problems.every((p) => p.type === `${ACME_ERROR}unsupportedIdentifier`);
    const detail = problems.length === 1 ? problems[0]!.detail : `${problems.length} identifiers cannot be issued for`;
    throw acmeError(unsupported ? 'PAL_ACME_UNSUPPORTED_IDENTIFIER' : 'PAL_ACME_REJECTED_IDENTIFIER', detail, { subproblems: problems });
  }
  return sortIdentifiers([...out.values()]);
}

export function sortIdentifiers(ids: AcmeIdentifier[]): AcmeIdentifier[] {
  return [...ids].sort((a, b) => (a.type === b.type ? a.value.localeCompare(b.value) : a.type.localeCompare(b.type)));
}

export const identifierKey = (id: AcmeIdentifier): string => `${id.type}:${id.value}`;

/** True when both lists name exactly the same identifiers. */
export function sameIdentifiers(a: AcmeIdentifier[], b: AcmeIdentifier[]): boolean {
  const x = new Set(a.map(identifierKey));
  const y = new Set(b.map(identifierKey));
  return x.size === y.size && [...x].every((k) => y.has(k));
}

/** The reverse-mapping name of an IP (RFC 8738 §6: the SNI of a tls-alpn-01 validation for an ip identifier). */
export function reverseName(ip: string): string {
  if (isIP(ip) === 4) return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
  const groups = ip.split('::');
  const head = groups[0] ? groups[0].split(':') : [];
  const tail = groups.length > 1 && groups[1] ? groups[1].split(':') : [];
  const full = [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail].map((g) => g.padStart(4, '0')).join('');
  return `${full.split('').reverse().join('.')}.ip6.arpa`;
}
