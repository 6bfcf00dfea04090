import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { PalisadeError } from '@palisade/core';
import { describe, expect, it } from 'vitest';
import { base32Decode, base32Encode, hotp, newTotpSecret, otpauthUri, totp, totpStep, verifyTotp } from './totp.js';
import type { OtpAlgorithm } from './totp.js';

interface HotpVectors {
  digits: number;
  secretHex: string;
  secretBase32: string;
  vectors: { count: number; hotp: string }[];
}
interface TotpVectors {
  T0: number;
  timeStepSeconds: number;
  digits: number;
  secrets: Record<OtpAlgorithm, { hex: string; base32: string }>;
  vectors: { unixTime: number; timeStepHex: string; mode: OtpAlgorithm; totp: string }[];
}

const load = <T>(name: string): T =>
  JSON.parse(readFileSync(new URL(`../../../../../test-vectors/rfc-otp/${name}`, import.meta.url), 'utf8')) as T;
const HOTP = load<HotpVectors>('rfc4226_hotp_vectors.json');
const TOTP = load<TotpVectors>('rfc6238_totp_vectors.json');

const secret = Buffer.from('12345678901234567890', 'ascii');
const NOW = 1_700_000_000_000; // an instant in the middle of a 30 s step (1_700_000_000 / 30 = 56_666_666.67)

function validationError(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(PalisadeError);
    expect((e as PalisadeError).code).toBe('PAL_VALIDATION_FAILED');
    return;
  }
  throw new Error('expected PAL_VALIDATION_FAILED');
}

describe('HOTP: RFC 4226 Appendix D', () => {
  it.each(HOTP.vectors)('count $count -> $hotp', ({ count, hotp: expected }) => {
    const key = Buffer.from(HOTP.secretHex, 'hex');
    expect(hotp(key, count, { digits: HOTP.digits as 6 })).toBe(expected);
    expect(hotp(key, BigInt(count))).toBe(expected);
  });

  it('the vector secret round-trips through base32', () => {
    expect(base32Encode(Buffer.from(HOTP.secretHex, 'hex'))).toBe(HOTP.secretBase32);
    expect(base32Decode(HOTP.secretBase32).toString('hex')).toBe(HOTP.secretHex);
  });

  it('refuses a counter outside 0..2^64-1 and bad digits', () => {
    validationError(() => hotp(secret, -1));
    validationError(() => hotp(secret, 2n ** 64n));
    validationError(() => hotp(secret, 1.5));
    validationError(() => hotp(secret, 0, { digits: 5 as 6 }));
  });
});

describe('TOTP: RFC 6238 Appendix B', () => {
  it.each(TOTP.vectors)('$mode at $unixTime -> $totp', ({ unixTime, timeStepHex, mode, totp: expected }) => {
    expect(TOTP.T0).toBe(0);
    const key = Buffer.from(TOTP.secrets[mode].hex, 'hex');
    expect(base32Decode(TOTP.secrets[mode].base32).equals(key)).toBe(true);
    const opts = { digits: TOTP.digits as 8, algorithm: mode, period: TOTP.timeStepSeconds };
    expect(BigInt(totpStep(unixTime * 1000, TOTP.timeStepSeconds))).toBe(BigInt(`0x${timeStepHex}`));
    expect(totp(key, unixTime * 1000, opts)).toBe(expected);
    expect(hotp(key, BigInt(`0x${timeStepHex}`), opts)).toBe(expected);
    expect(verifyTotp(key, expected, unixTime * 1000, { ...opts, window: 0 })).toEqual({ ok: true, step: Number(`0x${timeStepHex}`) });
  });
});

