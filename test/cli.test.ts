/** The CLI contract: commands, output formats and exit codes. */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli.js';
import { bufferIo } from '../src/commands/io.js';

const ROOT = join(import.meta.dirname, '..');
const EXAMPLE = join(ROOT, 'fleet-example');

async function tower(...args: string[]) {
  const io = bufferIo();
  const code = await main(args, io);
  return { code, out: io.out, err: io.err };
}

describe('tower validate', () => {
  it('accepts fleet-example: exit 0', async () => {
    const r = await tower('validate', EXAMPLE);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/valid — fleet redforge, 5 instances/);
  });

  it('counts nodes as plan does: tabs and subflow definitions are not nodes', async () => {
    const validated = JSON.parse((await tower('validate', EXAMPLE, '--format', 'json')).out) as { instances: { name: string; nodes: number }[] };
    const planned = JSON.parse((await tower('plan', EXAMPLE, '--format', 'json')).out) as { instances: { name: string; action: string; counts: { added: number } }[] };
    expect(planned.instances.every((i) => i.action === 'create')).toBe(true);
    expect(validated.instances.map((i) => [i.name, i.nodes])).toEqual(planned.instances.map((i) => [i.name, i.counts.added]));
    const { loadDirectory } = await import('../src/repository.js');
    const all = loadDirectory(EXAMPLE).instances.flatMap((i) => i.flowList);
    const containers = all.filter((n) => n.type === 'tab' || n.type === 'subflow').length;
    expect(containers).toBeGreaterThan(0);
    const total = validated.instances.reduce((n, i) => n + i.nodes, 0);
    expect(total).toBe(all.length - containers);
    const text = (await tower('validate', EXAMPLE)).out;
    expect(text).toContain(`5 instances, ${total} nodes (tabs and subflow definitions not counted)`);
    const planText = (await tower('plan', EXAMPLE)).out;
    for (const i of planned.instances) expect(planText).toContain(`+ ${i.name}: create — ${i.counts.added} nodes,`);
  });

  it('rejects a broken repository: exit 1, errors as path:line:col: error: message', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tower-cli-'));
    try {
      cpSync(EXAMPLE, dir, { recursive: true });
      const fleet = readFileSync(join(dir, 'fleet.yaml'), 'utf8');
      writeFileSync(join(dir, 'fleet.yaml'), fleet.replace(/port: 1882/, 'port: 1881'));
      const r = await tower('validate', dir);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/^fleet\.yaml:\d+:\d+: error: port 1881 of instance "embeddings" is already the port of instance "ingest"/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('tower plan', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tower-plan-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('against an empty fleet: every instance is created, exit 2', async () => {
    const r = await tower('plan', EXAMPLE, '--format', 'json');
    expect(r.code).toBe(2);
    const j = JSON.parse(r.out) as { waves: { index: number; steps: { instance: string; action: string }[] }[] };
    expect(j.waves[0]).toMatchObject({ index: 0 });
    expect(j.waves.flatMap((w) => w.steps.map((s) => s.action))).toEqual(Array(5).fill('create'));
  });

  it('against itself: no changes, exit 0; one change: exit 2 and the node named', async () => {
    const plan = JSON.parse((await tower('plan', EXAMPLE, '--format', 'json')).out) as { instances: { name: string }[] };
    const validated = JSON.parse((await tower('validate', EXAMPLE, '--format', 'json')).out) as { instances: { name: string; rev: string }[] };
    expect(plan.instances).toHaveLength(5);
    // Build the observed fleet from the example's own flows: what Tower would have deployed.
    const { loadDirectory } = await import('../src/repository.js');
    const repo = loadDirectory(EXAMPLE);
    const observed = { instances: repo.instances.map((i) => ({ name: i.name, flows: i.flowList, rev: i.rev, config: i.config })) };
    expect(validated.instances.map((i) => i.rev)).toEqual(repo.instances.map((i) => i.rev));
    writeFileSync(join(dir, 'same.json'), JSON.stringify(observed));
    const same = await tower('plan', EXAMPLE, '--observed', join(dir, 'same.json'));
    expect(same.code).toBe(0);
    expect(same.out).toContain('No changes. 5 instances are up to date.');

    const changedNode = repo.instances[0]!.flowList.find((n) => n.type === 'function')!;
    const live = structuredClone(observed);
    const liveNode = live.instances[0]!.flows.find((n) => n.id === changedNode.id)!;
    liveNode.func = '/* older */ return msg;';
    delete (live.instances[0] as { rev?: string }).rev;
    writeFileSync(join(dir, 'changed.json'), JSON.stringify(live));
    const changed = await tower('plan', EXAMPLE, '--observed', join(dir, 'changed.json'), '--format', 'markdown');
    expect(changed.code).toBe(2);
    expect(changed.out).toContain(`(${changedNode.id})`);
    expect(changed.out).toContain('Unchanged:');
  });

  it('--format json: the report is on stdout whatever the exit code, and the errors on stderr too', async () => {
    const broken = join(dir, 'broken');
    cpSync(EXAMPLE, broken, { recursive: true });
    const fleet = readFileSync(join(broken, 'fleet.yaml'), 'utf8');
    writeFileSync(join(broken, 'fleet.yaml'), fleet.replace(/port: 1882/, 'port: 1881'));
    for (const cmd of ['plan', 'validate']) {
      const r = await tower(cmd, broken, '--format', 'json');
      expect(r.code).toBe(1);
      const j = JSON.parse(r.out) as { valid: boolean; diagnostics: { code: string; file: string; line: number }[] };
      expect(j.valid).toBe(false);
      expect(j.diagnostics).toEqual([expect.objectContaining({ code: 'DuplicatePort', file: 'fleet.yaml' })]);
      expect(r.err).toMatch(/^fleet\.yaml:\d+:\d+: error: port 1881 of instance "embeddings" is already the port of instance "ingest"/);
    }
    // An --observed file that is no observed fleet, is no JSON, nests too deep or is missing.
    writeFileSync(join(dir, 'nope.json'), '{"nope": 1}');
    writeFileSync(join(dir, 'syntax.json'), '{"instances": [\n  {"name": "ingest",]}');
    writeFileSync(join(dir, 'deep.json'), `{"instances": [{"name": "ingest", "flows": [{"id": "a", "type": "x", "p": ${'['.repeat(100_000)}${']'.repeat(100_000)}}]}]}`);
    for (const [file, code, line, message] of [
      ['nope.json', 'ObservedInvalid', 1, 'expected an object with an "instances" list'],
      ['syntax.json', 'ObservedInvalid', 2, 'invalid JSON: expected a property name in double quotes'],
      ['deep.json', 'NestingTooDeep', 1, 'JSON nested more than 512 levels deep'],
      ['missing.json', 'ObservedInvalid', 1, 'cannot read the observed fleet: ENOENT'],
    ] as const) {
      const r = await tower('plan', EXAMPLE, '--observed', join(dir, file), '--format', 'json');
      expect(r.code).toBe(1);
      const j = JSON.parse(r.out) as { valid: boolean; waves: unknown[]; diagnostics: { code: string; file: string; line: number; message: string }[] };
      expect(j).toMatchObject({ valid: false, waves: [], diagnostics: [{ code, file: join(dir, file), line }] });
      expect(j.diagnostics[0]!.message).toContain(message);
      expect(r.err).toContain(`${join(dir, file)}:${line}:`);
    }
    // Text output of an invalid repository stays on stderr.
    const text = await tower('plan', broken);
    expect([text.code, text.out]).toEqual([1, '']);
    expect(text.err).toContain('is already the port of instance "ingest"');
  });

  it('invalid input: exit 1', async () => {
    writeFileSync(join(dir, 'bad.json'), '{"nope": 1}');
    const r = await tower('plan', EXAMPLE, '--observed', join(dir, 'bad.json'));
    expect(r.code).toBe(1);
    expect(r.err).toContain('expected an object with an "instances" list');
    expect((await tower('plan', join(dir, 'no-such-dir'))).code).toBe(1);
    expect((await tower('plan', EXAMPLE, '--format', 'yaml')).code).toBe(1);
  });
});

describe('a DIR that is no fleet repository', () => {
  it('is said in one line, with the command\'s exit code for invalid input; nothing else is done', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'tower-nodir-'));
    try {
      const missing = join(tmp, 'nope');
      const file = join(tmp, 'a-file');
      writeFileSync(file, 'x');
      const empty = join(tmp, 'empty');
      cpSync(join(EXAMPLE, 'flows'), join(empty, 'flows'), { recursive: true });
      const stateDir = join(tmp, 'state');
      const cases: [string[], number, string][] = [
        [['validate', missing], 1, `tower validate: ${missing}: no such directory\n`],
        [['validate', file], 1, `tower validate: ${file}: is not a directory — pass the directory that holds fleet.yaml\n`],
        [['plan', missing], 1, `tower plan: ${missing}: no such directory\n`],
        [['apply', missing, '--state-dir', stateDir], 2, `tower apply: ${missing}: no such directory\n`],
        [['destroy', empty, '--state-dir', stateDir], 2, `tower destroy: ${empty}: has no fleet.yaml — a fleet repository has fleet.yaml at its top (see fleet-example/); pass the directory that holds it\n`],
      ];
      for (const [args, code, err] of cases) {
        const r = await tower(...args);
        expect({ args, code: r.code, err: r.err, out: r.out }).toEqual({ args, code, err, out: '' });
      }
      // With --format json, the same line on stderr, and the JSON report on stdout.
      const noFleet = `${empty}: has no fleet.yaml — a fleet repository has fleet.yaml at its top (see fleet-example/); pass the directory that holds it`;
      for (const cmd of ['validate', 'plan']) {
        const r = await tower(cmd, empty, '--format', 'json');
        expect([r.code, r.err]).toEqual([1, `tower ${cmd}: ${noFleet}\n`]);
        expect(JSON.parse(r.out)).toMatchObject({ valid: false, diagnostics: [{ severity: 'error', code: 'FileNotFound', file: 'fleet.yaml', line: 1, col: 1, message: noFleet }] });
      }
      // apply stopped before opening the state directory; destroy released it.
      expect(readdirSync(tmp).sort()).toEqual(['a-file', 'empty', 'state']);
      expect(readdirSync(stateDir)).not.toContain('lock');
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('tower apply and tower destroy while the state directory is in use', () => {
  it('exit 3 and name the holder; nothing is changed; a lock left by a dead process is taken over', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'tower-state-'));
    const holder = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const lock = JSON.stringify({ pid: holder.pid, holder: 'tower run', since: '2026-12-01T10:00:00.000Z' });
      writeFileSync(join(stateDir, 'lock'), lock);
      const inUse = `the state directory ${stateDir} is in use by tower run (pid ${holder.pid}, since 2026-12-01T10:00:00.000Z); wait for it to finish`;

      const apply = await tower('apply', EXAMPLE, '--state-dir', stateDir);
      expect(apply.err).toBe(`tower apply: ${inUse}\n`);
      expect(apply.code).toBe(3);
      const destroy = await tower('destroy', '--state-dir', stateDir);
      expect(destroy.err).toBe(`tower destroy: ${inUse}\n`);
      expect(destroy.code).toBe(3);
      expect(readFileSync(join(stateDir, 'lock'), 'utf8')).toBe(lock); // still the holder's
      expect(existsSync(join(stateDir, 'registry.json'))).toBe(false); // nothing was applied

      holder.kill('SIGKILL');
      await new Promise((r) => holder.once('exit', r));
      const after = await tower('destroy', '--state-dir', stateDir);
      expect(after).toMatchObject({ code: 0, err: '' });
      expect(after.out).toBe(`nothing is managed from ${stateDir}\n`);
      expect(existsSync(join(stateDir, 'lock'))).toBe(false); // taken over, then released
    } finally {
      holder.kill('SIGKILL');
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  it('--help documents exit 3', async () => {
    const help = async (cmd: string) => (await tower(cmd, '--help')).out.replace(/\s+/g, ' '); // commander wraps lines
    expect(await help('apply')).toContain('3 the state directory is in use');
    expect(await help('destroy')).toContain('3 the state directory is in use');
  });
});

describe('the installed command', () => {
  it('--help, <cmd> --help and --version work through bin/tower.js', () => {
    const bin = join(ROOT, 'bin', 'tower.js');
    expect(execFileSync('node', [bin, '--help'], { encoding: 'utf8' })).toContain('Usage: tower');
    expect(execFileSync('node', [bin, 'plan', '--help'], { encoding: 'utf8' })).toContain('--observed <file>');
    const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;
    expect(execFileSync('node', [bin, '--version'], { encoding: 'utf8' }).trim()).toBe(version);
    const r = spawnSync('node', [bin, 'validate', join(ROOT, 'no-such-dir')], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(`tower validate: ${join(ROOT, 'no-such-dir')}: no such directory\n`);
  });

  it('--version loads no command module: the engine and its libraries are imported only by the command that runs', () => {
    // CommonJS packages (pino, ajv, dockerode, ioredis, …) show in the require cache once loaded,
    // also when imported from ES modules.
    const script = `import { createRequire } from 'node:module';
      const { main } = await import(${JSON.stringify(join(ROOT, 'dist', 'src', 'cli.js'))});
      const io = { out: '', stdout(t) { this.out += t; }, stderr() {}, isTTY: false, env: {} };
      const code = await main(process.argv.slice(1), io);
      const loaded = Object.keys(createRequire(import.meta.url).cache).map((f) => f.match(/node_modules\\/((?:@[^/]+\\/)?[^/]+)/)?.[1]).filter(Boolean);
      process.stdout.write(JSON.stringify({ code, out: io.out, packages: [...new Set(loaded)] }));`;
    const run = (...args: string[]) => JSON.parse(execFileSync('node', ['--input-type=module', '-e', script, '--', ...args], { encoding: 'utf8' })) as { code: number; out: string; packages: string[] };
    const version = run('--version');
    expect(version.code).toBe(0);
    expect(version.out.trim()).toBe(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
    expect(version.packages).toEqual(['commander']);
    // validate loads what validation needs (ajv), and still nothing of the engine.
    const validate = run('validate', EXAMPLE);
    expect(validate.code).toBe(0);
    expect(validate.packages).toContain('ajv');
    for (const p of ['pino', 'dockerode', 'ioredis', 'mqtt', 'simple-git', 'axios', 'pg']) expect(validate.packages).not.toContain(p);
  });
});
