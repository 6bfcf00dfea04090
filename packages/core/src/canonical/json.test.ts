import { describe, expect, it } from 'vitest';
import { CanonicalError, canonicalBytes, canonicalJson } from './json.js';

describe('RFC 8785 published examples', () => {
  it('§3.2.2 sample: numbers, string escaping and literals', () => {
    const input = String.raw`{
      "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }`;
    const want = String.raw`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`;
    expect(canonicalJson(JSON.parse(input))).toBe(want);
    // §3.2.4: the UTF-8 form, with the euro sign as e2 82 ac.
    const bytes = canonicalBytes(JSON.parse(input));
    expect(bytes.equals(Buffer.from(want, 'utf8'))).toBe(true);
    expect(bytes.subarray(0, 12).toString('hex')).toBe('7b226c69746572616c73223a');
    expect(bytes.includes(Buffer.from('e282ac24', 'hex'))).toBe(true);
  });

  it('§3.2.3 sample: property sorting by UTF-16 code units', () => {
    const input = String.raw`{
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis"
    }`;
    const want =
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",' +
      '"\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}';
    expect(canonicalJson(JSON.parse(input))).toBe(want);
  });

  it('Appendix B: number serialization (IEEE-754 bit patterns)', () => {
    const table: [string, string][] = [
      ['0000000000000000', '0'],
      ['8000000000000000', '0'], // -0
      ['0000000000000001', '5e-324'],
      ['8000000000000001', '-5e-324'],
      ['7fefffffffffffff', '1.7976931348623157e+308'],
      ['ffefffffffffffff', '-1.7976931348623157e+308'],
      ['4340000000000000', '9007199254740992'],
      ['c340000000000000', '-9007199254740992'],
      ['4430000000000000', '295147905179352830000'],
      ['44b52d02c7e14af5', '9.999999999999997e+22'],
      ['44b52d02c7e14af6', '1e+23'],
      ['44b52d02c7e14af7', '1.0000000000000001e+23'],
      ['444b1ae4d6e2ef4e', '999999999999999700000'],
      ['444b1ae4d6e2ef4f', '999999999999999900000'],
      ['444b1ae4d6e2ef50', '1e+21'],
      ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'],
      ['3eb0c6f7a0b5ed8d', '0.000001'],
      ['41b3de4355555553', '333333333.3333332'],
      ['41b3de4355555554', '333333333.33333325'],
      ['41b3de4355555555', '333333333.3333333'],
      ['41b3de4355555556', '333333333.3333334'],
      ['41b3de4355555557', '333333333.33333343'],
      ['becbf647612f3696', '-0.0000033333333333333333'],
      ['43143ff3c1cb0959', '1424953923781206.2'],
    ];
    for (const [bits, want] of table) {
      expect(canonicalJson(Buffer.from(bits, 'hex').readDoubleBE(0)), bits).toBe(want);
    }
    // The two error rows of the table: NaN and Infinity.
    for (const bits of ['7fffffffffffffff', '7ff0000000000000']) {
      expect(() => canonicalJson(Buffer.from(bits, 'hex').readDoubleBE(0))).toThrow(CanonicalError);
    }
  });
});

