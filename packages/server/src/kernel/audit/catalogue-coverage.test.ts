import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AUDIT_EVENT_CATALOGUE, auditEventTypes } from '@palisade/core';

const SRC = fileURLToPath(new URL('../../', import.meta.url)); // packages/server/src

/** The server's source files, tests excluded (they append synthetic events on purpose). */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = join(dir, d.name);
    if (d.isDirectory()) return sources(p);
    return d.name.endsWith('.ts') && !d.name.endsWith('.test.ts') ? [p] : [];
  });
}

const TYPE = "[a-z][a-z0-9_]*(?:\\.[a-z0-9_]+)+"; // dotted: resource types (kms_key, seal) have no dot
const LITERALS = [
  new RegExp(`\\baudit:\\s*'(${TYPE})'`, 'g'), // route config: { audit: 'kms.encrypt' }
  new RegExp(`\\btype:\\s*'(${TYPE})'`, 'g'), // ctx.emit({ type: ... }), ledger.append(tx, { type: ... })
  new RegExp(`\\baudited\\([^,()]*,\\s*'(${TYPE})'`, 'g'), // sys routes: audited(req, 'seal.init', ...)
];
const TEMPLATES = [/\b(?:audit|type):\s*`([a-z0-9_.]*)\$\{/g]; // audit: `kms.key.${action}`

interface Found {
  exact: Map<string, string[]>;
  prefixes: Map<string, string[]>;
}

function scan(): Found {
  const exact = new Map<string, string[]>();
  const prefixes = new Map<string, string[]>();
  const add = (m: Map<string, string[]>, k: string, where: string) => m.set(k, [...(m.get(k) ?? []), where]);
  for (const file of sources(SRC)) {
    const text = readFileSync(file, 'utf8');
    const where = (i: number) => `${relative(SRC, file)}:${text.slice(0, i).split('\n').length}`;
    for (const re of LITERALS) for (const m of text.matchAll(re)) add(exact, m[1]!, where(m.index));
    for (const re of TEMPLATES) for (const m of text.matchAll(re)) add(prefixes, m[1]!, where(m.index));
  }
  return { exact, prefixes };
}

describe('audit event catalogue coverage', () => {
  const found = scan();
  const types = auditEventTypes();

  it('finds the emitters (the scan itself works)', () => {
    expect(found.exact.size).toBeGreaterThan(40);
    expect(found.exact.get('kms.encrypt')).toBeDefined(); // route config
    expect(found.exact.get('kms.rotation.pre_check')).toBeDefined(); // ctx.emit
    expect(found.exact.get('kms.kek.rewrap')).toBeDefined(); // ledger.append
    expect(found.exact.get('seal.init')).toBeDefined(); // audited(req, ...)
    expect([...found.prefixes.keys()]).toContain('kms.key.');
  });

  it('every type the server emits is in the catalogue', () => {
    const missing = [...found.exact].filter(([t]) => !types.includes(t)).map(([t, at]) => `${t} (${at.join(', ')})`);
    expect(missing).toEqual([]);
  });

  it('every template type expands to catalogue entries', () => {
    const empty = [...found.prefixes].filter(([p]) => !types.some((t) => t.startsWith(p))).map(([p, at]) => `${p}* (${at.join(', ')})`);
    expect(empty).toEqual([]);
  });

  it('every entry not marked planned is emitted somewhere (so planned marks stay honest)', () => {
    const prefixes = [...found.prefixes.keys()];
    const unemitted = Object.values(AUDIT_EVENT_CATALOGUE)
      .filter((s) => !s.planned && !found.exact.has(s.type) && !prefixes.some((p) => s.type.startsWith(p)))
      .map((s) => s.type);
    expect(unemitted).toEqual([]);
  });
});
