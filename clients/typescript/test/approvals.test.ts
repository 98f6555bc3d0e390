// kavach.approval against the real sidecar: a decision opening a request,
// get, listPending, list, listPage, approve (then allowed once), deny, and
// who may decide.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Agent, Kavach } from '@kavach/client';
import { admin, rejectsWith, startSidecar, withRoles, type Sidecar } from './harness.js';

describe('approval', () => {
  let s: Sidecar;
  let kavach: Kavach;
  let approver: Kavach;
  let decider: Kavach;
  let deployer: Agent;
  before(async () => {
    s = await startSidecar();
    kavach = admin(s);
    approver = await withRoles(s, 'approver');
    decider = await withRoles(s, 'decider');
    deployer = await kavach.agent.create({
      ownerId: 'user-approve',
      name: 'deployer',
      type: 'autonomous',
      permissions: [{ resource: 'mcp:deploy:*', actions: ['execute'], constraints: { requireApproval: true } }],
    });
  });
  after(() => s?.stop());

  const ask = (approvalId?: string, resource = 'mcp:deploy:production') =>
    decider.authorize(deployer.id, { action: 'execute', resource, arguments: { sha: 'abc123' }, ...(approvalId === undefined ? {} : { approvalId }) });

  it('a permission with requireApproval opens a request; approve allows the call once', async () => {
    const first = await ask();
    assert.deepEqual([first.allowed, first.code], [false, 'approval_required']);
    assert.match(first.approvalId ?? '', /^apr_/);
    const id = first.approvalId!;

    const req = await approver.approval.get(id);
    assert.ok(req !== null);
    assert.deepEqual(
      { id: req.id, agentId: req.agentId, userId: req.userId, action: req.action, resource: req.resource, arguments: req.arguments, status: req.status },
      { id, agentId: deployer.id, userId: 'user-approve', action: 'execute', resource: 'mcp:deploy:production', arguments: { sha: 'abc123' }, status: 'pending' },
    );
    assert.ok(req.expiresAt.getTime() > Date.now() && req.createdAt instanceof Date);
    assert.deepEqual((await approver.approval.listPending('user-approve')).map((a) => a.id), [id]);
    assert.deepEqual(await approver.approval.listPending('nobody'), []);

    const approved = await approver.approval.approve(id, 'alice@example.com');
    assert.equal(approved.status, 'approved');
    assert.equal(approved.respondedBy, 'alice@example.com');
    assert.match(approved.respondedByKey ?? '', /^key_/);
    assert.equal(approved.respondedByName, 'test-approver');
    assert.ok(approved.respondedAt instanceof Date);
    assert.deepEqual(await approver.approval.listPending(), []);

    const allowed = await ask(id);
    assert.deepEqual([allowed.allowed, allowed.code], [true, 'allowed']);
    const again = await ask(id);
    assert.deepEqual([again.allowed, again.code], [false, 'approval_used']);
    const used = await kavach.approval.get(id);
    assert.equal(used?.status, 'used');
    assert.ok(used?.usedAt instanceof Date);
    await rejectsWith(approver.approval.approve(id), 409, 'approval_not_pending');
  });

  it('deny takes { onBehalfOf, note }, and the call stays denied', async () => {
    const d = await ask();
    const denied = await kavach.approval.deny(d.approvalId!, { onBehalfOf: 'bob', note: 'not on a Friday' });
    assert.deepEqual([denied.status, denied.respondedBy, denied.note], ['denied', 'bob', 'not on a Friday']);
    const after = await ask(d.approvalId);
    assert.deepEqual([after.allowed, after.code], [false, 'approval_denied']);
  });

  it('list and listPage filter by status, owner and agent, newest first', async () => {
    const opened: string[] = [];
    for (let i = 0; i < 3; i++) opened.push((await ask(undefined, `mcp:deploy:env-${i}`)).approvalId!);
    // Asking again for a call that is pending gives the same request.
    assert.equal((await ask(undefined, 'mcp:deploy:env-2')).approvalId, opened[2]);
    const newest = [...opened].reverse();
    const pending = await admin(s, { pageSize: 2 }).approval.list({ status: 'pending', agentId: deployer.id });
    assert.deepEqual(pending.map((a) => a.id), newest);
    assert.deepEqual((await kavach.approval.list({ userId: 'user-approve', status: 'pending' })).map((a) => a.id), newest);
    assert.deepEqual((await kavach.approval.list({ ownerId: 'nobody' })).length, 0);
    const all = await kavach.approval.list({ agentId: deployer.id });
    assert.ok(all.length >= 5 && all.some((a) => a.status === 'denied') && all.some((a) => a.status === 'used'));
    const p1 = await kavach.approval.listPage({ status: 'pending', limit: 2 });
    assert.deepEqual(p1.items.map((a) => a.id), newest.slice(0, 2));
    const p2 = await kavach.approval.listPage({ status: 'pending', limit: 2, cursor: p1.nextCursor });
    assert.deepEqual([p2.items.map((a) => a.id), p2.nextCursor], [newest.slice(2), '']);
  });

  it('get returns null for an unknown request; a decider may not decide', async () => {
    assert.equal(await kavach.approval.get('apr_01M8TH18CP005BQ5N4C6MZKH0W'), null);
    await rejectsWith(kavach.approval.approve('apr_01M8TH18CP005BQ5N4C6MZKH0W'), 404, 'approval_not_found');
    const d = await ask();
    await rejectsWith(decider.approval.approve(d.approvalId!, 'mallory'), 403, 'forbidden');
    await rejectsWith(decider.approval.listPending(), 403, 'forbidden');
    assert.equal((await kavach.approval.get(d.approvalId!))?.status, 'pending');
  });
});
