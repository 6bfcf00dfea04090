import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backupFileName, parseBackupFileName, planPrune, pruneDirectory, type BackupFileRef } from './retention.js';

/** One backup a day at 02:00 UTC from `from` to `to` (inclusive). */
function dailySeries(from: string, to: string): BackupFileRef[] {
  const out: BackupFileRef[] = [];
  for (let t = new Date(`${from}T02:00:00Z`); t <= new Date(`${to}T02:00:00Z`); t = new Date(t.getTime() + 86_400_000)) {
    out.push({ name: backupFileName(t, `bak_${t.toISOString().slice(0, 10).replace(/-/g, '')}`), time: t });
  }
  return out;
}
const days = (refs: BackupFileRef[]) => refs.map((f) => f.time.toISOString().slice(0, 10)).sort();

describe('backup file names', () => {
  it('round-trip, sort by time, and reject anything else', () => {
    const t = new Date('2025-01-31T23:59:59.123Z');
    const name = backupFileName(t, 'bak_abc234');
    expect(name).toBe('palisade-20250131T235959Z-bak_abc234.pbak');
    expect(parseBackupFileName(name)).toEqual({ time: new Date('2025-01-31T23:59:59Z'), id: 'bak_abc234' });
    for (const bad of ['palisade-20250231T000000Z-bak_x.pbak', 'palisade-20250131T235959Z-bak_x.pbak.partial', '.palisade-20250131T235959Z-bak_x.pbak.partial', 'notes.txt', 'palisade-20250131T235959-bak_x.pbak']) {
      expect(parseBackupFileName(bad)).toBeNull();
    }
  });
});

describe('grandfather-father-son retention', () => {
  const series = dailySeries('2022-01-01', '2024-12-31');
  const now = new Date('2024-12-31T12:00:00Z'); // a Tuesday

  it('over three years of daily backups keeps exactly 30 daily, 12 weekly, 12 monthly and the yearly ones', () => {
    expect(series).toHaveLength(1096);
    const plan = planPrune(series, now);
    const daily = Array.from({ length: 30 }, (_, i) => `2024-12-${String(i + 2).padStart(2, '0')}`); // 12-02 .. 12-31
    // ISO weeks back from the one starting Mon 2024-12-30: the newest (Sunday's, or today's) of each of 12 weeks.
    const weekly = ['2024-10-20', '2024-10-27', '2024-11-03', '2024-11-10', '2024-11-17', '2024-11-24', '2024-12-01', '2024-12-08', '2024-12-15', '2024-12-22', '2024-12-29', '2024-12-31'];
    // The last day of each month of 2024 (a leap year).
    const monthly = ['2024-01-31', '2024-02-29', '2024-03-31', '2024-04-30', '2024-05-31', '2024-06-30', '2024-07-31', '2024-08-31', '2024-09-30', '2024-10-31', '2024-11-30', '2024-12-31'];
    const yearly = ['2022-12-31', '2023-12-31', '2024-12-31']; // 2018..2024; the series starts in 2022
    const expected = [...new Set([...daily, ...weekly, ...monthly, ...yearly])].sort();
    expect(expected).toHaveLength(30 + 7 + 11 + 2);
    expect(days(plan.keep)).toEqual(expected);
    expect(plan.remove).toHaveLength(1096 - expected.length);
    const reasonsOf = (d: string) => plan.keep.find((f) => f.time.toISOString().startsWith(d))!.reasons;
    expect(reasonsOf('2024-12-31')).toEqual(['daily', 'weekly', 'monthly', 'yearly']);
    expect(reasonsOf('2024-12-01')).toEqual(['weekly']);
    expect(reasonsOf('2023-12-31')).toEqual(['yearly']);
    expect(reasonsOf('2024-11-30')).toEqual(['monthly']);
  });

  it('pruning every day as backups arrive ends with the same files as one prune at the end (no file is needed after it went)', () => {
    let kept: BackupFileRef[] = [];
    for (const f of series) {
      const at = new Date(f.time.getTime() + 3_600_000);
      kept = planPrune([...kept, f], at).keep.map(({ name, time }) => ({ name, time }));
    }
    expect(days(kept)).toEqual(days(planPrune(series, new Date('2024-12-31T03:00:00Z')).keep));
  });

  it('keeps only the newest backup of a day, keeps backups dated in the future, and honours a custom policy', () => {
    const t = (iso: string): BackupFileRef => ({ name: backupFileName(new Date(iso), 'bak_x'), time: new Date(iso) });
    const files = [t('2024-06-10T01:00:00Z'), t('2024-06-10T13:00:00Z'), t('2024-06-12T00:00:00Z'), t('2024-05-01T00:00:00Z')];
    const plan = planPrune(files, new Date('2024-06-11T00:00:00Z'), { daily: 7, weekly: 0, monthly: 0, yearly: 0 });
    expect(plan.keep.map((f) => [f.time.toISOString(), f.reasons])).toEqual([
      ['2024-06-12T00:00:00.000Z', ['future']],
      ['2024-06-10T13:00:00.000Z', ['daily']],
    ]);
    expect(plan.remove.map((f) => f.time.toISOString())).toEqual(['2024-06-10T01:00:00.000Z', '2024-05-01T00:00:00.000Z']);
    expect(() => planPrune(files, new Date(), { daily: -1, weekly: 0, monthly: 0, yearly: 0 })).toThrow(/daily/);
  });

  it('pruneDirectory deletes only what the plan removes, only backup files, and nothing with dryRun', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'palisade-prune-'));
    try {
      const few = dailySeries('2024-01-01', '2024-03-31');
      for (const f of few) await writeFile(join(dir, f.name), 'x');
      await writeFile(join(dir, 'README.txt'), 'not a backup');
      await writeFile(join(dir, `.${few[0]!.name}.partial`), 'an interrupted backup');
      const at = new Date('2024-03-31T12:00:00Z');
      const dry = await pruneDirectory(dir, { now: at, dryRun: true });
      expect(dry.remove.length).toBeGreaterThan(0);
      expect(await readdir(dir)).toHaveLength(few.length + 2);
      const done = await pruneDirectory(dir, { now: at });
      expect(done.remove.map((f) => f.name)).toEqual(dry.remove.map((f) => f.name));
      expect((await readdir(dir)).sort()).toEqual([...dry.keep.map((f) => f.name), 'README.txt', `.${few[0]!.name}.partial`].sort());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
