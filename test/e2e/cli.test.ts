/**
 * The `palisade` CLI end to end, as a user runs it against a live server: keys, encrypt/decrypt round trips through
 * pipes, clear errors and exit codes, and `audit verify` naming the first tampered entry in the data directory.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startServer, stopAll, type CliResult, type Server } from './helpers.js';

afterAll(stopAll);

let srv: Server;
let cliEnv: NodeJS.ProcessEnv;
const cli = (args: string[], input?: Buffer | string): Promise<CliResult> => runCli(args, { env: cliEnv, ...(input !== undefined ? { input } : {}) });
const ok = (r: CliResult): string => {
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.toString('utf8');
};

beforeAll(async () => {
  srv = await startServer({ env: { PALISADE_AUDIT_CHECKPOINT_SECONDS: '1' } });
  cliEnv = { ...srv.env, PALISADE_TOKEN: srv.token, PALISADE_CA_FILE: srv.caFile };
});

let keyId = '';

describe('palisade keys / encrypt / decrypt', () => {
  it('keys create prints the new key id and keys list shows it', async () => {
    keyId = ok(await cli(['keys', 'create', '--name', 'e2e-orders', '--classification', 'confidential'])).trim();
    expect(keyId).toMatch(/^[a-z0-9_-]+$/);
    const list = ok(await cli(['keys', 'list']));
    const row = list.split('\n').find((l) => l.startsWith(keyId));
    expect(row, list).toBeDefined();
    expect(row!.split('\t')).toEqual(expect.arrayContaining(['e2e-orders', 'DEK', 'AES-256-GCM', 'confidential', 'v1', 'active']));
  });

  it('round-trips binary stdin through encrypt | decrypt, bound to its context', async () => {
    const plaintext = randomBytes(4096);
    const context = '{"tenant":"acme","record":"42"}';
    const sealed = ok(await cli(['encrypt', '--key', keyId, '--context', context], plaintext));
    const envelope = JSON.parse(sealed) as { key_id: string; ciphertext: string };
    expect(envelope.key_id).toBe(keyId);
    expect(Buffer.from(envelope.ciphertext, 'base64').includes(plaintext.subarray(0, 32))).toBe(false);

    const back = await cli(['decrypt', '--context', context], sealed);
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout.equals(plaintext)).toBe(true);

    const wrong = await cli(['decrypt', '--context', '{"tenant":"other","record":"42"}'], sealed);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/^error: PAL_\w+: /);
    expect(wrong.stdout.length).toBe(0);
  });

  it('rotate makes v2 current and v1 ciphertexts still decrypt', async () => {
    const before = ok(await cli(['encrypt', '--key', keyId], 'written under v1'));
    const rotated = JSON.parse(ok(await cli(['keys', 'rotate', keyId]))) as { version: number };
    expect(rotated.version).toBe(2);
    const after = JSON.parse(ok(await cli(['encrypt', '--key', keyId], 'written under v2'))) as { key_version: number };
    expect(after.key_version).toBe(2);
    expect((await cli(['decrypt'], before)).stdout.toString()).toBe('written under v1');
  });

  it('disable refuses encryption with a clear error; enable restores it', async () => {
    ok(await cli(['keys', 'disable', keyId]));
    const refused = await cli(['encrypt', '--key', keyId], 'x');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^error: PAL_KMS_\w+: /);
    ok(await cli(['keys', 'enable', keyId]));
    ok(await cli(['encrypt', '--key', keyId], 'x'));
  });

  it('keys import wraps a key file for the server; the imported key encrypts and decrypts', async () => {
    const file = join(srv.dataDir, '..', 'byok.key');
    writeFileSync(file, randomBytes(32), { mode: 0o600 });
    const imported = ok(await cli(['keys', 'import', '--key-file', file, '--classification', 'confidential'])).trim();
    const shown = JSON.parse(ok(await cli(['keys', 'show', imported]))) as { origin: string; exportable: boolean };
    expect(shown).toMatchObject({ origin: 'imported', exportable: false });
    const sealed = ok(await cli(['encrypt', '--key', imported], 'byok'));
    expect((await cli(['decrypt'], sealed)).stdout.toString()).toBe('byok');
  });

  it('bad input fails with a message and exit code 2, not a stack trace', async () => {
    const notJson = await cli(['decrypt'], 'this is not JSON');
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toMatch(/not EncryptedData JSON/);
    const badContext = await cli(['encrypt', '--key', keyId, '--context', '[1,2]'], 'x');
    expect(badContext.code).toBe(2);
    expect(badContext.stderr).not.toMatch(/\n\s+at /);
  });

  it('a wrong token is refused and says so', async () => {
    const r = await runCli(['keys', 'list'], { env: { ...cliEnv, PALISADE_TOKEN: `${srv.token}x` } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: PAL_AUTH_\w+: /);
  });

  it('an unreachable server is named in the error', async () => {
    const r = await runCli(['keys', 'list'], { env: { ...cliEnv, PALISADE_ADDR: '127.0.0.1:1' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('cannot reach Palisade at 127.0.0.1:1');
  });
});

describe('palisade audit query', () => {
  it('lists the matching events newest first, as a table or JSON lines', async () => {
    const table = ok(await cli(['audit', 'query', '--since', '10m', '--type', 'kms.encrypt', '--resource', keyId, '--limit', '2'])).trim().split('\n');
    expect(table[0]!.split('\t').slice(0, 4)).toEqual(['INDEX', 'TIME', 'TYPE', 'OUTCOME']);
    expect(table).toHaveLength(3);
    const [newer, older] = table.slice(1).map((l) => l.split('\t'));
    expect(Number(newer![0])).toBeGreaterThan(Number(older![0]));
    expect(newer!.slice(2, 5)).toEqual(['kms.encrypt', 'success', 'owner']);
    expect(newer![7]).toBe(`kms_key:${keyId}`);

    const denied = ok(await cli(['audit', 'query', '--type', 'auth.*', '--outcome', 'denied', '--json'])).trim().split('\n');
    expect(denied.length).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(denied[0]!)).toMatchObject({ type: 'auth.failed', outcome: 'denied', error_code: 'PAL_AUTH_INVALID' });
  });

  it('refuses a time it cannot read', async () => {
    const r = await cli(['audit', 'query', '--since', 'last tuesday']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/neither a duration/);
  });
});

describe('palisade audit export / verify', () => {
  let logKey = '';
  it('verifies the live log through the API against the pinned checkpoint key', async () => {
    const log = JSON.parse(ok(await cli(['audit', 'log']))) as { verifier_keys: string[]; size: number };
    logKey = log.verifier_keys[0]!;
    expect(logKey).toMatch(/^palisade\/audit\/log_[a-z0-9]+\+[0-9a-f]{8}\+/);
    await waitForCheckpoint();
    const r = await cli(['audit', 'verify', '--log-key', logKey]);
    const out = ok(r);
    const m = /^audit log OK: palisade\/audit\/log_\w+, (\d+) entries, root \S+, (\d+) signed checkpoints/m.exec(out);
    expect(m, out).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(10);
    expect(r.stderr).not.toMatch(/warning/);
  });

  it('exports to a file that verifies offline, and names the first entry changed in the file', async () => {
    const file = join(srv.dataDir, '..', 'audit-export.ndjson');
    ok(await cli(['audit', 'export', '--out', file]));
    const offline = await runCli(['audit', 'verify', '--file', file, '--log-key', logKey], { env: { PATH: process.env.PATH ?? '' } });
    expect(offline.code, offline.stderr).toBe(0);
    const lines = readFileSync(file, 'utf8').split('\n');
    const i = lines.findIndex((l) => l.startsWith('{"index":4,'));
    lines[i] = lines[i]!.replace('"outcome":"success"', '"outcome":"failure"');
    writeFileSync(file, lines.join('\n'));
    const r = await cli(['audit', 'verify', '--file', file, '--log-key', logKey]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/audit export MISMATCH at entry 4: the event does not hash to its leaf/);
    const wrongKey = logKey.replace(/\+[0-9a-f]{8}\+/, '+00000000+');
    expect((await cli(['audit', 'verify', '--file', file, '--log-key', wrongKey])).stderr).toMatch(/MISMATCH.*checkpoint/);
  });

  it('--database passes on the untouched ledger, and names the first entry whose stored event was changed', async () => {
    ok(await cli(['audit', 'verify', '--database']));
    await srv.stop();
    const db = new Database(join(srv.dataDir, 'palisade.db'));
    try {
      const row = db.prepare('SELECT idx, data FROM audit_events ORDER BY idx LIMIT 1 OFFSET 3').get() as { idx: number; data: string };
      const forged = row.data.replace('"outcome":"success"', '"outcome":"failure"');
      expect(forged, 'the event must carry an outcome to forge').not.toBe(row.data);
      db.prepare('UPDATE audit_events SET data = ? WHERE idx = ?').run(forged, row.idx);
    } finally {
      db.close();
    }
    const r = await cli(['audit', 'verify', '--database']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/audit log MISMATCH at entry 3:/);
  });
});

/** The server signs a checkpoint every second here (PALISADE_AUDIT_CHECKPOINT_SECONDS=1). */
async function waitForCheckpoint(): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await cli(['audit', 'checkpoint'])).code === 0) return;
    await new Promise((res) => setTimeout(res, 200));
  }
  throw new Error('no checkpoint was signed');
}
