import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '@palisade/core';
import { codeOf, dialects, startServer, type TestServer } from '../../testing/harness.js';

describe.each(dialects())('audit events API ($name)', ({ name, available }) => {
  let s: TestServer;
  let keyId = '';
  let limitedToken = '';
  beforeAll(async () => {
    if (!available) return;
    s = await startServer(name);
    keyId = (await s.client.kms.createKey({ key_type: 'DEK', algorithm: 'AES-256-GCM' })).key_id;
    for (let i = 0; i < 3; i++) await s.client.kms.encrypt(keyId, `m${i}`);
    limitedToken = (await s.client.createApiKey({ name: 'encrypt-only', permissions: ['kms:encrypt'] })).token;
    await codeOf(s.clientWith(limitedToken).kms.decrypt(keyId, await s.client.kms.encrypt(keyId, 'x')));
    s.clock.advanceDays(2);
    await s.client.kms.encrypt(keyId, 'late');
  });
  afterAll(async () => s?.close());

  describe.skipIf(!available)('', () => {
    it('answers newest first with every field of the stored event', async () => {
      const page = await s.client.audit.query({ limit: 3 });
      expect(page.events.map((e) => e.index)).toEqual([...page.events.map((e) => e.index)].sort((a, b) => b - a));
      expect(page.events[0]).toMatchObject({ type: 'kms.encrypt', outcome: 'success', action: 'kms:encrypt', resource: { type: 'kms_key', id: keyId }, actor: { principal_id: 'owner' } });
      expect(page.next_cursor).toBe(String(page.events[2]!.index));
      expect(await s.client.audit.get(page.events[0]!.index)).toEqual(page.events[0]);
    });

    it('filters by type, prefix, outcome, action, principal, resource and time, and pages with the cursor', async () => {
      const all: AuditEvent[] = [];
      for await (const e of s.client.audit.events({ order: 'asc', limit: 2 })) all.push(e);
      expect(all.map((e) => e.index)).toEqual(all.map((_, i) => i));

      const encrypts = (await s.client.audit.query({ type: 'kms.encrypt', resource: keyId })).events;
      expect(encrypts).toHaveLength(5);
      const kms = (await s.client.audit.query({ type: 'kms.*' })).events;
      expect(new Set(kms.map((e) => e.type))).toEqual(new Set(['kms.key.create', 'kms.encrypt']));

      const denied = (await s.client.audit.query({ outcome: 'denied', action: 'kms:decrypt' })).events;
      expect(denied).toHaveLength(1);
      expect(denied[0]).toMatchObject({ type: 'authz.denied', error_code: 'PAL_FORBIDDEN' });
      expect(denied[0]!.actor.principal_id).not.toBe('owner');
      const byPrincipal = (await s.client.audit.query({ principal: denied[0]!.actor.principal_id! })).events;
      expect(byPrincipal.map((e) => e.index)).toEqual([denied[0]!.index]);

      const late = (await s.client.audit.query({ since: new Date(s.clock.now().getTime() - 86_400_000).toISOString() })).events;
      expect(late.map((e) => e.type)).toEqual(['kms.encrypt']);
      const early = (await s.client.audit.query({ until: new Date(s.clock.now().getTime() - 86_400_000).toISOString() })).events;
      expect(early.length).toBe(all.length - 1);
    });

    it('a page that runs out of its scan budget still returns a cursor to continue from', async () => {
      const page = await s.rt.ledger.query({ principal: 'nobody-at-all', order: 'asc' }, 4);
      expect(page).toEqual({ events: [], next_cursor: '3' });
      const rest = await s.rt.ledger.query({ principal: 'nobody-at-all', order: 'asc', cursor: '3' });
      expect(rest).toEqual({ events: [], next_cursor: null });
    });

    it('needs audit:events:read, refuses bad queries with 400 and unknown indexes with 404', async () => {
      expect(await codeOf(s.clientWith(limitedToken).audit.query())).toEqual({ status: 403, code: 'PAL_FORBIDDEN' });
      expect(await codeOf(s.client.audit.query({ type: 'kms.%' }))).toMatchObject({ status: 400 });
      expect(await codeOf(s.client.audit.query({ since: 'yesterday' }))).toMatchObject({ status: 400 });
      expect(await codeOf(s.client.audit.query({ limit: 501 }))).toMatchObject({ status: 400 });
      expect(await codeOf(s.client.audit.get(1_000_000))).toEqual({ status: 404, code: 'PAL_AUDIT_EVENT_NOT_FOUND' });
    });
  });
});
