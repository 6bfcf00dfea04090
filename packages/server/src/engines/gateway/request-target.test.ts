import { posix } from 'node:path';
import { PalisadeError } from '@palisade/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkRequestHeaders, MAX_TARGET_LENGTH, parseRequestTarget, type PathRejection } from './request-target.js';

function rejection(fn: () => unknown): PalisadeError {
  try {
    fn();
  } catch (e) {
    if (e instanceof PalisadeError) return e;
    throw e;
  }
  throw new Error('expected a PalisadeError, nothing was thrown');
}

describe('parseRequestTarget', () => {
  const refused: Array<[string, PathRejection]> = [
    ['/' + 'a'.repeat(MAX_TARGET_LENGTH), 'too-long'],
    ['http://upstream/admin', 'not-origin-form'],
    ['https://evil.example/', 'not-origin-form'],
    ['*', 'not-origin-form'],
    ['', 'not-origin-form'],
    ['admin', 'not-origin-form'],
    ['\\admin', 'not-origin-form'],
    ['/a#b', 'fragment'],
    ['/a?x=1#frag', 'fragment'],
    ['/a\u0000b', 'control-character'],
    ['/a\tb', 'control-character'],
    ['/a\r\nHost: evil', 'control-character'],
    ['/a\u007f', 'control-character'],
    ['/a?x=\n', 'control-character'],
    ['/a%00b', 'control-character'],
    ['/a%0d%0aX:1', 'control-character'],
    ['/a%7F', 'control-character'],
    ['/a b', 'invalid-character'],
    ['/a?x=a b', 'invalid-character'],
    ['/caf\u00e9', 'invalid-character'],
    ['/a?q=\u00e9', 'invalid-character'],
    ['/a\\b', 'backslash'],
    ['/a/..\\admin', 'backslash'],
    ['/a%', 'bad-percent-encoding'],
    ['/a%2', 'bad-percent-encoding'],
    ['/a%zz', 'bad-percent-encoding'],
    ['/a%g0', 'bad-percent-encoding'],
    ['/a%%2e', 'bad-percent-encoding'],
    ['/%252e%252e/admin', 'double-encoding'],
    ['/a/%255c', 'double-encoding'],
    ['/a/%25', 'double-encoding'],
    ['/admin%2fsecret', 'encoded-slash'],
    ['/admin%2Fsecret', 'encoded-slash'],
    ['/framework/..%2f/admin', 'encoded-slash'],
    ['/admin%5csecret', 'encoded-backslash'],
    ['/admin%5Csecret', 'encoded-backslash'],
    ['/a/%c0%ae%c0%ae/admin', 'invalid-utf8'], // overlong '.'
    ['/a/%c0%af', 'invalid-utf8'], // overlong '/'
    ['/a/%e0%80%af', 'invalid-utf8'], // 3-byte overlong '/'
    ['/a/%ff', 'invalid-utf8'],
    ['/a/%c3', 'invalid-utf8'], // truncated
    ['/a/%ed%a0%80', 'invalid-utf8'], // a UTF-16 surrogate
    ['/a/%ef%bc%8f/admin', 'unicode-confusable'], // U+FF0F fullwidth solidus
    ['/a/%ef%bc%8e%ef%bc%8e/admin', 'unicode-confusable'], // U+FF0E fullwidth full stops
    ['/a/%e2%80%a5/admin', 'unicode-confusable'], // U+2025 two dot leader
    ['/a/%ef%bc%bc', 'unicode-confusable'], // U+FF3C fullwidth reverse solidus
    ['/a/%ef%bc%85%32%65', 'unicode-confusable'], // U+FF05 fullwidth percent sign
    ['//admin', 'empty-segment'],
    ['//', 'empty-segment'],
    ['/a//b', 'empty-segment'],
    ['/a/b//', 'empty-segment'],
    ['/framework//admin?x=1', 'empty-segment'],
    ['/a/./b', 'dot-segment'],
    ['/a/../b', 'dot-segment'],
    ['/..', 'dot-segment'],
    ['/.', 'dot-segment'],
    ['/a/.', 'dot-segment'],
    ['/a/..', 'dot-segment'],
    ['/a/../', 'dot-segment'],
    ['/framework/%2e%2e/admin', 'dot-segment'],
    ['/framework/%2E%2e/admin', 'dot-segment'],
    ['/framework/.%2e/admin', 'dot-segment'],
    ['/a/%2e/b', 'dot-segment'],
    ['/framework/..;/admin', 'dot-segment'],
    ['/framework/..;jsessionid=x/admin', 'dot-segment'],
    ['/framework/.;x/admin', 'dot-segment'],
    ['/framework/%2e%2e;/admin', 'dot-segment'],
    ['/framework/..%3b/admin', 'dot-segment'],
    ['/a/../%ef%bc%a1', 'dot-segment'], // the plain reason wins over unicode-confusable (U+FF21 is NFKC 'A')
    ['/a//%ef%bc%8f', 'empty-segment'],
    ['/a;v=1/b', 'path-parameter'],
    ['/admin;x/secret', 'path-parameter'],
    ['/admin%3Bx/secret', 'path-parameter'],
  ];

  it.each(refused)('refuses %j (%s)', (target, reason) => {
    const e = rejection(() => parseRequestTarget(target));
    expect(e.code).toBe('PAL_GATEWAY_PATH_REJECTED');
    expect(e.status).toBe(400);
    expect(e.extensions).toEqual({ reason });
  });

  it('every reason is exercised', () => {
    const all: PathRejection[] = ['too-long', 'not-origin-form', 'fragment', 'control-character', 'invalid-character', 'backslash', 'bad-percent-encoding', 'double-encoding', 'encoded-slash', 'encoded-backslash', 'invalid-utf8', 'unicode-confusable', 'empty-segment', 'dot-segment', 'path-parameter'];
    expect(new Set(refused.map(([, r]) => r))).toEqual(new Set(all));
  });

  const accepted: Array<[string, { rawPath: string; path: string; query: string }]> = [
    ['/', { rawPath: '/', path: '/', query: '' }],
    ['/framework/v1/chat', { rawPath: '/framework/v1/chat', path: '/framework/v1/chat', query: '' }],
    ['/a/b%20c', { rawPath: '/a/b%20c', path: '/a/b c', query: '' }],
    ['/a/%C3%A9', { rawPath: '/a/%C3%A9', path: '/a/é', query: '' }],
    ['/a/b/', { rawPath: '/a/b/', path: '/a/b/', query: '' }],
    ['/a?x=1&y=%2e%2e', { rawPath: '/a', path: '/a', query: 'x=1&y=%2e%2e' }],
    ['/a?next=/../admin//x%2f%25', { rawPath: '/a', path: '/a', query: 'next=/../admin//x%2f%25' }],
    ['/a?', { rawPath: '/a', path: '/a', query: '' }],
    ['/a?b?c', { rawPath: '/a', path: '/a', query: 'b?c' }],
    ['/a/...', { rawPath: '/a/...', path: '/a/...', query: '' }],
    ['/a/.well-known/x', { rawPath: '/a/.well-known/x', path: '/a/.well-known/x', query: '' }],
    ['/a/..b/c.', { rawPath: '/a/..b/c.', path: '/a/..b/c.', query: '' }],
    ['/a/%3F%23', { rawPath: '/a/%3F%23', path: '/a/?#', query: '' }],
    ['/a/%E2%80%A6', { rawPath: '/a/%E2%80%A6', path: '/a/…', query: '' }], // NFKC '...', not a dot segment
    ['/a/%F0%9F%94%92', { rawPath: '/a/%F0%9F%94%92', path: '/a/🔒', query: '' }],
    ['/' + 'a'.repeat(MAX_TARGET_LENGTH - 1), { rawPath: '/' + 'a'.repeat(MAX_TARGET_LENGTH - 1), path: '/' + 'a'.repeat(MAX_TARGET_LENGTH - 1), query: '' }],
  ];

  it.each(accepted)('accepts %j', (target, expected) => {
    expect(parseRequestTarget(target)).toEqual(expected);
  });

  // Targets built from the pieces path-confusion attacks are made of, so most of them are refused and the accepted
  // ones are near misses.
  const piece = fc.constantFrom(
    '/', '/', '/', 'a', 'b', 'admin', '.', '..', '...', ';', ';x', '%2e', '%2E', '%2f', '%2F', '%5c', '\\', '%25', '%',
    '%41', '%20', '%3b', '%3B', '%3f', '%23', '%C3%A9', '%c0%ae', '%ef%bc%8f', '%ef%bc%8e', '%e2%80%a6', '%00', ' ',
    '\t', '#', '?', 'é', '~', '-', '_', "'", '!', '$', '&', '(', ')', '*', '+', ',', '=', ':', '@',
  );
  const target = fc.array(piece, { maxLength: 14 }).map((p) => '/' + p.join(''));

  it('accepted targets route on a path with no dot segment, empty segment or backslash, and re-parse to themselves', () => {
    let acceptedCount = 0;
    fc.assert(
      fc.property(target, (t) => {
        let r;
        try {
          r = parseRequestTarget(t);
        } catch (e) {
          if (e instanceof PalisadeError && e.code === 'PAL_GATEWAY_PATH_REJECTED') return;
          throw e;
        }
        acceptedCount++;
        const segments = r.path.split('/').slice(1);
        expect(segments.slice(0, -1)).not.toContain('');
        for (const s of segments) expect(['.', '..']).not.toContain(s.split(';')[0]);
        expect(r.path).not.toContain('//');
        expect(r.path).not.toContain('\\');
        expect(r.rawPath + (t.includes('?') ? '?' + r.query : '')).toBe(t);
        // independent oracles: the path is already normal, and the raw path decodes to it
        expect(posix.normalize(r.path)).toBe(r.path);
        expect(decodeURIComponent(r.rawPath)).toBe(r.path);
        // the WHATWG URL parser (which treats %2e as '.' and '\' as '/') would not resolve it to anything else
        expect(decodeURIComponent(new URL(r.rawPath, 'http://upstream.test').pathname)).toBe(r.path);
        // stable: the raw path forwarded is accepted again and means the same
        expect(parseRequestTarget(r.rawPath)).toEqual({ rawPath: r.rawPath, path: r.path, query: '' });
      }),
      { numRuns: 5000 },
    );
    expect(acceptedCount).toBeGreaterThan(100);
  });

  it('never throws anything but PAL_GATEWAY_PATH_REJECTED, whatever the input', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ maxLength: 40 }).map((s) => '/' + s)), (t) => {
        try {
          parseRequestTarget(t);
        } catch (e) {
          expect(e).toBeInstanceOf(PalisadeError);
          expect((e as PalisadeError).code).toBe('PAL_GATEWAY_PATH_REJECTED');
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('checkRequestHeaders', () => {
  const ordinary: string[][] = [
    [],
    ['Host', 'gateway.example', 'User-Agent', 'curl/8.5.0', 'Accept', '*/*'],
    ['Host', 'gateway.example', 'Content-Type', 'application/json', 'Content-Length', '17', 'Authorization', 'Bearer abc.def.ghi'],
    ['Host', 'g', 'Content-Length', '17', 'content-length', '17'], // repeated, identical
    ['Host', 'g', 'Transfer-Encoding', 'chunked'],
    ['Host', 'g', 'Transfer-Encoding', 'Chunked'],
    ['Host', 'g', 'Connection', 'keep-alive', 'Connection', 'Upgrade', 'Upgrade', 'websocket'],
    ['Host', 'g', 'Connection', 'close, x-trace-hop'],
    ['Host', 'g', 'X-Odd', 'tab\tinside', 'Cookie', 'a=1; b=2', 'X-Unicode', 'caf\u00e9'],
    ['Host', 'g', "X-!#$%&'*+-.^_`|~09azAZ", 'ok'],
    [':method', 'GET', ':path', '/a', ':scheme', 'https', ':authority', 'g', 'host', 'G'],
  ];

  it.each(ordinary)('lets ordinary headers through: %j', (...raw) => {
    expect(() => checkRequestHeaders(raw)).not.toThrow();
  });

  const smuggling: Array<[string[], string, string]> = [
    [['Content-Length', '5', 'Transfer-Encoding', 'chunked'], 'transfer-encoding', 'content-length-and-transfer-encoding'],
    [['Transfer-Encoding', 'chunked', 'Content-Length', '5'], 'transfer-encoding', 'content-length-and-transfer-encoding'],
    [['Content-Length', '5', 'Content-Length', '6'], 'content-length', 'conflicting-content-length'],
    [['Content-Length', '5', 'Content-Length', '05'], 'content-length', 'conflicting-content-length'],
    [['Content-Length', '5, 5'], 'content-length', 'invalid-content-length'],
    [['Content-Length', '+5'], 'content-length', 'invalid-content-length'],
    [['Content-Length', '-1'], 'content-length', 'invalid-content-length'],
    [['Content-Length', '0x10'], 'content-length', 'invalid-content-length'],
    [['Content-Length', ''], 'content-length', 'invalid-content-length'],
    [['Content-Length', ' 5'], 'content-length', 'invalid-content-length'],
    [['Transfer-Encoding', 'chunked, identity'], 'transfer-encoding', 'unsupported-transfer-encoding'],
    [['Transfer-Encoding', 'gzip, chunked'], 'transfer-encoding', 'unsupported-transfer-encoding'],
    [['Transfer-Encoding', 'xchunked'], 'transfer-encoding', 'unsupported-transfer-encoding'],
    [['Transfer-Encoding', 'identity'], 'transfer-encoding', 'unsupported-transfer-encoding'],
    [['Transfer-Encoding', ''], 'transfer-encoding', 'unsupported-transfer-encoding'],
    [['Transfer-Encoding', 'chunked', 'transfer-encoding', 'chunked'], 'transfer-encoding', 'repeated-transfer-encoding'],
  ];

  it.each(smuggling)('refuses ambiguous framing %j', (raw, header, reason) => {
    const e = rejection(() => checkRequestHeaders(['Host', 'g', ...raw]));
    expect(e.code).toBe('PAL_GATEWAY_REQUEST_SMUGGLING');
    expect(e.status).toBe(400);
    expect(e.extensions).toEqual({ header, reason });
  });

  const rejected: Array<[string[], string, string]> = [
    [['Host', 'a', 'Host', 'b'], 'host', 'duplicate'],
    [['Host', 'a', 'host', 'a'], 'host', 'duplicate'],
    [[':authority', 'a', 'Host', 'b'], 'host', 'conflicting'],
    [['Host', 'a', 'X-A', 'v\r\nX-Injected: 1'], 'x-a', 'control-character'],
    [['Host', 'a', 'X-A', 'v\nw'], 'x-a', 'control-character'],
    [['Host', 'a', 'X-A', 'v\rw'], 'x-a', 'control-character'],
    [['Host', 'a', 'X-A', 'v\u0000w'], 'x-a', 'control-character'],
    [['Host', 'a', 'X-A', 'v\u007f'], 'x-a', 'control-character'],
    [['Host', 'a\r\n'], 'host', 'control-character'],
    [['Host', 'a', 'Transfer-Encoding ', 'chunked'], 'Transfer-Encoding ', 'invalid-name'],
    [['Host', 'a', 'Content Length', '5'], 'Content Length', 'invalid-name'],
    [['Host', 'a', 'X:A', 'b'], 'X:A', 'invalid-name'],
    [['Host', 'a', ':evil', 'b'], ':evil', 'invalid-name'],
    [['Host', 'a', '', 'b'], '', 'invalid-name'],
    [['Host', 'a', 'X-\u00e9', 'b'], 'X-?', 'invalid-name'],
    [['Host', 'a', 'X\r\nY', 'b'], 'X??Y', 'invalid-name'],
    [['Host', 'a', 'Connection', 'close, Authorization'], 'connection', 'hop-by-hop-abuse'],
    [['Host', 'a', 'Connection', 'keep-alive', 'Connection', 'X-Forwarded-For'], 'connection', 'hop-by-hop-abuse'],
    [['Host', 'a', 'Connection', ' palisade-signature '], 'connection', 'hop-by-hop-abuse'],
    ...['host', 'content-length', 'content-type', 'cookie'].map((h): [string[], string, string] => [['Host', 'a', 'Connection', h], 'connection', 'hop-by-hop-abuse']),
    [['Host', 'a', 'Odd'], '', 'malformed'],
  ];

  it.each(rejected)('refuses %j', (raw, header, reason) => {
    const e = rejection(() => checkRequestHeaders(raw));
    expect(e.code).toBe('PAL_GATEWAY_HEADER_REJECTED');
    expect(e.status).toBe(400);
    expect(e.extensions).toEqual({ header, reason });
  });
});
