// The package's promises: ESM with type declarations, no runtime
// dependencies, Node 20+, and nothing in the built client that needs Node.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = new URL('../../', import.meta.url);

it('package.json: ESM, types and import exports, node >=20, no dependencies', async () => {
  const pkg = JSON.parse(await readFile(new URL('package.json', root), 'utf8')) as Record<string, unknown>;
  assert.equal(pkg.name, '@kavach/client');
  assert.equal(pkg.type, 'module');
  assert.deepEqual(pkg.exports, { '.': { types: './dist/index.d.ts', import: './dist/index.js' } });
  assert.deepEqual(pkg.engines, { node: '>=20' });
  assert.equal(pkg.dependencies, undefined);
  const dev = pkg.devDependencies as Record<string, string>;
  assert.deepEqual(Object.keys(dev).sort(), ['@types/node', 'typescript']);
  for (const [name, version] of Object.entries(dev)) assert.match(version, /^\d+\.\d+\.\d+$/, `${name} is not pinned`);
});

it('the built client imports nothing but its own modules, uses no Node global and never logs', async () => {
  const dist = fileURLToPath(new URL('dist/', root));
  const files = (await readdir(dist)).filter((f) => f.endsWith('.js'));
  assert.ok(files.includes('index.js') && files.length > 5, files.join(' '));
  for (const f of files) {
    const src = (await readFile(`${dist}${f}`, 'utf8')).replace(/\/\*[\s\S]*?\*\//g, '');
    for (const m of src.matchAll(/\bfrom\s+['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]/g)) {
      const spec = m[1] ?? m[2] ?? '';
      assert.match(spec, /^\.\/[a-z]+\.js$/, `${f} imports ${spec}`);
    }
    assert.doesNotMatch(src, /\b(require\(|process\.|Buffer\b|__dirname)/, `${f} uses Node`);
    assert.doesNotMatch(src, /\bconsole\./, `${f} logs`);
  }
  const types = await readFile(`${dist}index.d.ts`, 'utf8');
  assert.match(types, /createKavach/);
  for (const f of (await readdir(dist)).filter((x) => x.endsWith('.d.ts'))) {
    assert.doesNotMatch(await readFile(`${dist}${f}`, 'utf8'), /:\s*any\b|<any>|any\[\]/, `${f} has any in its public types`);
  }
});

it('test/all.ts runs every test file', async () => {
  const dir = new URL('test/', root);
  const files = (await readdir(dir)).filter((f) => f.endsWith('.test.ts')).map((f) => f.replace(/\.ts$/, '.js'));
  const all = await readFile(new URL('all.ts', dir), 'utf8');
  const imported = [...all.matchAll(/^import '\.\/([^']+)';$/gm)].map((m) => m[1]);
  assert.deepEqual([...imported].sort(), files.sort());
});
