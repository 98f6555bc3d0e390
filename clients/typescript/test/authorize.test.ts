// kavach.authorize and kavach.authorizeByToken against the real sidecar:
// results, arguments and context in the audit row, the token beside a key
// or alone, explain, and the errors a decision call can have.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createKavach, type Agent, type Kavach } from '@kavach/client';
import { admin, rejectsWith, startSidecar, withRoles, type Sidecar } from './harness.js';

describe('authorize', () => {
  let s: Sidecar;
  let kavach: Kavach;
  let decider: Kavach;
  let agent: Agent;
  before(async () => {
    s = await startSidecar();
    kavach = admin(s);
    decider = await withRoles(s, 'decider');
    agent = await kavach.agent.create({
      ownerId: 'user-authz',
      name: 'github-reader',
      type: 'autonomous',
      permissions: [
        { resource: 'mcp:github:*', actions: ['read'] },
        { resource: 'mcp:github:issues', actions: ['read', 'comment'] },
      ],
    });
  });
  after(() => s?.stop());

  it('returns { allowed, reason, auditId } and Kavach\'s code, allowed and denied', async () => {
    const yes = await decider.authorize(agent.id, { action: 'read', resource: 'mcp:github:repos' });
    assert.equal(yes.allowed, true);
    assert.equal(yes.code, 'allowed');
    assert.match(yes.auditId, /^aud_/);
    assert.equal(yes.reason, 'permission "mcp:github:*" allows "read" on "mcp:github:repos"');
    assert.equal(yes.approvalId, undefined);
    const no = await decider.authorize(agent.id, { action: 'write', resource: 'mcp:github:repos' });
    assert.deepEqual([no.allowed, no.code], [false, 'no_permission']);
    assert.match(no.reason ?? '', /no permission/);
    assert.notEqual(no.auditId, yes.auditId);
  });

  it('an unknown agent is a denial, not an error', async () => {
    const d = await decider.authorize('agt_01M8TH18CP005BQ5N4C6MZKH0W', { action: 'read', resource: 'mcp:github:repos' });
    assert.equal(d.allowed, false);
    assert.equal(d.code, 'agent_not_found');
    assert.match(d.auditId, /^aud_/);
  });

  it('writes arguments and context (request.context, KavachOS\'s ip, the third argument) to the audit row', async () => {
    const a = await decider.authorize(agent.id, {
      action: 'comment',
      resource: 'mcp:github:issues',
      arguments: { issue: 42, body: 'hi' },
      context: { ip: '10.0.0.7', userAgent: 'my-agent/1.0' },
    });
    const b = await decider.authorize(agent.id, { action: 'read', resource: 'mcp:github:repos', ip: '10.0.0.8' });
    const c = await decider.authorize(agent.id, { action: 'read', resource: 'mcp:github:repos' }, { ip: '10.0.0.9', userAgent: 'third/1' });
    const rows = await kavach.audit.query({ agentId: agent.id, limit: 50 });
    const row = (id: string) => {
      const r = rows.find((e) => e.id === id);
      assert.ok(r, `no audit row ${id}`);
      return r;
    };
    assert.deepEqual(row(a.auditId).parameters, { issue: 42, body: 'hi' });
    assert.deepEqual([row(a.auditId).ip, row(a.auditId).userAgent], ['10.0.0.7', 'my-agent/1.0']);
    assert.equal(row(b.auditId).ip, '10.0.0.8');
    assert.deepEqual(row(b.auditId).parameters, {});
    assert.deepEqual([row(c.auditId).ip, row(c.auditId).userAgent], ['10.0.0.9', 'third/1']);
    assert.equal(row(a.auditId).actor.type, 'key');
  });

  it('authorizeByToken sends the token beside the key, or alone without a key', async () => {
    const byKey = await decider.authorizeByToken(agent.token, { action: 'comment', resource: 'mcp:github:issues' });
    assert.deepEqual([byKey.allowed, byKey.code], [true, 'allowed']);
    const denied = await decider.authorizeByToken(agent.token, { action: 'delete', resource: 'mcp:github:issues' });
    assert.deepEqual([denied.allowed, denied.code], [false, 'no_permission']);
    const self = createKavach({ url: s.url });
    const own = await self.authorizeByToken(agent.token, { action: 'read', resource: 'mcp:github:repos' });
    assert.equal(own.allowed, true);
    const rows = await kavach.audit.query({ agentId: agent.id, limit: 3 });
    const ownRow = rows.find((e) => e.id === own.auditId);
    const keyRow = rows.find((e) => e.id === denied.auditId);
    assert.deepEqual(ownRow?.actor, { type: 'agent', id: agent.id });
    assert.equal(keyRow?.actor.type, 'key');
    // Without a key, the agent may do nothing but ask for its own decisions.
    await rejectsWith(self.agent.list(), 401, 'unauthenticated');
  });

  it('authorizeByToken: an unknown token is a denial beside a key, a malformed one an error', async () => {
    const unknown = await decider.authorizeByToken(`kv_${'A'.repeat(43)}`, { action: 'read', resource: 'mcp:github:repos' });
    assert.deepEqual([unknown.allowed, unknown.code], [false, 'invalid_token']);
    await rejectsWith(decider.authorizeByToken('not-a-token', { action: 'read', resource: 'mcp:github:repos' }), 401, 'malformed_token');
    const self = createKavach({ url: s.url });
    await rejectsWith(self.authorizeByToken(`kv_${'A'.repeat(43)}`, { action: 'read', resource: 'mcp:github:repos' }), 401, 'invalid_token');
  });

  it('explain returns the permissions considered', async () => {
    const d = await decider.authorize(agent.id, { action: 'read', resource: 'mcp:github:repos', explain: true });
    assert.equal(d.allowed, true);
    assert.ok(d.explanation !== undefined && d.explanation !== null, 'no explanation');
    assert.match(JSON.stringify(d.explanation), /mcp:github:\*/);
    const plain = await decider.authorize(agent.id, { action: 'read', resource: 'mcp:github:repos' });
    assert.equal(plain.explanation, undefined);
  });

  it('refuses a key without the decider role (403) and a bad key (401)', async () => {
    const approver = await withRoles(s, 'approver');
    await rejectsWith(approver.authorize(agent.id, { action: 'read', resource: 'mcp:github:repos' }), 403, 'forbidden');
    const wellFormed = `kvk_${randomBytes(32).toString('base64url')}`;
    const unknown = createKavach({ url: s.url, apiKey: wellFormed });
    const e = await rejectsWith(unknown.authorize(agent.id, { action: 'read', resource: 'mcp:github:repos' }), 401, 'invalid_key');
    assert.ok(!e.message.includes(wellFormed), 'the key is in the message');
    const malformed = createKavach({ url: s.url, apiKey: 'not-a-key' });
    await rejectsWith(malformed.authorize(agent.id, { action: 'read', resource: 'mcp:github:repos' }), 401, 'malformed_credential');
  });
});
