import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { generateRecoveryCodes, hashRecoveryCode, normaliseRecoveryCode, RECOVERY_CODE_ALPHABET } from './recovery-codes.js';

describe('recovery codes', () => {
  it('makes 10 distinct codes by default, or the count asked for', () => {
    const codes = generateRecoveryCodes();
    expect(codes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    expect(generateRecoveryCodes(3)).toHaveLength(3);
    expect(() => generateRecoveryCodes(0)).toThrow(RangeError);
  });

  it('formats 16 unambiguous symbols in four groups: 80 bits each', () => {
    expect(RECOVERY_CODE_ALPHABET).toHaveLength(32);
    expect(new Set(RECOVERY_CODE_ALPHABET).size).toBe(32);
    expect(RECOVERY_CODE_ALPHABET).not.toMatch(/[ilou]/);
    for (const code of generateRecoveryCodes(50)) {
      expect(code).toMatch(/^[0-9a-hjkmnp-tv-z]{4}(-[0-9a-hjkmnp-tv-z]{4}){3}$/);
      expect(normaliseRecoveryCode(code).length * Math.log2(RECOVERY_CODE_ALPHABET.length)).toBeGreaterThanOrEqual(80);
    }
  });

  it('uses the whole alphabet (no bias towards a subset)', () => {
    const seen = new Set(generateRecoveryCodes(100).join('').replace(/-/g, ''));
    expect(seen.size).toBe(32);
  });

  it('normalises what people type: case, spaces, dashes and look-alike letters', () => {
    expect(normaliseRecoveryCode('ABCD EFGH-JKMN  pqrs')).toBe('abcdefghjkmnpqrs');
    expect(normaliseRecoveryCode('O0oI1iLl-\t2345')).toBe('000' + '11111' + '2345');
    const [code] = generateRecoveryCodes(1) as [string];
    expect(normaliseRecoveryCode(code.toUpperCase().replace(/-/g, ' '))).toBe(normaliseRecoveryCode(code));
  });

  it('hashes deterministically to SHA-256 of the normalised code', () => {
    const [code] = generateRecoveryCodes(1) as [string];
    const h = hashRecoveryCode(code);
    expect(h).toHaveLength(32);
    expect(hashRecoveryCode(code).equals(h)).toBe(true);
    expect(hashRecoveryCode(` ${code.toUpperCase().replace(/-/g, ' ')} `).equals(h)).toBe(true);
    expect(hashRecoveryCode('ABCD-EFGH-JKMN-PQRS').toString('hex')).toBe(createHash('sha256').update('abcdefghjkmnpqrs').digest('hex'));
    expect(hashRecoveryCode('abcd-efgh-jkmn-pqrs').equals(hashRecoveryCode('abcd-efgh-jkmn-pqrt'))).toBe(false);
  });
});
