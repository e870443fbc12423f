/**
 * The production stack — Dockerfile, docker-compose.yml and deploy/ — checked against the code,
 * so that alerts, dashboards, manifests and the image never drift from what Tower exports,
 * serves and reads:
 * - metric names and labels in the alert rules and the dashboard exist in `new FleetMetrics()`;
 * - the routes the probes and the HEALTHCHECK ask answer 200 from the real app;
 * - every environment variable the stack sets is one `tower run` reads, and the values make a
 *   configuration `parseRunConfig` accepts;
 * - the tools' own validators accept the files: `docker-compose config`, `promtool check`,
 *   `promtool test rules` (the alerts fire when they should), and mosquitto starts with its config.
 * Debian packages: docker-compose, prometheus (for promtool), mosquitto.
 * The image itself is not built here: that needs a registry for the base image.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { serve } from '@hono/node-server';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { parseRunConfig, RUN_ENV } from '../src/commands/run-config.js';
import { createApp } from '../src/server/app.js';
import { FleetMetrics } from '../src/server/metrics.js';
import { freePort } from './helpers/mosquitto.js';
import { syncedStatus } from './helpers/status-fixture.js';

const ROOT = join(import.meta.dirname, '..');
const DEPLOY = join(ROOT, 'deploy');
const read = (rel: string): string => readFileSync(join(ROOT, rel), 'utf8');
const tmpDirs: string[] = [];
function tmp(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tower-deploy-'));
  tmpDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '');

function tool(cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}) {
  const r = spawnSync(cmd, args, { cwd: options.cwd ?? ROOT, env: options.env ?? process.env, encoding: 'utf8', timeout: 60_000 });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new Error(`${cmd} is not installed: apt-get install ${cmd === 'promtool' ? 'prometheus' : cmd} (scripts/system-deps.sh installs what the tests need)`);
  }
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

// ---------------------------------------------------------------------------------------------
// What the code says: metrics, routes, environment.

interface MetricInfo {
  labels: Set<string>;
  base: string;
}

/** Every series name FleetMetrics exports (histograms as _bucket/_sum/_count), with its labels. */
async function metricCatalogue() {
  const metrics = new FleetMetrics();
  metrics.fromStatus(syncedStatus());
  const json = await metrics.registry.getMetricsAsJSON();
  const series = new Map<string, MetricInfo>();
  const values = new Map<string, Set<string>>();
  for (const m of json) {
    const single = metrics.registry.getSingleMetric(m.name) as unknown as { labelNames?: unknown };
    if (!Array.isArray(single.labelNames)) throw new Error(`prom-client no longer exposes labelNames of ${m.name}`);
    const labels = new Set((single.labelNames as string[]).concat(['job', 'instance']));
    const histogram = String(m.type) === 'histogram';
    const names = histogram ? [`${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`] : [m.name];
    for (const n of names) series.set(n, { labels: histogram && n.endsWith('_bucket') ? new Set([...labels, 'le']) : labels, base: m.name });
    // Label values the code defines: "(a, b, c)" in the help text, or what fromStatus sets.
    const listed = /\(([a-z-]+(?:, [a-z-]+)+)\)|\(([A-Z]+(?:, [A-Z]+)+)\)/.exec(m.help);
    if (listed && single.labelNames.length > 0) {
      const label = m.name === 'tower_rollout_phase_duration_seconds' ? 'phase' : (single.labelNames as string[])[0]!;
      values.set(`${m.name}:${label}`, new Set((listed[1] ?? listed[2])!.split(', ')));
    }
    for (const v of m.values) {
      for (const [k, val] of Object.entries(v.labels)) {
        if (k === 'instance') continue; // fleet-specific
        const key = `${m.name}:${k}`;
        if (!values.has(key)) values.set(key, new Set());
        values.get(key)!.add(String(val));
      }
    }
  }
  return { series, values };
}

/** Problems with the metric names, labels and label values one PromQL expression uses. */
function promqlProblems(expr: string, cat: Awaited<ReturnType<typeof metricCatalogue>>): string[] {
  const problems: string[] = [];
  const noStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const used = new Set(noStrings.match(/\btower_[a-zA-Z0-9_]+/g) ?? []);
  if (used.size === 0 && !/\bup\b/.test(noStrings)) problems.push('uses no Tower metric');
  const labelsInExpr = new Set(['job', 'instance']);
  for (const name of used) {
    const info = cat.series.get(name);
    if (!info) problems.push(`metric ${name} is not exported by FleetMetrics`);
    else for (const l of info.labels) labelsInExpr.add(l);
  }
  for (const sel of expr.matchAll(/\b(tower_[a-zA-Z0-9_]+)\s*\{([^}]*)\}/g)) {
    const info = cat.series.get(sel[1]!);
    if (!info) continue;
    for (const m of sel[2]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)) {
      const [, label, op, value] = m as unknown as [string, string, string, string];
      if (!info.labels.has(label)) {
        problems.push(`${sel[1]} has no label ${label} (it has ${[...info.labels].join(', ')})`);
        continue;
      }
      const known = cat.values.get(`${info.base}:${label}`);
      if (!known || value.includes('$') || (op !== '=' && op !== '=~')) continue;
      const alternatives = op === '=' ? [value] : value.split('|');
      if (!alternatives.every((a) => /^[A-Za-z0-9_-]+$/.test(a))) continue;
      for (const a of alternatives) if (!known.has(a)) problems.push(`${sel[1]}{${label}="${a}"}: Tower never sets ${label} to "${a}" (it uses ${[...known].join(', ')})`);
    }
  }
  for (const g of noStrings.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)) {
    for (const label of g[1]!.split(',').map((s) => s.trim()).filter(Boolean)) {
      if (!labelsInExpr.has(label)) problems.push(`groups by label ${label}, which none of its metrics has`);
    }
  }
  return problems;
}

/**
 * The environment variables `tower run` reads: its flags' variables, what its configuration,
 * the Git credentials and the runtime wiring read, and the README's table.
 */
