import { describe, expect, it } from 'vitest';
import { canonicalJson, leafHash } from '@palisade/core';
import type { AuditEvent } from '../../../kernel/audit/events.js';
import { escapeCefValue, escapeSdParam, ocsfClassOf, toCef, toOcsf, toRfc5424, type SyslogOptions } from './formats.js';
import { octetFrame, syslogMessage } from './syslog-sink.js';
import { parseWebhookSecret, webhookSignature } from './webhook-sink.js';

const event = (over: Partial<AuditEvent> = {}): AuditEvent => ({
  index: 7,
  time: '2025-06-01T12:00:00.123Z',
  type: 'kms.encrypt',
  actor: { principal_id: 'svc_a1', api_key_id: 'key_1', source_ip: '203.0.113.9' },
  outcome: 'success',
  request_id: 'req-1',
  action: 'kms:encrypt',
  resource: { type: 'kms_key', id: 'key_01' },
  error_code: null,
  details: { algorithm: 'AES-256-GCM' },
  ...over,
});

const SYSLOG: SyslogOptions = { hostname: 'node1.example', appName: 'palisade' };

/** A strict reader of the RFC 5424 messages these formatters write (one SD element at most). */
function parse5424(msg: string): { pri: number; time: string; host: string; app: string; procid: string; msgid: string; sdId: string | null; params: Record<string, string>; body: string } {
  const m = /^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) /.exec(msg);
  if (!m) throw new Error(`not an RFC 5424 header: ${msg.slice(0, 80)}`);
  let i = m[0].length;
  const params: Record<string, string> = {};
  let sdId: string | null = null;
  if (msg[i] === '-') {
    i++;
  } else {
    if (msg[i] !== '[') throw new Error('no STRUCTURED-DATA');
    i++;
    const idEnd = msg.slice(i).search(/[ \]]/);
    sdId = msg.slice(i, i + idEnd);
    i += idEnd;
    while (msg[i] === ' ') {
      i++;
      const eq = msg.indexOf('=', i);
      const name = msg.slice(i, eq);
      if (!/^[\x21-\x7e]{1,32}$/.test(name) || /[= \]"]/.test(name)) throw new Error(`bad PARAM-NAME ${name}`);
      i = eq + 1;
      if (msg[i] !== '"') throw new Error('PARAM-VALUE must be quoted');
      i++;
      let v = '';
      for (;;) {
        const c = msg[i];
        if (c === undefined) throw new Error('unterminated PARAM-VALUE');
        if (c === '\\' && (msg[i + 1] === '"' || msg[i + 1] === '\\' || msg[i + 1] === ']')) {
          v += msg[i + 1];
          i += 2;
        } else if (c === '"') {
          i++;
          break;
        } else if (c === ']') {
          throw new Error('unescaped ] inside PARAM-VALUE');
        } else {
          v += c;
          i++;
        }
      }
      params[name] = v;
    }
    if (msg[i] !== ']') throw new Error('SD-ELEMENT not closed');
    i++;
  }
  const body = msg[i] === ' ' ? msg.slice(i + 1) : msg.slice(i);
  return { pri: Number(m[1]), time: m[2]!, host: m[3]!, app: m[4]!, procid: m[5]!, msgid: m[6]!, sdId, params, body };
}

/** A CEF reader: the 7 header fields (unescaped) and the extension's key=value pairs (unescaped). */
function parseCef(line: string): { header: string[]; ext: Record<string, string> } {
  const header: string[] = [];
  let cur = '';
  let i = 0;
  for (; i < line.length && header.length < 7; i++) {
    const c = line[i]!;
    if (c === '\\' && (line[i + 1] === '|' || line[i + 1] === '\\')) cur += line[++i];
    else if (c === '|') {
      header.push(cur);
      cur = '';
    } else cur += c;
  }
  const rest = line.slice(i);
  const ext: Record<string, string> = {};
  // a key starts at the beginning or after a space, and ends at an unescaped '='
  const re = /(?:^| )([A-Za-z0-9_]+)=((?:\\.|[^\\=])*?)(?= [A-Za-z0-9_]+=|$)/g;
  for (const m of rest.matchAll(re)) ext[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c === 'r' ? '\r' : c));
  return { header, ext };
}

