import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { PalisadeClient } from '@palisade/sdk';

/** A client from the environment: PALISADE_ADDR, PALISADE_TOKEN, PALISADE_CA_FILE (default <data>/tls/ca.pem). */
export function clientFromEnv(env: NodeJS.ProcessEnv = process.env, opts: { tokenOptional?: boolean } = {}): PalisadeClient {
  const token = env.PALISADE_TOKEN;
  if (!token && !opts.tokenOptional) throw new CliError('PALISADE_TOKEN is not set: export the API key (on first start it is in <data>/bootstrap-token)');
  const caFile = env.PALISADE_CA_FILE ?? resolve(env.PALISADE_DATA_DIR ?? './.palisade', 'tls', 'ca.pem');
  if (env.PALISADE_CA_FILE && !existsSync(caFile)) throw new CliError(`PALISADE_CA_FILE ${caFile} does not exist`);
  const ca = existsSync(caFile) ? readFileSync(caFile) : undefined;
  return new PalisadeClient({ addr: env.PALISADE_ADDR ?? '127.0.0.1:8443', ...(token ? { token } : {}), ...(ca ? { ca } : {}) });
}

/** An error the CLI prints as one line and exits 1 on (2 for usage). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export async function readInput(file: string | undefined): Promise<Buffer> {
  if (file && file !== '-') return readFileSync(file);
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export function parseContext(json: string | undefined): Record<string, unknown> | undefined {
  if (json === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    throw new CliError('--context must be a JSON object, e.g. \'{"tenant":"acme"}\'', 2);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new CliError('--context must be a JSON object', 2);
  return v as Record<string, unknown>;
}

/** Run an API call with the environment's client, closing it after. */
export async function withClient<T>(fn: (c: PalisadeClient) => Promise<T>): Promise<T> {
  const c = clientFromEnv();
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}
