import { BlockList, isIPv4 } from 'node:net';
import { addNetwork, type Conditions, type Policy } from './policy.js';

/** What a request brings to a decision besides who and what. */
export interface DecisionContext {
  time: Date;
  source_ip: string | null;
  authentication: 'api_key' | 'session' | 'access_token' | 'client_certificate' | null;
  /** When a second factor was last verified (ms since the epoch), and which. */
  mfa_at: number | null;
  mfa_method: string | null;
  /** The SPIFFE id of the client certificate. */
  certificate: string | null;
  /** 0–100, from the threat-detection hook (0 until it reports). */
  risk: number;
}

const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const formatters = new Map<string, Intl.DateTimeFormat>();

/** Weekday and minute of the day of `t` in time zone `tz`. */
function localTime(t: Date, tz: string): { day: string; minutes: number } {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: tz, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formatters.set(tz, f);
  }
  let day = '';
  let hour = 0;
  let minute = 0;
  for (const p of f.formatToParts(t)) {
    if (p.type === 'weekday') day = p.value.slice(0, 3).toLowerCase();
    else if (p.type === 'hour') hour = Number(p.value);
    else if (p.type === 'minute') minute = Number(p.value);
  }
  return { day: DAY_NAMES.includes(day) ? day : '', minutes: hour * 60 + minute };
}

const minutesOf = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/** `::ffff:10.0.0.1` (an IPv4 client on a dual-stack socket) as 10.0.0.1. */
function plainIp(ip: string): { ip: string; type: 'ipv4' | 'ipv6' } {
  const v4 = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
  return isIPv4(v4) ? { ip: v4, type: 'ipv4' } : { ip, type: 'ipv6' };
}

const globCache = new Map<string, RegExp>();
/** `*` matches any run of characters (including `/`); everything else literally. */
export function globMatch(pattern: string, value: string): boolean {
  if (!pattern.includes('*')) return pattern === value;
  let re = globCache.get(pattern);
  if (!re) {
    re = new RegExp('^' + pattern.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$');
    globCache.set(pattern, re);
  }
  return re.test(value);
}

const networkCache = new WeakMap<readonly string[], BlockList>();
function networks(cidrs: readonly string[]): BlockList {
  let bl = networkCache.get(cidrs);
  if (!bl) {
    bl = new BlockList();
    for (const c of cidrs) addNetwork(bl, c);
    networkCache.set(cidrs, bl);
  }
  return bl;
}

/**
 * Whether every condition holds in `ctx`; `why` says, in words, the first that does not (or that all do), for
 * `explain` and for the reason recorded in the audit event.
 */
export function evaluate(c: Conditions, ctx: DecisionContext, policy: Policy): { holds: boolean; why: string } {
  const fail = (why: string) => ({ holds: false, why });
  if (c.time) {
    const tz = c.time.tz ?? 'UTC';
    const { day, minutes } = localTime(ctx.time, tz);
    if (c.time.days && !c.time.days.includes(day as never)) return fail(`it is ${day} in ${tz}, not ${c.time.days.join('/')}`);
    if (c.time.from !== undefined && c.time.to !== undefined) {
      const from = minutesOf(c.time.from);
      const to = minutesOf(c.time.to);
      const inside = from <= to ? minutes >= from && minutes < to : minutes >= from || minutes < to; // to < from: overnight
      const hhmm = `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
      if (!inside) return fail(`it is ${hhmm} in ${tz}, outside ${c.time.from}–${c.time.to}`);
    }
  }
  if (c.source_ip || c.location) {
    if (!ctx.source_ip) return fail('the source address is unknown');
    const { ip, type } = plainIp(ctx.source_ip);
    if (c.source_ip && !networks(c.source_ip).check(ip, type)) return fail(`source ${ip} is outside ${c.source_ip.join(', ')}`);
    if (c.location && !c.location.some((name) => policy.locations.get(name)?.check(ip, type))) return fail(`source ${ip} is in none of the locations ${c.location.join(', ')}`);
  }
  if (c.mfa) {
    if (ctx.mfa_at === null) return fail('no second factor was verified in this session');
    const age = Math.max(0, Math.floor((ctx.time.getTime() - ctx.mfa_at) / 1000));
    if (c.mfa.max_age_seconds !== undefined && age > c.mfa.max_age_seconds) return fail(`the second factor was verified ${age} s ago, more than ${c.mfa.max_age_seconds} s`);
    if (c.mfa.methods && !c.mfa.methods.includes(ctx.mfa_method as never)) return fail(`the second factor was ${ctx.mfa_method ?? 'unknown'}, not ${c.mfa.methods.join('/')}`);
  }
  if (c.authentication && !c.authentication.includes(ctx.authentication as never)) return fail(`authenticated by ${ctx.authentication ?? 'nothing'}, not ${c.authentication.join('/')}`);
  if (c.certificate) {
    if (!ctx.certificate) return fail('no client certificate');
    if (!c.certificate.some((g) => globMatch(g, ctx.certificate!))) return fail(`certificate ${ctx.certificate} matches none of ${c.certificate.join(', ')}`);
  }
  if (c.risk) {
    if (c.risk.min !== undefined && ctx.risk < c.risk.min) return fail(`risk score ${ctx.risk} is below ${c.risk.min}`);
    if (c.risk.max !== undefined && ctx.risk > c.risk.max) return fail(`risk score ${ctx.risk} is above ${c.risk.max}`);
  }
  return { holds: true, why: describe(c, ctx) };
}

/** The conditions as they held, in words. */
function describe(c: Conditions, ctx: DecisionContext): string {
  const parts: string[] = [];
  if (c.time) parts.push(`time ${c.time.days?.join('/') ?? ''} ${c.time.from ?? ''}${c.time.to ? `–${c.time.to}` : ''} ${c.time.tz ?? 'UTC'}`.replace(/\s+/g, ' ').trim());
  if (c.source_ip) parts.push(`source ${ctx.source_ip} in ${c.source_ip.join(', ')}`);
  if (c.location) parts.push(`source ${ctx.source_ip} in location ${c.location.join('/')}`);
  if (c.mfa) parts.push(`second factor ${ctx.mfa_method ?? ''} within ${c.mfa.max_age_seconds ?? '∞'} s`);
  if (c.authentication) parts.push(`authenticated by ${ctx.authentication}`);
  if (c.certificate) parts.push(`certificate ${ctx.certificate}`);
  if (c.risk) parts.push(`risk ${ctx.risk}${c.risk.min !== undefined ? ` ≥ ${c.risk.min}` : ''}${c.risk.max !== undefined ? ` ≤ ${c.risk.max}` : ''}`);
  return parts.join(', ');
}
