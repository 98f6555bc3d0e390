// examples/typescript/quickstart.ts, KavachOS's "Full working example" with
// only the createKavach options changed, run against the real sidecar: its
// printed lines must be the seed's.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, it } from 'node:test';
import { inspect, promisify } from 'node:util';
import { admin, startSidecar, type Sidecar } from './harness.js';

// Compiled by test/tsconfig.example.json beside the tests.
const quickstart = fileURLToPath(new URL('../example/quickstart.js', import.meta.url));

let s: Sidecar;
before(async () => {
  s = await startSidecar();
});
after(() => s?.stop());

it('the seed\'s full working example prints true, false, true, a new token and the delegated permissions', async () => {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('KAVACH_')) env[k] = v;
  env.KAVACH_URL = s.url;
  env.KAVACH_API_KEY = s.adminKey;
  const { stdout, stderr } = await promisify(execFile)(process.execPath, [quickstart], { env, timeout: 60_000 });
  assert.equal(stderr, '');
  // console.log(perms) prints Node's inspection of KavachOS's Permission[]:
  // the seed's comment, [{ resource: 'mcp:github:issues', actions: ['read'] }],
  // in Node's spacing. Nothing else may be in the objects.
  const perms = inspect([{ resource: 'mcp:github:issues', actions: ['read'] }]);
  assert.equal(perms, "[ { resource: 'mcp:github:issues', actions: [ 'read' ] } ]");
  const lines = stdout.trimEnd().split('\n');
  assert.equal(lines.length, 5, stdout);
  assert.deepEqual(lines.slice(0, 3), ['true', 'false', 'true']);
  assert.match(lines[3]!, /^kv_[A-Za-z0-9_-]{43}$/);
  assert.equal(lines[4], perms);

  // What it did is in the trail: three decisions, and the rotated token is the agent's.
  const kavach = admin(s);
  const [agent, sub] = await kavach.agent.list({ userId: 'user-123' });
  assert.deepEqual([agent?.name, sub?.name], ['github-reader', 'sub-reader']);
  const decisions = await kavach.audit.query({ userId: 'user-123' });
  assert.deepEqual(decisions.map((e) => e.result), ['allowed', 'denied', 'allowed']);
  const byToken = await kavach.authorizeByToken(lines[3]!, { action: 'read', resource: 'mcp:github:repos' });
  assert.equal(byToken.allowed, true);
});
