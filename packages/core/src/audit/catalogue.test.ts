import { readFileSync } from 'node:fs';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { describe, expect, it } from 'vitest';
import {
  AUDIT_CATEGORIES,
  AUDIT_EVENT_CATALOGUE,
  AUDIT_HMAC_PATTERN,
  OUTCOMES,
  auditEventProblem,
  auditEventSchema,
  auditEventSpec,
  auditEventTypes,
  renderAuditEventsDoc,
} from '../index.js';

interface Json {
  description?: string;
  pattern?: string;
  properties?: Record<string, Json>;
  required?: string[];
  additionalProperties?: unknown;
  items?: Json;
}

const specs = Object.values(AUDIT_EVENT_CATALOGUE);

describe('audit event catalogue', () => {
  it('docs/audit-events.md is in sync with the catalogue (run `npm run docs:audit-events`)', () => {
    const doc = readFileSync(new URL('../../../../docs/audit-events.md', import.meta.url), 'utf8');
    expect(doc).toBe(renderAuditEventsDoc());
  });

  it('has at least 50 types, dotted lower case, in known categories, each with a description and outcomes', () => {
    expect(auditEventTypes().length).toBeGreaterThanOrEqual(50);
    expect(auditEventTypes()).toEqual(Object.keys(AUDIT_EVENT_CATALOGUE));
    for (const s of specs) {
      expect(s.type).toMatch(/^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$/);
      expect(AUDIT_CATEGORIES).toContain(s.category);
      expect(s.description.length, s.type).toBeGreaterThan(10);
      expect(s.outcomes.length, s.type).toBeGreaterThan(0);
      for (const o of s.outcomes) expect(OUTCOMES).toContain(o);
      expect(auditEventSpec(s.type)).toBe(s);
    }
    expect(auditEventSpec('toString')).toBeUndefined();
  });

  it('every details schema compiles, forbids unknown fields and describes every field (nested ones too)', () => {
    const described = (type: string, path: string, s: Json) => {
      expect(s.additionalProperties, `${type} ${path}`).toBe(false);
      for (const [name, f] of Object.entries(s.properties ?? {})) {
        expect(f.description, `${type} ${path}/${name} has no description`).toBeTruthy();
        if (f.properties) described(type, `${path}/${name}`, f);
      }
    };
    for (const s of specs) {
      expect(() => TypeCompiler.Compile(s.details), s.type).not.toThrow();
      described(s.type, '/details', s.details as unknown as Json);
    }
  });

  it('personal and sensitive marks name real fields; sensitive ones accept only an HMAC, personal ones are optional', () => {
    for (const s of specs) {
      const props = (s.details as unknown as Json).properties ?? {};
      const required = (s.details as unknown as Json).required ?? [];
      for (const f of s.personal) {
        expect(props[f], `${s.type}: personal field ${f}`).toBeDefined();
        // optional, so that it can move to personal_fields (encrypted under the subject's key) and leave details
        expect(required, `${s.type}: personal field ${f} must be optional`).not.toContain(f);
      }
      for (const f of s.sensitive) {
        expect(props[f]?.pattern, `${s.type}: sensitive field ${f}`).toBe(AUDIT_HMAC_PATTERN);
        expect(s.personal, `${s.type}: ${f} is both`).not.toContain(f);
      }
    }
  });

  it('each example validates against its entry; the example with an unknown field does not', () => {
    for (const s of specs) {
      const outcome = s.outcomes[0]!;
      expect(auditEventProblem({ type: s.type, outcome, details: s.example }), s.type).toBeNull();
      expect(auditEventProblem({ type: s.type, outcome, details: { ...s.example, unexpected_field: 1 } })).toBe(`${s.type} (${outcome}): /details/unexpected_field: Unexpected property`);
    }
  });

  it('sensitive fields refuse a clear value', () => {
    const s = AUDIT_EVENT_CATALOGUE['session.create']!;
    expect(auditEventProblem({ type: s.type, outcome: 'success', details: { ...s.example, session_ref: 'sess_clear_value' } })).toMatch(/^session\.create \(success\): \/details\/session_ref: /);
    expect(auditEventProblem({ type: s.type, outcome: 'success', details: { ...s.example, session_ref: `hmac-sha256:${'0'.repeat(64)}` } })).toBeNull();
  });

  it('auditEventProblem names the type and the JSON path', () => {
    expect(auditEventProblem({ type: 'kms.encrypt', outcome: 'success', details: { key_version: 1 } })).toBeNull();
    expect(auditEventProblem({ type: 'kms.encrypt', outcome: 'success', details: { key_version: 'one' } })).toBe('kms.encrypt (success): /details/key_version: Expected integer');
    expect(auditEventProblem({ type: 'kms.encrypt', outcome: 'success', details: {} })).toBe('kms.encrypt (success): /details/key_version: Expected required property');
    expect(auditEventProblem({ type: 'kms.encrypt', outcome: 'success' })).toBe('kms.encrypt (success): /details/key_version: Expected required property');
    expect(auditEventProblem({ type: 'kms.encrypt', outcome: 'success', details: { key_version: 1, plaintext: 'aGk=' } })).toBe('kms.encrypt (success): /details/plaintext: Unexpected property');
    expect(auditEventProblem({ type: 'kms.encrypt', outcome: 'success', details: [1] })).toBe('kms.encrypt (success): /details: expected an object');
    expect(auditEventProblem({ type: 'kms.key.rotate', outcome: 'success', details: { reason: 'whim', version: 2 } })).toBe(
      'kms.key.rotate (success): /details/reason: expected one of "manual", "scheduled", "approved", "nonce_limit"',
    );
    expect(auditEventProblem({ type: 'audit.hold.create', outcome: 'success', details: { name: 'x', filter: { since: 'yesterday' } } })).toMatch(/^audit\.hold\.create \(success\): \/details\/filter\/since: /);
    expect(auditEventProblem({ type: 'audit.hold.create', outcome: 'success', details: { name: 'x', filter: { owner: 'y' } } })).toBe('audit.hold.create (success): /details/filter/owner: Unexpected property');
  });

  it('unknown types and outcomes a type never has are problems', () => {
    expect(auditEventProblem({ type: 'kms.encrypted', outcome: 'success', details: {} })).toBe('unknown audit event type "kms.encrypted" (not in the catalogue)');
    expect(auditEventProblem({ type: 'constructor', outcome: 'success' })).toMatch(/^unknown audit event type/);
    expect(auditEventProblem({ type: 'auth.failed', outcome: 'success' })).toBe('auth.failed: outcome "success" is not one of denied');
    expect(auditEventProblem({ type: 'kms.rotation.health_check', outcome: 'failure', details: {} })).toMatch(/^kms\.rotation\.health_check: outcome "failure"/);
  });

  it('a failure may lack required fields (the operation failed before recording them), never carry unknown ones', () => {
    expect(auditEventProblem({ type: 'kms.encrypt', outcome: 'failure', details: {} })).toBeNull();
    expect(auditEventProblem({ type: 'kms.key.rotate', outcome: 'failure', details: { reason: 'manual' } })).toBeNull();
    expect(auditEventProblem({ type: 'kms.encrypt', outcome: 'failure', details: { key_version: 0 } })).toMatch(/^kms\.encrypt \(failure\): \/details\/key_version: /);
    expect(auditEventProblem({ type: 'kms.encrypt', outcome: 'failure', details: { context: {} } })).toBe('kms.encrypt (failure): /details/context: Unexpected property');
  });

  it('personal_fields are checked as the personal details fields they are', () => {
    const e = { type: 'backup.create', outcome: 'success', details: { ...AUDIT_EVENT_CATALOGUE['backup.create']!.example } } as { type: string; outcome: string; details: Record<string, unknown> };
    delete e.details.os_user;
    expect(auditEventProblem(e)).toBeNull();
    expect(auditEventProblem({ ...e, personal_fields: { os_user: 'alice' } })).toBeNull();
    expect(auditEventProblem({ ...e, personal_fields: { os_user: 7 } })).toBe('backup.create (success): /details/os_user: Expected string');
    expect(auditEventProblem({ ...e, personal_fields: { file: '/home/alice/b.pbak' } })).toBe('backup.create (success): /personal_fields/file: not a personal field of this type');
  });

  it('checks cost microseconds (compiled once)', () => {
    const e = { type: 'kms.decrypt', outcome: 'success', details: { key_version: 3 } };
    auditEventProblem(e);
    const n = 20_000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) auditEventProblem(e);
    expect(((performance.now() - t0) * 1000) / n).toBeLessThan(20); // µs per check, generous for slow CI
  });

  it('auditEventSchema is the full event: envelope, fixed type, narrowed outcomes, details with marks', () => {
    const s = auditEventSchema('session.create') as { $id: string; properties: Record<string, Json & { const?: string; enum?: string[] }>; required: string[] };
    expect(s.$id).toBe('https://palisade.dev/audit-events/session.create.json');
    expect(s.properties.type!.const).toBe('session.create');
    expect(s.properties.outcome!.enum).toEqual(['success']);
    expect(Object.keys(s.properties)).toEqual(expect.arrayContaining(['index', 'time', 'actor', 'request_id', 'resource', 'error_code', 'personal']));
    expect(s.required).toEqual(expect.arrayContaining(['index', 'time', 'type', 'actor', 'outcome']));
    const details = s.properties.details as { properties: Record<string, Record<string, unknown>> };
    expect(details.properties.session_ref!['x-sensitive']).toBe(true);
    expect(details.properties.user_agent!['x-personal']).toBe(true);
    expect(JSON.parse(JSON.stringify(s))).toEqual(s); // plain JSON

    const r = auditEventSchema('kms.encrypt') as { properties: { details: Json }; then: { properties: { details: Json } } };
    expect(r.properties.details.required ?? []).toEqual([]); // failures may lack fields
    expect(r.then.properties.details.required).toEqual(['key_version']); // success may not
    for (const t of auditEventTypes()) expect(() => auditEventSchema(t)).not.toThrow();
    expect(() => auditEventSchema('nope.nope')).toThrow(/unknown/);
  });
});
