// kavach.audit against the real sidecar: query's filters (KavachOS's and
// Kavach's), limit and offset over pages, queryPage, export as CSV and JSON,
// and who may read the trail.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Agent, AuthorizeResult, Kavach } from '@kavach/client';
import { admin, rejectsWith, startSidecar, withRoles, type Sidecar } from './harness.js';

describe('audit', () => {
  let s: Sidecar;
  let kavach: Kavach;
  let agent: Agent;
  let other: Agent;
  const decisions: AuthorizeResult[] = [];
  before(async () => {
    s = await startSidecar();
    kavach = admin(s);
    agent = await kavach.agent.create({
      ownerId: 'user-audit',
      name: 'audited',
      type: 'autonomous',
      permissions: [
        { resource: 'mcp:github:*', actions: ['read'] },
        { resource: 'mcp:slack:post', actions: ['send'], constraints: { maxCallsPerHour: 1 } },
      ],
    });
    other = await kavach.agent.create({ ownerId: 'user-other', name: 'other', permissions: [{ resource: 'x:y', actions: ['read'] }] });
    const ask = async (action: string, resource: string) => {
      const d = await kavach.authorize(agent.id, { action, resource, arguments: { n: decisions.length } });
      decisions.push(d);
      // Distinct milliseconds, so since and until can split the rows.
      await new Promise((r) => setTimeout(r, 5));
    };
    await ask('read', 'mcp:github:repos'); // 0 allowed
    await ask('write', 'mcp:github:repos'); // 1 denied
    await ask('read', 'mcp:github:issues'); // 2 allowed
    await ask('send', 'mcp:slack:post'); // 3 allowed
    await ask('send', 'mcp:slack:post'); // 4 rate_limited
    await ask('delete', 'mcp:github:repos'); // 5 denied
    await kavach.authorize(other.id, { action: 'read', resource: 'x:y' });
  });
  after(() => s?.stop());

  const ids = (rows: { id: string }[]) => rows.map((r) => r.id);
  const newestFirst = (...i: number[]) => i.map((n) => decisions[n]!.auditId);

  it('query returns KavachOS\'s AuditEntry, newest first, decisions only by default', async () => {
    const rows = await kavach.audit.query({ agentId: agent.id });
    assert.deepEqual(ids(rows), newestFirst(5, 4, 3, 2, 1, 0));
    const r = rows[5]!;
    assert.deepEqual(
      { agentId: r.agentId, userId: r.userId, action: r.action, resource: r.resource, parameters: r.parameters, result: r.result, kind: r.kind, code: r.code },
      { agentId: agent.id, userId: 'user-audit', action: 'read', resource: 'mcp:github:repos', parameters: { n: 0 }, result: 'allowed', kind: 'decision', code: 'allowed' },
    );
    assert.ok(r.timestamp instanceof Date && !Number.isNaN(r.timestamp.getTime()));
    assert.equal(r.durationMs, r.durationUs / 1000);
    assert.equal(r.ownerId, 'user-audit');
    assert.equal(r.actor.type, 'admin_env');
    assert.ok(typeof r.reason === 'string' && r.reason.length > 0);
    assert.match(r.hash ?? '', /^[0-9a-f]{64}$/);
  });

  it('query filters by result, userId, actions, since and until', async () => {
    assert.deepEqual(ids(await kavach.audit.query({ agentId: agent.id, result: 'denied' })), newestFirst(5, 4, 1));
    assert.deepEqual(ids(await kavach.audit.query({ agentId: agent.id, result: 'allowed' })), newestFirst(3, 2, 0));
    assert.deepEqual(ids(await kavach.audit.query({ agentId: agent.id, result: 'rate_limited' })), newestFirst(4));
    assert.deepEqual(ids(await kavach.audit.query({ userId: 'user-audit' })), newestFirst(5, 4, 3, 2, 1, 0));
    assert.equal((await kavach.audit.query({ userId: 'user-other' })).length, 1);
    assert.deepEqual(ids(await kavach.audit.query({ agentId: agent.id, actions: ['send'] })), newestFirst(4, 3));
    assert.deepEqual(ids(await kavach.audit.query({ agentId: agent.id, actions: ['write', 'delete'] })), newestFirst(5, 1));
    const all = await kavach.audit.query({ agentId: agent.id });
    const at = (n: number) => all.find((e) => e.id === decisions[n]!.auditId)!.timestamp;
    // since is inclusive, until exclusive.
    assert.deepEqual(ids(await kavach.audit.query({ agentId: agent.id, since: at(2), until: at(4) })), newestFirst(3, 2));
  });

  it('query takes limit and offset across pages', async () => {
    const small = admin(s, { pageSize: 2 });
    assert.deepEqual(ids(await small.audit.query({ agentId: agent.id, limit: 3 })), newestFirst(5, 4, 3));
    assert.deepEqual(ids(await small.audit.query({ agentId: agent.id, limit: 3, offset: 2 })), newestFirst(3, 2, 1));
    assert.deepEqual(ids(await small.audit.query({ agentId: agent.id, offset: 4 })), newestFirst(1, 0));
    assert.deepEqual(ids(await small.audit.query({ agentId: agent.id, actions: ['read', 'send'], limit: 3 })), newestFirst(4, 3, 2));
    assert.deepEqual(ids(await small.audit.query({ agentId: agent.id })), newestFirst(5, 4, 3, 2, 1, 0));
  });

  it('query with kind event or all returns the changes of state too', async () => {
    const events = await kavach.audit.query({ kind: 'event' });
    assert.ok(events.every((e) => e.kind === 'event'));
    const created = events.find((e) => e.action === 'agent.create' && e.resource === agent.id);
    assert.ok(created, 'no agent.create event');
    assert.equal(created.actor.type, 'admin_env');
    const all = await kavach.audit.query({ kind: 'all' });
    assert.ok(all.some((e) => e.kind === 'event') && all.some((e) => e.kind === 'decision'));
  });

  it('queryPage walks the pages with their cursors', async () => {
    const p1 = await kavach.audit.queryPage({ agentId: agent.id, limit: 4 });
    assert.deepEqual(ids(p1.items), newestFirst(5, 4, 3, 2));
    assert.notEqual(p1.nextCursor, '');
    const p2 = await kavach.audit.queryPage({ agentId: agent.id, limit: 4, cursor: p1.nextCursor });
    assert.deepEqual([ids(p2.items), p2.nextCursor], [newestFirst(1, 0), '']);
    const denied = await kavach.audit.queryPage({ agentId: agent.id, result: 'denied', action: 'write' });
    assert.deepEqual(ids(denied.items), newestFirst(1));
  });

  it('export returns the whole trail as CSV or JSON, oldest first', async () => {
    const csv = await kavach.audit.export({ format: 'csv' });
    const lines = csv.trimEnd().split('\r\n');
    assert.equal(
      lines[0],
      'id,timestamp,agentId,ownerId,action,resource,arguments,result,code,reason,ip,userAgent,durationUs,approvalId,kind,actorType,actorId,actorName,onBehalfOf,changes,chainId,chainSeq,prevHash,hash',
    );
    for (const d of decisions) assert.ok(csv.includes(d.auditId), `no ${d.auditId} in the CSV`);
    assert.ok(lines.some((l) => l.includes(',agent.create,')), 'no event in the CSV');
    const json = JSON.parse(await kavach.audit.export({ format: 'json', agentId: agent.id, kind: 'decision' })) as { id: string }[];
    assert.deepEqual(ids(json), newestFirst(0, 1, 2, 3, 4, 5));
    const all = await kavach.audit.query({ agentId: agent.id });
    const at = (n: number) => all.find((e) => e.id === decisions[n]!.auditId)!.timestamp;
    const window = JSON.parse(await kavach.audit.export({ format: 'json', agentId: agent.id, since: at(1), until: at(3) })) as { id: string }[];
    assert.deepEqual(ids(window), newestFirst(1, 2));
    const denied = JSON.parse(await kavach.audit.export({ format: 'json', agentId: agent.id, result: 'denied', action: 'delete' })) as { id: string }[];
    assert.deepEqual(ids(denied), newestFirst(5));
  });

  it('an auditor reads and exports the trail; a decider may not', async () => {
    const auditor = await withRoles(s, 'auditor');
    assert.equal((await auditor.audit.query({ agentId: agent.id, limit: 1 })).length, 1);
    assert.match(await auditor.audit.export({ format: 'csv', agentId: agent.id }), /^id,timestamp,/);
    const decider = await withRoles(s, 'decider');
    await rejectsWith(decider.audit.query({ agentId: agent.id }), 403, 'forbidden');
    await rejectsWith(decider.audit.export({ format: 'csv' }), 403, 'forbidden');
  });
});
