import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PalisadeError } from '../errors/index.js';
import {
  MAX_DEPTH,
  TAG,
  bitsSet,
  derBoolean,
  derInteger,
  derNull,
  derOctetString,
  derOid,
  derSequence,
  derSetOf,
  derTlv,
  parseDer,
  readBitString,
  readBoolean,
  readInteger,
  readOid,
  readString,
  readTime,
} from './der.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** The PalisadeError message `fn` throws (fails the test if it throws anything else or nothing). */
function derFailure(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PalisadeError);
    expect((e as PalisadeError).code).toBe('PAL_VALIDATION_FAILED');
    return (e as PalisadeError).message;
  }
  throw new Error('expected a DER error, nothing was thrown');
}

describe('DER writer', () => {
  it('encodes INTEGERs in minimal two’s complement', () => {
    const cases: [bigint, string][] = [
      [0n, '020100'],
      [1n, '020101'],
      [127n, '02017f'],
      [128n, '02020080'],
      [255n, '020200ff'],
      [256n, '02020100'],
      [-1n, '0201ff'],
      [-128n, '020180'],
      [-129n, '0202ff7f'],
      [2n ** 64n - 1n, '020900ffffffffffffffff'],
    ];
    for (const [v, enc] of cases) {
      expect(derInteger(v).toString('hex')).toBe(enc);
      expect(readInteger(parseDer(hex(enc)), 't', 'n')).toBe(v);
    }
  });

  it('encodes OIDs (sha256, id-ct-TSTInfo) and lengths in short and long form', () => {
    expect(derOid('2.16.840.1.101.3.4.2.1').toString('hex')).toBe('0609608648016503040201');
    expect(derOid('1.2.840.113549.1.9.16.1.4').toString('hex')).toBe('060b2a864886f70d0109100104');
    for (const oid of ['0.0', '1.39', '2.999.1', '1.3.6.1.4.1.99999.3161.1', '2.25.329800735698586629295641978511506172918']) {
      expect(readOid(parseDer(derOid(oid)), 't', 'oid')).toBe(oid);
    }
    expect(() => derOid('1.40')).toThrow(RangeError);
    expect(() => derOid('1.2.03')).toThrow(RangeError);
    expect(derTlv(TAG.OCTET_STRING, Buffer.alloc(127)).subarray(0, 2).toString('hex')).toBe('047f');
    expect(derTlv(TAG.OCTET_STRING, Buffer.alloc(128)).subarray(0, 3).toString('hex')).toBe('048180');
    expect(derTlv(TAG.OCTET_STRING, Buffer.alloc(256)).subarray(0, 4).toString('hex')).toBe('04820100');
    expect(derTlv(TAG.OCTET_STRING, Buffer.alloc(70000)).subarray(0, 5).toString('hex')).toBe('0483011170');
  });

  it('writes what the reader reads back (nested structures, SET OF sorted)', () => {
    const der = derSequence(derInteger(1), derSequence(derOid('1.2.3'), derNull()), derOctetString(Buffer.alloc(300, 7)), derBoolean(true), derSetOf(derInteger(5), derInteger(2)));
    const root = parseDer(der);
    expect(root.tag).toBe(TAG.SEQUENCE);
    expect(root.children).toHaveLength(5);
    expect(root.children[2]!.value).toEqual(Buffer.alloc(300, 7));
    expect(readBoolean(root.children[3], 't', 'b')).toBe(true);
    expect(root.children[4]!.children.map((c) => readInteger(c, 't', 'i'))).toEqual([2n, 5n]);
    expect(root.der).toEqual(der);
  });
});

