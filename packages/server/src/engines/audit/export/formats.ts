/**
 * The audit stream as SIEMs read it: RFC 5424 syslog messages, ArcSight CEF lines and OCSF 1.3 JSON events.
 *
 * Every formatter is injection-proof: a value from an event (a principal id, a resource id, a detail) can never end
 * a record or start another. RFC 5424 carries the event as canonical JSON (control characters escaped) and escapes
 * SD-PARAM values; CEF escapes its header and extension separators and turns line breaks into `\n` / `\r`; OCSF is
 * JSON. Framing (RFC 5425 octet counting, a JSON array per webhook call) is the transport's job.
 */
import { isIP } from 'node:net';
import { canonicalJson } from '@palisade/core';
import type { AuditEvent, Outcome } from '../../../kernel/audit/events.js';

export type ExportFormat = 'rfc5424' | 'cef' | 'ocsf';

export const PRODUCT_NAME = 'Palisade';
export const VENDOR_NAME = 'Palisade';
/** The release the formats report (CEF Device Version, OCSF metadata.product.version) unless told otherwise. */
export const PALISADE_VERSION = '0.1.0';
/** The OCSF schema version the events follow (metadata.version). */
export const OCSF_SCHEMA_VERSION = '1.3.0';
/**
 * The private enterprise number in the SD-ID `palisade@<PEN>`: 32473 is the example PEN of RFC 5612, reserved for
 * documentation. An operator with a registered PEN passes it as `pen`.
 */
export const EXAMPLE_PEN = 32473;
/** Syslog facility 13, "log audit" (RFC 5424 §6.2.1). */
export const DEFAULT_FACILITY = 13;

export interface FormatOptions {
  /** Palisade's version, as the CEF Device Version and OCSF metadata.product.version. Default PALISADE_VERSION. */
  productVersion?: string;
}

export interface SyslogOptions extends FormatOptions {
  /** HOSTNAME: the exporting node (FQDN preferred). Non-printable characters become `_`; at most 255. */
  hostname: string;
  /** APP-NAME, at most 48 printable ASCII characters. */
  appName: string;
  /** SD-ID enterprise number: `palisade@<pen>`. Default EXAMPLE_PEN (32473). */
  pen?: number;
  /** Facility 0..23. Default 13 (log audit). */
  facility?: number;
}

// ---------------------------------------------------------------------------------------------- severity by outcome

/** RFC 5424 severity: success 6 (Informational), failure 5 (Notice), denied 4 (Warning). */
export function syslogSeverity(outcome: Outcome): number {
  return outcome === 'success' ? 6 : outcome === 'failure' ? 5 : 4;
}

/** CEF severity 0..10: success 3 (Low), failure 5 (Medium), denied 6 (Medium). */
export function cefSeverity(outcome: Outcome): number {
  return outcome === 'success' ? 3 : outcome === 'failure' ? 5 : 6;
}

const OCSF_SEVERITY: Record<Outcome, { id: number; name: string }> = {
  success: { id: 1, name: 'Informational' },
  failure: { id: 2, name: 'Low' },
  denied: { id: 3, name: 'Medium' },
};

// ---------------------------------------------------------------------------------------------- RFC 5424

/** C0 controls, DEL, C1 controls (NEL among them) and the Unicode line and paragraph separators. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/g;

/** Printable US-ASCII (%d33-126) only, at most `max` characters; NILVALUE when nothing is left (RFC 5424 §6.2). */
function printUsAscii(s: string, max: number): string {
  const clean = s.replace(/[^\x21-\x7e]/g, '_').slice(0, max);
  return clean === '' ? '-' : clean;
}

/**
 * An SD-PARAM value (RFC 5424 §6.3.3): `"`, `\` and `]` are escaped with a backslash. Control characters (C0, DEL,
 * C1, U+2028/U+2029) are written as `\uXXXX`, so no value can break a line for receivers that split on newlines; a
 * real backslash is already doubled, so the two stay distinguishable.
 */
