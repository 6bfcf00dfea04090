import { readFileSync } from 'node:fs';

/**
 * NIST SP 800-63B length-first policy: a minimum and a maximum length, a blocklist of common passwords and of the
 * account's own names, and no composition rules (they push users to `Password1!` and do not add strength).
 */

/** The default minimum; configurable, but never below NIST's floor of 8 (the common-password list starts there). */
export const DEFAULT_MIN_PASSWORD_LENGTH = 12;
export const MIN_PASSWORD_LENGTH_FLOOR = 8;
export const MAX_PASSWORD_LENGTH = 128;
/** A username or e-mail local part shorter than this is too short to look for inside a password. */
const MIN_NAME_LENGTH = 3;

/** Stable codes: the API returns them in `violations` (PAL_AUTH_PASSWORD_POLICY) and clients translate them. */
export type PasswordViolation = 'too_short' | 'too_long' | 'common' | 'contains_username' | 'contains_email';

export interface PasswordContext {
  username?: string;
  email?: string;
  minLength?: number;
}

/**
 * The list lives in `src/` and is not copied by `tsc -b`, so it is found from the package root: this module is at
 * `<package>/{src,dist}/engines/identity/`, three levels below the root, whether run from source (vitest, tsx) or
 * compiled. Exported for the test that checks the compiled location resolves too.
 */
export function commonPasswordsUrl(moduleUrl: string | URL = import.meta.url): URL {
  return new URL('../../../src/engines/identity/common-passwords.txt', moduleUrl);
}

let common: Set<string> | undefined;

/** Loaded once, on first use: the header (up to the first empty line) is the source and license. */
function commonPasswords(): Set<string> {
  if (!common) {
    const text = readFileSync(commonPasswordsUrl(), 'utf8');
    const body = text.slice(text.indexOf('\n\n') + 2);
    common = new Set(body.split('\n').filter((l) => l.length > 0).map((l) => l.toLowerCase()));
  }
  return common;
}

/** Case-insensitive comparison of compatibility-normalised text (so `ＰＡＳＳ` is `pass`). */
function fold(s: string): string {
  return s.normalize('NFKC').toLowerCase();
}

export function isCommonPassword(password: string): boolean {
  return commonPasswords().has(fold(password));
}

/** Violations of the policy, in a stable order; an empty array means the password is accepted. */
export function checkPassword(password: string, ctx: PasswordContext = {}): PasswordViolation[] {
  const violations: PasswordViolation[] = [];
  const minLength = Math.min(MAX_PASSWORD_LENGTH, Math.max(MIN_PASSWORD_LENGTH_FLOOR, ctx.minLength ?? DEFAULT_MIN_PASSWORD_LENGTH));
  // Length in Unicode code points after NFKC, as NIST counts it: an emoji is one character, not two UTF-16 units.
  const length = [...password.normalize('NFKC')].length;
  if (length < minLength) violations.push('too_short');
  if (length > MAX_PASSWORD_LENGTH) violations.push('too_long');
  if (isCommonPassword(password)) violations.push('common');
  const folded = fold(password);
  const username = ctx.username ? fold(ctx.username) : '';
  if ([...username].length >= MIN_NAME_LENGTH && folded.includes(username)) violations.push('contains_username');
  const local = ctx.email ? fold(ctx.email.slice(0, Math.max(0, ctx.email.lastIndexOf('@')))) : '';
  if ([...local].length >= MIN_NAME_LENGTH && folded.includes(local)) violations.push('contains_email');
  return violations;
}
