/**
 * A real Node-RED (the one in node_modules) as a child process, for integration tests: its own
 * userDir with a settings.js written here, loopback only, a free port. Independent of
 * src/adapters/runtime on purpose: these tests check flows, not the runtime driver.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FlowNode } from '../../src/core/model.js';
import { freePort, stopChild, track } from './mosquitto.js';

const RED_JS = fileURLToPath(new URL('../../node_modules/node-red/red.js', import.meta.url));

export interface NodeRedOptions {
  flows: FlowNode[];
  /** Added to a minimal environment (PATH, HOME): TOWER_* and the like. */
  env?: Record<string, string>;
  /** Extra settings.js keys (JSON-serialisable), e.g. contextStorage. */
  settings?: Record<string, unknown>;
  /** Ready means "Started flows" was logged; default 30 s. */
  startTimeoutMs?: number;
}

export interface NodeRedProcess {
  port: number;
  url: string;
  pid(): number | undefined;
  /** Everything it printed so far (stdout and stderr). */
  output(): string;
  /** Resolves when the output matches, after `from` characters; bounded. */
  waitForOutput(pattern: RegExp, timeoutMs: number, from?: number): Promise<void>;
  /** Stop the process (SIGTERM: Node-RED closes its nodes) but keep its userDir and flows. */
  halt(): Promise<void>;
  /** Start again with the same userDir, flows and port (stopping it first if it runs). */
  restart(): Promise<void>;
  /** Stop and remove the userDir. Safe to call twice. */
  stop(): Promise<void>;
}

export async function startNodeRed(opts: NodeRedOptions): Promise<NodeRedProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'tower-nodered-'));
  const port = await freePort();
  const settings = {
    uiHost: '127.0.0.1',
    uiPort: port,
    userDir: dir,
    flowFile: 'flows.json',
    credentialSecret: false,
    logging: { console: { level: 'info', metrics: false, audit: false } },
    telemetry: { enabled: false },
    editorTheme: { tours: false },
    ...(opts.settings ?? {}),
  };
  writeFileSync(join(dir, 'settings.js'), `module.exports = ${JSON.stringify(settings, null, 2)};\n`);
  writeFileSync(join(dir, 'flows.json'), JSON.stringify(opts.flows, null, 2));
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, NODE_ENV: 'production', ...(opts.env ?? {}) };
  const timeoutMs = opts.startTimeoutMs ?? 30_000;

  let child: ChildProcess | undefined;
  let out = '';
  let stopped = false;

  const launch = async (): Promise<void> => {
    const from = out.length;
    const c = spawn(process.execPath, [RED_JS, '--userDir', dir, '--settings', join(dir, 'settings.js')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    track(c);
    c.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await handle.waitForOutput(/Started flows/, timeoutMs, from);
    } catch (err) {
      await stopChild(c);
      throw err;
    }
  };

  const handle: NodeRedProcess = {
    port,
    url: `http://127.0.0.1:${port}`,
    pid: () => child?.pid,
    output: () => out,
    async waitForOutput(pattern, ms, from = 0) {
      const deadline = Date.now() + ms;
      for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
        if (pattern.test(out.slice(from))) return;
        if (child && child.exitCode !== null) throw new Error(`Node-RED exited (code ${child.exitCode}) before ${pattern}:\n${out.slice(-4000)}`);
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error(`Node-RED did not print ${pattern} within ${ms} ms:\n${out.slice(-4000)}`);
    },
    async halt() {
      if (child) await stopChild(child);
    },
    async restart() {
      if (child) await stopChild(child);
      await launch();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child) await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };

  try {
    await launch();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return handle;
}