describe('RFC 5424', () => {
  it('writes header, STRUCTURED-DATA under palisade@32473 and the canonical event JSON as MSG', () => {
    const e = event();
    const msg = toRfc5424(e, SYSLOG);
    expect(msg).toBe(
      '<110>1 2025-06-01T12:00:00.123Z node1.example palisade - kms.encrypt ' +
        '[palisade@32473 index="7" type="kms.encrypt" outcome="success" principal="svc_a1" apiKey="key_1" src="203.0.113.9" requestId="req-1" action="kms:encrypt" resourceType="kms_key" resourceId="key_01"] ' +
        canonicalJson(e),
    );
    const p = parse5424(msg);
    expect(p).toMatchObject({ pri: 13 * 8 + 6, host: 'node1.example', app: 'palisade', procid: '-', msgid: 'kms.encrypt', sdId: 'palisade@32473' });
    // MSG is the leaf's bytes: a receiver can recompute the Merkle leaf hash and check inclusion proofs.
    expect(leafHash(Buffer.from(p.body))).toEqual(leafHash(Buffer.from(canonicalJson(e))));
    expect(JSON.parse(p.body)).toEqual(e);
  });

  it('takes the severity from the outcome, the facility and PEN from the options; absent fields are omitted', () => {
    expect(parse5424(toRfc5424(event({ outcome: 'failure', error_code: 'PAL_X' }), SYSLOG))).toMatchObject({ pri: 109, params: { errorCode: 'PAL_X' } });
    expect(parse5424(toRfc5424(event({ outcome: 'denied' }), SYSLOG)).pri).toBe(108);
    const p = parse5424(toRfc5424(event({ actor: { principal_id: null }, request_id: null, action: null, resource: null }), { ...SYSLOG, facility: 4, pen: 99999 }));
    expect(p.pri).toBe(4 * 8 + 6);
    expect(p.sdId).toBe('palisade@99999');
    expect(Object.keys(p.params)).toEqual(['index', 'type', 'outcome']);
    expect(() => toRfc5424(event(), { ...SYSLOG, facility: 24 })).toThrow(RangeError);
  });

  it('escapes ", \\ and ] in PARAM-VALUEs and round-trips them', () => {
    expect(escapeSdParam('a"b\\c]d')).toBe('a\\"b\\\\c\\]d');
    const tricky = 'p"] [evil@1 x="y"] \\';
    const p = parse5424(toRfc5424(event({ actor: { principal_id: tricky }, resource: { type: 'k]', id: '"' } }), SYSLOG));
    expect(p.sdId).toBe('palisade@32473');
    expect(p.params).toMatchObject({ principal: tricky, resourceType: 'k]', resourceId: '"' });
    expect(p.params.x).toBeUndefined();
  });

  it('a value with line breaks cannot forge a second record', () => {
    const forged = '<14>1 2025-01-01T00:00:00Z evil palisade - auth.login.password [palisade@32473 outcome="success"] {}';
    const e = event({ actor: { principal_id: `x\n${forged}`, source_ip: '10.0.0.1\r\n' }, resource: { type: 'kms_key', id: `k\u2028${forged}` }, details: { note: `a\nb\r\n${forged}` } });
    const msg = toRfc5424(e, SYSLOG);
    expect(msg).not.toMatch(/[\r\n\u2028\u2029]/);
    const p = parse5424(msg);
    expect(p.params.principal).toBe(`x\\u000a${forged}`);
    expect(p.params.resourceId).toBe(`k\\u2028${forged}`);
    expect(p.params.src).toBe('10.0.0.1\\u000d\\u000a');
    const parsed = JSON.parse(p.body.replace(/^\ufeff/, '')) as AuditEvent;
    expect(parsed).toEqual(e);
    expect(canonicalJson(parsed)).toBe(canonicalJson(e)); // the leaf, recomputed from MSG
    // framed, the frame's length covers exactly the one message
    const frame = octetFrame(msg);
    const sp = frame.indexOf(0x20);
    expect(Number(frame.subarray(0, sp).toString())).toBe(frame.length - sp - 1);
  });

  it('keeps the header printable ASCII and marks a UTF-8 MSG with the BOM', () => {
    const p = parse5424(toRfc5424(event({ type: 'x'.repeat(40) }), { hostname: 'bad host\nname', appName: 'app name' }));
    expect(p.host).toBe('bad_host_name');
    expect(p.app).toBe('app_name');
    expect(p.msgid).toBe('x'.repeat(32));
    const utf8 = toRfc5424(event({ details: { note: 'café' } }), SYSLOG);
    const body = parse5424(utf8).body;
    expect(body.startsWith('\ufeff')).toBe(true);
    expect(JSON.parse(body.slice(1)).details.note).toBe('café');
    expect(parse5424(toRfc5424(event(), SYSLOG)).body.startsWith('{')).toBe(true);
    expect(parse5424(toRfc5424(event({ time: 'not a time' }), SYSLOG)).time).toBe('-');
  });

  it('carries CEF and OCSF as the MSG of an RFC 5424 message without STRUCTURED-DATA', () => {
    const cef = parse5424(syslogMessage(event(), 'cef', SYSLOG));
    expect(cef.sdId).toBeNull();
    expect(cef.body.startsWith('CEF:0|Palisade|Palisade|')).toBe(true);
    const ocsf = parse5424(syslogMessage(event(), 'ocsf', SYSLOG));
    expect(JSON.parse(ocsf.body)).toMatchObject({ class_uid: 6003, metadata: { uid: '7' } });
  });
});

