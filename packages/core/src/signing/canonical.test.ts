import { describe, expect, it } from 'vitest';
import {
  EMPTY_BODY_SHA256,
  PalisadeError,
  canonicalPath,
  canonicalQuery,
  canonicalRequest,
  formatSignatureHeader,
  parseSignatureHeader,
  sha256,
  signatureV1,
  splitTarget,
  type CanonicalRequestInput,
} from '../index.js';

// The expected texts below were written by hand from the doc comment of canonicalRequest(); the expected HMACs were
// computed outside this code: printf '<text>' | openssl dgst -sha256 -hmac 'secret-0123456789' -binary | basenc --base64url
const SECRET = Buffer.from('secret-0123456789');

const GET: CanonicalRequestInput = {
  keyId: 'k1',
  method: 'get',
  path: '/v1/kms/keys',
  query: '',
  headers: { Host: 'palisade.example:8200', accept: 'application/json' },
  signedHeaders: ['host'],
  bodySha256: EMPTY_BODY_SHA256,
  timestamp: 1_700_000_000,
  nonce: 'AAAAAAAAAAAAAAAAAAAAAA',
};

const POST: CanonicalRequestInput = {
  keyId: 'svc.agent-7',
  method: 'POST',
  path: '/v1/kv/a%2fb/caf%c3%a9/%7Euser/é!',
  query: 'b=2&a=z&a=10&c&sp=a+b%20c&q=%7e*',
  headers: { 'Content-Type': 'application/json', 'X-Custom': '  a   b\t c  ', host: 'h', 'x-unsigned': 'anything' },
  signedHeaders: ['X-Custom', 'content-type', 'Host'],
  bodySha256: sha256('{"a":1}').toString('hex'),
  timestamp: 1_700_000_123,
  nonce: 'abcdefghijklmnopqrstuv',
};

const SIGNED = ['content-type', 'host', 'x-custom'];

const expectCode = (fn: () => unknown, code: string, message?: RegExp) => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(PalisadeError);
    expect((e as PalisadeError).code).toBe(code);
    if (message) expect((e as PalisadeError).message).toMatch(message);
    return;
  }
  throw new Error(`expected ${code}`);
};