describe('canonicalJson', () => {
  it('serializes the usual number forms', () => {
    expect(canonicalJson([1e21, -0, 1e-7, 333333333.3333333, 4.5, 0.002, 1e20, 123, -1.5, 1e-6])).toBe(
      '[1e+21,0,1e-7,333333333.3333333,4.5,0.002,100000000000000000000,123,-1.5,0.000001]',
    );
  });

  it('sorts keys recursively, drops whitespace, keeps array order', () => {
    const v = { b: [3, { z: 1, a: [] }, 1], a: { y: null, x: {} }, '': 'empty', A: true, aa: false };
    expect(canonicalJson(v)).toBe('{"":"empty","A":true,"a":{"x":{},"y":null},"aa":false,"b":[3,{"a":[],"z":1},1]}');
  });

  it('orders by UTF-16 code units, not by code points', () => {
    // U+1F600 is the surrogate pair D83D DE00, which sorts before U+FB33 even though its code point is larger.
    expect(canonicalJson({ '\ufb33': 1, '\u{1F600}': 2 })).toBe('{"\u{1F600}":2,"\ufb33":1}');
  });

  it('escapes like JSON.stringify and does not normalize Unicode', () => {
    expect(canonicalJson('\u0000\u0008\t\n\u000b\f\r\u001f"\\/\u007f\u2028\u00e9')).toBe(
      '"\\u0000\\b\\t\\n\\u000b\\f\\r\\u001f\\"\\\\/\u007f\u2028\u00e9"',
    );
    expect(canonicalJson('e\u0301')).not.toBe(canonicalJson('\u00e9'));
  });

  it('accepts null-prototype objects, JSON.parse output incl. "__proto__" keys, and shared references', () => {
    const o = Object.create(null) as Record<string, unknown>;
    o.b = 1;
    o.a = 2;
    expect(canonicalJson(o)).toBe('{"a":2,"b":1}');
    expect(canonicalJson(JSON.parse('{"__proto__":{"x":1},"a":0}'))).toBe('{"__proto__":{"x":1},"a":0}');
    const shared = { k: [1] };
    expect(canonicalJson([shared, shared, { shared }])).toBe('[{"k":[1]},{"k":[1]},{"shared":{"k":[1]}}]');
  });

  it('is idempotent through JSON.parse', () => {
    const v = { z: [1.5, 'x', { b: null, a: [true, -0] }], y: '\u{1F600}\n', x: 1e300 };
    const once = canonicalJson(v);
    expect(canonicalJson(JSON.parse(once))).toBe(once);
  });

  it('round-trips random JSON values', () => {
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const leaf = (): unknown => {
      const chars = Array.from({ length: 4 }, () => 32 + Math.floor(rnd() * 0x2000)); // BMP, below surrogates
      const pick = [null, rnd() < 0.5, (rnd() - 0.5) * 10 ** Math.floor(rnd() * 40 - 20), String.fromCharCode(...chars)];
      return pick[Math.floor(rnd() * pick.length)];
    };
    const gen = (depth: number): unknown => {
      const r = rnd();
      if (depth > 3 || r < 0.3) return leaf();
      const n = Math.floor(rnd() * 4);
      if (r < 0.6) return Array.from({ length: n }, () => gen(depth + 1));
      return Object.fromEntries(Array.from({ length: n }, () => [String(rnd()).slice(2, 5), gen(depth + 1)]));
    };
    for (let i = 0; i < 500; i++) {
      const v = gen(0);
      const text = canonicalJson(v);
      expect(JSON.parse(text)).toEqual(v);
      expect(canonicalJson(JSON.parse(text))).toBe(text);
    }
  });

  it('rejects what I-JSON cannot carry', () => {
    class Point {
      x = 1;
    }
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    const cyclicArray: unknown[] = [];
    cyclicArray.push([cyclicArray]);
    const bad: [string, unknown][] = [
      ['NaN', Number.NaN],
      ['Infinity', Number.POSITIVE_INFINITY],
      ['-Infinity in array', [Number.NEGATIVE_INFINITY]],
      ['undefined', undefined],
      ['undefined member', { a: undefined }],
      ['undefined element', [undefined]],
      ['array hole', [1, , 3]], // eslint-disable-line no-sparse-arrays
      ['function', () => 1],
      ['function member', { f() {} }],
      ['bigint', 1n],
      ['symbol', Symbol('s')],
      ['symbol key', { [Symbol('s')]: 1 }],
      ['Date', new Date(0)],
      ['Map', new Map()],
      ['Set', new Set()],
      ['RegExp', /x/],
      ['Buffer', Buffer.from('x')],
      ['Uint8Array', new Uint8Array(1)],
      ['boxed number', Object(1)],
      ['boxed string', Object('s')],
      ['class instance', new Point()],
      ['cyclic object', cyclic],
      ['cyclic array', cyclicArray],
      ['lone high surrogate', '\ud800'],
      ['lone low surrogate', 'a\udc00b'],
      ['reversed pair', '\ude00\ud83d'],
      ['lone surrogate key', { '\ud800': 1 }],
    ];
    for (const [what, value] of bad) expect(() => canonicalJson(value), what).toThrow(CanonicalError);
  });

  it('turns hostile nesting into a CanonicalError, not a stack overflow', () => {
    const nest = (n: number): unknown => {
      let v: unknown = 0;
      for (let i = 0; i < n; i++) v = [v];
      return v;
    };
    expect(canonicalJson(nest(1000))).toHaveLength(2001);
    expect(() => canonicalJson(nest(1001))).toThrow(CanonicalError);
    expect(() => canonicalJson(nest(100_000))).toThrow(CanonicalError);
  });

  it('never calls toJSON', () => {
    expect(() => canonicalJson({ toJSON: () => 'x' })).toThrow(CanonicalError);
  });
});
