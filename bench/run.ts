// `npm run bench`: every benchmark, each against a peer or physical limit measured in the same run, then a summary.
//
//   node --import tsx bench/run.ts [--only aead|http]     (after `npx tsc -b`; `npm run bench` builds first)
//
// Env knobs are listed in bench/README.md.
import { printAead, runAead, type AeadResult } from './aead.js';
import { printHttpEncrypt, runHttpEncrypt, type HttpResult } from './http-encrypt.js';
import { heading, machine, num, table } from './lib/report.js';

const BENCHES = ['aead', 'http'] as const;
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
console.log(table(['capability', 'palisade', 'peer / limit', 'ratio', 'ratio per CPU-s', 'goal'], rows));
console.log('ratio = palisade ÷ peer, measured in this run (1.0 = as fast as the peer); per CPU-s = the same per second of server CPU.');
console.log('HTTPS peers: a Fastify 5 route that does nothing (the headline) and bare node:https + JSON + AES-256-GCM. Details above; see bench/README.md.');
process.exit(0);
