import { createReadStream, createWriteStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { Command, Option } from 'commander';
import { OUTCOMES, type AuditEvent, type AuditQuery } from '@palisade/core';
import { verifyAuditExport } from '@palisade/sdk';
import { loadConfig } from '../config/config.js';
import { openStorage } from '../storage/database.js';
import { openSeal } from '../kernel/seal/open.js';
import { createLogger } from '../logging.js';
import { AuditLedger } from '../kernel/audit/ledger.js';
import { CliError, readInput, withClient } from './client.js';
import { progressBar } from './progress.js';

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `30m`, `24h`, `7d` (ago) or an ISO 8601 time, as an ISO time. */
function timeArg(v: string): string {
  const m = /^(\d{1,6})([smhd])$/.exec(v);
  const t = m ? new Date(Date.now() - Number(m[1]) * UNIT_MS[m[2]!]!) : new Date(v);
  if (Number.isNaN(t.getTime())) throw new CliError(`"${v}" is neither a duration (30m, 24h, 7d) nor an ISO 8601 time`, 2);
  return t.toISOString();
}

function eventLine(e: AuditEvent): string {
  const resource = e.resource ? `${e.resource.type}:${e.resource.id ?? '-'}` : '-';
  return [e.index, e.time, e.type, e.outcome, e.actor.principal_id ?? '-', e.actor.source_ip ?? '-', e.action ?? '-', resource, e.error_code ?? '-', e.request_id ?? '-'].join('\t');
}

const collect = (v: string, prev: string[]) => [...prev, v];
const print = (v: unknown): void => void process.stdout.write(JSON.stringify(v, null, 2) + '\n');

/** The storage-level check: every row, root and MAC in the configured database (needs the seal's keyring). */
async function verifyDatabase(passphraseFile: string | undefined): Promise<void> {
  const config = loadConfig();
  const storage = await openStorage({ url: config.database_url ?? join(config.data_dir, 'palisade.db') });
  const seal = await openSeal(config, storage, createLogger('silent'));
  try {
    if (seal.state !== 'unsealed') {
      if (!passphraseFile) throw new CliError(`the ${seal.provider} seal is ${seal.state}: give --passphrase-file to verify offline`, 2);
      await seal.unseal({ passphrase: (await readInput(passphraseFile)).toString('utf8').replace(/\r?\n$/, '') });
    }
    const ledger = new AuditLedger(storage, () => seal.barrier());
    const bar = progressBar('verifying audit log');
    const r = await ledger.verify((p) => bar(p.checked, p.total), undefined, config.audit.retention);
    if (r.ok) process.stdout.write(`audit log OK: ${r.size} entries, root ${Buffer.from(r.root, 'hex').toString('base64')}, ${r.checkpoints} signed checkpoints, ${r.purged} purged payloads\n`);
    else throw new CliError(`audit log MISMATCH at entry ${r.first_bad_index}: ${r.reason} (log size ${r.size})`);
  } finally {
    await seal.close();
    await storage.close();
  }
}

export function auditCommands(program: Command): void {
  const audit = program.command('audit').description('the audit ledger');

  audit
    .command('verify')
    .description(
      'verify the audit log and name the first entry that does not match: an export file (--file, offline), the live log through the API ' +
        '(default: exports it and verifies it here), or the database itself (--database: roots and MACs, needs the seal)',
    )
    .option('--file <export>', 'an export made by `palisade audit export` (- for stdin); needs no server')
    .option('--log-key <vkey>', "the log's checkpoint verifier key to trust (repeatable; `palisade audit log` shows them); without it the keys in the export are used, with a warning", collect, [])
    .option('--witness-key <vkey>', 'a witness whose cosignatures to check (repeatable)', collect, [])
    .option('--min-witnesses <n>', 'require the latest checkpoint to be cosigned by this many of the --witness-key witnesses', (v) => Number(v), 0)
    .option('--tsa-ca <pem file>', 'CA certificate of a time-stamping authority whose tokens to verify (repeatable)', collect, [])
    .option('--database', 'check the configured database directly (leaves, roots, MACs, subtrees, checkpoints, retention)')
    .option('--passphrase-file <file>', 'with --database and the passphrase seal: the file holding the passphrase')
    .action(async (o: { file?: string; logKey: string[]; witnessKey: string[]; minWitnesses: number; tsaCa: string[]; database?: boolean; passphraseFile?: string }) => {
      if (o.database) return verifyDatabase(o.passphraseFile);
      if (!Number.isInteger(o.minWitnesses) || o.minWitnesses < 0 || o.minWitnesses > o.witnessKey.length) throw new CliError('--min-witnesses must be between 0 and the number of --witness-key', 2);
      const run = async (lines: AsyncIterable<string>) => {
        const bar = progressBar('verifying audit export');
        const r = await verifyAuditExport(lines, { logKeys: o.logKey, witnessKeys: o.witnessKey, minWitnesses: o.minWitnesses, tsaCaPems: o.tsaCa.map((f) => readFileSync(f, 'utf8')), onProgress: bar });
        if (r.trusted === 'export') process.stderr.write('warning: no --log-key given: trusted the checkpoint keys named in the export itself (pin them with --log-key)\n');
        if (!r.ok) throw new CliError(`audit export MISMATCH${r.first_bad_index === null ? '' : ` at entry ${r.first_bad_index}`}: ${r.reason}`);
        process.stdout.write(`audit log OK: ${r.origin}, ${r.size} entries, root ${r.root}, ${r.checkpoints} signed checkpoints, ${r.cosignatures} cosignatures, ${r.timestamps} time-stamps, ${r.purged} purged payloads\n`);
      };
      if (o.file) {
        const input = o.file === '-' ? process.stdin : createReadStream(o.file);
        return run(createInterface({ input, crlfDelay: Infinity }));
      }
      await withClient((c) => run(c.audit.exportLines()));
    });

  audit
    .command('export')
    .description('export the audit log (entries, signed checkpoints, cosignatures, time-stamps) as NDJSON, to verify elsewhere with `audit verify --file`')
    .option('--out <file>', 'write here instead of stdout')
    .option('--to <size>', 'tree size to export up to (default: the latest signed checkpoint)', (v) => Number(v))
    .action(async (o: { out?: string; to?: number }) => {
      if (o.to !== undefined && (!Number.isInteger(o.to) || o.to < 1)) throw new CliError('--to must be a positive integer', 2);
      await withClient(async (c) => {
        const stream = await c.audit.exportStream(o.to);
        const bar = progressBar('exporting audit log');
        let total = 0;
        let lines = 0;
        let carry = '';
        const count = new Transform({
          transform(chunk: Buffer, _enc, done) {
            const text = carry + chunk.toString('utf8');
            const parts = text.split('\n');
            carry = parts.pop()!;
            for (const p of parts) {
              if (lines++ === 0) total = (JSON.parse(p) as { size: number }).size;
              else if (p.startsWith('{"index"')) bar(Number(/^\{"index":(\d+)/.exec(p)![1]) + 1, total);
            }
            done(null, chunk);
          },
        });
        await pipeline(stream, count, o.out ? createWriteStream(o.out, { mode: 0o600 }) : process.stdout);
        if (o.out) process.stderr.write(`exported ${total} entries to ${o.out}\n`);
      });
    });

  audit
    .command('log')
    .description("the log's origin, current size and root, and the checkpoint verifier keys to pin")
    .action(async () => print(await withClient((c) => c.audit.log())));

  audit
    .command('checkpoint')
    .description('the latest signed checkpoint (a C2SP signed note with the witnesses\' cosignatures) and its time-stamps')
    .option('--size <n>', 'the checkpoint of this tree size', (v) => Number(v))
    .option('--note', 'print only the signed note')
    .action(async (o: { size?: number; note?: boolean }) => {
      const cp = await withClient((c) => c.audit.checkpoint(o.size));
      if (o.note) process.stdout.write(cp.note);
      else print(cp);
    });

  audit
    .command('query')
    .description('list audit events, newest first (follows pages up to --limit)')
    .option('--since <when>', 'duration ago (30m, 24h, 7d) or ISO time', timeArg)
    .option('--until <when>', 'duration ago or ISO time', timeArg)
    .option('--type <type>', 'event type, or a prefix ending in * (kms.*, auth.*)')
    .addOption(new Option('--outcome <outcome>').choices(OUTCOMES))
    .option('--principal <id>', 'the acting principal')
    .option('--action <permission>', 'the permission exercised, e.g. kms:decrypt')
    .option('--resource <id>', 'the resource id, e.g. a key id')
    .option('--request-id <id>', 'one request, to correlate with the server log')
    .option('--oldest-first', 'ascending order')
    .option('--limit <n>', 'at most this many events', (v) => Number(v), 100)
    .option('--json', 'print JSON lines')
    .action(async (o: { since?: string; until?: string; type?: string; outcome?: AuditQuery['outcome']; principal?: string; action?: string; resource?: string; requestId?: string; oldestFirst?: boolean; limit: number; json?: boolean }) => {
      if (!Number.isInteger(o.limit) || o.limit < 1) throw new CliError('--limit must be a positive integer', 2);
      const q: AuditQuery = { since: o.since, until: o.until, type: o.type, outcome: o.outcome, principal: o.principal, action: o.action, resource: o.resource, request_id: o.requestId, order: o.oldestFirst ? 'asc' : 'desc', limit: Math.min(o.limit, 500) };
      if (!o.json) process.stdout.write(['INDEX', 'TIME', 'TYPE', 'OUTCOME', 'PRINCIPAL', 'SOURCE_IP', 'ACTION', 'RESOURCE', 'ERROR', 'REQUEST_ID'].join('\t') + '\n');
      await withClient(async (c) => {
        for await (const e of c.audit.events(q, o.limit)) process.stdout.write((o.json ? JSON.stringify(e) : eventLine(e)) + '\n');
      });
    });

  const holds = audit.command('holds').description('legal holds: what they cover is kept regardless of retention');
  holds
    .command('create <name>')
    .requiredOption('--reason <text>', 'why (recorded)')
    .option('--type <type>', 'event type or prefix* to keep')
    .option('--principal <id>')
    .option('--resource <id>')
    .option('--since <when>', 'duration ago or ISO time', timeArg)
    .option('--until <when>', 'duration ago or ISO time', timeArg)
    .action(async (name: string, o: { reason: string; type?: string; principal?: string; resource?: string; since?: string; until?: string }) => {
      const filter = Object.fromEntries(Object.entries({ type: o.type, principal: o.principal, resource: o.resource, since: o.since, until: o.until }).filter(([, v]) => v !== undefined));
      print(await withClient((c) => c.audit.createHold({ name, reason: o.reason, filter })));
    });
  holds
    .command('list')
    .option('--all', 'include released holds')
    .action(async (o: { all?: boolean }) => print((await withClient((c) => c.audit.listHolds(o.all))).holds));
  holds
    .command('release <id>')
    .description('ask to release a hold; a second principal approves it with `palisade approvals approve <id>`')
    .option('--reason <text>')
    .action(async (id: string, o: { reason?: string }) => {
      const a = await withClient((c) => c.audit.releaseHold(id, o.reason));
      process.stdout.write(`approval ${a.id} requested: a different principal runs \`palisade approvals approve ${a.id}\`\n`);
    });

  audit
    .command('erase-subject <subject>')
    .description("destroy the key of a data subject's personal data in the log (GDPR erasure); every proof stays valid")
    .action(async (subject: string) => print(await withClient((c) => c.audit.eraseSubject(subject))));
}
