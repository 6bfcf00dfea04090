import { readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Grandfather-father-son retention over backup files' timestamps (UTC, taken from the file name, never from the
 * file system's mtime, which copies and restores change).
 *
 * Within the last `daily` calendar days the newest backup of each day is kept; within the last `weekly` ISO weeks
 * (Monday to Sunday) the newest of each week; within the last `monthly` calendar months the newest of each month;
 * within the last `yearly` calendar years the newest of each year. The windows count calendar periods back from
 * `now`, the current period included, whether or not they hold a backup (so a gap in backups is not filled by
 * keeping older ones). A backup dated after `now` is kept. Everything else goes.
 */
export interface RetentionPolicy {
  daily: number;
  weekly: number;
  monthly: number;
  yearly: number;
}

export const DEFAULT_RETENTION: RetentionPolicy = { daily: 30, weekly: 12, monthly: 12, yearly: 7 };

export interface BackupFileRef {
  name: string;
  time: Date;
}

export type KeepReason = 'daily' | 'weekly' | 'monthly' | 'yearly' | 'future';

export interface PrunePlan {
  /** Newest first, with every rule that keeps each file. */
  keep: Array<BackupFileRef & { reasons: KeepReason[] }>;
  /** Newest first. */
  remove: BackupFileRef[];
}

const NAME = /^palisade-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-([a-z][a-z0-9_-]*)\.pbak$/;

/** `palisade-20250131T235959Z-<id>.pbak`: sortable by name, and what `prune` reads the time from. */
export function backupFileName(time: Date, id: string): string {
  const stamp = time.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');
  return `palisade-${stamp}-${id}.pbak`;
}

/** The time and id in a backup file name, or null for any other name (which prune never touches). */
export function parseBackupFileName(name: string): { time: Date; id: string } | null {
  const m = NAME.exec(name);
  if (!m) return null;
  const [, y, mo, d, h, mi, s, id] = m;
  const time = new Date(`${y}-${mo}-${d}T${h}:${mi}:${s}Z`);
  if (Number.isNaN(time.getTime()) || backupFileName(time, id!) !== name) return null; // e.g. 20250231
  return { time, id: id! };
}

const DAY_MS = 86_400_000;
const dayIndex = (t: Date): number => Math.floor(t.getTime() / DAY_MS);
/** Day index of the Monday that starts t's ISO week (1970-01-01 was a Thursday). */
const weekIndex = (t: Date): number => {
  const d = dayIndex(t);
  return d - ((t.getUTCDay() + 6) % 7);
};
const monthIndex = (t: Date): number => t.getUTCFullYear() * 12 + t.getUTCMonth();

interface Rule {
  reason: Exclude<KeepReason, 'future'>;
  count: number;
  /** The period of t, as a number; periods back from now = (period(now) - period(t)) / step. */
  period: (t: Date) => number;
  step: number;
}

/** Which files to keep and which to remove under `policy` at `now`. Pure: the same input gives the same plan. */
export function planPrune(files: BackupFileRef[], now: Date, policy: RetentionPolicy = DEFAULT_RETENTION): PrunePlan {
  for (const [k, v] of Object.entries(policy)) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`retention ${k} must be a whole number >= 0`);
  }
  const sorted = [...files].sort((a, b) => b.time.getTime() - a.time.getTime() || (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
  const rules: Rule[] = [
    { reason: 'daily', count: policy.daily, period: dayIndex, step: 1 },
    { reason: 'weekly', count: policy.weekly, period: weekIndex, step: 7 },
    { reason: 'monthly', count: policy.monthly, period: monthIndex, step: 1 },
    { reason: 'yearly', count: policy.yearly, period: (t) => t.getUTCFullYear(), step: 1 },
  ];
  const reasons = new Map<BackupFileRef, KeepReason[]>();
  const add = (f: BackupFileRef, r: KeepReason) => reasons.set(f, [...(reasons.get(f) ?? []), r]);
  for (const f of sorted) if (f.time.getTime() > now.getTime()) add(f, 'future');
  for (const rule of rules) {
    const current = rule.period(now);
    const seen = new Set<number>();
    for (const f of sorted) {
      if (f.time.getTime() > now.getTime()) continue;
      const p = rule.period(f.time);
      if ((current - p) / rule.step >= rule.count) continue; // outside the window
      if (seen.has(p)) continue; // not the newest of its period
      seen.add(p);
      add(f, rule.reason);
    }
  }
  return {
    keep: sorted.filter((f) => reasons.has(f)).map((f) => ({ ...f, reasons: reasons.get(f)! })),
    remove: sorted.filter((f) => !reasons.has(f)),
  };
}

/** Apply the policy to the backup files in `dir` (other files are ignored). With `dryRun`, nothing is deleted. */
export async function pruneDirectory(dir: string, opts: { now?: Date; policy?: RetentionPolicy; dryRun?: boolean } = {}): Promise<PrunePlan> {
  const files: BackupFileRef[] = [];
  for (const name of await readdir(dir)) {
    const parsed = parseBackupFileName(name);
    if (parsed) files.push({ name, time: parsed.time });
  }
  const plan = planPrune(files, opts.now ?? new Date(), opts.policy ?? DEFAULT_RETENTION);
  if (!opts.dryRun) {
    for (const f of plan.remove) await unlink(join(dir, f.name));
  }
  return plan;
}
