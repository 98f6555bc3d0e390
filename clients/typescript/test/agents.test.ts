// kavach.agent against the real sidecar: create, get, list (filters and
// every page), listPage, update, revoke, rotate, resume.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Agent, Kavach } from '@kavach/client';
import { admin, rejectsWith, startSidecar, type Sidecar } from './harness.js';

const tokenRe = /^kv_[A-Za-z0-9_-]{43}$/;

describe('agent', () => {
  let s: Sidecar;
  let kavach: Kavach;
  before(async () => {
    s = await startSidecar();
    kavach = admin(s);
  });
  after(() => s?.stop());

  it('create returns KavachOS\'s AgentIdentity with its token and Dates', async () => {
    const before = Date.now();
    const a = await kavach.agent.create({
      ownerId: 'user-create',
      name: 'github-reader',
      type: 'autonomous',
      permissions: [
        { resource: 'mcp:github:*', actions: ['read'] },
        { resource: 'mcp:deploy:production', actions: ['execute'], constraints: { requireApproval: true, maxCallsPerHour: 5 } },
      ],
      metadata: { team: 'infra' },
    });
    assert.match(a.id, /^agt_/);
    assert.match(a.token, tokenRe);
    assert.equal(a.ownerId, 'user-create');
    assert.equal(a.name, 'github-reader');
    assert.equal(a.type, 'autonomous');
    assert.equal(a.status, 'active');
    assert.deepEqual(a.permissions, [
      { resource: 'mcp:github:*', actions: ['read'] },
      { resource: 'mcp:deploy:production', actions: ['execute'], constraints: { requireApproval: true, maxCallsPerHour: 5 } },
    ]);
    assert.deepEqual(a.metadata, { team: 'infra' });
    assert.ok(a.createdAt instanceof Date && a.updatedAt instanceof Date);
    // agents.tokenExpiry's default: 24 hours, as in KavachOS.
    assert.equal(a.expiresAt?.getTime(), a.createdAt.getTime() + 24 * 3600_000);
    assert.ok(Math.abs(a.createdAt.getTime() - before) < 60_000, `createdAt ${a.createdAt.toISOString()}`);
    assert.equal(a.revokedAt, undefined);
  });

  it('create sends expiresAt and defaults type to autonomous', async () => {
    const exp = new Date(Date.now() + 86_400_000);
    exp.setMilliseconds(123);
    const a = await kavach.agent.create({ ownerId: 'user-create', name: 'expiring', permissions: [] });
    assert.equal(a.type, 'autonomous');
    const b = await kavach.agent.create({ ownerId: 'user-create', name: 'expiring', type: 'service', permissions: [], expiresAt: exp });
    assert.equal(b.type, 'service');
    assert.equal(b.expiresAt?.toISOString(), exp.toISOString());
  });

  it('get returns the agent without its token, and null for an unknown ID', async () => {
    const a = await kavach.agent.create({ ownerId: 'user-get', name: 'x', type: 'service', permissions: [{ resource: 'files:*', actions: ['read'] }] });
    const got = await kavach.agent.get(a.id);
    assert.ok(got !== null);
    assert.deepEqual(got, { ...a, token: '' });
    assert.equal(await kavach.agent.get('agt_01M8TH18CP005BQ5N4C6MZKH0W'), null);
  });

  it('list filters by userId (or ownerId), status and type, and fetches every page', async () => {
    const owner = 'user-list';
    const made: Agent[] = [];
    for (const type of ['autonomous', 'delegated', 'service', 'autonomous', 'delegated'] as const) {
      made.push(await kavach.agent.create({ ownerId: owner, name: `a-${made.length}`, type, permissions: [] }));
    }
    await kavach.agent.create({ ownerId: 'someone-else', name: 'other', permissions: [] });
    await kavach.agent.revoke(made[4]!.id);

    // pageSize 2: five agents take three pages.
    const urls: string[] = [];
    const paged = admin(s, {
      pageSize: 2,
      fetch: (input, init) => {
        urls.push(String(input));
        return fetch(input, init);
      },
    });
    const all = await paged.agent.list({ userId: owner });
    assert.deepEqual(all.map((a) => a.id), made.map((a) => a.id), 'oldest first, every page');
    assert.equal(urls.length, 3, urls.join('\n'));
    assert.ok(urls.every((u) => u.includes('ownerId=user-list') && u.includes('limit=2')), urls.join('\n'));
    assert.ok(all.every((a) => a.token === ''));

    assert.deepEqual((await kavach.agent.list({ ownerId: owner })).map((a) => a.id), made.map((a) => a.id));
    const active = await kavach.agent.list({ userId: owner, status: 'active' });
    assert.deepEqual(active.map((a) => a.id), made.slice(0, 4).map((a) => a.id));
    const revoked = await kavach.agent.list({ userId: owner, status: 'revoked' });
    assert.deepEqual(revoked.map((a) => a.id), [made[4]!.id]);
    const delegated = await paged.agent.list({ userId: owner, type: 'delegated' });
    assert.deepEqual(delegated.map((a) => a.id), [made[1]!.id, made[4]!.id]);
    const everyone = await kavach.agent.list();
    assert.ok(everyone.length >= 6 && everyone.some((a) => a.ownerId === 'someone-else'));
  });

  it('listPage returns one page and the cursor of the next', async () => {
    const owner = 'user-page';
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await kavach.agent.create({ ownerId: owner, name: `p${i}`, permissions: [] })).id);
    const p1 = await kavach.agent.listPage({ userId: owner, limit: 2 });
    assert.deepEqual(p1.items.map((a) => a.id), ids.slice(0, 2));
    assert.notEqual(p1.nextCursor, '');
    const p2 = await kavach.agent.listPage({ ownerId: owner, limit: 2, cursor: p1.nextCursor });
    assert.deepEqual(p2.items.map((a) => a.id), ids.slice(2));
    assert.equal(p2.nextCursor, '');
    await rejectsWith(kavach.agent.listPage({ ownerId: owner, limit: 1001 }), 400, 'invalid_parameter');
    await rejectsWith(kavach.agent.listPage({ ownerId: owner, cursor: 'not-a-cursor' }), 400, 'invalid_parameter');
  });

  it('update changes name, permissions, expiry and metadata; null clears the expiry', async () => {
    const a = await kavach.agent.create({ ownerId: 'user-update', name: 'before', permissions: [{ resource: 'a:b', actions: ['read'] }] });
    const exp = new Date(Date.now() + 3_600_000);
    exp.setMilliseconds(0);
    const u = await kavach.agent.update(a.id, {
      name: 'after',
      permissions: [{ resource: 'c:*', actions: ['write'], constraints: { maxCallsPerHour: 3 } }],
      expiresAt: exp,
      metadata: { v: 2 },
    });
    assert.equal(u.name, 'after');
    assert.deepEqual(u.permissions, [{ resource: 'c:*', actions: ['write'], constraints: { maxCallsPerHour: 3 } }]);
    assert.equal(u.expiresAt?.getTime(), exp.getTime());
    assert.deepEqual(u.metadata, { v: 2 });
    assert.equal(u.token, '');
    assert.ok(u.updatedAt.getTime() >= a.updatedAt.getTime());
    const cleared = await kavach.agent.update(a.id, { expiresAt: null });
    assert.equal(cleared.expiresAt, null);
    assert.equal(cleared.name, 'after', 'absent fields are unchanged');
    assert.deepEqual((await kavach.agent.get(a.id))?.permissions, u.permissions);
  });

  it('revoke returns the revoked agent, and its decisions are denied', async () => {
    const a = await kavach.agent.create({ ownerId: 'user-revoke', name: 'r', permissions: [{ resource: 'x:y', actions: ['read'] }] });
    const r = await kavach.agent.revoke(a.id);
    assert.equal(r.status, 'revoked');
    assert.ok(r.revokedAt instanceof Date);
    const again = await kavach.agent.revoke(a.id);
    assert.equal(again.status, 'revoked', 'repeating is harmless');
    const d = await kavach.authorize(a.id, { action: 'read', resource: 'x:y' });
    assert.deepEqual([d.allowed, d.code], [false, 'agent_revoked']);
    await rejectsWith(kavach.agent.rotate(a.id), 409, 'agent_revoked');
  });

  it('rotate returns a new token and the old one stops working', async () => {
    const a = await kavach.agent.create({ ownerId: 'user-rotate', name: 'r', permissions: [{ resource: 'x:y', actions: ['read'] }] });
    const r = await kavach.agent.rotate(a.id);
    assert.equal(r.id, a.id);
    assert.match(r.token, tokenRe);
    assert.notEqual(r.token, a.token);
    const old = await kavach.authorizeByToken(a.token, { action: 'read', resource: 'x:y' });
    assert.deepEqual([old.allowed, old.code], [false, 'invalid_token']);
    const now = await kavach.authorizeByToken(r.token, { action: 'read', resource: 'x:y' });
    assert.equal(now.allowed, true);
  });

  it('resume returns an active agent unchanged and refuses a revoked one', async () => {
    const a = await kavach.agent.create({ ownerId: 'user-resume', name: 'r', permissions: [] });
    const r = await kavach.agent.resume(a.id);
    assert.deepEqual(r, { ...a, token: '' });
    await kavach.agent.revoke(a.id);
    await rejectsWith(kavach.agent.resume(a.id), 409, 'agent_revoked');
  });

  it('unknown agents are 404 agent_not_found for update, revoke, rotate and resume', async () => {
    const id = 'agt_01M8TH18CP005BQ5N4C6MZKH0W';
    await rejectsWith(kavach.agent.update(id, { name: 'x' }), 404, 'agent_not_found');
    await rejectsWith(kavach.agent.revoke(id), 404, 'agent_not_found');
    await rejectsWith(kavach.agent.rotate(id), 404, 'agent_not_found');
    await rejectsWith(kavach.agent.resume(id), 404, 'agent_not_found');
  });

  it('create refuses invalid input with 422 and 400', async () => {
    await rejectsWith(kavach.agent.create({ ownerId: 'u', name: 'bad', permissions: [{ resource: 'mcp::x', actions: ['read'] }] }), 422, 'invalid_permission');
    await rejectsWith(kavach.agent.create({ ownerId: 'u', name: 'bad', permissions: [], expiresAt: new Date(Date.now() - 60_000) }), 422, 'invalid_expiry');
    // @ts-expect-error: a type KavachOS does not have either
    await rejectsWith(kavach.agent.create({ ownerId: 'u', name: 'bad', type: 'robot', permissions: [] }), 422, 'invalid_type');
  });
});
