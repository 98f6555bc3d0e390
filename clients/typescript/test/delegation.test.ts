// kavach.delegate and kavach.delegation against the real sidecar: the
// chain's shape, effective permissions (KavachOS's and detailed), get,
// listChains and its pages, revoke, and refusals that throw.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Agent, Kavach } from '@kavach/client';
import { admin, rejectsWith, startSidecar, withRoles, type Sidecar } from './harness.js';

const hour = () => new Date(Date.now() + 3_600_000);

describe('delegation', () => {
  let s: Sidecar;
  let kavach: Kavach;
  let orch: Agent;
  before(async () => {
    s = await startSidecar();
    kavach = admin(s);
    orch = await kavach.agent.create({
      ownerId: 'user-dlg',
      name: 'orchestrator',
      type: 'autonomous',
      permissions: [
        { resource: 'mcp:github:*', actions: ['read', 'comment'] },
        { resource: 'mcp:deploy:*', actions: ['execute'], constraints: { requireApproval: true } },
      ],
    });
  });
  after(() => s?.stop());

  const newSub = (name: string) => kavach.agent.create({ ownerId: `user-dlg-${name}`, name, type: 'delegated', permissions: [] });

  it('delegate returns KavachOS\'s DelegationChain with Kavach\'s fields', async () => {
    const sub = await newSub('sub');
    const exp = hour();
    exp.setMilliseconds(250);
    const d = await kavach.delegate({
      fromAgent: orch.id,
      toAgent: sub.id,
      permissions: [{ resource: 'mcp:github:issues', actions: ['read'] }],
      expiresAt: exp,
      maxDepth: 2,
    });
    assert.match(d.id, /^dlg_/);
    assert.deepEqual([d.fromAgent, d.toAgent, d.depth, d.maxDepth, d.status], [orch.id, sub.id, 1, 2, 'active']);
    assert.deepEqual(d.permissions, [{ resource: 'mcp:github:issues', actions: ['read'] }]);
    assert.equal(d.expiresAt.toISOString(), exp.toISOString());
    assert.ok(d.createdAt instanceof Date);
    assert.equal(d.grants.length, 1);
    assert.equal(d.grants[0]?.resource, 'mcp:github:issues');
    assert.notEqual(d.grants[0]?.coveredBy, '');
    assert.deepEqual(await kavach.delegation.get(d.id), d);

    const allowed = await kavach.authorize(sub.id, { action: 'read', resource: 'mcp:github:issues' });
    assert.equal(allowed.allowed, true);
    const notGiven = await kavach.authorize(sub.id, { action: 'comment', resource: 'mcp:github:issues' });
    assert.equal(notGiven.allowed, false);
  });

  it('maxDepth defaults to Kavach\'s 1', async () => {
    const sub = await newSub('default-depth');
    const d = await kavach.delegate({ fromAgent: orch.id, toAgent: sub.id, permissions: [{ resource: 'mcp:github:repos', actions: ['read'] }], expiresAt: hour() });
    assert.equal(d.maxDepth, 1);
    const leaf = await newSub('leaf');
    await rejectsWith(
      kavach.delegate({ fromAgent: sub.id, toAgent: leaf.id, permissions: [{ resource: 'mcp:github:repos', actions: ['read'] }], expiresAt: hour() }),
      422,
      'delegation_depth_exceeded',
    );
  });

  it('getEffectivePermissions returns KavachOS\'s Permission[]; the details say where each comes from', async () => {
    const sub = await newSub('eff');
    const d = await kavach.delegate({
      fromAgent: orch.id,
      toAgent: sub.id,
      permissions: [
        { resource: 'mcp:github:issues', actions: ['read'] },
        { resource: 'mcp:deploy:staging', actions: ['execute'] },
      ],
      expiresAt: hour(),
      maxDepth: 2,
    });
    const perms = await kavach.delegation.getEffectivePermissions(sub.id);
    assert.deepEqual(perms, [
      { resource: 'mcp:github:issues', actions: ['read'] },
      { resource: 'mcp:deploy:staging', actions: ['execute'] },
    ]);
    const details = await kavach.delegation.getEffectivePermissionDetails(sub.id);
    assert.equal(details.length, 2);
    for (const p of details) {
      assert.deepEqual([p.source, p.delegationId, p.fromAgent, p.depth], ['delegation', d.id, orch.id, 1]);
      assert.equal(p.expiresAt?.toISOString(), d.expiresAt.toISOString());
    }
    // The deploy grant carries the orchestrator's requireApproval up the chain.
    assert.ok(details[1]?.inheritedConstraints?.some((c) => c.constraints.requireApproval === true), JSON.stringify(details[1]));
    const own = await kavach.delegation.getEffectivePermissions(orch.id);
    assert.deepEqual(own, orch.permissions, 'own permissions, constraints and all');
    const ownDetails = await kavach.delegation.getEffectivePermissionDetails(orch.id);
    assert.deepEqual(ownDetails.map((p) => p.source), ['own', 'own']);
    // A decider may read them too.
    const decider = await withRoles(s, 'decider');
    assert.deepEqual(await decider.delegation.getEffectivePermissions(sub.id), perms);
  });

  it('listChains returns the delegations from and to the agent, every page', async () => {
    const mid = await newSub('mid');
    const ids: string[] = [];
    ids.push((await kavach.delegate({ fromAgent: orch.id, toAgent: mid.id, permissions: [{ resource: 'mcp:github:*', actions: ['read'] }], expiresAt: hour(), maxDepth: 3 })).id);
    for (let i = 0; i < 3; i++) {
      const leaf = await newSub(`leaf-${i}`);
      ids.push((await kavach.delegate({ fromAgent: mid.id, toAgent: leaf.id, permissions: [{ resource: 'mcp:github:repos', actions: ['read'] }], expiresAt: hour(), maxDepth: 3 })).id);
    }
    const chains = await admin(s, { pageSize: 2 }).delegation.listChains(mid.id);
    assert.deepEqual(chains.map((c) => c.id), ids, 'oldest first, to and from');
    assert.equal(chains[1]?.depth, 2);
    const p1 = await kavach.delegation.listChainsPage(mid.id, { limit: 3 });
    assert.deepEqual(p1.items.map((c) => c.id), ids.slice(0, 3));
    const p2 = await kavach.delegation.listChainsPage(mid.id, { limit: 3, cursor: p1.nextCursor });
    assert.deepEqual([p2.items.map((c) => c.id), p2.nextCursor], [ids.slice(3), '']);
  });

  it('revoke ends the delegation and what it gave', async () => {
    const sub = await newSub('revoked');
    const d = await kavach.delegate({ fromAgent: orch.id, toAgent: sub.id, permissions: [{ resource: 'mcp:github:issues', actions: ['read'] }], expiresAt: hour() });
    const r = await kavach.delegation.revoke(d.id);
    assert.equal(r.status, 'revoked');
    assert.ok(r.revokedAt instanceof Date);
    assert.equal((await kavach.delegation.revoke(d.id)).status, 'revoked', 'repeating is harmless');
    assert.deepEqual(await kavach.delegation.getEffectivePermissions(sub.id), []);
    const after = await kavach.authorize(sub.id, { action: 'read', resource: 'mcp:github:issues' });
    assert.equal(after.allowed, false);
    await rejectsWith(kavach.delegation.get('dlg_01M8TH18CP005BQ5N4C6MZKH0W'), 404, 'delegation_not_found');
    await rejectsWith(kavach.delegation.revoke('dlg_01M8TH18CP005BQ5N4C6MZKH0W'), 404, 'delegation_not_found');
  });

  it('a delegation that escalates, cycles or names an unknown agent throws', async () => {
    const sub = await newSub('escalate');
    const tryDelegate = (from: string, to: string, resource: string, actions: string[]) =>
      kavach.delegate({ fromAgent: from, toAgent: to, permissions: [{ resource, actions }], expiresAt: hour(), maxDepth: 2 });
    await rejectsWith(tryDelegate(orch.id, sub.id, 'mcp:*', ['read']), 422, 'delegation_escalation');
    await rejectsWith(tryDelegate(orch.id, sub.id, 'mcp:github:issues', ['read', 'delete']), 422, 'delegation_escalation');
    await rejectsWith(tryDelegate(orch.id, orch.id, 'mcp:github:issues', ['read']), 422, 'self_delegation');
    await tryDelegate(orch.id, sub.id, 'mcp:github:issues', ['read']);
    await rejectsWith(tryDelegate(sub.id, orch.id, 'mcp:github:issues', ['read']), 422, 'delegation_cycle');
    await rejectsWith(tryDelegate(orch.id, 'agt_01M8TH18CP005BQ5N4C6MZKH0W', 'mcp:github:issues', ['read']), 404, 'agent_not_found');
    await rejectsWith(
      kavach.delegate({ fromAgent: orch.id, toAgent: sub.id, permissions: [{ resource: 'mcp:github:issues', actions: ['read'] }], expiresAt: new Date(Date.now() - 1000) }),
      422,
      'invalid_expiry',
    );
    assert.deepEqual(await kavach.delegation.getEffectivePermissions(sub.id), [{ resource: 'mcp:github:issues', actions: ['read'] }], 'nothing of a refused delegation is kept');
    assert.equal((await kavach.delegation.listChains(orch.id)).filter((c) => c.fromAgent === sub.id).length, 0);
    await rejectsWith(kavach.delegation.getEffectivePermissions('agt_01M8TH18CP005BQ5N4C6MZKH0W'), 404, 'agent_not_found');
  });
});