describe('CEF', () => {
  it('writes the header and the extension', () => {
    expect(toCef(event(), { hostname: 'node1' })).toBe(
      'CEF:0|Palisade|Palisade|0.1.0|kms.encrypt|kms.encrypt success|3|' +
        'rt=1748779200123 cat=kms outcome=success externalId=7 suser=svc_a1 cs1Label=apiKeyId cs1=key_1 src=203.0.113.9 act=kms:encrypt ' +
        'cs2Label=requestId cs2=req-1 cs3Label=resourceType cs3=kms_key cs4Label=resourceId cs4=key_01 dvchost=node1 msg={"algorithm":"AES-256-GCM"}',
    );
    expect(parseCef(toCef(event({ outcome: 'denied' }))).header[6]).toBe('6');
    expect(parseCef(toCef(event({ outcome: 'failure', error_code: 'PAL_KMS_X' }))).ext).toMatchObject({ cs5Label: 'errorCode', cs5: 'PAL_KMS_X' });
  });

  it('escapes | and \\ in the header, \\ and = and line breaks in the extension', () => {
    const { header } = parseCef(toCef(event({ type: 'a|b\\c\nd' })));
    expect(header).toEqual(['CEF:0', 'Palisade', 'Palisade', '0.1.0', 'a|b\\c d', 'a|b\\c d success', '3']);
    expect(toCef(event({ type: 'a|b\\c' }))).toContain('|a\\|b\\\\c|');
    expect(escapeCefValue('k=v\\x\r\ny')).toBe('k\\=v\\\\x\\r\\ny');
  });

  it('a value cannot add extension keys or a second line', () => {
    const evil = 'x act=forged suser=root\nCEF:0|Evil|Evil|1|auth.login.password|ok|0|suser=admin';
    const line = toCef(event({ actor: { principal_id: evil, source_ip: 'fe80::1' }, resource: { type: 'kms_key', id: 'id=1 cs5=forged' } }));
    expect(line).not.toMatch(/[\r\n]/);
    const { ext } = parseCef(line);
    expect(ext.suser).toBe(evil);
    expect(ext.act).toBe('kms:encrypt');
    expect(ext.cs4).toBe('id=1 cs5=forged');
    expect(ext.cs5).toBeUndefined();
    expect(ext.src).toBeUndefined();
    expect(ext).toMatchObject({ c6a2Label: 'Source IPv6 Address', c6a2: 'fe80::1' });
  });
});