export function escapeSdParam(v: string): string {
  return v.replace(/["\\\]]/g, (c) => `\\${c}`).replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function rfc5424Time(iso: string): string {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? '-' : new Date(t).toISOString(); // at most 6 fraction digits and a Z: a valid TIMESTAMP
}

/** The STRUCTURED-DATA of an event: one element `[palisade@<pen> ...]` with its key fields (absent ones omitted). */
export function structuredData(e: AuditEvent, pen = EXAMPLE_PEN): string {
  const params: Array<[string, string | null | undefined]> = [
    ['index', String(e.index)],
    ['type', e.type],
    ['outcome', e.outcome],
    ['principal', e.actor.principal_id],
    ['apiKey', e.actor.api_key_id],
    ['src', e.actor.source_ip],
    ['requestId', e.request_id],
    ['action', e.action],
    ['resourceType', e.resource?.type],
    ['resourceId', e.resource?.id],
    ['errorCode', e.error_code],
  ];
  const body = params
    .filter((p): p is [string, string] => typeof p[1] === 'string')
    .map(([k, v]) => ` ${k}="${escapeSdParam(v)}"`)
    .join('');
  return `[palisade@${Math.trunc(pen)}${body}]`;
}

/**
 * An RFC 5424 message for an event: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID SD [MSG]`, with PRI from the facility
 * and the outcome's severity, the event time, MSGID the event type. `sd` is the STRUCTURED-DATA (NILVALUE `-` for
 * none); `msg` is the MSG, prefixed with the UTF-8 BOM when it is not plain ASCII (§6.4).
 */
export function rfc5424Message(e: AuditEvent, opts: SyslogOptions, sd: string, msg: string): string {
  const facility = opts.facility ?? DEFAULT_FACILITY;
  if (!Number.isInteger(facility) || facility < 0 || facility > 23) throw new RangeError(`syslog facility ${facility} is not 0..23`);
  const pri = facility * 8 + syslogSeverity(e.outcome);
  const header = `<${pri}>1 ${rfc5424Time(e.time)} ${printUsAscii(opts.hostname, 255)} ${printUsAscii(opts.appName, 48)} - ${printUsAscii(e.type, 32)}`;
  const body = msg === '' ? '' : /[\u0080-\uffff]/.test(msg) ? ` \ufeff${msg}` : ` ${msg}`;
  return `${header} ${sd}${body}`;
}

/**
 * The event as an RFC 5424 message: the key fields as STRUCTURED-DATA under `palisade@<pen>` and, as MSG, the event's
 * canonical JSON (RFC 8785), the bytes of its Merkle leaf, so a receiver can check inclusion proofs against it. Only
 * U+2028 and U+2029 (line separators to some tools) are written as JSON escapes; re-canonicalizing the parsed MSG gives
 * the leaf back in every case.
 */
export function toRfc5424(e: AuditEvent, opts: SyslogOptions): string {
  const json = canonicalJson(e).replace(/[\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
  return rfc5424Message(e, opts, structuredData(e, opts.pen), json);
}

// ---------------------------------------------------------------------------------------------- CEF

/** A CEF header field: `\` and `|` escaped; line breaks and other control characters become spaces. */
export function escapeCefHeader(v: string): string {
  return v.replace(/[\\|]/g, (c) => `\\${c}`).replace(CONTROL, ' ');
}

/** A CEF extension value: `\` and `=` escaped, CR and LF as `\r` and `\n`, other control characters as spaces. */
export function escapeCefValue(v: string): string {
  return v
    .replace(/[\\=]/g, (c) => `\\${c}`)
    .replace(/\r/g, '\\r')
    .replace(/\n/g, '\\n')
    .replace(CONTROL, ' ');
}

export interface CefOptions extends FormatOptions {
  /** dvchost: the exporting node. Omitted when unset. */
  hostname?: string;
}

/**
 * The event as an ArcSight CEF line: `CEF:0|Palisade|Palisade|<version>|<type>|<type> <outcome>|<severity>|<ext>`.
 * Extension: rt (event time, ms since the epoch), cat (the type's engine), outcome, externalId (log index), suser
 * (principal), cs1 apiKeyId, src (IPv4) or c6a2 (IPv6, "Source IPv6 Address"), act (the permission exercised), cs2
 * requestId, cs3 resourceType, cs4 resourceId, cs5 errorCode, dvchost, msg (the details as JSON). Personal data
 * (encrypted per subject) is not carried.
 */
export function toCef(e: AuditEvent, opts: CefOptions = {}): string {
  const header = ['CEF:0', VENDOR_NAME, PRODUCT_NAME, opts.productVersion ?? PALISADE_VERSION, e.type, `${e.type} ${e.outcome}`, String(cefSeverity(e.outcome))]
    .map((f, i) => (i === 0 ? f : escapeCefHeader(f)))
    .join('|');
  const ext: Array<[string, string | null | undefined]> = [];
  const t = Date.parse(e.time);
  if (!Number.isNaN(t)) ext.push(['rt', String(t)]);
  ext.push(['cat', e.type.split('.')[0]], ['outcome', e.outcome], ['externalId', String(e.index)], ['suser', e.actor.principal_id]);
  if (e.actor.api_key_id) ext.push(['cs1Label', 'apiKeyId'], ['cs1', e.actor.api_key_id]);
  const ip = e.actor.source_ip ?? '';
  if (isIP(ip) === 4) ext.push(['src', ip]);
  else if (isIP(ip) === 6) ext.push(['c6a2Label', 'Source IPv6 Address'], ['c6a2', ip]);
  else if (ip) ext.push(['cs6Label', 'sourceAddress'], ['cs6', ip]); // not an address: kept, but out of the typed field
  ext.push(['act', e.action]);
  if (e.request_id) ext.push(['cs2Label', 'requestId'], ['cs2', e.request_id]);
  if (e.resource) {
    ext.push(['cs3Label', 'resourceType'], ['cs3', e.resource.type]);
    if (e.resource.id) ext.push(['cs4Label', 'resourceId'], ['cs4', e.resource.id]);
  }
  if (e.error_code) ext.push(['cs5Label', 'errorCode'], ['cs5', e.error_code]);
  if (opts.hostname) ext.push(['dvchost', opts.hostname]);
  if (e.details && Object.keys(e.details).length > 0) ext.push(['msg', JSON.stringify(e.details)]);
  const extension = ext
    .filter((p): p is [string, string] => typeof p[1] === 'string' && p[1] !== '')
    .map(([k, v]) => `${k}=${escapeCefValue(v)}`)
    .join(' ');
  return `${header}|${extension}`;
}

// ---------------------------------------------------------------------------------------------- OCSF

interface OcsfClass {
  class_uid: number;
  class_name: string;
  category_uid: number;
  category_name: string;
  activity_id: number;
  activity_name: string;
}

const IAM = { category_uid: 3, category_name: 'Identity & Access Management' };
const APPLICATION = { category_uid: 6, category_name: 'Application Activity' };

const authentication = (activity_id: number, activity_name: string): OcsfClass => ({ class_uid: 3002, class_name: 'Authentication', ...IAM, activity_id, activity_name });
const accountChange = (activity_id: number, activity_name: string): OcsfClass => ({ class_uid: 3001, class_name: 'Account Change', ...IAM, activity_id, activity_name });
const apiActivity = (activity_id: number, activity_name: string): OcsfClass => ({ class_uid: 6003, class_name: 'API Activity', ...APPLICATION, activity_id, activity_name });

/** API Activity's CRUD activity from the type's last word (as CloudTrail mappings do); anything else is Other (99). */
function apiActivityOf(type: string): OcsfClass {
  const verb = type.slice(type.lastIndexOf('.') + 1);
  if (/^(create|import|issue|request|bootstrap|enroll)$/.test(verb)) return apiActivity(1, 'Create');
  if (/^(read|get|list|export|verify)$/.test(verb)) return apiActivity(2, 'Read');
  if (/^(update|rotate|enable|disable|rewrap|rewrap_all|change|approve|reject|release|refresh|cancel_destruction|schedule_destruction)$/.test(verb)) return apiActivity(3, 'Update');
  if (/^(delete|destroy|revoke|purge|remove|expire)$/.test(verb)) return apiActivity(4, 'Delete');
  return apiActivity(99, 'Other');
}

/**
 * The OCSF class of an event type: sign-ins (auth.login.*, auth.failed) and sign-outs (auth.logout) are
 * Authentication (3002); changes to accounts (identity.user.*, auth.password.change, auth.lockout, mfa.enroll,
 * mfa.remove) are Account Change (3001); everything else, the API's operations, is API Activity (6003).
 */
export function ocsfClassOf(e: Pick<AuditEvent, 'type' | 'details'>): OcsfClass {
  const t = e.type;
  if (t === 'auth.failed' || t.startsWith('auth.login.')) return authentication(1, 'Logon');
  if (t === 'auth.logout') return authentication(2, 'Logoff');
  if (t === 'identity.user.create') return accountChange(1, 'Create');
  if (t === 'identity.user.enable') return accountChange(2, 'Enable');
  if (t === 'identity.user.disable') return accountChange(5, 'Disable');
  if (t === 'identity.user.delete') return accountChange(6, 'Delete');
  if (t === 'auth.password.change') return e.details?.reset === true ? accountChange(4, 'Password Reset') : accountChange(3, 'Password Change');
  if (t === 'auth.lockout') return accountChange(9, 'Lock');
  if (t === 'mfa.enroll') return accountChange(10, 'MFA Factor Enable');
  if (t === 'mfa.remove') return accountChange(11, 'MFA Factor Disable');
  if (t.startsWith('identity.user.')) return accountChange(99, 'Other');
  return apiActivityOf(t);
}

/** An OCSF User for a principal id: system:* principals are System accounts, svc_* ones Service accounts. */
function ocsfUser(principal: string | null | undefined, credential?: string | null): Record<string, unknown> {
  if (!principal) return { name: 'anonymous', type_id: 0, type: 'Unknown' };
  const kind = principal.startsWith('system:') ? { type_id: 3, type: 'System' } : principal.startsWith('svc_') ? { type_id: 4, type: 'Service' } : {};
  return { uid: principal, ...kind, ...(credential ? { credential_uid: credential } : {}) };
}

export type OcsfEvent = Record<string, unknown>;

/**
 * The event as an OCSF 1.3 event of the class ocsfClassOf picks: class/category/activity/type uids and names,
 * severity by outcome, status (Success, or Failure with status_detail denied / status_code the error code), time (ms),
 * metadata (schema version, product, uid = the log index, event_code = the type, correlation_uid = the request id),
 * actor.user (principal; credential_uid = the API key), src_endpoint.ip, api {operation = type, request.uid},
 * resources [{type, uid}], and for IAM classes the user concerned (the principal signing in, or the target account).
 * Details and the permission exercised go to `unmapped`; of personal data only the subject reference is carried.
 */
export function toOcsf(e: AuditEvent, opts: FormatOptions = {}): OcsfEvent {
  const c = ocsfClassOf(e);
  const severity = OCSF_SEVERITY[e.outcome] ?? { id: 0, name: 'Unknown' };
  const ok = e.outcome === 'success';
  const ip = e.actor.source_ip && isIP(e.actor.source_ip) ? e.actor.source_ip : null;
  const out: OcsfEvent = {
    ...c,
    type_uid: c.class_uid * 100 + c.activity_id,
    type_name: `${c.class_name}: ${c.activity_name}`,
    severity_id: severity.id,
    severity: severity.name,
    status_id: ok ? 1 : 2,
    status: ok ? 'Success' : 'Failure',
    ...(e.outcome === 'denied' ? { status_detail: 'denied' } : {}),
    ...(e.error_code ? { status_code: e.error_code } : {}),
    time: Date.parse(e.time),
    message: `${e.type} ${e.outcome}`,
    metadata: {
      version: OCSF_SCHEMA_VERSION,
      product: { name: PRODUCT_NAME, vendor_name: VENDOR_NAME, version: opts.productVersion ?? PALISADE_VERSION },
      uid: String(e.index),
      event_code: e.type,
      log_name: 'audit',
      ...(e.request_id ? { correlation_uid: e.request_id } : {}),
    },
    actor: { user: ocsfUser(e.actor.principal_id, e.actor.api_key_id) },
    // The source: the caller's address, else the service itself (internal jobs); the endpoint needs one of the two.
    src_endpoint: ip ? { ip } : { svc_name: PRODUCT_NAME.toLowerCase() },
  };
  if (c.class_uid === 3002) {
    out.user = ocsfUser(e.actor.principal_id);
    out.service = { name: PRODUCT_NAME };
    out.is_remote = ip !== null;
  } else if (c.class_uid === 3001) {
    out.user = e.resource?.id ? { uid: e.resource.id } : ocsfUser(e.actor.principal_id);
  } else {
    out.api = { operation: e.type, service: { name: PRODUCT_NAME }, ...(e.request_id ? { request: { uid: e.request_id } } : {}) };
  }
  if (e.resource) out.resources = [{ type: e.resource.type, ...(e.resource.id ? { uid: e.resource.id } : {}) }];
  const unmapped: Record<string, unknown> = {};
  if (e.action) unmapped.action = e.action;
  if (e.details && Object.keys(e.details).length > 0) unmapped.details = e.details;
  if (e.personal) unmapped.personal_subject_ref = e.personal.subject_ref;
  if (Object.keys(unmapped).length > 0) out.unmapped = unmapped;
  return out;
}

// ---------------------------------------------------------------------------------------------- dispatch

/** One event in a sink's format: a string (rfc5424, cef) or a JSON object (ocsf). */
export function formatEvent(e: AuditEvent, format: ExportFormat, opts: SyslogOptions): string | OcsfEvent {
  switch (format) {
    case 'rfc5424':
      return toRfc5424(e, opts);
    case 'cef':
      return toCef(e, { hostname: opts.hostname, ...(opts.productVersion ? { productVersion: opts.productVersion } : {}) });
    case 'ocsf':
      return toOcsf(e, opts);
  }
}
