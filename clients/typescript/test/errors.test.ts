// KavachError and the transport: API errors from the real sidecar (401,
// 403, 404, 400, 422), and, from a local stand-in server, network
// failures, timeouts, error bodies without Kavach's shape, extra details,
// and the options (fetch, headers, a URL with a path or a trailing slash).
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ClientCodes, createKavach, defaultUrl, isKavachError, KavachError, type CreateAgentInput, type Kavach } from '@kavach/client';
import { admin, rejectsWith, startSidecar, withRoles, type Sidecar } from './harness.js';

describe('errors from the sidecar', () => {
  let s: Sidecar;
  let kavach: Kavach;
  before(async () => {
    s = await startSidecar();
    kavach = admin(s);
  });
  after(() => s?.stop());

  it('401: no key, a malformed key, an unknown key', async () => {
    await rejectsWith(createKavach({ url: s.url }).agent.list(), 401, 'unauthenticated');
    await rejectsWith(createKavach({ url: s.url, apiKey: 'wrong' }).agent.list(), 401, 'malformed_credential');
    const e = await rejectsWith(createKavach({ url: s.url, apiKey: `kvk_${'A'.repeat(43)}` }).agent.create({ ownerId: 'u', name: 'n', permissions: [] }), 401, 'invalid_key');
    assert.ok(!e.message.includes('A'.repeat(43)));
    assert.ok(e instanceof Error && isKavachError(e, 'invalid_key') && !isKavachError(e, 'forbidden'));
  });

  it('403: a key whose roles do not cover the call', async () => {
    const auditor = await withRoles(s, 'auditor');
    await rejectsWith(auditor.agent.create({ ownerId: 'u', name: 'n', permissions: [] }), 403, 'forbidden');
    const decider = await withRoles(s, 'decider');
    await rejectsWith(decider.agent.list(), 403, 'forbidden');
    const a = await kavach.agent.create({ ownerId: 'u', name: 'n', permissions: [] });
    // An agent's own token may not manage agents.
    await rejectsWith(createKavach({ url: s.url, apiKey: a.token }).agent.rotate(a.id), 403, 'forbidden');
  });

  it('404: unknown IDs', async () => {
    await rejectsWith(kavach.agent.update('agt_01M8TH18CP005BQ5N4C6MZKH0W', { name: 'x' }), 404, 'agent_not_found');
    await rejectsWith(kavach.delegation.listChains('agt_01M8TH18CP005BQ5N4C6MZKH0W'), 404, 'agent_not_found');
  });

  it('400 and 422: no owner, an unknown status, invalid permissions', async () => {
    const noOwner = { name: 'n', permissions: [] } as unknown as CreateAgentInput;
    const e = await rejectsWith(kavach.agent.create(noOwner), 400, 'missing_field');
    assert.match(e.message, /ownerId/);
    // @ts-expect-error: not a status
    await rejectsWith(kavach.agent.list({ status: 'sleeping' }), 400, 'invalid_status');
    await rejectsWith(kavach.agent.create({ ownerId: 'u', name: 'n', permissions: [{ resource: '', actions: ['read'] }] }), 422, 'invalid_permission');
    await rejectsWith(kavach.authorize('', { action: 'read', resource: 'x:y' }), 400, 'missing_field');
  });
});

/** A local server answering each request with respond, recording its headers and URL. */
async function standIn(respond: (url: string, res: import('node:http').ServerResponse) => void): Promise<{ url: string; seen: { url: string; headers: IncomingHttpHeaders }[]; server: Server }> {
  const seen: { url: string; headers: IncomingHttpHeaders }[] = [];
  const server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    respond(req.url ?? '', res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, seen, server };
}

const close = (server: Server) => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); });

