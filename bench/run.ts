// `npm run bench`: every benchmark, each against a peer or physical limit measured in the same run, then a summary.
//
//   node --import tsx bench/run.ts [--only aead,http,keygen,hsm,rewrap,audit,pki,tls,identity,authz,fields,gateway]   (after `npx tsc -b`; `npm run bench` builds first)
//
// Env knobs are listed in bench/README.md.
import { printAead, runAead, type AeadResult } from './aead.js';
import { printHttpEncrypt, runHttpEncrypt, type HttpResult } from './http-encrypt.js';
import { e2eLimit, printKeygen, runKeygen, speed, speedText, TARGET_MS, verdict, type KeygenResult } from './keygen.js';
import { printHsm, runHsm, type HsmResult } from './hsm.js';
import { printRewrap, runRewrap, type RewrapResult } from './rewrap.js';
import { APPEND_GOAL, goalText, printAudit, runAudit, VERIFY_GOAL_S, type AuditResult } from './audit.js';
import { printPki, runPki, type PkiResult } from './pki.js';
import { judged, pick, printTls, runTls, TARGETS, verdicts, type TlsResult } from './tls.js';
import { identitySummaryRows, printIdentity, runIdentity, type IdentityResult } from './identity.js';
import { authzSummaryRows, printAuthz, runAuthz, type AuthzResult } from './authz.js';
import { fieldsSummaryRows, printFields, runFields, type FieldsResult } from './fields.js';
import { gatewaySummaryRows, GOAL_ADDED_P99_MS, GOAL_RATE, printGateway, runGateway, type GatewayResult } from './gateway.js';
import { heading, machine, num, table } from './lib/report.js';

const BENCHES = ['aead', 'http', 'keygen', 'hsm', 'rewrap', 'audit', 'pki', 'tls', 'identity', 'authz', 'fields', 'gateway'] as const;
type Bench = (typeof BENCHES)[number];

function parseArgs(argv: string[]): Bench[] {
  const i = argv.findIndex((a) => a === '--only' || a.startsWith('--only='));
  if (i < 0) return [...BENCHES];
  const v = argv[i]!.includes('=') ? argv[i]!.slice('--only='.length) : argv[i + 1];
  const picked = (v ?? '').split(',').filter(Boolean);
  const bad = picked.filter((p) => !(BENCHES as readonly string[]).includes(p));
  if (picked.length === 0 || bad.length > 0) {
    console.error(`usage: bench/run.ts [--only ${BENCHES.join('|')}] (got ${v ?? 'nothing'})`);
    process.exit(2);
  }
  return picked as Bench[];
}

const only = parseArgs(process.argv.slice(2));
const m = machine();
console.log(`Palisade benchmarks: node ${m.node} (OpenSSL ${m.openssl}), ${m.platform}, ${m.cpu}, ${m.cores} cores`);

let aead: AeadResult | null = null;
let http: HttpResult | null = null;
if (only.includes('aead')) {
  heading('running: AEAD in-process');
  aead = await runAead();
  printAead(aead);
}
if (only.includes('http')) {
  heading('running: HTTPS end to end');
  http = await runHttpEncrypt();
  printHttpEncrypt(http);
}
let keygen: KeygenResult | null = null;
let hsm: HsmResult | null = null;
let rewrap: RewrapResult | null = null;
let audit: AuditResult | null = null;
let pki: PkiResult | null = null;
let tls: TlsResult | null = null;
if (only.includes('keygen')) {
  heading('running: key generation');
  keygen = await runKeygen();
  printKeygen(keygen);
}
if (only.includes('hsm')) {
  heading('running: root of trust (HSM) operations');
  hsm = await runHsm();
  printHsm(hsm);
}
if (only.includes('rewrap')) {
  heading('running: KEK rotation rewrap');
  rewrap = await runRewrap();
  printRewrap(rewrap);
}
if (only.includes('audit')) {
  heading('running: audit ledger');
  audit = await runAudit();
  printAudit(audit);
}
if (only.includes('pki')) {
  heading('running: PKI issuance');
  pki = await runPki();
  printPki(pki);
}
if (only.includes('tls')) {
  heading('running: TLS listener');
  tls = await runTls();
  printTls(tls);
}
let identity: IdentityResult | null = null;
if (only.includes('identity')) {
  heading('running: identity (sign-in, tokens, grants, introspection)');
  identity = await runIdentity();
  printIdentity(identity);
}
let authz: AuthzResult | null = null;
if (only.includes('authz')) {
  heading('running: authorization decisions (in process, vs node-casbin)');
  authz = await runAuthz();
  printAuthz(authz);
}
let fields: FieldsResult | null = null;
if (only.includes('fields')) {
  heading('running: field-level encryption (in process, vs aws-crypto and bare node:crypto)');
  fields = await runFields();
  printFields(fields);
}
let gateway: GatewayResult | null = null;
if (only.includes('gateway')) {
  heading('running: API gateway (vs nginx reverse proxy and the upstream directly)');
  gateway = await runGateway();
  printGateway(gateway);
}