function towerRunEnv(): Set<string> {
  const readme = read('README.md');
  const start = readme.indexOf('## The daemon: `tower run`');
  expect(start, 'README.md has the section "The daemon: `tower run`"').toBeGreaterThanOrEqual(0);
  const section = readme.slice(start, readme.indexOf('\n## ', start + 5));
  const names = new Set<string>(Object.values(RUN_ENV));
  let envColumn = -1;
  for (const line of section.split('\n')) {
    if (!line.startsWith('|')) continue;
    const cells = line.split(/(?<!\\)\|/).slice(1, -1);
    if (envColumn < 0) {
      envColumn = cells.findIndex((c) => c.trim() === 'Environment');
      continue;
    }
    for (const m of (cells[envColumn] ?? '').matchAll(/`([A-Z][A-Z0-9_]+)`/g)) names.add(m[1]!);
  }
  expect(envColumn, 'README: the tower run table has an Environment column').toBeGreaterThanOrEqual(0);
  for (const file of ['src/commands/run-config.ts', 'src/adapters/source/git-credentials.ts', 'src/runtime.ts']) {
    for (const m of read(file).matchAll(/\benv\.([A-Z][A-Z0-9_]+)\b/g)) names.add(m[1]!);
  }
  return names;
}

function sourceText(dir: string): string {
  let text = '';
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) text += sourceText(join(dir, e.name));
    else if (e.name.endsWith('.ts')) text += readFileSync(join(dir, e.name), 'utf8');
  }
  return text;
}

/** Names the stack sets must be documented for `tower run` and read somewhere in src/. */
function unknownEnv(names: Iterable<string>): string[] {
  const allowed = towerRunEnv();
  const src = sourceText(join(ROOT, 'src'));
  return [...names].filter((n) => !allowed.has(n) || !new RegExp(`\\b${n}\\b`).test(src));
}

function stubApp() {
  return createApp({ status: () => syncedStatus(), history: async () => [], subscribe: () => () => {}, version: 'test', metrics: () => new FleetMetrics().render() });
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile.

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  from: string;
  name?: string;
  body: Instruction[];
}

function dockerfile() {
  const text = read('Dockerfile').replace(/\\\n/g, ' ');
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([A-Z]+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`Dockerfile: cannot read ${line}`);
    const [, op, rest] = m as unknown as [string, string, string];
    if (op === 'ARG' && stages.length === 0) {
      const [k, v] = rest.split('=');
      args.set(k!, v ?? '');
    } else if (op === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest)!;
      stages.push({ from: f[1]!.replace(/\$\{(\w+)\}/g, (_, k: string) => args.get(k) ?? ''), ...(f[2] ? { name: f[2] } : {}), body: [] });
    } else {
      stages.at(-1)!.body.push({ op, args: rest });
    }
  }
  const final = stages.at(-1)!;
  const one = (op: string) => final.body.filter((i) => i.op === op).at(-1)?.args;
  const env = new Map<string, string>();
  for (const e of final.body.filter((i) => i.op === 'ENV')) for (const m of e.args.matchAll(/(\w+)=(\S+)/g)) env.set(m[1]!, m[2]!);
  return { stages, final, one, env };
}

/** .dockerignore as Docker reads it: a path is out when it, or a parent, matches (last rule wins). */
function dockerignored(path: string): boolean {
  const rules = read('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = (negate ? l.slice(1) : l).replace(/^\/+|\/+$/g, '');
      const glob = (part: string) => part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
      const re = new RegExp(`^${pattern.split('**').map(glob).join('.*')}$`);
      return { negate, re };
    });
  const parts = path.split('/');
  let out = false;
  for (let i = 1; i <= parts.length; i++) {
    const p = parts.slice(0, i).join('/');
    for (const r of rules) if (r.re.test(p)) out = !r.negate;
  }
  return out;
}

