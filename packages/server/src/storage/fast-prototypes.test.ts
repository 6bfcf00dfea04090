import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const RUNTIME = fileURLToPath(new URL('../runtime.ts', import.meta.url));
const SERVE = fileURLToPath(new URL('../cli/serve.ts', import.meta.url));

describe("the server's modules leave String.prototype in V8's fast mode", () => {
  // In a fresh node (V8 makes a prototype slow only the first time it is set up as one): the whole graph of
  // `palisade serve` loaded, ioredis among it (its VerbatimString extends String; redis.ts undoes what that does).
  it('after loading runtime.ts and cli/serve.ts, String, Number and Boolean prototypes are fast', () => {
    const code = `
      await import(${JSON.stringify(RUNTIME)});
      await import(${JSON.stringify(SERVE)});
      console.log(JSON.stringify([String.prototype, Number.prototype, Boolean.prototype].map((o) => %HasFastProperties(o))));
    `;
    const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--import', 'tsx', '--input-type=module', '-e', code], { encoding: 'utf8', timeout: 60_000, cwd: fileURLToPath(new URL('../..', import.meta.url)) });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').pop()!)).toEqual([true, true, true]);
  });
});