describe('verifyTotp', () => {
  const step = totpStep(NOW);
  const codeAt = (s: number) => hotp(secret, s);

  it('accepts the current step and one step either side by default', () => {
    for (const s of [step - 1, step, step + 1]) expect(verifyTotp(secret, codeAt(s), NOW)).toEqual({ ok: true, step: s });
  });

  it('refuses codes two steps away, unless the window is widened', () => {
    expect(verifyTotp(secret, codeAt(step - 2), NOW)).toEqual({ ok: false, reason: 'invalid_code' });
    expect(verifyTotp(secret, codeAt(step + 2), NOW)).toEqual({ ok: false, reason: 'invalid_code' });
    expect(verifyTotp(secret, codeAt(step - 2), NOW, { window: 2 })).toEqual({ ok: true, step: step - 2 });
    expect(verifyTotp(secret, codeAt(step + 1), NOW, { window: 0 })).toEqual({ ok: false, reason: 'invalid_code' });
  });

  it('accepts a code once: at or before lastStep it is replayed', () => {
    const first = verifyTotp(secret, codeAt(step), NOW, { lastStep: null });
    expect(first).toEqual({ ok: true, step });
    expect(verifyTotp(secret, codeAt(step), NOW, { lastStep: step })).toEqual({ ok: false, reason: 'replayed' });
    expect(verifyTotp(secret, codeAt(step - 1), NOW, { lastStep: step })).toEqual({ ok: false, reason: 'replayed' });
    // A later code in the window is still good after an earlier one was used.
    expect(verifyTotp(secret, codeAt(step + 1), NOW, { lastStep: step })).toEqual({ ok: true, step: step + 1 });
    // A wrong code stays invalid_code whatever lastStep says (the reason does not depend on the replay state).
    expect(verifyTotp(secret, '000000' === codeAt(step) ? '000001' : '000000', NOW, { lastStep: step })).toEqual({ ok: false, reason: 'invalid_code' });
  });

  it('refuses codes of the wrong length or with non-digits, and a wrong secret', () => {
    const code = codeAt(step);
    expect(verifyTotp(secret, code.slice(1), NOW)).toEqual({ ok: false, reason: 'invalid_code' });
    expect(verifyTotp(secret, `${code}0`, NOW)).toEqual({ ok: false, reason: 'invalid_code' });
    expect(verifyTotp(secret, '', NOW)).toEqual({ ok: false, reason: 'invalid_code' });
    expect(verifyTotp(secret, 'abcdef', NOW)).toEqual({ ok: false, reason: 'invalid_code' });
    expect(verifyTotp(secret, code, NOW, { digits: 8 })).toEqual({ ok: false, reason: 'invalid_code' });
    expect(verifyTotp(Buffer.alloc(20, 7), code, NOW)).toEqual({ ok: false, reason: 'invalid_code' });
  });

  it('tolerates spaces typed inside a code (e.g. "123 456")', () => {
    const code = codeAt(step);
    expect(verifyTotp(secret, `${code.slice(0, 3)} ${code.slice(3)}`, NOW)).toEqual({ ok: true, step });
  });

  it('honours digits, algorithm and period', () => {
    const opts = { digits: 8, algorithm: 'SHA256', period: 60 } as const;
    const code = totp(secret, NOW, opts);
    expect(code).toHaveLength(8);
    expect(verifyTotp(secret, code, NOW, opts)).toEqual({ ok: true, step: totpStep(NOW, 60) });
    expect(verifyTotp(secret, code, NOW, { ...opts, algorithm: 'SHA1' }).ok).toBe(false);
  });

  it('refuses a nonsensical window or period', () => {
    validationError(() => verifyTotp(secret, '123456', NOW, { window: -1 }));
    validationError(() => verifyTotp(secret, '123456', NOW, { window: 1000 }));
    validationError(() => verifyTotp(secret, '123456', NOW, { period: 0 }));
  });
});