describe('DER reader rejects non-DER and hostile input with an error, never a crash', () => {
  const cases: [string, string, RegExp][] = [
    ['empty input', '', /empty input/],
    ['a lone identifier', '30', /missing length/],
    ['truncated contents', '3005020101', /truncated/],
    ['truncated long-form length', '3082 01', /truncated: length octets/],
    ['trailing bytes', '3000 00', /1 trailing byte/],
    ['a child cut short inside its parent', '3004 020101 05', /missing length/],
    ['indefinite length', '3080 020101 0000', /indefinite length/],
    ['reserved length 0xff', '30ff', /reserved/],
    ['non-minimal short length in long form', '3081 05 0203010001', /below 128/],
    ['long-form length with leading zero', '3082 0080' + '00'.repeat(128), /leading zero/],
    ['huge length (4 GiB)', '3084 ffffffff 00', /truncated: length 4294967295/],
    ['over-long length (8 length octets)', '3088 0000000000000001 00', /too large/],
    ['high tag number', '1f22 00', /high tag numbers/],
    ['end-of-contents tag', '0000', /end-of-contents/],
    ['constructed OCTET STRING (BER)', '2403 040100', /constructed encoding/],
    ['constructed INTEGER', '2203 020101', /constructed encoding/],
    ['primitive SEQUENCE', '1000', /must be constructed/],
    ['child longer than its parent', '3003 0205 0101010101', /truncated/],
  ];
  for (const [name, input, message] of cases) {
    it(name, () => expect(derFailure(() => parseDer(hex(input), 'test'))).toMatch(message));
  }

  it('caps nesting: depth MAX_DEPTH parses, one deeper (and 100 000 deeper) is an error', () => {
    const nest = (depth: number): Buffer => {
      let b: Buffer = derNull();
      for (let i = 0; i < depth; i++) b = derSequence(b);
      return b;
    };
    expect(() => parseDer(nest(MAX_DEPTH))).not.toThrow();
    expect(derFailure(() => parseDer(nest(MAX_DEPTH + 1)))).toMatch(/nesting deeper than 32/);
    // 100 000 nested SEQUENCEs, each header with its minimal length, built in one pass (no recursion when rejected)
    const headers: Buffer[] = [];
    let inner = 2;
    for (let i = 0; i < 100_000; i++) {
      const len = inner < 0x80 ? [inner] : inner < 0x100 ? [0x81, inner] : inner < 0x10000 ? [0x82, inner >> 8, inner & 0xff] : [0x83, inner >> 16, (inner >> 8) & 0xff, inner & 0xff];
      headers.push(Buffer.from([0x30, ...len]));
      inner += 1 + len.length;
    }
    const deep = Buffer.concat([...headers.reverse(), derNull()]);
    expect(derFailure(() => parseDer(deep))).toMatch(/nesting deeper/);
  });

  it('checks contents: minimal INTEGER, canonical BOOLEAN, OID, BIT STRING, strings, times', () => {
    expect(derFailure(() => readInteger(parseDer(hex('02020001')), 't', 'n'))).toMatch(/not minimally encoded/);
    expect(derFailure(() => readInteger(parseDer(hex('0202ff80')), 't', 'n'))).toMatch(/not minimally encoded/);
    expect(derFailure(() => readInteger(parseDer(hex('0200')), 't', 'n'))).toMatch(/empty INTEGER/);
    expect(derFailure(() => readInteger(parseDer(hex('0400')), 't', 'n'))).toMatch(/expected INTEGER, found OCTET STRING/);
    expect(derFailure(() => readBoolean(parseDer(hex('010101')), 't', 'b'))).toMatch(/0x00 or 0xff/);
    expect(derFailure(() => readOid(parseDer(hex('0603 2a8001')), 't', 'o'))).toMatch(/leading 0x80/);
    expect(derFailure(() => readOid(parseDer(hex('0602 2a86')), 't', 'o'))).toMatch(/ends inside/);
    expect(derFailure(() => readOid(parseDer(hex('0600')), 't', 'o'))).toMatch(/empty/);
    expect(derFailure(() => readBitString(parseDer(hex('0302 0880')), 't', 'b'))).toMatch(/unused-bits/);
    expect(derFailure(() => readBitString(parseDer(hex('0302 0181')), 't', 'b'))).toMatch(/unused bits must be zero/);
    expect(bitsSet(readBitString(parseDer(hex('0303 070080')), 't', 'b'))).toEqual([8]);
    expect(derFailure(() => readString(parseDer(hex('0c02 c328')), 't', 's'))).toMatch(/not valid UTF-8/);
    expect(readString(parseDer(hex('1e04 00480069')), 't', 's')).toBe('Hi');

    const time = (s: string, tag: number = TAG.GENERALIZED_TIME) => readTime(parseDer(derTlv(tag, Buffer.from(s, 'latin1'))), 't', 'time');
    expect(time('20261123143726.924Z').date.toISOString()).toBe('2026-11-23T14:37:26.924Z');
    expect(time('20261123143726.9245Z').text).toBe('20261123143726.9245Z');
    expect(time('20261123143726Z').date.toISOString()).toBe('2026-11-23T14:37:26.000Z');
    expect(time('00991231235959Z').date.getUTCFullYear()).toBe(99);
    expect(time('491231235959Z', TAG.UTC_TIME).date.toISOString()).toBe('2049-12-31T23:59:59.000Z');
    expect(time('500101000000Z', TAG.UTC_TIME).date.toISOString()).toBe('1950-01-01T00:00:00.000Z');
    for (const bad of ['20261123143726.920Z', '20261123143726.Z', '20261123143726', '20261123143726+0100', '20260230000000Z', '20261123246000Z', '2026112314372Z']) {
      expect(derFailure(() => time(bad))).toMatch(/not a (DER|valid)/);
    }
  });

  it('random and mutated input only ever throws PAL_VALIDATION_FAILED', () => {
    const sample = derSequence(derInteger(1), derSequence(derSequence(derOid('2.16.840.1.101.3.4.2.1'), derNull()), derOctetString(randomBytes(32))), derInteger(2n ** 63n), derBoolean(true));
    for (let i = 0; i < 5000; i++) {
      const input = i % 2 === 0 ? randomBytes(1 + (i % 64)) : Buffer.from(sample);
      if (i % 2 === 1) for (let k = 0; k <= i % 3; k++) {
          const at = (i * 7919 + k * 104729) % input.length;
          input[at] = input[at]! ^ (1 << ((i + k) % 8));
        }
      try {
        parseDer(input);
      } catch (e) {
        expect(e).toBeInstanceOf(PalisadeError);
      }
    }
  });
});
