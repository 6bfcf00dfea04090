/**
 * Where validation may connect: the A/AAAA of a name through the configured resolvers (or the system's), filtered so
 * that a client cannot point the server at cloud metadata or other link-local services (SSRF) or, unless allowed,
 * at the server's own loopback.
 */
import { lookup, Resolver } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { problem, type AcmeProblem } from '../problem.js';

export interface AddressPolicy {
  dnsServers: string[];
  timeoutMs: number;
  allowLoopback: boolean;
  allowLinkLocal: boolean;
}

const NEVER = new BlockList();
NEVER.addSubnet('0.0.0.0', 8, 'ipv4');
NEVER.addSubnet('224.0.0.0', 4, 'ipv4'); // multicast
NEVER.addSubnet('240.0.0.0', 4, 'ipv4'); // reserved, broadcast
NEVER.addAddress('::', 'ipv6');
NEVER.addSubnet('ff00::', 8, 'ipv6'); // multicast
const LINK_LOCAL = new BlockList();
LINK_LOCAL.addSubnet('169.254.0.0', 16, 'ipv4'); // incl. 169.254.169.254, the cloud metadata service
LINK_LOCAL.addSubnet('fe80::', 10, 'ipv6');
LINK_LOCAL.addAddress('fd00:ec2::254', 'ipv6'); // AWS metadata over IPv6
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address it is. */
function unmap(ip: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m ? m[1]! : ip;
}

/** Why validation must not connect to `ip`, or null when it may. */
export function refusal(ipIn: string, policy: Pick<AddressPolicy, 'allowLoopback' | 'allowLinkLocal'>): string | null {
  const ip = unmap(ipIn);
  const family = isIP(ip) === 4 ? 'ipv4' : 'ipv6';
  if (NEVER.check(ip, family)) return `${ip} is not a unicast address`;
  if (!policy.allowLinkLocal && LINK_LOCAL.check(ip, family)) return `${ip} is link-local (metadata services live there)`;
  if (!policy.allowLoopback && LOOPBACK.check(ip, family)) return `${ip} is a loopback address`;
  return null;
}

function resolver(policy: AddressPolicy): Resolver {
  const r = new Resolver({ timeout: policy.timeoutMs, tries: 2 });
  r.setServers(policy.dnsServers);
  return r;
}

const NO_DATA = new Set(['ENODATA', 'ENOTFOUND', 'ENONAME', 'NOTFOUND']);

async function orEmpty(p: Promise<string[]>): Promise<string[]> {
  try {
    return await p;
  } catch (e) {
    if (NO_DATA.has((e as NodeJS.ErrnoException).code ?? '')) return [];
    throw e;
  }
}

/** The addresses to try for a name, or the ACME problem (dns, connection) that stops validation. */
export async function addressesOf(name: string, policy: AddressPolicy): Promise<string[] | AcmeProblem> {
  let all: string[];
  try {
    if (isIP(name)) all = [name];
    else if (policy.dnsServers.length > 0) {
      const r = resolver(policy);
      const [v6, v4] = await Promise.all([orEmpty(r.resolve6(name)), orEmpty(r.resolve4(name))]);
      all = [...v6, ...v4];
    } else {
      all = (await lookup(name, { all: true })).map((a) => a.address);
    }
  } catch (e) {
    return problem('dns', `resolving ${name} failed: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (all.length === 0) return problem('dns', `${name} has no A or AAAA record`);
  const allowed = all.filter((ip) => refusal(ip, policy) === null);
  if (allowed.length === 0) return problem('connection', `refusing to connect to ${name}: ${refusal(all[0]!, policy)}`);
  return allowed;
}

/** TXT records of a name (each record's strings joined), or the dns problem. */
export async function txtOf(name: string, policy: AddressPolicy): Promise<string[] | AcmeProblem> {
  try {
    const r = policy.dnsServers.length > 0 ? resolver(policy) : new Resolver({ timeout: policy.timeoutMs, tries: 2 });
    return (await r.resolveTxt(name)).map((chunks) => chunks.join(''));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    if (NO_DATA.has(code)) return problem('unauthorized', `no TXT record at ${name}`);
    return problem('dns', `looking up TXT ${name} failed: ${code || (e as Error).message}`);
  }
}