describe('canonical request (v1), fixed vectors', () => {
  it('a GET without body or query', () => {
    expect(EMPTY_BODY_SHA256).toBe(sha256('').toString('hex'));
    expect(canonicalRequest(GET)).toBe(
      ['PALISADE-HMAC-SHA256-V1', 'k1', 'GET', '/v1/kms/keys', '', 'host:palisade.example:8200', 'host', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', '1700000000', 'AAAAAAAAAAAAAAAAAAAAAA'].join('\n'),
    );
    expect(signatureV1(SECRET, GET).toString('base64url')).toBe('qJhJinB77PacKVBFb7cfI7dRHV67xy-Gj-jSaQj3V9s');
  });

  it('a POST: path encoding normalised, query sorted and re-encoded, headers folded and sorted, body hashed', () => {
    expect(POST.bodySha256).toBe('015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862');
    expect(canonicalRequest(POST)).toBe(
      [
        'PALISADE-HMAC-SHA256-V1',
        'svc.agent-7',
        'POST',
        '/v1/kv/a%2Fb/caf%C3%A9/~user/%C3%A9%21',
        'a=10&a=z&b=2&c=&q=~%2A&sp=a%20b%20c',
        'content-type:application/json',
        'host:h',
        'x-custom:a b c',
        'content-type;host;x-custom',
        '015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862',
        '1700000123',
        'abcdefghijklmnopqrstuv',
      ].join('\n'),
    );
    expect(signatureV1(SECRET, POST).toString('base64url')).toBe('wSRF7hfUEgS8F1VaZG8W2gQdk1h5bUT8oeMvOljAd-A');
  });
});

describe('canonical parts', () => {
  it('path: unreserved decoded, everything else %XX upper-case, "/" never decoded, dot segments kept', () => {
    expect(canonicalPath('')).toBe('/');
    expect(canonicalPath('/')).toBe('/');
    expect(canonicalPath('/a%41%2d%2E%5f%7E')).toBe('/aA-._~');
    expect(canonicalPath('/a%2fb')).toBe('/a%2Fb');
    expect(canonicalPath('/a/b')).toBe('/a/b');
    expect(canonicalPath('/x%3a:y')).toBe('/x%3A%3Ay');
    expect(canonicalPath('/a+b')).toBe('/a%2Bb'); // in a path "+" is a plus sign
    expect(canonicalPath('/😀')).toBe('/%F0%9F%98%80');
    expect(canonicalPath('/a/../b//c/')).toBe('/a/../b//c/');
    expectCode(() => canonicalPath('/a%zz'), 'PAL_SIGNATURE_MALFORMED', /percent-encoding/);
    expectCode(() => canonicalPath('/a%4'), 'PAL_SIGNATURE_MALFORMED');
    expectCode(() => canonicalPath('relative'), 'PAL_SIGNATURE_MALFORMED');
  });

  it('query: sorted by name then value, "+" is a space, empty pieces dropped, a bare name has the empty value', () => {
    expect(canonicalQuery('')).toBe('');
    expect(canonicalQuery('?')).toBe('');
    expect(canonicalQuery('b=1&a=2')).toBe('a=2&b=1');
    expect(canonicalQuery('a=2&a=10&a=1')).toBe('a=1&a=10&a=2'); // code-unit order of the encoded values
    expect(canonicalQuery('x=a+b')).toBe(canonicalQuery('x=a%20b'));
    expect(canonicalQuery('x=a%2Bb')).toBe('x=a%2Bb');
    expect(canonicalQuery('x=a%2Bb')).not.toBe(canonicalQuery('x=a+b'));
    expect(canonicalQuery('&&a&b=&')).toBe('a=&b=');
    expect(canonicalQuery('k=v=w')).toBe('k=v%3Dw');
    expect(canonicalQuery('%6b=%7e')).toBe('k=~');
    expect(canonicalQuery('a=%26&a=%3D')).toBe('a=%26&a=%3D');
    expect(canonicalQuery('n=é')).toBe('n=%C3%A9');
    expectCode(() => canonicalQuery('a=%g0'), 'PAL_SIGNATURE_MALFORMED', /query/);
  });

  it('headers: case of names, surrounding and inner whitespace, and unsigned headers do not matter', () => {
    const base = canonicalRequest(POST);
    expect(canonicalRequest({ ...POST, headers: { 'CONTENT-TYPE': 'application/json', 'x-custom': 'a b c', HOST: 'h' } })).toBe(base);
    expect(canonicalRequest({ ...POST, headers: { ...POST.headers, 'x-unsigned': 'other' } })).toBe(base);
    expect(canonicalRequest({ ...POST, signedHeaders: ['host', 'x-custom', 'content-type'] })).toBe(base);
    // repeated header values are joined as a Node server joins repeated lines
    expect(canonicalRequest({ ...GET, headers: { host: 'h', 'x-r': [' a ', 'b'] }, signedHeaders: ['host', 'x-r'] })).toContain('\nx-r:a, b\n');
    expect(canonicalRequest({ ...GET, headers: { host: 'h', 'x-r': 'a, b' }, signedHeaders: ['host', 'x-r'] })).toContain('\nx-r:a, b\n');
  });

  it('refuses what has no canonical form', () => {
    expectCode(() => canonicalRequest({ ...GET, signedHeaders: ['host', 'x-absent'] }), 'PAL_SIGNATURE_MALFORMED', /x-absent.*absent/);
    expectCode(() => canonicalRequest({ ...GET, signedHeaders: [] }), 'PAL_SIGNATURE_MALFORMED');
    expectCode(() => canonicalRequest({ ...GET, signedHeaders: ['host', 'Host'] }), 'PAL_SIGNATURE_MALFORMED', /twice/);
    expectCode(() => canonicalRequest({ ...GET, signedHeaders: ['ho st'] }), 'PAL_SIGNATURE_MALFORMED');
    expectCode(() => canonicalRequest({ ...GET, keyId: 'a;b' }), 'PAL_SIGNATURE_MALFORMED');
    expectCode(() => canonicalRequest({ ...GET, keyId: '' }), 'PAL_SIGNATURE_MALFORMED');
    expectCode(() => canonicalRequest({ ...GET, method: 'GE T' }), 'PAL_SIGNATURE_MALFORMED');
    expectCode(() => canonicalRequest({ ...GET, nonce: 'short' }), 'PAL_SIGNATURE_MALFORMED', /128 bits/);
    expectCode(() => canonicalRequest({ ...GET, nonce: 'A'.repeat(21) + '=' }), 'PAL_SIGNATURE_MALFORMED');
    expectCode(() => canonicalRequest({ ...GET, timestamp: 1.5 }), 'PAL_SIGNATURE_MALFORMED');
    expectCode(() => canonicalRequest({ ...GET, timestamp: -1 }), 'PAL_SIGNATURE_MALFORMED');
    expectCode(() => canonicalRequest({ ...GET, bodySha256: EMPTY_BODY_SHA256.toUpperCase() }), 'PAL_SIGNATURE_MALFORMED');
  });

  it('splitTarget keeps the path and query as sent', () => {
    expect(splitTarget('/a%2Fb?x=1&y')).toEqual({ path: '/a%2Fb', query: 'x=1&y' });
    expect(splitTarget('https://h:8200/v1/x?q=%20#frag')).toEqual({ path: '/v1/x', query: 'q=%20' });
    expect(splitTarget('https://h:8200')).toEqual({ path: '/', query: '' });
    expect(splitTarget('/p?')).toEqual({ path: '/p', query: '' });
  });
});

describe('any change to a signed part changes the signature', () => {
  const base = signatureV1(SECRET, POST).toString('hex');
  const changes: Array<[string, Partial<CanonicalRequestInput>]> = [
    ['key id', { keyId: 'svc.agent-8' }],
    ['method', { method: 'PUT' }],
    ['path', { path: '/v1/kv/a/b/caf%C3%A9/~user/%C3%A9%21' }], // %2F decoded into a separator
    ['path case', { path: POST.path.toUpperCase() }],
    ['query value', { query: 'b=2&a=z&a=11&c&sp=a+b%20c&q=%7e*' }],
    ['query pair added', { query: POST.query + '&d=1' }],
    ['query pair removed', { query: 'b=2&a=z&c&sp=a+b%20c&q=%7e*' }],
    ['body', { bodySha256: sha256('{"a":2}').toString('hex') }],
    ['signed header value', { headers: { ...POST.headers, 'Content-Type': 'text/plain' } }],
    ['signed header set', { signedHeaders: ['host', 'content-type'] }],
    ['timestamp', { timestamp: POST.timestamp + 1 }],
    ['nonce', { nonce: 'abcdefghijklmnopqrstuw' }],
  ];
  for (const [what, change] of changes) {
    it(what, () => {
      expect(signatureV1(SECRET, { ...POST, ...change }).toString('hex')).not.toBe(base);
    });
  }

  it('and another secret gives another signature', () => {
    expect(signatureV1(Buffer.from('secret-0123456788'), POST).toString('hex')).not.toBe(base);
  });
});

describe('Palisade-Signature header', () => {
  const sig = signatureV1(SECRET, POST);
  const value = formatSignatureHeader({ keyId: POST.keyId, timestamp: POST.timestamp, nonce: POST.nonce, signedHeaders: [...POST.signedHeaders], signature: sig });

  it('formats and parses back', () => {
    expect(value).toBe(`v1; key_id=svc.agent-7; ts=1700000123; nonce=abcdefghijklmnopqrstuv; headers=content-type;host;x-custom; sig=${sig.toString('base64url')}`);
    expect(parseSignatureHeader(value)).toEqual({ version: 'v1', keyId: 'svc.agent-7', timestamp: 1700000123, nonce: 'abcdefghijklmnopqrstuv', signedHeaders: SIGNED, signature: sig });
    expect(parseSignatureHeader([value]).keyId).toBe('svc.agent-7');
    // any order of the parameters, and more than one space after ";"
    const shuffled = `v1;  sig=${sig.toString('base64url')}; headers=content-type;host;x-custom; nonce=abcdefghijklmnopqrstuv; ts=1700000123; key_id=svc.agent-7`;
    expect(parseSignatureHeader(shuffled)).toEqual(parseSignatureHeader(value));
  });

  it('refuses no header as missing', () => {
    expectCode(() => parseSignatureHeader(undefined), 'PAL_SIGNATURE_MISSING');
    expectCode(() => parseSignatureHeader(''), 'PAL_SIGNATURE_MISSING');
    expectCode(() => parseSignatureHeader([]), 'PAL_SIGNATURE_MISSING');
  });

  const b64 = sig.toString('base64url');
  const bad: Array<[string, string | string[], RegExp]> = [
    ['two headers', [value, value], /more than one/],
    ['two headers joined by a proxy', `${value}, ${value}`, /more than one/],
    ['no version', value.replace('v1; ', ''), /version/],
    ['another version', value.replace('v1;', 'v2;'), /"v2" is not supported/],
    ['no space after ";"', value.replace('; key_id', ';key_id'), /./],
    ['unknown parameter', `${value}; alg=hmac`, /unexpected element "alg=hmac"/],
    ['repeated parameter', `${value}; ts=1700000123`, /"ts" appears twice/],
    ['missing parameter', value.replace(/; nonce=[^;]+/, ''), /lacks nonce/],
    ['bad key id', value.replace('svc.agent-7', 'svc/agent'), /key_id/],
    ['ts with leading zero', value.replace('ts=1700000123', 'ts=01700000123'), /ts must/],
    ['ts not a number', value.replace('ts=1700000123', 'ts=soon'), /ts must/],
    ['short nonce', value.replace('abcdefghijklmnopqrstuv', 'abc'), /nonce/],
    ['nonce with padding', value.replace('abcdefghijklmnopqrstuv', 'abcdefghijklmnopqrstuv=='), /nonce/],
    ['upper-case header names', value.replace('content-type;host', 'Content-Type;host'), /lower-case/],
    ['unsorted header names', value.replace('content-type;host;x-custom', 'host;content-type;x-custom'), /sorted/],
    ['no header names', value.replace('headers=content-type;host;x-custom', 'headers='), /no headers/],
    ['short sig', value.replace(b64, b64.slice(1)), /43 base64url/],
    ['standard base64 sig', value.replace(b64, sig.toString('base64').replace(/=+$/, '').replace(/[A-Za-z0-9]$/, '/')), /sig/],
    ['non-canonical sig', value.replace(b64, b64.slice(0, 42) + String.fromCharCode(b64.charCodeAt(42) ^ 1)), /canonical|43/],
    ['huge', `v1; key_id=${'a'.repeat(3000)}`, /2048/],
  ];
  for (const [what, v, message] of bad) {
    it(`refuses ${what} as malformed`, () => expectCode(() => parseSignatureHeader(v), 'PAL_SIGNATURE_MALFORMED', message));
  }
});
