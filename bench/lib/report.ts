// Small helpers shared by the benchmarks: aligned tables, number formatting, percentiles, "is this the entry file".
import { pathToFileURL } from 'node:url';
import { cpus } from 'node:os';

export type Cell = string | number;

/** Prints rows as an aligned table; numeric cells are right-aligned, text cells left-aligned. */
export function table(headers: string[], rows: Cell[][]): string {
  const text = rows.map((r) => r.map((c) => String(c)));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => (r[i] ?? '').length)));
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number' || /^[-+]?[0-9.,]+( ?[%x×a-zA-Z/]*)?$/.test(String(r[i] ?? ''))));
  const line = (cells: string[]) => cells.map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...text.map(line)].join('\n');
}

/** 12345.6 -> "12,346"; small numbers keep `digits` decimals. */
export function num(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return 'n/a';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function ratio(a: number, b: number): string {
  return b > 0 && Number.isFinite(a) ? (a / b).toFixed(3) : 'n/a';
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** True when `importMetaUrl` is the file node was started with (so a benchmark can also run on its own). */
export function isEntry(importMetaUrl: string): boolean {
  const arg = process.argv[1];
  return arg !== undefined && pathToFileURL(arg).href === importMetaUrl;
}

export function machine(): { node: string; openssl: string; cpu: string; cores: number; platform: string } {
  const c = cpus();
  return { node: process.version, openssl: process.versions.openssl, cpu: c[0]?.model.trim() ?? 'unknown', cores: c.length, platform: `${process.platform}-${process.arch}` };
}

export function heading(title: string): void {
  console.log(`\n=== ${title} ${'='.repeat(Math.max(0, 74 - title.length))}`);
}
