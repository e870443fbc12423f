/**
 * Helpers for tests that run real Node-RED processes: free loopback ports, throw-away state
 * directories, colour specs with their revs computed by core/flows, a bounded `eventually`,
 * and a cleanup that stops every colour a state dir holds.
 */
import { mkdtempSync, promises as fs, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ts from 'typescript';
import { contentHash, deployableFlows, flowsRev } from '../../src/core/flows.js';
import type { FlowNode } from '../../src/core/model.js';
import { processDriver } from '../../src/adapters/runtime/process.js';
import type { ColorSpec } from '../../src/adapters/runtime/types.js';

export const ADMIN = { username: 'tower', password: 'pw-7f3a9c1e-do-not-leak' };

export { freePort } from '../../src/adapters/net.js';

export function tempStateDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'tower-nr-'));
}

export function colorSpec(fields: Pick<ColorSpec, 'fleet' | 'instance' | 'color' | 'port' | 'flows'> & Partial<ColorSpec>): ColorSpec {
  return {
    rev: flowsRev(deployableFlows(fields.flows)),
    flowsHash: contentHash(fields.flows),
    env: {},
    nodeRedVersion: '4.1',
    resources: {},
    settings: {},
    context: 'memory',
    labels: {},
    admin: ADMIN,
    ...fields,
  };
}

/** A tab with GET <url> → function(body) → http response. */
export function httpFlow(opts: { tab?: string; url: string; func: string; idPrefix?: string }): FlowNode[] {
  const p = opts.idPrefix ?? 'n';
  const z = opts.tab ?? 'tab1';
  return [
    { id: z, type: 'tab', label: 'Test', disabled: false, info: '', env: [] },
    { id: `${p}-in`, type: 'http in', z, name: '', url: opts.url, method: 'get', upload: false, swaggerDoc: '', x: 120, y: 80, wires: [[`${p}-fn`]] },
    { id: `${p}-fn`, type: 'function', z, name: '', func: opts.func, outputs: 1, timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [], x: 300, y: 80, wires: [[`${p}-out`]] },
    { id: `${p}-out`, type: 'http response', z, name: '', statusCode: '', headers: {}, x: 480, y: 80, wires: [] },
  ];
}

/** GET with a deadline; returns status and body text. */
export async function httpGet(url: string, timeoutMs = 3_000): Promise<{ status: number; text: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, text: await res.text() };
}

/**
 * GETs url until the answer passes accept (at most timeoutMs). POST /flows answers before the
 * new nodes are started, so a check right after a deploy must wait for them.
 */
export async function eventuallyGet(url: string, accept: (res: { status: number; text: string }) => boolean, timeoutMs = 5_000): Promise<{ status: number; text: string }> {
  let last: { status: number; text: string } | undefined;
  return eventually(async () => {
    last = await httpGet(url);
    return accept(last) ? last : undefined;
  }, timeoutMs, 50).catch((err: unknown) => {
    throw new Error(`GET ${url}: ${String(err)}; last answer: ${last ? `${last.status} ${last.text.slice(0, 200)}` : 'none'}`);
  });
}

/** Polls fn until it returns a value other than undefined, at most timeoutMs. */
export async function eventually<T>(fn: () => Promise<T | undefined>, timeoutMs = 10_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${String(last)}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\S+ \(.*\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

/** Stops and removes every colour of every fleet in the state dir, then deletes it. For afterAll. */
export async function cleanUpStateDir(stateDir: string): Promise<void> {
  const driver = processDriver({ stateDir });
  const fleets = new Set<string>();
  const instancesDir = path.join(stateDir, 'instances');
  for (const instance of safeReaddir(instancesDir)) {
    for (const color of safeReaddir(path.join(instancesDir, instance))) {
      try {
        fleets.add((JSON.parse(readFileSync(path.join(instancesDir, instance, color, 'colour.json'), 'utf8')) as { fleet: string }).fleet);
      } catch {
        // no record: nothing runs there
      }
    }
  }
  for (const fleet of fleets) {
    for (const c of await driver.list(fleet)) await driver.remove(c).catch(() => {});
  }
  await fs.rm(stateDir, { recursive: true, force: true });
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * Transpiles src/ to plain ESM under test-output/, so that a separate Node process (a
 * stand-in for the reconciler) can use the driver. Types are not checked here (tsc does that).
 * Returns the directory; node_modules resolve from the repository above it.
 */
export async function transpileSrcForChild(): Promise<string> {
  const root = path.resolve(import.meta.dirname, '../..');
  const out = path.join(root, 'test-output', `child-${process.pid}-${Date.now()}`);
  const files = (await fs.readdir(path.join(root, 'src'), { recursive: true })).filter((f) => f.endsWith('.ts'));
  for (const file of files) {
    const source = await fs.readFile(path.join(root, 'src', file), 'utf8');
    const { outputText } = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 }, fileName: file });
    const target = path.join(out, 'src', file.replace(/\.ts$/, '.js'));
    await fs.mkdir(path.dirname(target), { recursive: true });
    await fs.writeFile(target, outputText);
  }
  return out;
}
