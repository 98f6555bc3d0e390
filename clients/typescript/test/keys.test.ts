// kavach.keys against the real sidecar: create (the secret shown once),
// get, list, listPage, revoke (refused from then on), admin only.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createKavach, type Kavach } from '@kavach/client';
import { admin, rejectsWith, startSidecar, withRoles, type Sidecar } from './harness.js';

describe('keys', () => {
  let s: Sidecar;
  let kavach: Kavach;
  before(async () => {
    s = await startSidecar();
    kavach = admin(s);
  });
  after(() => s?.stop());

  it('create returns the key with its secret; get and list never show it', async () => {
    const exp = new Date(Date.now() + 86_400_000);
    exp.setMilliseconds(0);
    const k = await kavach.keys.create({ name: 'my-app', roles: ['decider', 'auditor'], expiresAt: exp });
    assert.match(k.id, /^key_/);
    assert.match(k.key, /^kvk_[A-Za-z0-9_-]{43}$/);
    assert.deepEqual([k.name, k.roles, k.status], ['my-app', ['decider', 'auditor'], 'active']);
    assert.equal(k.expiresAt?.getTime(), exp.getTime());
    assert.ok(k.createdAt instanceof Date);
    assert.equal(k.createdBy, 'KAVACH_ADMIN_KEY');
    const { key: _secret, ...stored } = k;
    const got = await kavach.keys.get(k.id);
    assert.deepEqual(got, stored);
    assert.ok(!('key' in got));
    const listed = (await kavach.keys.list()).find((x) => x.id === k.id);
    assert.deepEqual(listed, stored);
    // The new key works with its roles, and may make no keys itself.
    const app = createKavach({ url: s.url, apiKey: k.key });
    assert.ok(Array.isArray(await app.audit.query({ limit: 1 })));
    await rejectsWith(app.keys.create({ name: 'x', roles: ['admin'] }), 403, 'forbidden');
    const noExpiry = await kavach.keys.create({ name: 'forever', roles: ['metrics'] });
    assert.equal(noExpiry.expiresAt, null);
  });

  it('keys made by a stored key name it in createdBy', async () => {
    const root = await kavach.keys.create({ name: 'second-admin', roles: ['admin'] });
    const child = await createKavach({ url: s.url, apiKey: root.key }).keys.create({ name: 'child', roles: ['decider'] });
    assert.equal(child.createdBy, root.id);
  });

  it('list fetches every page; listPage walks them', async () => {
    const made: string[] = [];
    for (let i = 0; i < 3; i++) made.push((await kavach.keys.create({ name: `k${i}`, roles: ['auditor'] })).id);
    const all = await admin(s, { pageSize: 2 }).keys.list();
    const ids = all.map((k) => k.id);
    assert.deepEqual(ids.slice(-3), made, 'oldest first');
    assert.deepEqual(new Set(ids).size, ids.length);
    const p1 = await kavach.keys.listPage({ limit: ids.length - 1 });
    assert.deepEqual(p1.items.map((k) => k.id), ids.slice(0, -1));
    const p2 = await kavach.keys.listPage({ limit: ids.length - 1, cursor: p1.nextCursor });
    assert.deepEqual([p2.items.map((k) => k.id), p2.nextCursor], [ids.slice(-1), '']);
  });

  it('revoke refuses the key from then on', async () => {
    const k = await kavach.keys.create({ name: 'short-lived', roles: ['auditor'] });
    const app = createKavach({ url: s.url, apiKey: k.key });
    await app.audit.query({ limit: 1 });
    const r = await kavach.keys.revoke(k.id);
    assert.equal(r.status, 'revoked');
    assert.ok(r.revokedAt instanceof Date);
    assert.equal((await kavach.keys.revoke(k.id)).status, 'revoked', 'repeating is harmless');
    await rejectsWith(app.audit.query({ limit: 1 }), 401, 'key_revoked');
    await rejectsWith(kavach.keys.get('key_01M8TH18CP005BQ5N4C6MZKH0W'), 404, 'key_not_found');
    await rejectsWith(kavach.keys.create({ name: 'bad', roles: [] }), 400, 'missing_field');
    // @ts-expect-error: no such role
    await rejectsWith(kavach.keys.create({ name: 'bad', roles: ['root'] }), 422, 'invalid_role');
  });

  it('only an admin manages keys', async () => {
    const auditor = await withRoles(s, 'auditor');
    await rejectsWith(auditor.keys.list(), 403, 'forbidden');
    await rejectsWith(auditor.keys.revoke('key_01M8TH18CP005BQ5N4C6MZKH0W'), 403, 'forbidden');
  });
});