heading('summary');
const rows: Array<Array<string | number>> = [];
if (aead) {
  const worst = aead.rows.reduce((a, x) => (x.ratio < a.ratio ? x : a));
  rows.push(['AEAD seal (worst case)', `${worst.algorithm} ${worst.bytes / 1024} KiB`, 'bare node:crypto, same process', worst.ratio.toFixed(3), '-', '≥ 0.9']);
}
const size = (b: number) => (b % 1024 === 0 ? `${b / 1024} KiB` : `${b} B`);
for (const x of http?.rows ?? []) {
  // Headline: against a Fastify route that does nothing, same TLS (the product requirement); then the HTTPS+AEAD peer.
  const rps = `${num(x.sides.palisade.load.rps)} req/s`;
  rows.push([`HTTPS ${x.op} ${size(http!.bytes)}`, rps, 'Fastify no-op route, same TLS', x.vs['fastify-noop'].ratio.toFixed(3), x.vs['fastify-noop'].cpuRatio.toFixed(3), '-']);
  rows.push([`  same, vs AEAD peer`, rps, 'bare node:https + node:crypto', x.vs['https-aead'].ratio.toFixed(3), x.vs['https-aead'].cpuRatio.toFixed(3), '-']);
}
if (keygen) {
  const direct = keygen.rows.filter((x) => !x.mode.startsWith('pool'));
  const worst = direct.reduce((a, x) => (speed(x.bare.p50, x.palisade.p50) < speed(a.bare.p50, a.palisade.p50) ? x : a));
  rows.push(['keygen in process (worst)', `${worst.algorithm} p50 ${num(worst.palisade.p50, 3)} ms`, 'bare node:crypto, same process', speedText(speed(worst.bare.p50, worst.palisade.p50)), '-', '-']);
  for (const x of keygen.rows.filter((r) => r.e2e)) {
    const e = x.e2e!;
    rows.push([`POST /v1/keys ${x.algorithm}${x.mode ? ` (${x.mode})` : ''}`, `p50 ${num(e.p50, 1)} / p99 ${num(e.p99, 1)} ms`, 'bare keygen + no-op route RTT', speedText(speed(e2eLimit(keygen, x), e.p50)), '-', `p99 < ${TARGET_MS} ms: ${verdict(e)}`]);
  }
}
for (const x of hsm?.rows ?? []) {
  const hsmText = x.hsmOps === null ? 'skipped (no SoftHSM2)' : `${num(x.hsmOps)} op/s`;
  rows.push([`root ${x.op} 32 B, pkcs11 (SoftHSM2)`, hsmText, `software provider, ${num(x.softwareOps)} op/s`, x.hsmOps === null ? '-' : (x.hsmOps / x.softwareOps).toFixed(3), '-', '-']);
}
if (rewrap) {
  rows.push([`KEK rewrap ${num(rewrap.keys)} DEKs`, `${num(rewrap.rate)} DEKs/s (${num(rewrap.seconds, 1)} s)`, 'node:crypto unwrap+wrap, no DB', (rewrap.rate / rewrap.limit).toFixed(3), '-', `${rewrap.pending} pending, ${rewrap.verified} decrypt`]);
}
if (audit) {
  for (const x of audit.appends) {
    const goal = x.batch === null ? '-' : `≥ ${num(APPEND_GOAL)}/s: ${goalText(x.ledger.rate >= APPEND_GOAL)}`;
    rows.push([`audit append ${x.engine}, ${x.mode}`, `${num(x.ledger.rate)}/s`, `plain INSERTs, ${num(x.raw.rate)}/s`, (x.ledger.rate / x.raw.rate).toFixed(3), '-', goal]);
  }
  if (audit.pg.skipped) rows.push(['audit append PostgreSQL', 'skipped', audit.pg.skipped.split(':')[0]!, '-', '-', '-']);
  for (const x of audit.proofs.filter((p) => p.log === 'verify log' || p.engine === 'PostgreSQL')) {
    rows.push([`audit ${x.kind} proof ${x.engine} @ ${num(x.size)}`, `p50 ${num(x.p50, 2)} / p99 ${num(x.p99, 2)} ms`, `PK SELECT p50 ${num(x.floorP50, 3)} ms`, (x.floorP50 / x.p50).toFixed(3), '-', '-']);
  }
  const v = audit.verify;
  const perMillion = v.seconds * (1_000_000 / v.entries);
  rows.push([`audit verify ${num(v.entries)} entries`, `${num(v.seconds, 1)} s${v.ok ? '' : ' (FAILED)'}`, `same hashing, no DB, ${num(v.limitSeconds, 1)} s`, (v.limitSeconds / v.seconds).toFixed(3), '-', `< ${VERIFY_GOAL_S} s/1M: ${goalText(v.ok && perMillion < VERIFY_GOAL_S)}`]);
}
for (const x of pki?.rows ?? []) {
  // Headline per curve: the CSR path against `openssl x509 -req` as timed (a process per certificate); then the other
  // peers, the server-key path and the raw signature. "net" = against the peer with its spawn floor subtracted.
  const curve = x.algorithm.slice(6);
  const paths = [['sign (CSR)', x.sign, ['openssl x509 -req', 'openssl ca', 'cfssl sign']], ['issue (server key)', x.issue, ['openssl x509 -req']]] as const;
  for (const [label, s, peers] of paths) {
    const rate = `${num(s.rate)} cert/s, p99 ${num(s.p99, 1)} ms`;
    for (const [i, name] of peers.entries()) {
      const p = x.peers.find((y) => y.name === name);
      const what = `PKI ${label} ${curve}${i === 0 ? '' : `, vs ${name}`}`;
      if (!p || 'skipped' in p) rows.push([what, rate, `${name} skipped${p ? `: ${p.skipped}` : ''}`, '-', '-', '-']);
      else rows.push([what, rate, `${name} ${num(p.rate)}/s (net of spawn ${Number.isNaN(p.netRate) ? '≈ floor' : `${num(p.netRate)}/s: ${(s.rate / p.netRate).toFixed(3)}`})`, (s.rate / p.rate).toFixed(3), '-', '-']);
    }
    rows.push([`  PKI ${label} ${curve}, vs raw sign`, rate, `crypto.sign of the TBS, ${num(x.raw.sign)}/s`, (s.rate / x.raw.sign).toFixed(4), '-', '-']);
  }
}
if (tls) {
  // Headline: new TLS 1.3 handshakes against nginx with 1 worker (one thread each), 16 in flight, without and with mTLS.
  for (const mode of ['tls', 'mtls'] as const) {
    const p = pick(tls, 'palisade', mode);
    const n = pick(tls, 'nginx-1w', mode);
    if (!p || !n) continue;
    const limit = mode === 'tls' ? TARGETS.handshakeMs : TARGETS.mtlsMs;
    rows.push([`${mode === 'tls' ? 'TLS 1.3' : 'mTLS'} new handshakes, ${p.concurrency} in flight`, `${num(p.load.rate)}/s, p99 ${num(judged(p), 1)} ms`, `nginx 1 worker, ${num(n.load.rate)}/s, p99 ${num(judged(n), 1)} ms`, (p.load.rate / n.load.rate).toFixed(3), (p.perCpuSec / n.perCpuSec).toFixed(3), `p99 < ${limit} ms: ${judged(p) < limit ? 'MET' : 'NOT MET'}`]);
  }
  for (const h of tls.holds) {
    if (h.server !== 'palisade') continue;
    const ng = tls.holds.find((x) => x.server === 'nginx-1w');
    rows.push(['TLS keep-alive connections held', `${num(h.checked.ok)} answering, RSS ${num(h.rssHeldMb)} MiB`, ng ? `nginx 1 worker, ${num(ng.checked.ok)}, RSS ${num(ng.rssHeldMb)} MiB` : '-', ng ? (h.checked.ok / ng.checked.ok).toFixed(3) : '-', '-', `≥ ${num(TARGETS.connections)}: ${h.checked.ok >= TARGETS.connections ? 'MET' : 'NOT MET'}`]);
  }
  const v = verdicts(tls).find((x) => x.what.startsWith('client certificate'));
  const bare = tls.validations[0];
  const cold = tls.validations.find((x) => x.name.includes('cold'));
  if (v && bare && cold) rows.push(['mTLS client chain validation (cold)', `p50 ${num(cold.p50, 2)} / p99 ${num(cold.p99, 2)} ms`, `node:crypto parse + verify, p50 ${num(bare.p50, 2)} ms`, (bare.p50 / cold.p50).toFixed(3), '-', `p99 ${v.target}: ${v.met ? 'MET' : 'NOT MET'}`]);
}
if (identity) rows.push(...identitySummaryRows(identity));
if (authz) rows.push(...authzSummaryRows(authz));
if (fields) rows.push(...fieldsSummaryRows(fields));
if (gateway) rows.push(...gatewaySummaryRows(gateway));
console.log(table(['capability', 'palisade', 'peer / limit', 'ratio', 'ratio per CPU-s', 'goal'], rows));
console.log('ratio = palisade ÷ peer, measured in this run (1.0 = as fast as the peer); per CPU-s = the same per second of server CPU.');
if (http) console.log('HTTPS peers: a Fastify 5 route that does nothing (the headline) and bare node:https + JSON + AES-256-GCM. Details above; see bench/README.md.');
if (keygen) console.log('keygen ratios are on p50 latency: peer (or limit) ÷ palisade, so > 1 = faster than the limit (a pooled RSA key); the goal is the seed\'s < 100 ms per key at p99.');
if (audit) console.log('audit: append ratio = ledger appends/s ÷ plain INSERTs of the same rows; proof ratio = PK SELECT p50 ÷ proof p50; verify ratio = limit time ÷ verify time.');
if (pki) console.log('PKI: cert/s, one in flight, each certificate one SQLite transaction with its row and audit event; peers spawn a process per certificate ("net" = with their spawn floor subtracted). P-384 vs P-256 and the breakdown above.');
if (tls) console.log('TLS: ratio = palisade ÷ nginx (1 worker; 2 workers in the details) handshakes/s, same certificate and TLS 1.3 settings; p99 = connect → first session ticket; validation ratio = bare p50 ÷ authenticator p50.');
if (identity) console.log('identity: sign-in ratio = Argon2id verify p50 ÷ sign-in p50; verify ratios = palisade ÷ jose jwtVerify of the same token; grants per CPU-s ÷ Keycloak\'s 200/vCPU; introspection ÷ in-process verifyAccess.');
if (authz) console.log('authz: ratio = palisade decisions/s ÷ node-casbin enforceSync/s on the same requests (same roles, bindings, rules; casbin without time conditions); the goal is on the p99 per decision.');
if (fields) console.log('fields: ratio = palisade ÷ peer field operations/s, one in flight, warm caches (KMS not in the loop); per CPU-s = the same per second of the benchmark\'s CPU; goals: ≥ 0.7 of bare node:crypto, > 100,000/s per core, the seed\'s 10,000/s under 10 ms.');
if (gateway) console.log(`gateway: ratio = gateway ÷ peer req/s at saturation (wrk, same connections); per CPU-s = per second of proxy CPU; added latency = path − direct at a fixed ${GOAL_RATE.toLocaleString('en-US')} req/s (open loop, from the scheduled send); goal added p99 < ${GOAL_ADDED_P99_MS} ms. ${gateway.cores} cores shared by client, proxy and upstream.`);
if (hsm || rewrap) console.log('root ratio = HSM ÷ software provider op/s; rewrap ratio = DEKs/s ÷ the same crypto in memory. The machine is shared: rerun before trusting a small difference.');
process.exit(0);