describe('transport', () => {
  it('a refused connection is network_error, status 0', async () => {
    const free = await standIn(() => {});
    await close(free.server);
    const e = await rejectsWith(createKavach({ url: free.url, apiKey: 'k' }).agent.list(), 0, ClientCodes.network);
    assert.ok(e.cause !== undefined);
  });

  it('no answer within timeoutMs is timeout, status 0', async () => {
    const hang = await standIn(() => {}); // never answers
    try {
      const started = Date.now();
      await rejectsWith(createKavach({ url: hang.url, timeoutMs: 200 }).agent.get('agt_x'), 0, ClientCodes.timeout);
      assert.ok(Date.now() - started < 5_000);
    } finally {
      await close(hang.server);
    }
  });

  it('error bodies: Kavach\'s with details, plain text, and a 200 that is not JSON', async () => {
    const srv = await standIn((url, res) => {
      if (url.startsWith('/v1/agents?')) {
        res.writeHead(409, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'agent_limit_reached', message: 'too many', limit: 10 } }));
      } else if (url.startsWith('/v1/keys')) {
        res.writeHead(502, { 'Content-Type': 'text/plain' });
        res.end('Bad Gateway');
      } else {
        res.writeHead(200, { 'Content-Type': 'text/html' });
        res.end('<html>');
      }
    });
    try {
      const k = createKavach({ url: srv.url, apiKey: 'k' });
      const e = await rejectsWith(k.agent.list(), 409, 'agent_limit_reached');
      assert.equal(e.message, 'too many');
      assert.deepEqual(e.details, { limit: 10 });
      const plain = await rejectsWith(k.keys.list(), 502, ClientCodes.http);
      assert.match(plain.message, /Bad Gateway/);
      assert.equal(plain.details, undefined);
      await rejectsWith(k.trust.getScore('agt_x'), 200, ClientCodes.badResponse);
    } finally {
      await close(srv.server);
    }
  });

  it('sends the key as Bearer, the options\' headers, JSON bodies, and joins the URL\'s path', async () => {
    const srv = await standIn((_url, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ allowed: true, code: 'allowed', reason: '', auditId: 'aud_1' }));
    });
    try {
      let calls = 0;
      const k = createKavach({
        url: `${srv.url}/kavach/`,
        apiKey: 'kvk_app',
        headers: { 'X-Trace': 't-1' },
        fetch: (input, init) => {
          calls++;
          return fetch(input, init);
        },
      });
      const d = await k.authorizeByToken('kv_agent', { action: 'read', resource: 'x:y' });
      assert.deepEqual(d, { allowed: true, auditId: 'aud_1', code: 'allowed' }, 'an empty reason is left out');
      assert.equal(calls, 1);
      const [req] = srv.seen;
      assert.equal(req?.url, '/kavach/v1/authorize');
      assert.equal(req?.headers.authorization, 'Bearer kvk_app');
      assert.equal(req?.headers['kavach-agent-token'], 'kv_agent');
      assert.equal(req?.headers['x-trace'], 't-1');
      assert.equal(req?.headers['content-type'], 'application/json');
      // Without a key, the agent's token is the bearer, and nothing goes beside it.
      await createKavach({ url: srv.url }).authorizeByToken('kv_agent', { action: 'read', resource: 'x:y' });
      assert.equal(srv.seen[1]?.headers.authorization, 'Bearer kv_agent');
      assert.equal(srv.seen[1]?.headers['kavach-agent-token'], undefined);
      // A body-less POST sends no Content-Type; IDs are escaped in the path.
      await createKavach({ url: srv.url, apiKey: 'k' }).agent.rotate('agt/../x').catch(() => undefined);
      assert.equal(srv.seen[2]?.url, '/v1/agents/agt%2F..%2Fx/rotate');
      assert.equal(srv.seen[2]?.headers['content-type'], undefined);
      // An ID of '..' would be resolved as a path step (to /v1/revoke): refused, nothing sent.
      await assert.rejects(createKavach({ url: srv.url, apiKey: 'k' }).agent.revoke('..'), { code: 'invalid_id' });
      assert.equal(srv.seen.length, 3);
      // A URL holding a password is refused before anything is sent.
      assert.throws(() => createKavach({ url: 'http://user:pw@127.0.0.1:7400' }), /must not hold user:password/);
    } finally {
      await close(srv.server);
    }
  });

  it('defaults to the sidecar\'s default address', () => {
    assert.equal(defaultUrl, 'http://127.0.0.1:7400');
    const e = new KavachError('x', 418, 'm', { details: { a: 1 } });
    assert.deepEqual([e.name, e.code, e.status, e.message, e.details], ['KavachError', 'x', 418, 'm', { a: 1 }]);
  });
});
