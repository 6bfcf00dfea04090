import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkPassword, commonPasswordsUrl, isCommonPassword, MAX_PASSWORD_LENGTH } from './password-policy.js';

describe('password policy (NIST SP 800-63B)', () => {
  it('accepts a four-word passphrase, and imposes no composition rules', () => {
    expect(checkPassword('correct horse battery staple', {})).toEqual([]);
    expect(checkPassword('alllowercaseletters', {})).toEqual([]);
    expect(checkPassword('zebra kettle mosaic ferry', { username: 'alice', email: 'alice@example.com' })).toEqual([]);
  });

  it('too_short below 12 code points by default, and honours a configured minimum', () => {
    expect(checkPassword('tk7#qp2mzx9', {})).toEqual(['too_short']); // 11
    expect(checkPassword('tk7#qp2mzx9w', {})).toEqual([]); // 12
    expect(checkPassword('tk7#qp2mzx9w', { minLength: 16 })).toEqual(['too_short']);
    expect(checkPassword('tk7#qp2m', { minLength: 8 })).toEqual([]);
    // Never below NIST's floor of 8, whatever is configured.
    expect(checkPassword('tk7#qp2', { minLength: 4 })).toEqual(['too_short']);
    expect(checkPassword('', {})).toEqual(['too_short']);
  });

  it('too_long above 128 code points', () => {
    expect(checkPassword('q'.repeat(MAX_PASSWORD_LENGTH - 3) + 'zx9', {})).toEqual([]);
    expect(checkPassword('q'.repeat(MAX_PASSWORD_LENGTH) + 'z', {})).toEqual(['too_long']);
  });

  it('counts Unicode code points, not UTF-16 units: 12 emoji are 12 characters', () => {
    const emoji = '🐢🦊🐙🦉🐝🦀🐳🦋🐌🦔🐸🦜';
    expect(emoji).toHaveLength(24); // UTF-16 units
    expect(checkPassword(emoji, {})).toEqual([]);
    expect(checkPassword(emoji.slice(0, 22), {})).toEqual(['too_short']); // 11 emoji
    // 65 emoji are 130 UTF-16 units but 65 characters: not too long.
    expect(checkPassword('🦊'.repeat(65), {})).toEqual([]);
    expect(checkPassword('🦊'.repeat(129), {})).toEqual(['too_long']);
  });

  it('measures after NFKC: a ligature is two letters, a decomposed accent is one', () => {
    expect(checkPassword('\ufb01'.repeat(6), {})).toEqual([]); // "ﬁ" x6 = "fi" x6 = 12 code points
    expect(checkPassword('e\u0301'.repeat(11), {})).toEqual(['too_short']); // 22 code points, 11 after NFKC
  });

  it('common: refuses passwords from the list, case-insensitively and after NFKC', () => {
    expect(isCommonPassword('password')).toBe(true);
    expect(isCommonPassword('PassWord')).toBe(true);
    expect(isCommonPassword('ｐａｓｓｗｏｒｄ')).toBe(true); // full-width letters
    expect(isCommonPassword('correct horse battery staple')).toBe(false);
    expect(checkPassword('qwertyuiop', { minLength: 8 })).toEqual(['common']);
    expect(checkPassword('1qaz2wsx3edc', {})).toEqual(['common']);
    expect(checkPassword('password', {})).toEqual(['too_short', 'common']);
  });

  it('contains_username and contains_email, case-insensitively, when the name has at least 3 characters', () => {
    expect(checkPassword('my name is Alice Liddell', { username: 'alice' })).toEqual(['contains_username']);
    expect(checkPassword('my name is ALICE liddell', { username: 'Alice' })).toEqual(['contains_username']);
    expect(checkPassword('gryphon-mockturtle-42', { email: 'MockTurtle@example.com' })).toEqual(['contains_email']);
    expect(checkPassword('the white rabbit ran', { username: 'rabbit', email: 'white@example.com' })).toEqual(['contains_username', 'contains_email']);
    // Two-character names are too short to police: they are in too many good passwords.
    expect(checkPassword('zebra kettle mosaic ferry', { username: 'ke', email: 'ry@example.com' })).toEqual([]);
    // The domain part of the e-mail is not the local part.
    expect(checkPassword('visit example soon please', { email: 'zed@example.com' })).toEqual([]);
  });

  it('finds the list from the compiled location too (tsc does not copy .txt files to dist/)', () => {
    const here = fileURLToPath(commonPasswordsUrl());
    expect(existsSync(here)).toBe(true);
    const dist = new URL('../../../dist/engines/identity/password-policy.js', import.meta.url);
    expect(fileURLToPath(commonPasswordsUrl(dist))).toBe(here);
  });
});