describe('Dockerfile', () => {
  it('builds in stages on node:20-bookworm-slim and runs `tower run` as a non-root user under tini', () => {
    const { stages, final, one } = dockerfile();
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const s of stages) expect(s.from, 'every stage is on node:20-bookworm-slim').toBe('node:20-bookworm-slim');
    const build = stages.find((s) => s.name === 'build');
    expect(build?.body.some((i) => i.op === 'RUN' && /npm ci\b/.test(i.args) && !/--omit=dev/.test(i.args)), 'the build stage installs dev dependencies').toBe(true);
    expect(build?.body.some((i) => i.op === 'RUN' && /npm run build|tsc\b/.test(i.args)), 'the build stage compiles').toBe(true);
    const copiedModules = final.body.find((i) => i.op === 'COPY' && /\bnode_modules\b/.test(i.args));
    const from = /--from=(\S+)/.exec(copiedModules?.args ?? '')?.[1];
    const depsStage = stages.find((s) => s.name === from);
    expect(depsStage?.body.some((i) => i.op === 'RUN' && /npm ci\b.*--omit=dev/.test(i.args)), 'node_modules of the image come from a stage with production dependencies only').toBe(true);
    expect(final.body.some((i) => i.op === 'RUN' && /\bnpm (ci|install)\b/.test(i.args)), 'the runtime stage installs no npm packages itself').toBe(false);
    expect(final.body.some((i) => i.op === 'RUN' && /apt-get install[^&]*\bgit\b/.test(i.args)), 'git for Git sources').toBe(true);
    const user = one('USER') ?? '';
    expect(user).toMatch(/^\d+(:\d+)?$/);
    expect(Number(user.split(':')[0])).toBeGreaterThan(0);
    expect(JSON.parse(one('ENTRYPOINT') ?? '[]')).toEqual(['/usr/bin/tini', '--', 'tower']);
    expect(JSON.parse(one('CMD') ?? '[]')).toEqual(['run']);
  });

  it('copies only files that exist and that .dockerignore lets into the build context', () => {
    const { stages } = dockerfile();
    const names = new Set(stages.map((s) => s.name).filter(Boolean));
    let checked = 0;
    for (const [index, stage] of stages.entries()) {
      for (const copy of stage.body.filter((i) => i.op === 'COPY' || i.op === 'ADD')) {
        const words = copy.args.split(/\s+/);
        const fromStage = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
        const paths = words.filter((w) => !w.startsWith('--'));
        if (fromStage) {
          expect(names.has(fromStage), `COPY --from=${fromStage} in stage ${index}: no such stage`).toBe(true);
          expect(stages.findIndex((s) => s.name === fromStage)).toBeLessThan(index);
          continue;
        }
        for (const src of paths.slice(0, -1)) {
          expect(existsSync(join(ROOT, src)), `COPY ${src}: no such file in the repository`).toBe(true);
          expect(dockerignored(src), `COPY ${src}: excluded by .dockerignore`).toBe(false);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(5);
    // The image needs the built CLI's entry point and the flow library at run time.
    expect(existsSync(join(ROOT, 'bin/tower.js'))).toBe(true);
    expect(dockerignored('.env'), '.env (compose secrets) never enters the build context').toBe(true);
    expect(dockerignored('node_modules/x')).toBe(true);
  });

  it('the layout the stages assemble runs: built from what the build stage copies, run from what the runtime copies', () => {
    // The image cannot be built here (no registry for the base image), so its file layout is:
    // the build stage's COPYs compiled with `npm run build`, then the runtime stage's COPYs
    // from the repository and the build stage, node_modules standing in for the deps stage.
    const { stages, final } = dockerfile();
    const build = stages.find((s) => s.name === 'build')!;
    const copies = (stage: Stage) =>
      stage.body
        .filter((i) => i.op === 'COPY')
        .map((i) => {
          const words = i.args.split(/\s+/);
          const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
          const paths = words.filter((w) => !w.startsWith('--'));
          return { from, sources: paths.slice(0, -1), dest: paths.at(-1)! };
        });
    const place = (root: string, fromDir: string, sources: string[], dest: string) => {
      for (const src of sources) {
        const target = dest.endsWith('/') ? join(root, dest, src.split('/').at(-1)!) : join(root, dest);
        cpSync(join(fromDir, src), target, { recursive: true });
      }
    };
    const buildDir = tmp();
    for (const c of copies(build)) place(buildDir, ROOT, c.sources, c.dest);
    symlinkSync(join(ROOT, 'node_modules'), join(buildDir, 'node_modules'));
    expect(build.body.some((i) => i.op === 'RUN' && i.args.includes('npm run build'))).toBe(true);
    const tsc = tool(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: buildDir });
    expect(tsc.status, `the build stage compiles with what it copies:\n${tsc.out}`).toBe(0);

    const runDir = tmp();
    for (const c of copies(final)) {
      if (c.from === undefined) place(runDir, ROOT, c.sources, c.dest);
      else if (c.from === 'build') place(runDir, buildDir, c.sources.map((s) => relative('/app', s)), c.dest);
      else if (c.sources.every((s) => s === '/app/node_modules')) symlinkSync(join(ROOT, 'node_modules'), join(runDir, c.dest));
      else throw new Error(`COPY --from=${c.from} ${c.sources.join(' ')}: not emulated here`);
    }
    expect(existsSync(join(runDir, 'dist/src/switch-router/main.js')), 'the traffic switch router is in the image').toBe(true);
    const version = tool(process.execPath, [join(runDir, 'bin/tower.js'), '--version'], { cwd: tmp() });
    expect(version.stdout.trim()).toContain((JSON.parse(read('package.json')) as { version: string }).version);
    // fleet-example uses lib: flows (lib:deploy-gate): the flow library must be in the image too.
    const validate = tool(process.execPath, [join(runDir, 'bin/tower.js'), 'validate', join(ROOT, 'fleet-example')], { cwd: tmp() });
    expect(validate.status, validate.out).toBe(0);
  }, 120_000);

  it('EXPOSEs the port of TOWER_LISTEN, and its HEALTHCHECK passes against the app and fails without it', async () => {
    const { one, env } = dockerfile();
    const listen = env.get('TOWER_LISTEN') ?? '';
    expect(listen).toMatch(/^0\.0\.0\.0:\d+$/);
    expect(one('EXPOSE')).toBe(listen.split(':')[1]);
    expect(env.get('TOWER_STATE_DIR')).toBe('/var/lib/tower');
    const health = one('HEALTHCHECK') ?? '';
    expect(health).toContain('/healthz');
    const command = health.slice(health.indexOf('CMD ') + 4);

    const server = await new Promise<{ port: number; close: () => void }>((resolve) => {
      const s = serve({ fetch: stubApp().fetch, hostname: '127.0.0.1', port: 0 }, (info) => resolve({ port: info.port, close: () => s.close() }));
    });
    const check = (listenAt: string) =>
      new Promise<number | null>((resolve) => {
        const p = spawn('sh', ['-c', command], { env: { PATH: process.env.PATH, TOWER_LISTEN: listenAt }, stdio: 'ignore' });
        p.on('exit', (code) => resolve(code));
      });
    try {
      expect(await check(`0.0.0.0:${server.port}`), 'healthy: GET /healthz answers 200').toBe(0);
    } finally {
      server.close();
    }
    expect(await check(`127.0.0.1:${await freePort()}`), 'nothing listening: unhealthy').toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------
// docker-compose.yml

const REQUIRED = ['DOCKER_GID', 'TOWER_WEBHOOK_SECRET', 'POSTGRES_PASSWORD', 'REDIS_PASSWORD', 'GRAFANA_ADMIN_PASSWORD'];
const COMPOSE_ENV: Record<string, string> = {
  DOCKER_GID: '998',
  TOWER_WEBHOOK_SECRET: 'a-webhook-secret-of-32-characters',
  POSTGRES_PASSWORD: 'pg0123456789abcdef',
  REDIS_PASSWORD: 'redis0123456789abcdef',
  GRAFANA_ADMIN_PASSWORD: 'grafana0123456789',
};

/** docker-compose 1.29 with a clean environment and an empty env file, so no .env leaks in. */
function compose(args: string[], vars: Record<string, string>) {
  const envFile = join(tmp(), 'empty.env');
  writeFileSync(envFile, '');
  return tool('docker-compose', ['--env-file', envFile, '-f', 'docker-compose.yml', ...args], { env: { PATH: process.env.PATH, HOME: tmp(), ...vars } });
}

function composeConfig(vars: Record<string, string> = COMPOSE_ENV): Obj {
  const r = compose(['config'], vars);
  expect(r.status, r.stderr).toBe(0);
  return obj(parseYaml(r.stdout));
}

function serviceEnv(service: Obj): Record<string, string> {
  const e = service.environment;
  if (Array.isArray(e)) return Object.fromEntries(e.map((kv: string) => [kv.split('=')[0]!, kv.slice(kv.indexOf('=') + 1)]));
  return Object.fromEntries(Object.entries(obj(e)).map(([k, v]) => [k, str(v)]));
}

describe('docker-compose.yml', () => {
  it('`docker-compose config -q` accepts it when the required settings are given', () => {
    const r = compose(['config', '-q'], COMPOSE_ENV);
    expect(r.out).toBe('');
    expect(r.status).toBe(0);
  });

  it.each(REQUIRED)('stops with a message naming %s when it is missing', (name) => {
    const vars = { ...COMPOSE_ENV };
    delete vars[name];
    const r = compose(['config', '-q'], vars);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`set ${name}`);
  });

  it('brings up Tower, mosquitto, Redis, PostgreSQL, Prometheus and Grafana, healthy before use', () => {
    const services = obj(composeConfig().services);
    expect(Object.keys(services).sort()).toEqual(['grafana', 'mosquitto', 'postgres', 'prometheus', 'redis', 'tower']);
    for (const [name, s] of Object.entries(services)) {
      // Tower's health is the image's HEALTHCHECK (checked above).
      if (name !== 'tower') expect(arr(obj(obj(s).healthcheck).test).length, `${name} has a healthcheck`).toBeGreaterThan(0);
      for (const p of arr(obj(s).ports)) expect(str(p), `${name} publishes on the host's loopback only`).toMatch(/^127\.0\.0\.1:/);
      for (const v of arr(obj(s).volumes)) {
        const source = str(v).split(':')[0]!;
        if (source.startsWith(ROOT)) expect(existsSync(source), `${name} mounts ${relative(ROOT, source)}, which exists`).toBe(true);
      }
    }
    const tower = obj(services.tower);
    for (const dep of ['postgres', 'redis', 'mosquitto']) expect(obj(obj(tower.depends_on)[dep]).condition, `tower waits for ${dep}`).toBe('service_healthy');
    expect(obj(obj(obj(services.grafana).depends_on).prometheus).condition).toBe('service_healthy');
    expect(str(obj(tower.build).context)).toBe(ROOT);
  });

  it('gives Tower what the docker driver needs: host network, the Docker socket, the state dir at the same path', () => {
    const tower = obj(obj(composeConfig().services).tower);
    expect(tower.network_mode, 'Node-RED containers run on the host network at 127.0.0.1:<port>').toBe('host');
    const volumes = arr(tower.volumes).map(str);
    expect(volumes).toContain('/var/run/docker.sock:/var/run/docker.sock:rw');
    const stateDir = serviceEnv(tower).TOWER_STATE_DIR!;
    expect(volumes, 'the docker driver bind-mounts userDirs from the state dir: same path on host and in the container').toContain(`${stateDir}:${stateDir}:rw`);
    expect(arr(tower.group_add).map(str)).toEqual([COMPOSE_ENV.DOCKER_GID]);
    // Everything Tower and the Node-RED containers connect to is on the host's loopback.
    const env = serviceEnv(tower);
    const ports = Object.values(obj(composeConfig().services)).flatMap((s) => arr(obj(s).ports).map((p) => str(p).split(':')[1]));
    for (const k of ['DATABASE_URL', 'REDIS_URL', 'MQTT_URL']) {
      const u = new URL(env[k]!);
      expect(u.hostname, k).toBe('127.0.0.1');
      expect(ports, `${k}: a port the stack publishes`).toContain(u.port);
    }
  });

  it("sets for Tower only variables `tower run` reads, and they make a valid configuration", () => {
    const tower = obj(obj(composeConfig({ ...COMPOSE_ENV, TOWER_REPO: 'https://github.com/acme/fleet.git' }).services).tower);
    const env = serviceEnv(tower);
    expect(unknownEnv(Object.keys(env))).toEqual([]);
    const { config, errors } = parseRunConfig({}, env, () => '');
    expect(errors).toEqual([]);
    expect(config?.databaseUrl).toMatch(/^postgres:\/\/tower:/);
    expect(config?.redisUrl).toMatch(/^redis:\/\//);
    expect(config?.mqttUrl).toMatch(/^mqtt:\/\//);
    expect(config?.webhookSecret).toBe(COMPOSE_ENV.TOWER_WEBHOOK_SECRET);
    expect(config?.listen).toEqual({ host: '0.0.0.0', port: Number(dockerfile().one('EXPOSE')) });
    expect(config?.github, 'GitHub reporting is off unless a repository is named').toBeUndefined();
    // The default source is the directory mounted at /fleet.
    const defaults = serviceEnv(obj(obj(composeConfig().services).tower));
    expect(defaults.TOWER_REPO).toBe('/fleet');
    expect(arr(tower.volumes).map(str).some((v) => v.endsWith(':/fleet:ro'))).toBe(true);
    // GitHub reporting, when named in .env.
    const github = { ...COMPOSE_ENV, TOWER_REPO: 'https://github.com/acme/fleet.git', TOWER_GITHUB_REPO: 'acme/fleet', GITHUB_TOKEN: 'github_pat_0123456789', TOWER_PUBLIC_URL: 'https://tower.example.com' };
    const withGithub = parseRunConfig({}, serviceEnv(obj(obj(composeConfig(github).services).tower)), () => '');
    expect(withGithub.errors).toEqual([]);
    expect(withGithub.config?.github).toMatchObject({ repo: 'acme/fleet', token: 'github_pat_0123456789' });
  });

  it('every variable it reads is in deploy/compose.env.example, the required ones without a value', () => {
    const compose = read('docker-compose.yml');
    const used = new Set([...compose.matchAll(/\$\{([A-Z_][A-Z0-9_]*)/g)].map((m) => m[1]!));
    const example = read('deploy/compose.env.example');
    const documented = new Map([...example.matchAll(/^(#?)([A-Z_][A-Z0-9_]*)=(.*)$/gm)].map((m) => [m[2]!, { commented: m[1] === '#', value: m[3]! }]));
    expect([...used].filter((v) => !documented.has(v))).toEqual([]);
    const required = new Set([...compose.matchAll(/\$\{([A-Z_][A-Z0-9_]*):\?/g)].map((m) => m[1]!));
    expect([...required].sort()).toEqual([...REQUIRED].sort());
    for (const r of required) expect(documented.get(r), `${r}: to fill in, no default`).toEqual({ commented: false, value: '' });
  });
});

// ---------------------------------------------------------------------------------------------
// Prometheus: scrape config and alert rules.

const ALERTS = 'deploy/prometheus/alerts.yml';

function ruleExprs(): { name: string; expr: string }[] {
  const doc = obj(parseYaml(read(ALERTS)));
  return arr(doc.groups).flatMap((g) => arr(obj(g).rules).map((r) => ({ name: str(obj(r).alert) || str(obj(r).record), expr: str(obj(r).expr) })));
}

describe('Prometheus', () => {
  it('promtool accepts the scrape config and the rules', () => {
    const rules = tool('promtool', ['check', 'rules', ALERTS]);
    expect(rules.status, rules.out).toBe(0);
    const config = tool('promtool', ['check', 'config', 'deploy/prometheus/prometheus.yml']);
    expect(config.status, config.out).toBe(0);
    expect(config.out).toContain('1 rule files found');
  });

  it('scrapes Tower where compose runs it, keeping the Node-RED instance label', () => {
    const config = obj(parseYaml(read('deploy/prometheus/prometheus.yml')));
    const job = obj(arr(config.scrape_configs).find((j) => obj(j).job_name === 'tower'));
    expect(job.honor_labels, "Tower's metrics carry `instance` (the Node-RED instance): keep it, do not rename it exported_instance").toBe(true);
    expect(job.metrics_path ?? '/metrics').toBe('/metrics');
    const targets = arr(job.static_configs).flatMap((s) => arr(obj(s).targets).map(str));
    const port = dockerfile().one('EXPOSE');
    expect(targets).toEqual([`tower:${port}`]);
    const prometheus = obj(obj(composeConfig().services).prometheus);
    expect(arr(prometheus.extra_hosts).map(str), '"tower" is the host, where Tower listens').toContain('tower:host-gateway');
    expect(arr(config.rule_files)).toEqual(['alerts.yml']);
  });

  it('has the alerts of group tower, with metric names and labels Tower exports', async () => {
    const cat = await metricCatalogue();
    const doc = obj(parseYaml(read(ALERTS)));
    expect(arr(doc.groups).map((g) => obj(g).name)).toEqual(['tower']);
    const rules = ruleExprs();
    expect(rules.map((r) => r.name).sort()).toEqual(
      ['TowerDown', 'TowerFleetOutOfSync', 'TowerInstanceDown', 'TowerInstanceDrift', 'TowerInstanceUnhealthy', 'TowerLeadership', 'TowerReconcileErrors', 'TowerRolloutFailed'].sort(),
    );
    const problems = rules.flatMap((r) => promqlProblems(r.expr, cat).map((p) => `${r.name}: ${p}`));
    expect(problems).toEqual([]);
    for (const r of arr(obj(arr(doc.groups)[0]).rules)) expect(['warning', 'critical']).toContain(obj(obj(r).labels).severity);
  });

  it('the alerts fire when they should, and only then (promtool test rules)', () => {
    // The logic under test: the rules with their annotations left out (promtool would compare
    // the rendered texts); `promtool check rules` above checks the annotation templates.
    const dir = tmp();
    const doc = obj(parseYaml(read(ALERTS)));
    for (const g of arr(doc.groups)) for (const r of arr(obj(g).rules)) delete obj(r).annotations;
    writeFileSync(join(dir, 'alerts.yml'), stringifyYaml(doc));
    const T = 'job="tower", instance="tower:8080"';
    const at = (alertname: string, evalTime: string, labels: Record<string, string>[]) => ({ eval_time: evalTime, alertname, exp_alerts: labels.map((l) => ({ exp_labels: l })) });
    const rollout = (outcome: string, extra: Record<string, string> = {}) => ({ severity: 'warning', job: 'tower', instance: 'tower:8080', outcome, ...extra });
    const tests = {
      rule_files: ['alerts.yml'],
      evaluation_interval: '1m',
      tests: [
        {
          // Tower has run for a day; Prometheus has scraped it all along. The first rollback
          // creates its series at 30m (increase() alone would miss it); a failure follows at 60m.
          interval: '1m',
          input_series: [
            { series: `up{${T}}`, values: '1x90' },
            { series: `tower_process_process_start_time_seconds{${T}}`, values: '-86400x90' },
            { series: `tower_deployments_total{${T}, outcome="succeeded"}`, values: '4x90' },
            { series: `tower_deployments_total{${T}, outcome="rolled-back"}`, values: '_x30 1x10 2x50' },
            { series: `tower_deployments_total{${T}, outcome="failed"}`, values: '_x60 1x30' },
          ],
          alert_rule_test: [
            at('TowerRolloutFailed', '29m', []),
            at('TowerRolloutFailed', '30m', [rollout('rolled-back')]),
            // A second rollback 10 minutes later: increase() and the new series both see it; one alert.
            at('TowerRolloutFailed', '41m', [rollout('rolled-back')]),
            at('TowerRolloutFailed', '58m', []),
            at('TowerRolloutFailed', '60m', [rollout('failed')]),
            at('TowerRolloutFailed', '80m', []),
          ],
        },
        {
          // Prometheus starts next to a Tower that has run for a day with 3 old rollbacks: no news.
          interval: '1m',
          input_series: [
            { series: `up{${T}}`, values: '1x30' },
            { series: `tower_process_process_start_time_seconds{${T}}`, values: '-86400x30' },
            { series: `tower_deployments_total{${T}, outcome="rolled-back"}`, values: '3x30' },
          ],
          alert_rule_test: [at('TowerRolloutFailed', '1m', []), at('TowerRolloutFailed', '10m', []), at('TowerRolloutFailed', '20m', [])],
        },
        {
          // Tower and Prometheus start together; the first rollout fails 5 minutes later.
          interval: '1m',
          input_series: [
            { series: `up{${T}}`, values: '1x30' },
            { series: `tower_process_process_start_time_seconds{${T}}`, values: '0x30' },
            { series: `tower_deployments_total{${T}, outcome="failed"}`, values: '_x5 1x25' },
          ],
          alert_rule_test: [at('TowerRolloutFailed', '4m', []), at('TowerRolloutFailed', '5m', [rollout('failed')])],
        },
        {
          interval: '1m',
          input_series: [
            { series: 'tower_instance_drift{job="tower", instance="ingest"}', values: '0x5 1x20' },
            { series: 'tower_instance_drift{job="tower", instance="query"}', values: '0x25' },
            // ingest: no colour serves it from 5m on; query: green serves it.
            { series: 'tower_instance_up{job="tower", instance="ingest", color="blue"}', values: '1x4 0x20' },
            { series: 'tower_instance_up{job="tower", instance="ingest", color="green"}', values: '0x25' },
            { series: 'tower_instance_up{job="tower", instance="query", color="blue"}', values: '0x25' },
            { series: 'tower_instance_up{job="tower", instance="query", color="green"}', values: '1x25' },
            { series: 'tower_instance_health{job="tower", instance="query", status="Healthy"}', values: '1x2 0x22' },
            { series: 'tower_instance_health{job="tower", instance="query", status="Degraded"}', values: '0x2 1x22' },
            { series: 'tower_instance_health{job="tower", instance="query", status="Missing"}', values: '0x25' },
          ],
          alert_rule_test: [
            at('TowerInstanceDrift', '14m', []),
            at('TowerInstanceDrift', '16m', [{ severity: 'warning', job: 'tower', instance: 'ingest' }]),
            at('TowerInstanceDown', '9m', []),
            at('TowerInstanceDown', '11m', [{ severity: 'critical', job: 'tower', instance: 'ingest' }]),
            at('TowerInstanceUnhealthy', '6m', []),
            at('TowerInstanceUnhealthy', '8m', [{ severity: 'warning', job: 'tower', instance: 'query', status: 'Degraded' }]),
          ],
        },
        {
          interval: '1m',
          input_series: [
            { series: `tower_fleet_in_sync{${T}}`, values: '1x10 0x40' },
            // An error every 3 minutes from 10m on (the loop backs off, but keeps failing).
            { series: `tower_reconciles_total{${T}, result="error"}`, values: '0x10 0 0 1 1 1 2 2 2 3 3 3 4 4 4 5 5 5 6 6 6 7 7 7 8 8 8 9 9 9 10 10 10' },
            { series: `tower_reconciles_total{${T}, result="synced"}`, values: '0+1x45' },
            { series: `up{${T}}`, values: '1x10 0x20' },
          ],
          alert_rule_test: [
            at('TowerFleetOutOfSync', '40m', []),
            at('TowerFleetOutOfSync', '42m', [{ severity: 'warning', job: 'tower', instance: 'tower:8080' }]),
            at('TowerReconcileErrors', '20m', []),
            at('TowerReconcileErrors', '35m', [{ severity: 'warning', job: 'tower', instance: 'tower:8080' }]),
            at('TowerDown', '14m', []),
            at('TowerDown', '16m', [{ severity: 'critical', job: 'tower', instance: 'tower:8080' }]),
          ],
        },
        {
          // Two replicas: a leads until 5m; nobody leads from 5m to 9m (b waits out the lease,
          // then its renews fail); b leads from 9m; from 16m both say they lead.
          interval: '1m',
          input_series: [
            { series: 'tower_leader{job="tower", instance="tower-a:8080"}', values: '1x4 0x10 1x15' },
            { series: 'tower_leader{job="tower", instance="tower-b:8080"}', values: '0x8 1x21' },
          ],
          alert_rule_test: [
            at('TowerLeadership', '4m', []),
            at('TowerLeadership', '6m', []),
            at('TowerLeadership', '8m', [{ severity: 'critical', job: 'tower' }]),
            at('TowerLeadership', '12m', []),
            at('TowerLeadership', '16m', []),
            at('TowerLeadership', '18m', [{ severity: 'critical', job: 'tower' }]),
          ],
        },
      ],
    };
    writeFileSync(join(dir, 'alerts.test.yml'), stringifyYaml(tests));
    const r = tool('promtool', ['test', 'rules', 'alerts.test.yml'], { cwd: dir });
    expect(r.out).toContain('SUCCESS');
    expect(r.status, r.out).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// Grafana: the dashboard and its provisioning.

const DASHBOARD = 'deploy/grafana/dashboards/tower.json';

function allPanels(panels: unknown[]): Obj[] {
  return panels.flatMap((p) => [obj(p), ...allPanels(arr(obj(p).panels))]);
}

/** Every PromQL expression of the dashboard: panel targets, annotations, query variables. */
function dashboardQueries(dashboard: Obj): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of allPanels(arr(dashboard.panels))) for (const t of arr(p.targets)) out.push({ where: `panel ${str(p.id)} "${str(p.title)}"`, expr: str(obj(t).expr) });
  for (const a of arr(obj(dashboard.annotations).list)) if (obj(a).expr) out.push({ where: `annotation "${str(obj(a).name)}"`, expr: str(obj(a).expr) });
  for (const v of arr(obj(dashboard.templating).list)) {
    if (obj(v).type !== 'query') continue;
    const q = str(obj(obj(v).query).query) || str(obj(v).query);
    const m = /^label_values\((.+),\s*([a-zA-Z_]+)\)$/.exec(q);
    expect(m, `variable ${str(obj(v).name)}: label_values(metric, label)`).not.toBeNull();
    // label_values(m, l) as PromQL: the label must be one of the metric's.
    out.push({ where: `variable ${str(obj(v).name)}`, expr: `count by (${m![2]}) (${m![1]})` });
  }
  return out;
}

describe('Grafana', () => {
  const dashboard = obj(JSON.parse(read(DASHBOARD)));

  it('the dashboard is valid JSON with uid tower-fleet, unique panel ids and no overlapping panels', () => {
    expect(dashboard.uid).toBe('tower-fleet');
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(str(dashboard.title)).not.toBe('');
    const panels = allPanels(arr(dashboard.panels));
    expect(panels.length).toBeGreaterThan(10);
    const ids = panels.map((p) => p.id);
    expect(ids.every((id) => Number.isInteger(id))).toBe(true);
    expect(new Set(ids).size, 'panel ids are unique').toBe(ids.length);
    const boxes = panels.map((p) => ({ id: p.id, ...(obj(p.gridPos) as { x: number; y: number; w: number; h: number }) }));
    for (const b of boxes) expect(b.x + b.w, `panel ${String(b.id)} fits 24 columns`).toBeLessThanOrEqual(24);
    for (const [i, a] of boxes.entries())
      for (const b of boxes.slice(i + 1)) {
        const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
        expect(overlap, `panels ${String(a.id)} and ${String(b.id)} overlap`).toBe(false);
      }
    for (const p of panels.filter((p) => p.type !== 'row')) {
      expect(arr(p.targets).length, `panel ${str(p.title)} has a query`).toBeGreaterThan(0);
      const refs = arr(p.targets).map((t) => obj(t).refId);
      expect(new Set(refs).size, `panel ${str(p.title)}: unique refIds`).toBe(refs.length);
    }
  });

  it('covers fleet health, rollouts and phase durations, the reconcile loop, revision age and Node-RED resources', () => {
    const all = dashboardQueries(dashboard).map((q) => q.expr).join('\n');
    for (const needle of [
      'tower_fleet_in_sync',
      'tower_instance_health',
      'tower_instance_up',
      'tower_instance_drift',
      'tower_deployments_total',
      'tower_rollout_phase_duration_seconds_bucket',
      'tower_reconciles_total',
      'tower_reconcile_duration_seconds_bucket',
      'time() - (tower_applied_revision_timestamp_seconds',
      'tower_nodered_cpu_seconds_total',
      'tower_nodered_memory_bytes',
    ])
      expect(all).toContain(needle);
    expect(allPanels(arr(dashboard.panels)).some((p) => p.type === 'heatmap')).toBe(true);
  });

  it('every metric and label in its PromQL is one Tower exports', async () => {
    const cat = await metricCatalogue();
    const problems = dashboardQueries(dashboard).flatMap((q) => promqlProblems(q.expr, cat).map((p) => `${q.where}: ${p}`));
    expect(problems).toEqual([]);
  });

  it('every PromQL expression parses (promtool, with the variables filled in)', () => {
    const queries = dashboardQueries(dashboard);
    const fill = (e: string) => e.replace(/\[\$\{?\w+\}?\]/g, '[5m]').replace(/\$\{?\w+\}?/g, '.*');
    const rules = { groups: [{ name: 'dashboard', rules: queries.map((q, i) => ({ record: `dashboard:query_${i}`, expr: fill(q.expr) })) }] };
    const file = join(tmp(), 'dashboard-queries.yml');
    writeFileSync(file, stringifyYaml(rules));
    const r = tool('promtool', ['check', 'rules', file]);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toContain(`SUCCESS: ${queries.length} rules found`);
  });

  it('is provisioned: the datasource the dashboard defaults to, from the path compose mounts', () => {
    const ds = obj(arr(obj(parseYaml(read('deploy/grafana/provisioning/datasources/prometheus.yml'))).datasources)[0]);
    const variable = obj(arr(obj(dashboard.templating).list).find((v) => obj(v).type === 'datasource'));
    expect(obj(variable.current).value, 'the dashboard defaults to the provisioned datasource').toBe(ds.uid);
    const used = new Set(allPanels(arr(dashboard.panels)).flatMap((p) => [obj(p.datasource).uid, ...arr(p.targets).map((t) => obj(obj(t).datasource).uid)]).filter(Boolean));
    expect([...used]).toEqual([`\${${str(variable.name)}}`]);
    const services = obj(composeConfig().services);
    const promPort = str(arr(obj(services.prometheus).ports)[0]).split(':')[2]!.replace(/\/tcp$/, '');
    expect(ds.url, 'the prometheus service, on the compose network').toBe(`http://prometheus:${promPort}`);
    const provider = obj(arr(obj(parseYaml(read('deploy/grafana/provisioning/dashboards/tower.yml'))).providers)[0]);
    const mounts = arr(obj(services.grafana).volumes).map(str);
    expect(mounts).toContain(`${join(DEPLOY, 'grafana/dashboards')}:${str(obj(provider.options).path)}:ro`);
    expect(mounts).toContain(`${join(DEPLOY, 'grafana/provisioning')}:/etc/grafana/provisioning:ro`);
    const home = serviceEnv(obj(services.grafana)).GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH;
    expect(home).toBe(`${str(obj(provider.options).path)}/tower.json`);
  });
});

// ---------------------------------------------------------------------------------------------
// Kubernetes manifests for Tower itself.

const K8S = join(DEPLOY, 'kubernetes');

function manifests(): Obj[] {
  const docs: Obj[] = [];
  for (const f of readdirSync(K8S).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')) {
    for (const d of parseAllDocuments(readFileSync(join(K8S, f), 'utf8'))) {
      expect(d.errors.map((e) => `${f}: ${e.message}`)).toEqual([]);
      const value = obj(d.toJS());
      if (Object.keys(value).length) docs.push({ ...value, __file: f });
    }
  }
  return docs;
}
const ofKind = (docs: Obj[], kind: string): Obj[] => docs.filter((d) => d.kind === kind);
const named = (docs: Obj[], kind: string, name: string): Obj | undefined => ofKind(docs, kind).find((d) => obj(d.metadata).name === name);

function towerContainer(docs: Obj[]): Obj {
  const deployment = ofKind(docs, 'Deployment')[0]!;
  return obj(arr(obj(obj(obj(deployment.spec).template).spec).containers).find((c) => obj(c).name === 'tower'));
}

/** The environment the Deployment gives Tower: env entries, and the ConfigMaps and Secrets of envFrom. */
function podEnv(docs: Obj[]): Record<string, string> {
  const c = towerContainer(docs);
  const env: Record<string, string> = {};
  for (const from of arr(c.envFrom)) {
    const cm = obj(obj(from).configMapRef).name;
    const secret = obj(obj(from).secretRef).name;
    const source = cm ? named(docs, 'ConfigMap', str(cm)) : named(docs, 'Secret', str(secret));
    expect(source, `envFrom ${str(cm || secret)} is one of the manifests`).toBeDefined();
    Object.assign(env, obj(source!.data), obj(source!.stringData));
  }
  for (const e of arr(c.env)) env[str(obj(e).name)] = str(obj(e).value);
  return env;
}

describe('Kubernetes manifests', () => {
  it('parse, have the expected kinds, and the kustomization applies them all with the released image', () => {
    const docs = manifests();
    expect(docs.map((d) => d.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'Namespace', 'PersistentVolumeClaim', 'Secret', 'Service', 'ServiceAccount']);
    const kustomization = obj(parseYaml(readFileSync(join(K8S, 'kustomization.yaml'), 'utf8')));
    expect(kustomization.kind).toBe('Kustomization');
    expect(arr(kustomization.resources).map(str).sort()).toEqual([...new Set(docs.map((d) => str(d.__file)))].sort());
    expect(kustomization.namespace).toBe(obj(ofKind(docs, 'Namespace')[0]!.metadata).name);
    const image = obj(arr(kustomization.images)[0]);
    expect(image.name).toBe(towerContainer(docs).image);
    const version = (JSON.parse(read('package.json')) as { version: string }).version;
    expect(image.newTag, 'the image tag is the package version (bump it with package.json)').toBe(version);
    const composeImage = str(obj(obj(composeConfig().services).tower).image);
    expect(composeImage, 'compose builds the image the manifests run').toBe(`${str(image.newName)}:${version}`);
  });

  it('run the container as the image does: port, probes on real routes, user, state dir, /tmp', async () => {
    const docs = manifests();
    const { one, env: imageEnv } = dockerfile();
    const deployment = ofKind(docs, 'Deployment')[0]!;
    const spec = obj(deployment.spec);
    expect(spec.replicas).toBe(1);
    expect(obj(spec.strategy).type, 'a ReadWriteOnce state volume: never two pods at once').toBe('Recreate');
    const pod = obj(obj(spec.template).spec);
    const c = towerContainer(docs);
    expect(arr(c.args)).toEqual(JSON.parse(one('CMD') ?? '[]'));
    const port = obj(arr(c.ports)[0]);
    expect(String(port.containerPort)).toBe(one('EXPOSE'));
    const env = podEnv(docs);
    expect(env.TOWER_LISTEN).toBe(`0.0.0.0:${String(port.containerPort)}`);

    const app = stubApp();
    const probes = { livenessProbe: '/healthz', readinessProbe: '/api/v1/status', startupProbe: '/healthz' };
    for (const [probe, path] of Object.entries(probes)) {
      const get = obj(obj(c[probe]).httpGet);
      expect(get.path, probe).toBe(path);
      expect(get.port, `${probe} uses the container's port`).toBe(port.name);
      expect((await app.request(path)).status, `${path} answers 200`).toBe(200);
    }
    const service = ofKind(docs, 'Service')[0]!;
    const sp = obj(arr(obj(service.spec).ports)[0]);
    expect(sp.targetPort).toBe(port.name);
    expect(obj(obj(service.spec).selector)).toEqual(obj(obj(spec.selector).matchLabels));
    expect(obj(service.metadata).annotations).toMatchObject({ 'prometheus.io/port': String(port.containerPort), 'prometheus.io/path': '/metrics' });

    const podSec = obj(pod.securityContext);
    const uid = Number((one('USER') ?? '').split(':')[0]);
    expect(podSec.runAsNonRoot).toBe(true);
    expect(podSec.runAsUser, "the image's user").toBe(uid);
    const sec = obj(c.securityContext);
    expect(sec.readOnlyRootFilesystem).toBe(true);
    expect(sec.allowPrivilegeEscalation).toBe(false);
    expect(arr(obj(sec.capabilities).drop)).toEqual(['ALL']);

    const mounts = new Map(arr(c.volumeMounts).map((m) => [str(obj(m).mountPath), str(obj(m).name)]));
    const volumes = new Map(arr(pod.volumes).map((v) => [str(obj(v).name), obj(v)]));
    expect(env.TOWER_STATE_DIR).toBe(imageEnv.get('TOWER_STATE_DIR'));
    const state = volumes.get(mounts.get(env.TOWER_STATE_DIR!) ?? '');
    const claim = str(obj(state?.persistentVolumeClaim).claimName);
    expect(named(docs, 'PersistentVolumeClaim', claim), 'the state dir is the PersistentVolumeClaim').toBeDefined();
    expect(volumes.get(mounts.get('/tmp') ?? '')?.emptyDir, '/tmp is an emptyDir').toBeDefined();
    expect(named(docs, 'ServiceAccount', str(pod.serviceAccountName))).toBeDefined();
  });

  it('set only variables `tower run` reads; the placeholder webhook secret is refused until replaced', () => {
    const docs = manifests();
    const env = podEnv(docs);
    expect(unknownEnv(Object.keys(env))).toEqual([]);
    for (const k of ['TOWER_WEBHOOK_SECRET', 'GIT_TOKEN', 'DATABASE_URL', 'REDIS_URL']) expect(Object.keys(obj(named(docs, 'Secret', 'tower-secrets')?.stringData))).toContain(k);
    for (const k of Object.keys(obj(ofKind(docs, 'ConfigMap')[0]!.data))) expect(k, 'no secret in the ConfigMap').not.toMatch(/SECRET|TOKEN|PASSWORD|DATABASE_URL|REDIS_URL/);
    expect(parseRunConfig({}, env, () => '').errors).toEqual(['TOWER_WEBHOOK_SECRET: use at least 16 characters']);
    const { config, errors } = parseRunConfig({}, { ...env, TOWER_WEBHOOK_SECRET: 'a-real-secret-of-32-characters!!' }, () => '');
    expect(errors).toEqual([]);
    expect(config?.sourceKind).toBe('git');
    expect(config?.databaseUrl).toBeUndefined(); // empty: the embedded store
  });

});

// ---------------------------------------------------------------------------------------------
// mosquitto.conf

describe('mosquitto.conf', () => {
  it('mosquitto starts with it and takes anonymous clients with QoS 1 and retained messages', async () => {
    const dir = tmp();
    const port = await freePort();
    const conf = read('deploy/mosquitto/mosquitto.conf')
      .replace(/^listener 1883$/m, `listener ${port} 127.0.0.1`)
      .replace(/^persistence_location .*$/m, `persistence_location ${dir}/`);
    expect(conf).toContain(`listener ${port} 127.0.0.1`);
    writeFileSync(join(dir, 'mosquitto.conf'), conf);
    const broker = spawn('/usr/sbin/mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    broker.stdout.on('data', (d: Buffer) => (log += d.toString()));
    broker.stderr.on('data', (d: Buffer) => (log += d.toString()));
    try {
      // Up when it takes a client: an anonymous one, as Node-RED's broker configs connect.
      const deadline = Date.now() + 10_000;
      let client: mqtt.MqttClient | undefined;
      while (!client && broker.exitCode === null) {
        try {
          client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 2_000 });
        } catch (err) {
          if (Date.now() > deadline) throw new Error(`mosquitto takes no client: ${(err as Error).message}\n${log}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      expect(broker.exitCode, `mosquitto exited: ${log}`).toBeNull();
      if (!client) throw new Error(log);
      // The deploy gate's commands are retained QoS 1 messages: a later subscriber gets them.
      await client.publishAsync('tower/gate/test/x/blue', 'open', { qos: 1, retain: true });
      await client.endAsync();
      const reader = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
      const got = new Promise<string>((resolve) => reader.on('message', (_t, payload) => resolve(payload.toString())));
      await reader.subscribeAsync('tower/gate/test/x/blue', { qos: 1 });
      expect(await got).toBe('open');
      await reader.endAsync();
    } finally {
      if (broker.exitCode === null) {
        const exited = new Promise((r) => broker.once('exit', r));
        broker.kill('SIGTERM');
        await exited;
      }
    }
  });
});