describe('base32', () => {
  it('round-trips every length 0..40 of random bytes, without padding on output', () => {
    for (let n = 0; n <= 40; n++) {
      const b = randomBytes(n);
      const text = base32Encode(b);
      expect(text).toMatch(/^[A-Z2-7]*$/);
      expect(base32Decode(text).equals(b)).toBe(true);
    }
  });

  it('matches the RFC 4648 §10 test vectors', () => {
    const cases: [string, string][] = [
      ['', ''],
      ['f', 'MY======'],
      ['fo', 'MZXQ===='],
      ['foo', 'MZXW6==='],
      ['foob', 'MZXW6YQ='],
      ['fooba', 'MZXW6YTB'],
      ['foobar', 'MZXW6YTBOI======'],
    ];
    for (const [plain, encoded] of cases) {
      expect(base32Encode(Buffer.from(plain))).toBe(encoded.replace(/=+$/, ''));
      expect(base32Decode(encoded).toString()).toBe(plain);
    }
  });

  it('accepts lower case, spaces and padding', () => {
    expect(base32Decode('gezd gnbv gy3t qojq gezd gnbv gy3t qojq').toString()).toBe('12345678901234567890');
    expect(base32Decode(' mzxw6=== ').toString()).toBe('foo');
  });

  it('throws PAL_VALIDATION_FAILED on bad input', () => {
    validationError(() => base32Decode('MZXW1')); // 1 is not in the alphabet
    validationError(() => base32Decode('MZ=XW6'));
    validationError(() => base32Decode('M')); // a length no byte string encodes to
    validationError(() => base32Decode('MZX'));
    validationError(() => base32Decode('MZXW6Y'));
    validationError(() => base32Decode('MZXW-6YTB'));
  });
});

describe('newTotpSecret and otpauthUri', () => {
  it('makes 20 random bytes', () => {
    const a = newTotpSecret();
    expect(a).toHaveLength(20);
    expect(a.equals(newTotpSecret())).toBe(false);
  });

  it('builds a Key Uri Format URI with the defaults', () => {
    expect(otpauthUri({ secret, account: 'alice@example.com', issuer: 'Palisade' })).toBe(
      'otpauth://totp/Palisade:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Palisade&algorithm=SHA1&digits=6&period=30',
    );
  });

  it('percent-encodes the label parts and the issuer, and carries the options', () => {
    const uri = otpauthUri({ secret, account: 'bob: the builder', issuer: 'ACME Co & Sons', digits: 8, period: 60, algorithm: 'SHA512' });
    const url = new URL(uri);
    expect(url.protocol).toBe('otpauth:');
    expect(url.host).toBe('totp');
    expect(url.pathname).toBe('/ACME%20Co%20%26%20Sons:bob%3A%20the%20builder');
    expect(decodeURIComponent(url.pathname.slice(1).split(':')[1]!)).toBe('bob: the builder');
    expect(Object.fromEntries(url.searchParams)).toEqual({
      secret: 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ',
      issuer: 'ACME Co & Sons',
      algorithm: 'SHA512',
      digits: '8',
      period: '60',
    });
  });
});

function hasOathtool(): boolean {
  try {
    execFileSync('oathtool', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

// oathtool (Debian package `oathtool`) is an independent implementation; scripts/install-services.sh does not install it.
const oathtool = hasOathtool();
describe.skipIf(!oathtool)(`cross-check with oathtool${oathtool ? '' : ' (skipped: oathtool is not installed; apt-get install oathtool)'}`, () => {
  it('agrees on TOTP codes for several instants, algorithms and lengths', () => {
    const key = newTotpSecret();
    for (const [t, algorithm, digits] of [
      [0, 'SHA1', 6],
      [NOW, 'SHA1', 6],
      [NOW + 12_345_000, 'SHA256', 8],
      [2_000_000_000_000, 'SHA512', 7],
    ] as const) {
      const out = execFileSync('oathtool', [
        `--totp=${algorithm.toLowerCase()}`,
        `--digits=${digits}`,
        `--now=@${Math.floor(t / 1000)}`,
        key.toString('hex'),
      ], { encoding: 'utf8' }).trim();
      expect(totp(key, t, { algorithm, digits })).toBe(out);
    }
  });

  it('agrees on HOTP codes', () => {
    const key = newTotpSecret();
    for (const counter of [0, 1, 99, 123_456_789]) {
      const out = execFileSync('oathtool', [`--counter=${counter}`, key.toString('hex')], { encoding: 'utf8' }).trim();
      expect(hotp(key, counter)).toBe(out);
    }
  });
});
