// kavach.anomalies and kavach.trust against the real sidecar (started with
// anomaly.suspendOn: [probing]): an agent probing resources is flagged and
// suspended, its trust drops, and agent.resume lifts the suspension.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Agent, Anomaly, Kavach } from '@kavach/client';
import { admin, eventually, rejectsWith, startSidecar, withRoles, type Sidecar } from './harness.js';

describe('anomalies and trust', () => {
  let s: Sidecar;
  let kavach: Kavach;
  let prober: Agent;
  let calm: Agent;
  let flagged: Anomaly;
  before(async () => {
    s = await startSidecar('anomaly:\n  probingThreshold: 3\n  suspendOn: [probing]\n');
    kavach = admin(s);
    prober = await kavach.agent.create({ ownerId: 'user-anomaly', name: 'prober', permissions: [{ resource: 'mcp:github:*', actions: ['read'] }] });
    calm = await kavach.agent.create({ ownerId: 'user-anomaly', name: 'calm', permissions: [{ resource: 'mcp:github:*', actions: ['read'] }] });
    for (const r of ['secrets:a', 'secrets:b', 'secrets:c', 'secrets:d']) {
      await kavach.authorize(prober.id, { action: 'read', resource: r });
    }
    await kavach.authorize(calm.id, { action: 'read', resource: 'mcp:github:repos' });
    flagged = await eventually('a probing anomaly', async () => (await kavach.anomalies.list({ agentId: prober.id }))[0]);
  });
  after(() => s?.stop());

  it('anomalies.list returns the anomaly with its evidence and Date', async () => {
    assert.match(flagged.id, /^anm_/);
    assert.deepEqual([flagged.agentId, flagged.type], [prober.id, 'probing']);
    assert.ok(flagged.detectedAt instanceof Date && flagged.detectedAt.getTime() <= Date.now() + 1000);
    assert.ok(flagged.description.length > 0 && flagged.severity.length > 0);
    assert.ok(Array.isArray(flagged.evidence.auditIds), JSON.stringify(flagged.evidence));
    assert.deepEqual(await kavach.anomalies.list({ agentId: calm.id }), []);
    assert.deepEqual((await kavach.anomalies.list({ type: 'probing' })).map((a) => a.id), [flagged.id]);
    assert.deepEqual(await kavach.anomalies.list({ type: 'off_hours' }), []);
    assert.deepEqual(await kavach.anomalies.list({ since: new Date(Date.now() + 3_600_000) }), []);
    assert.deepEqual((await kavach.anomalies.list({ limit: 1 })).map((a) => a.id), [flagged.id]);
    const page = await kavach.anomalies.listPage({ agentId: prober.id, limit: 1 });
    assert.deepEqual([page.items.map((a) => a.id), page.nextCursor], [[flagged.id], '']);
    const auditor = await withRoles(s, 'auditor');
    assert.equal((await auditor.anomalies.list()).length, 1);
  });

  it('the anomaly suspends the agent; resume lifts it', async () => {
    const suspended = await eventually('suspension', async () => {
      const a = await kavach.agent.get(prober.id);
      return a?.status === 'suspended' ? a : undefined;
    });
    assert.equal(suspended.status, 'suspended');
    const d = await kavach.authorize(prober.id, { action: 'read', resource: 'mcp:github:repos' });
    assert.deepEqual([d.allowed, d.code], [false, 'agent_suspended']);
    assert.deepEqual((await kavach.agent.list({ userId: 'user-anomaly', status: 'suspended' })).map((a) => a.id), [prober.id]);
    const auditor = await withRoles(s, 'auditor');
    await rejectsWith(auditor.agent.resume(prober.id), 403, 'forbidden');
    const resumed = await kavach.agent.resume(prober.id);
    assert.equal(resumed.status, 'active');
    const after = await kavach.authorize(prober.id, { action: 'read', resource: 'mcp:github:repos' });
    assert.equal(after.allowed, true);
  });

  it('trust.getScore and computeScore return the score, level and Kavach\'s factors', async () => {
    const calmScore = await kavach.trust.getScore(calm.id);
    assert.equal(calmScore.agentId, calm.id);
    assert.ok(calmScore.score >= 0 && calmScore.score <= 100);
    assert.ok(['untrusted', 'limited', 'standard', 'trusted', 'elevated'].includes(calmScore.level));
    assert.equal(calmScore.factors.base, 50);
    assert.ok(!Number.isNaN(Date.parse(calmScore.computedAt)), calmScore.computedAt);
    const proberScore = await eventually('the prober\'s score counting its denials and anomaly', async () => {
      const t = await kavach.trust.computeScore(prober.id);
      return t.factors.denials >= 4 && t.factors.anomalies >= 1 ? t : undefined;
    });
    assert.ok(proberScore.score < calmScore.score, `${proberScore.score} >= ${calmScore.score}`);
    assert.ok(proberScore.factors.denialPenalty > 0 && proberScore.factors.anomalyPenalty > 0);
    const decider = await withRoles(s, 'decider');
    assert.equal((await decider.trust.getScore(calm.id)).agentId, calm.id);
    await rejectsWith(kavach.trust.getScore('agt_01M8TH18CP005BQ5N4C6MZKH0W'), 404, 'agent_not_found');
  });
});
