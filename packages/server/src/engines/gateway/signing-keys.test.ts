/**
 * Request-signing keys against a real server over HTTPS (SQLite and PostgreSQL), through the SDK: created with the
 * secret shown once and stored only wrapped, listed, revoked (by the owner, or with gateway:signing-keys:manage),
 * audited without the secret; and the gateway's verifier over them: an SDK-signed request verifies and names the
 * key's principal, a replay, a stale request and a revoked key are refused, a revocation reaching another node's
 * cache through the authorization generation.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PalisadeError, type CreatedSigningKey } from '@palisade/core';
import { RequestSigner, type PalisadeClient } from '@palisade/sdk';
import { codeOf, dialects, startServer, type TestServer } from '../../testing/harness.js';
import { AuthGeneration } from '../../kernel/auth/generation.js';
import { MemoryReplayCache } from '../../kernel/signing/replay-cache.js';
import { signatureVerifier, signingKeyPurpose, SigningKeys } from './signing-keys.js';
import type { GatewaySignatures } from './gateway.js';

async function until(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The PalisadeError code a promise rejects with, or `resolved`. */
async function rejectsWith(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof PalisadeError) return e.code;
    throw e;
  }
  return 'resolved';
}

for (const d of dialects()) {
  describe.skipIf(!d.available)(`gateway signing keys (${d.name})`, () => {
    let s: TestServer;
    const logs: string[] = [];
    /** Two agents (API keys carrying only gateway:signing-keys:create), each its own principal. */
    let a: { id: string; c: PalisadeClient };
    let b: { id: string; c: PalisadeClient };
    /** Another node's view of the same database: its own cache (long-lived, so only the generation drops it). */
    let nodeB: SigningKeys;
    let generationB: AuthGeneration;
    const secrets: string[] = [];
    const keep = (k: CreatedSigningKey) => (secrets.push(k.secret), k);

    beforeAll(async () => {
      s = await startServer(d.name, { logs });
      const agent = async (name: string) => {
        const key = await s.client.createApiKey({ name, permissions: ['gateway:signing-keys:create'] });
        return { id: key.principal_id, c: s.clientWith(key.token) };
      };
      a = await agent('agent-a');
      b = await agent('agent-b');
      generationB = new AuthGeneration(s.rt.storage, { pollMs: 50 });
      await generationB.start();
      nodeB = new SigningKeys({ storage: s.rt.storage, barrier: () => s.rt.seal.barrier(), generation: generationB, cacheMs: 3_600_000 });
    });
    afterAll(async () => {
      await generationB?.stop();
      await s?.close();
    });

    it('creates a key for its caller: the secret (32 random bytes, base64url) once, the row holding it only wrapped', async () => {
      const k = keep(await a.c.gateway.createSigningKey({ name: 'planner' }));
      expect(k).toMatchObject({ principal_id: a.id, name: 'planner', created_by: a.id, revoked_at: null });
      expect(k.id).toMatch(/^sk_[A-Za-z0-9]+$/);
      expect(k.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
      const secret = Buffer.from(k.secret, 'base64url');
      expect(secret).toHaveLength(32);

      const row = await s.rt.storage.db.selectFrom('signing_keys').selectAll().where('id', '=', k.id).executeTakeFirstOrThrow();
      const stored = Buffer.from(row.secret);
      expect(stored.indexOf(secret)).toBe(-1);
      expect(stored.toString('latin1')).not.toContain(k.secret);
      expect(JSON.stringify(row)).not.toContain(k.secret);
      // Sealed under its own id and principal: it opens only so, so a blob moved to another row or principal does not.
      expect(s.rt.seal.barrier().open(signingKeyPurpose(k.id, a.id), stored).equals(secret)).toBe(true);
      expect(() => s.rt.seal.barrier().open(signingKeyPurpose(k.id, b.id), stored)).toThrow(/failed authentication/);
      expect(() => s.rt.seal.barrier().open(signingKeyPurpose('sk_other', a.id), stored)).toThrow(/failed authentication/);

      const listed = (await a.c.gateway.listSigningKeys()).signing_keys;
      expect(listed.map((x) => x.id)).toEqual([k.id]);
      expect(listed[0]).not.toHaveProperty('secret');
      expect(await nodeB.secretFor(k.id)).toEqual({ secret, principal_id: a.id });
    });

    it('lists a principal\'s own keys; everyone\'s (or one principal\'s) only with gateway:signing-keys:manage', async () => {
      const kb = keep(await b.c.gateway.createSigningKey({ name: 'retriever' }));
      const own = (await b.c.gateway.listSigningKeys()).signing_keys;
      expect(own.map((x) => x.id)).toEqual([kb.id]);
      expect(await codeOf(b.c.gateway.listSigningKeys({ principal_id: a.id }))).toEqual({ status: 403, code: 'PAL_FORBIDDEN' });
      expect((await b.c.gateway.listSigningKeys({ principal_id: b.id })).signing_keys.map((x) => x.id)).toEqual([kb.id]);

      const all = (await s.client.gateway.listSigningKeys()).signing_keys; // the owner holds `*`
      expect(new Set(all.map((x) => x.principal_id))).toEqual(new Set([a.id, b.id]));
      expect((await s.client.gateway.listSigningKeys({ principal_id: a.id })).signing_keys.every((x) => x.principal_id === a.id)).toBe(true);
    });

    it('creates a key for another principal only with gateway:signing-keys:manage', async () => {
      expect(await codeOf(b.c.gateway.createSigningKey({ name: 'not mine', principal_id: a.id }))).toEqual({ status: 403, code: 'PAL_FORBIDDEN' });
      const k = keep(await s.client.gateway.createSigningKey({ name: 'for a', principal_id: a.id }));
      expect(k).toMatchObject({ principal_id: a.id, created_by: 'owner' });
      expect((await a.c.gateway.listSigningKeys()).signing_keys.map((x) => x.id)).toContain(k.id);
      // The body is validated: no unknown fields, a name.
      expect(await codeOf(a.c.gateway.createSigningKey({ name: '' }))).toEqual({ status: 400, code: 'PAL_VALIDATION_FAILED' });
      expect(await codeOf(a.c.transport.send('POST', '/v1/gateway/signing-keys', { name: 'x', secret: 'chosen' }))).toEqual({ status: 400, code: 'PAL_VALIDATION_FAILED' });
    });

    it('revokes: the owner of the key or a manager, nobody else; 404 for an unknown key; secretFor then answers null', async () => {
      const k = keep(await a.c.gateway.createSigningKey({ name: 'to revoke' }));
      expect((await nodeB.secretFor(k.id))?.principal_id).toBe(a.id); // cached on "node B"

      expect(await codeOf(b.c.gateway.revokeSigningKey(k.id))).toEqual({ status: 403, code: 'PAL_FORBIDDEN' });
      expect(await codeOf(a.c.gateway.revokeSigningKey('sk_doesnotexist'))).toEqual({ status: 404, code: 'PAL_GATEWAY_SIGNING_KEY_NOT_FOUND' });
      expect((await a.c.gateway.listSigningKeys()).signing_keys.find((x) => x.id === k.id)?.revoked_at).toBeNull();

      const revoked = await a.c.gateway.revokeSigningKey(k.id);
      expect(revoked).toMatchObject({ id: k.id, principal_id: a.id });
      expect(revoked.revoked_at).not.toBeNull();
      const again = await a.c.gateway.revokeSigningKey(k.id); // revoking twice keeps the first time
      expect(again.revoked_at).toBe(revoked.revoked_at);
      expect((await a.c.gateway.listSigningKeys()).signing_keys.find((x) => x.id === k.id)?.revoked_at).toBe(revoked.revoked_at);

      // Another node's cache (an hour long here) drops it when the authorization generation moves.
      await until(async () => (await nodeB.secretFor(k.id)) === null);
      const fresh = new SigningKeys({ storage: s.rt.storage, barrier: () => s.rt.seal.barrier() });
      expect(await fresh.secretFor(k.id)).toBeNull();
      expect(await fresh.secretFor('sk_doesnotexist')).toBeNull();

      // A manager revokes someone else's.
      const other = keep(await b.c.gateway.createSigningKey({ name: 'revoked by the owner' }));
      expect((await s.client.gateway.revokeSigningKey(other.id)).revoked_at).not.toBeNull();
      expect(await fresh.secretFor(other.id)).toBeNull();
    });

    it('revoking on this node drops its own cache at once', async () => {
      const local = new SigningKeys({ storage: s.rt.storage, barrier: () => s.rt.seal.barrier(), cacheMs: 3_600_000 });
      const k = keep(await local.create(s.rt.storage.db, { principal_id: a.id, name: 'local', created_by: a.id }));
      expect(await local.secretFor(k.id)).not.toBeNull();
      await local.revoke(s.rt.storage.db, k.id);
      expect(await local.secretFor(k.id)).toBeNull();
    });

    it('refuses to hand out secrets while sealed', async () => {
      const sealed = new SigningKeys({ storage: s.rt.storage, barrier: () => { throw new PalisadeError('PAL_SEAL_SEALED'); } });
      expect(await rejectsWith(sealed.secretFor('sk_any'))).toBe('PAL_SEAL_SEALED');
    });

    it('audits creation and revocation (resource signing_key, details {principal_id}), refusals too, never the secret', async () => {
      const { events } = await s.rt.ledger.query({ type: 'gateway.signing_key.*', limit: 100, order: 'asc' });
      const created = events.filter((e) => e.type === 'gateway.signing_key.create' && e.outcome === 'success');
      const revoked = events.filter((e) => e.type === 'gateway.signing_key.revoke' && e.outcome === 'success');
      expect(created.length).toBeGreaterThanOrEqual(4);
      expect(revoked.length).toBeGreaterThanOrEqual(3);
      for (const e of [...created, ...revoked]) {
        expect(e.resource?.type).toBe('signing_key');
        expect(e.resource?.id).toMatch(/^sk_/);
        expect(Object.keys(e.details ?? {})).toEqual(['principal_id']);
      }
      expect(created.some((e) => e.actor.principal_id === 'owner' && e.details?.['principal_id'] === a.id)).toBe(true);
      const refused = events.filter((e) => e.outcome !== 'success');
      expect(refused.some((e) => e.type === 'gateway.signing_key.revoke' && e.error_code === 'PAL_FORBIDDEN' && e.actor.principal_id === b.id)).toBe(true);
      expect(refused.some((e) => e.type === 'gateway.signing_key.create' && e.error_code === 'PAL_FORBIDDEN')).toBe(true);
      expect(refused.some((e) => e.type === 'gateway.signing_key.revoke' && e.error_code === 'PAL_GATEWAY_SIGNING_KEY_NOT_FOUND')).toBe(true);

      expect(secrets.length).toBeGreaterThanOrEqual(5);
      const ledger = JSON.stringify(events);
      const log = logs.join('\n');
      for (const secret of secrets) {
        expect(ledger).not.toContain(secret);
        expect(log).not.toContain(secret);
      }
      expect(log).toContain('/v1/gateway/signing-keys'); // the logs were captured
    });

    describe('the gateway\'s verifier', () => {
      let key: CreatedSigningKey;
      let now = Date.now();
      const clock = () => new Date(now);
      let verifier: GatewaySignatures;
      const body = JSON.stringify({ task: 'summarise', items: [1, 2, 3] });

      /** A request as the gateway would hand it to the verifier, signed by the SDK at `at` (default: now). */
      const signed = (k: { id: string; secret: string }, at = now) => {
        const signer = new RequestSigner({ keyId: k.id, secret: Buffer.from(k.secret, 'base64url'), clock: () => new Date(at) });
        const headers: Record<string, string> = { 'content-type': 'application/json', authorization: 'Bearer not-signed' };
        Object.assign(headers, signer.sign({ method: 'POST', url: 'https://gateway.example/agents/run?step=1', headers, body }));
        return { method: 'POST', url: '/agents/run?step=1', headers, body: Buffer.from(body) };
      };

      beforeAll(async () => {
        key = keep(await a.c.gateway.createSigningKey({ name: 'verifier' }));
        verifier = signatureVerifier(nodeB, new MemoryReplayCache(), clock);
      });

      it('verifies an SDK-signed request and names the key and its principal', async () => {
        expect(await verifier.verify(signed(key))).toEqual({ keyId: key.id, principal_id: a.id });
      });

      it('refuses a replay (PAL_SIGNATURE_REPLAYED)', async () => {
        const req = signed(key);
        await verifier.verify(req);
        expect(await rejectsWith(verifier.verify(req))).toBe('PAL_SIGNATURE_REPLAYED');
      });

      it('refuses a re-timed request: stale or from the future (PAL_SIGNATURE_EXPIRED); a rewritten ts breaks the HMAC', async () => {
        const captured = signed(key);
        now += 301_000; // more than the 300 s skew later
        expect(await rejectsWith(verifier.verify(captured))).toBe('PAL_SIGNATURE_EXPIRED');
        expect(await rejectsWith(verifier.verify(signed(key, now + 301_000)))).toBe('PAL_SIGNATURE_EXPIRED');
        const retimed = { ...captured, headers: { ...captured.headers, 'palisade-signature': captured.headers['palisade-signature']!.replace(/ts=\d+/, `ts=${Math.floor(now / 1000)}`) } };
        expect(await rejectsWith(verifier.verify(retimed))).toBe('PAL_SIGNATURE_INVALID');
      });

      it('refuses a tampered body, a wrong secret and an unknown key', async () => {
        expect(await rejectsWith(verifier.verify({ ...signed(key), body: Buffer.from(body.replace('1', '9')) }))).toBe('PAL_SIGNATURE_INVALID');
        expect(await rejectsWith(verifier.verify(signed({ id: key.id, secret: Buffer.alloc(32, 7).toString('base64url') })))).toBe('PAL_SIGNATURE_INVALID');
        expect(await rejectsWith(verifier.verify(signed({ id: 'sk_unknown', secret: key.secret })))).toBe('PAL_SIGNATURE_KEY_UNKNOWN');
      });

      it('refuses a signature that does not cover host (PAL_SIGNATURE_MALFORMED)', async () => {
        const req = signed(key);
        const header = req.headers['palisade-signature']!.replace('headers=content-type;host', 'headers=content-type');
        expect(await rejectsWith(verifier.verify({ ...req, headers: { ...req.headers, 'palisade-signature': header } }))).toBe('PAL_SIGNATURE_MALFORMED');
      });

      it('refuses a revoked key (PAL_SIGNATURE_KEY_UNKNOWN), on another node too', async () => {
        expect((await verifier.verify(signed(key))).principal_id).toBe(a.id); // node B has the secret cached
        await a.c.gateway.revokeSigningKey(key.id);
        await until(async () => (await rejectsWith(verifier.verify(signed(key)))) === 'PAL_SIGNATURE_KEY_UNKNOWN');
      });
    });
  });
}
