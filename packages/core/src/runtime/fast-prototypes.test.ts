import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { keepWrapperPrototypesFast } from './fast-prototypes.js';

const MODULE = fileURLToPath(new URL('./fast-prototypes.ts', import.meta.url));

/**
 * Runs `code` (an ES module) in a fresh node with natives syntax, `fast(o)` being V8's %HasFastProperties; its last
 * line of output, as JSON. A fresh process: V8 makes a prototype slow only the first time it is set up as one.
 */
function inFreshV8(code: string): unknown {
  const src = `const fast = (o) => %HasFastProperties(o);\nconst wrappers = () => [String.prototype, Number.prototype, Boolean.prototype].map(fast);\n${code}`;
  const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--import', 'tsx', '--input-type=module', '-e', src], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

describe('primitive wrapper prototypes in V8 fast mode', () => {
  it('a class extending String, Number or Boolean makes its prototype slow; keepWrapperPrototypesFast makes it fast for good', () => {
    const got = inFreshV8(`
      import { keepWrapperPrototypesFast } from ${JSON.stringify(MODULE)};
      const before = wrappers();
      class S extends String {}
      class N extends Number {}
      class B extends Boolean {}
      const extended = wrappers();
      keepWrapperPrototypesFast();
      const fixed = wrappers();
      class S2 extends String {}
      class N2 extends Number {}
      class B2 extends Boolean {}
      console.log(JSON.stringify({ before, extended, fixed, again: wrappers(), works: new S2('ab').charCodeAt(1) + new N2(1).valueOf() + Number(new B2(true).valueOf()) }));
    `);
    // If `extended` is not all false, V8 no longer has the cliff, and the workaround (and this test) can go.
    expect(got).toEqual({ before: [true, true, true], extended: [false, false, false], fixed: [true, true, true], again: [true, true, true], works: 100 });
  });

  it('changes nothing a program can see', () => {
    const names = () => [String, Number, Boolean].map((c) => Reflect.ownKeys(c.prototype).map(String).sort());
    const before = names();
    keepWrapperPrototypesFast();
    expect(names()).toEqual(before);
  });
});
