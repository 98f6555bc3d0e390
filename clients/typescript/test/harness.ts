/**
 * The real sidecar for the tests: builds `kavach` from this checkout once
 * per test process, starts `kavach serve` on 127.0.0.1:0 with a fresh
 * SQLite file in a temporary directory and a random KAVACH_ADMIN_KEY (as
 * the Go end-to-end tests do), waits for /ready, and stops it after.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';
import { createKavach, KavachError, type Kavach, type KavachOptions, type Role } from '@kavach/client';

/** The repository root: this file runs as clients/typescript/dist/test/harness.js. */
export const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));

let built: Promise<string> | undefined;

/** Builds the kavach binary from the repository (once per test process) and returns its path. */
export function kavachBinary(): Promise<string> {
  built ??= (async () => {
    if (!existsSync(join(repoRoot, 'go.mod'))) {
      throw new Error(`no go.mod at ${repoRoot}: the tests must run from clients/typescript/dist/test`);
    }
    const dir = await mkdtemp(join(tmpdir(), 'kavach-ts-bin-'));
    const bin = join(dir, 'kavach');
    await promisify(execFile)('go', ['build', '-o', bin, './cmd/kavach'], { cwd: repoRoot, maxBuffer: 16 << 20 });
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    return bin;
  })();
  return built;
}

/** A running `kavach serve`. */
export interface Sidecar {
  /** Its base URL, http://127.0.0.1:<port>. */
  url: string;
  /** Its admin credential (KAVACH_ADMIN_KEY). */
  adminKey: string;
  /** Its temporary directory (database, config). */
  dir: string;
  /** What it wrote on stderr so far (JSON log lines). */
  log(): string;
  /** Stops it (SIGTERM), waits for its exit and removes its directory. */
  stop(): Promise<void>;
}

/** Starts a sidecar; `config` is the YAML of a config file (-c), if any. */
export async function startSidecar(config?: string): Promise<Sidecar> {
  const bin = await kavachBinary();
  const dir = await mkdtemp(join(tmpdir(), 'kavach-ts-'));
  const adminKey = `ts-admin-${randomBytes(24).toString('hex')}`;
  const args = ['serve', '--addr', '127.0.0.1:0', '--database', join(dir, 'kavach.db')];
  if (config !== undefined) {
    await writeFile(join(dir, 'kavach.yaml'), config);
    args.push('--config', join(dir, 'kavach.yaml'));
  }
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith('KAVACH_') && !k.startsWith('OTEL_')) env[k] = v;
  }
  env.KAVACH_ADMIN_KEY = adminKey;
  env.KAVACH_ADMIN_KEY_FILE = join(dir, 'admin-key');
  const child = spawn(bin, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stderr = '';
  const listening = new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stderr! });
    lines.on('line', (line) => {
      stderr += `${line}\n`;
      try {
        const rec = JSON.parse(line) as { msg?: string; addr?: string };
        if (rec.msg === 'listening' && rec.addr !== undefined) resolve(rec.addr);
      } catch {
        // not a log record
      }
    });
    void exited.then(() => reject(new Error(`kavach serve exited before listening:\n${stderr}`)));
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const addr = await withTimeout(listening, 60_000, () => `kavach serve did not listen within 60 s:\n${stderr}`);
    const url = `http://${addr}`;
    await waitReady(url, child);
    return { url, adminKey, dir, log: () => stderr, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

async function waitReady(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error('kavach serve exited before ready');
    try {
      const res = await fetch(`${url}/ready`);
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('kavach serve not ready within 60 s');
}

function withTimeout<T>(p: Promise<T>, ms: number, why: () => string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(why())), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** Polls check every 50 ms until it returns a value other than undefined, or fails after ms. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Asserts that p rejects with a KavachError of this status and code, and returns it. */
export async function rejectsWith(p: Promise<unknown>, status: number, code: string): Promise<KavachError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof KavachError, `rejected with ${String(e)}; want a KavachError`);
    assert.equal(e.name, 'KavachError');
    assert.deepEqual({ status: e.status, code: e.code }, { status, code }, e.message);
    assert.ok(e.message.length > 0, 'an empty message');
    return e;
  }
  assert.fail(`resolved; want a KavachError ${status} ${code}`);
}

/** A client of s holding its admin key, and options. */
export function admin(s: Sidecar, o: KavachOptions = {}): Kavach {
  return createKavach({ url: s.url, apiKey: s.adminKey, ...o });
}

/** A client of s holding a new key with these roles. */
export async function withRoles(s: Sidecar, ...roles: Role[]): Promise<Kavach> {
  const k = await admin(s).keys.create({ name: `test-${roles.join('-')}`, roles });
  return createKavach({ url: s.url, apiKey: k.key });
}
