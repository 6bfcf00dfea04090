import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import pino from 'pino';
import { parse as parseYaml } from 'yaml';
import { createLogger } from '../logging.js';
import { listenWitness } from '../witness/server.js';
import { Witness, ensureWitnessKey, readWitnessKey, type WitnessEvent, type WitnessLog } from '../witness/witness.js';
import { CliError } from './client.js';

interface WitnessCliOptions {
  config?: string;
  listen?: string;
  stateDir?: string;
  name?: string;
  log: string[];
  tlsCert?: string;
  tlsKey?: string;
  logLevel?: string;
}

/** The witness configuration file (YAML or JSON); command-line options take precedence, --log adds to `logs`. */
interface WitnessFileConfig {
  name?: string;
  listen?: string;
  state_dir?: string;
  log_level?: string;
  tls?: { cert?: string; key?: string };
  logs?: Array<{ origin?: string; keys?: string[] }>;
}

const DEFAULT_LISTEN = '127.0.0.1:7380';

async function readConfigFile(file: string): Promise<WitnessFileConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read the witness configuration ${file}: ${(e as Error).message}`, 2);
  }
  let c: unknown;
  try {
    c = parseYaml(text); // YAML 1.2, so JSON too
  } catch (e) {
    throw new CliError(`${file} is not YAML or JSON: ${(e as Error).message}`, 2);
  }
  const bad = (why: string): never => {
    throw new CliError(`${file}: ${why}`, 2);
  };
  if (typeof c !== 'object' || c === null || Array.isArray(c)) bad('expected a mapping');
  const cfg = c as Record<string, unknown>;
  const known = new Set(['name', 'listen', 'state_dir', 'log_level', 'tls', 'logs']);
  for (const k of Object.keys(cfg)) if (!known.has(k)) bad(`unknown setting ${k} (known: ${[...known].join(', ')})`);
  for (const k of ['name', 'listen', 'state_dir', 'log_level']) if (cfg[k] !== undefined && typeof cfg[k] !== 'string') bad(`${k} must be a string`);
  const tls = cfg.tls as Record<string, unknown> | undefined;
  if (tls !== undefined && (typeof tls !== 'object' || tls === null || Object.keys(tls).some((k) => (k !== 'cert' && k !== 'key') || typeof tls[k] !== 'string'))) bad('tls must be { cert: <file>, key: <file> }');
  const logs = cfg.logs as unknown[] | undefined;
  if (logs !== undefined) {
    if (!Array.isArray(logs)) bad('logs must be a list of { origin, keys: [...] }');
    for (const l of logs!) {
      const e = l as { origin?: unknown; keys?: unknown } | null;
      if (typeof e?.origin !== 'string' || !Array.isArray(e.keys) || e.keys.length === 0 || e.keys.some((k) => typeof k !== 'string')) bad('every log needs an origin and a non-empty list of verifier keys');
    }
  }
  return cfg as WitnessFileConfig;
}

/** `--log '<origin> <vkey>'`: the key has no spaces, so it is what follows the last space. */
function parseLogOption(v: string): WitnessLog {
  const at = v.lastIndexOf(' ');
  if (at <= 0 || at === v.length - 1) throw new CliError(`--log takes '<origin> <verifier key>', not ${JSON.stringify(v)}`, 2);
  return { origin: v.slice(0, at), keys: [v.slice(at + 1)] };
}

function parseListen(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  const host = addr.slice(0, i).replace(/^\[|\]$/g, '');
  const portText = addr.slice(i + 1);
  const port = Number(portText);
  if (i <= 0 || !host || !/^\d{1,5}$/.test(portText) || port > 65535) throw new CliError(`--listen takes <host>:<port>, not ${JSON.stringify(addr)}`, 2);
  return { host, port };
}

async function settings(o: WitnessCliOptions) {
  const file = o.config ? await readConfigFile(o.config) : {};
  const name = o.name ?? file.name;
  const stateDir = o.stateDir ?? file.state_dir;
  if (!name) throw new CliError('the witness needs a name (--name, or name: in --config), e.g. witness.example.com/w1', 2);
  if (!stateDir) throw new CliError('the witness needs a state directory (--state-dir, or state_dir: in --config)', 2);
  const logs: WitnessLog[] = [...(file.logs ?? []).map((l) => ({ origin: l.origin!, keys: l.keys! })), ...o.log.map(parseLogOption)];
  const certFile = o.tlsCert ?? file.tls?.cert;
  const keyFile = o.tlsKey ?? file.tls?.key;
  if (Boolean(certFile) !== Boolean(keyFile)) throw new CliError('HTTPS needs both --tls-cert and --tls-key', 2);
  return { name, stateDir, logs, listen: parseListen(o.listen ?? file.listen ?? DEFAULT_LISTEN), certFile, keyFile, logLevel: o.logLevel ?? file.log_level ?? 'info' };
}

async function runWitness(o: WitnessCliOptions): Promise<void> {
  const s = await settings(o);
  if (s.logs.length === 0) throw new CliError('no logs to witness: give --log \'<origin> <verifier key>\' (repeatable) or logs: in --config', 2);
  const log = createLogger(s.logLevel, pino.destination(2));
  const tls = s.certFile && s.keyFile ? { cert: await readFile(s.certFile), key: await readFile(s.keyFile) } : undefined;
  let witness: Witness;
  try {
    witness = await Witness.open({
      stateDir: s.stateDir,
      name: s.name,
      logs: s.logs,
      onEvent: (e: WitnessEvent) => {
        if (e.evidence) log.warn(e, 'add-checkpoint refused: possible log misbehaviour (request kept as evidence)');
        else log.info(e, 'add-checkpoint');
      },
    });
  } catch (e) {
    throw new CliError((e as Error).message, 2);
  }
  let srv;
  try {
    srv = await listenWitness({ witness, ...s.listen, ...(tls ? { tls } : {}), onError: (e) => log.error({ err: e }, 'add-checkpoint failed') });
  } catch (e) {
    await witness.close();
    throw e;
  }
  process.stdout.write(`${witness.verifierKey}\n`);
  process.stderr.write(`palisade witness ${witness.name} listening on ${srv.url}/add-checkpoint for ${witness.origins.length} log(s); state in ${s.stateDir}\n`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'witness stopping: finishing in-flight requests');
    srv.close(10_000).then(
      () => process.exit(0),
      (e: unknown) => {
        log.error({ err: e }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

/** `palisade witness`: a C2SP tlog-witness for configured logs; `palisade witness key` prints its verifier key. */
export function witnessCommands(program: Command): void {
  const witness = program
    .command('witness')
    // The program's options are positional (a subcommand's --version is its own); `witness key` reads witness's on either side.
    .enablePositionalOptions(false)
    .description('run a transparency-log witness (c2sp.org/tlog-witness): cosign the checkpoints of configured logs that are consistent with what it has seen')
    .option('--config <file>', 'YAML or JSON: name, listen, state_dir, log_level, tls: {cert, key}, logs: [{origin, keys: [...]}]')
    .option('--listen <host:port>', `address to serve POST /add-checkpoint on (default ${DEFAULT_LISTEN}; port 0: any free port)`)
    .option('--state-dir <dir>', 'the witness key (created on first start) and the latest checkpoint of each log')
    .option('--name <name>', 'the witness name, e.g. witness.example.com/w1 (the key name of its cosignatures)')
    .option('--log <"origin vkey">', 'a log to witness: its origin and an Ed25519 note verifier key (repeatable)', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate chain (with --tls-key)')
    .option('--tls-key <file>', 'the PEM private key for --tls-cert')
    .option('--log-level <level>', 'log level of the JSON request log on stderr (default info)')
    .addHelpText('after', '\nPrints its cosignature/v1 verifier key on stdout when it starts; stops on SIGTERM or SIGINT after in-flight requests.\n')
    .action(runWitness);

  witness
    .command('key')
    .description('print the verifier key of the witness in --state-dir (with --name: create the key if there is none yet)')
    .action(async (_o: unknown, cmd: Command) => {
      // --state-dir, --name and --config belong to `witness` (commander parses the parent's options on either side of `key`).
      const p = cmd.parent!.opts<WitnessCliOptions>();
      const file = p.config ? await readConfigFile(p.config) : {};
      const stateDir = p.stateDir ?? file.state_dir;
      const name = p.name ?? file.name;
      if (!stateDir) throw new CliError('give the witness --state-dir', 2);
      try {
        const key = name ? await ensureWitnessKey(stateDir, name) : await readWitnessKey(stateDir);
        if (!key) throw new CliError(`no witness key in ${stateDir}: start the witness once, or give --name to create it`, 2);
        process.stdout.write(`${key.vkey}\n`);
      } catch (e) {
        if (e instanceof CliError) throw e;
        throw new CliError((e as Error).message, 2);
      }
    });
}