describe('OCSF', () => {
  it('maps an API operation to API Activity (6003)', () => {
    const o = toOcsf(event({ type: 'kms.key.create', action: 'kms:create' }));
    expect(o).toMatchObject({
      class_uid: 6003,
      class_name: 'API Activity',
      category_uid: 6,
      activity_id: 1,
      activity_name: 'Create',
      type_uid: 600301,
      severity_id: 1,
      status_id: 1,
      status: 'Success',
      time: Date.parse('2025-06-01T12:00:00.123Z'),
      metadata: { version: '1.3.0', product: { name: 'Palisade', vendor_name: 'Palisade', version: '0.1.0' }, uid: '7', event_code: 'kms.key.create', correlation_uid: 'req-1' },
      actor: { user: { uid: 'svc_a1', type_id: 4, credential_uid: 'key_1' } },
      src_endpoint: { ip: '203.0.113.9' },
      api: { operation: 'kms.key.create', request: { uid: 'req-1' } },
      resources: [{ type: 'kms_key', uid: 'key_01' }],
      unmapped: { action: 'kms:create', details: { algorithm: 'AES-256-GCM' } },
    });
    expect(ocsfClassOf({ type: 'kms.encrypt' })).toMatchObject({ class_uid: 6003, activity_id: 99 });
    expect(ocsfClassOf({ type: 'kms.key.destroy' })).toMatchObject({ activity_id: 4 });
    expect(ocsfClassOf({ type: 'kms.key.rotate' })).toMatchObject({ activity_id: 3 });
  });

  it('maps sign-ins and sign-outs to Authentication (3002)', () => {
    const failed = toOcsf(event({ type: 'auth.failed', outcome: 'denied', actor: { principal_id: null, source_ip: '198.51.100.7' }, error_code: 'PAL_UNAUTHENTICATED', resource: null, details: {} }));
    expect(failed).toMatchObject({
      class_uid: 3002,
      category_uid: 3,
      category_name: 'Identity & Access Management',
      activity_id: 1,
      type_uid: 300201,
      severity_id: 3,
      status_id: 2,
      status: 'Failure',
      status_detail: 'denied',
      status_code: 'PAL_UNAUTHENTICATED',
      user: { name: 'anonymous' },
      service: { name: 'Palisade' },
      is_remote: true,
      src_endpoint: { ip: '198.51.100.7' },
    });
    expect(failed.api).toBeUndefined();
    expect(failed.unmapped).toEqual({ action: 'kms:encrypt' });
    expect(toOcsf(event({ type: 'auth.logout' }))).toMatchObject({ class_uid: 3002, activity_id: 2, type_uid: 300202, user: { uid: 'svc_a1' } });
  });

  it('maps account changes to Account Change (3001) with the target account as user', () => {
    expect(toOcsf(event({ type: 'identity.user.delete', resource: { type: 'user', id: 'usr_9' } }))).toMatchObject({ class_uid: 3001, activity_id: 6, type_uid: 300106, user: { uid: 'usr_9' } });
    expect(ocsfClassOf({ type: 'auth.password.change', details: { reset: true } })).toMatchObject({ class_uid: 3001, activity_id: 4 });
    expect(ocsfClassOf({ type: 'auth.password.change', details: { reset: false } })).toMatchObject({ activity_id: 3 });
    expect(ocsfClassOf({ type: 'auth.lockout' })).toMatchObject({ activity_id: 9 });
    expect(ocsfClassOf({ type: 'mfa.enroll' })).toMatchObject({ activity_id: 10 });
  });

  it('describes internal jobs, keeps personal data out and stays one JSON value whatever the input', () => {
    const o = toOcsf(
      event({
        type: 'kms.rotation.pre_check',
        actor: { principal_id: 'system:kms-scheduler', api_key_id: null, source_ip: null },
        request_id: null,
        details: { note: 'a\nb' },
        personal: { subject_ref: 'hmac-sha256:ab', ciphertext: 'c2VjcmV0' },
      }),
    );
    expect(o).toMatchObject({ actor: { user: { uid: 'system:kms-scheduler', type_id: 3, type: 'System' } }, src_endpoint: { svc_name: 'palisade' }, unmapped: { personal_subject_ref: 'hmac-sha256:ab' } });
    expect(JSON.stringify(o)).not.toContain('c2VjcmV0');
    expect(JSON.stringify(o)).not.toMatch(/[\r\n]/);
    expect((o.metadata as Record<string, unknown>).correlation_uid).toBeUndefined();
  });
});

describe('Standard Webhooks signature', () => {
  it('matches the specification\'s example and accepts the whsec_ form', () => {
    const key = parseWebhookSecret('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n');
    expect(webhookSignature(key, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, Buffer.from('{"test": 2432232314}'))).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
    expect(parseWebhookSecret('a plain secret of enough bytes')).toEqual(Buffer.from('a plain secret of enough bytes'));
  });

  it('refuses short or malformed secrets without echoing them', () => {
    for (const bad of ['whsec_c2hvcnQ=', 'short', 'whsec_not base64!!']) {
      let message = '';
      try {
        parseWebhookSecret(bad, 'siem');
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).toMatch(/^audit export siem: /);
      expect(message).not.toContain(bad.replace('whsec_', ''));
    }
  });
});
