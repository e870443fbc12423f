/**
 * The process runtime driver: every colour is a detached Node-RED process with its own user
 * directory. Layout under the state directory:
 *
 *   secrets.json                         credentialSecret of this state dir (0600)
 *   instances/<instance>/<color>/
 *     colour.json                        the registry record (no secrets)
 *     env.json                           spec.env, secrets resolved (0600): what start() runs with
 *     node-red.log                       stdout and stderr of Node-RED (logs(): tower logs)
 *     userDir/settings.js, flows.json, flows_cred.json, package.json
 *     replicas/<k>/                      replica k (2..N) of a colour with `replicas: N`: the same
 *                                        files, its own port; the colour's own files are replica 1
 *
 * Processes outlive the reconciler (detached, own process group, stdio on a file); a new
 * driver on the same state dir finds them through colour.json and checks that each pid is
 * still the process it started (start time from /proc), not a recycled pid. Each is titled
 * `node-red tower:<fleet>/<instance>/<color>` (ps, /proc/<pid>/cmdline) once it listens
 * (`…/<color>/r<k>` for replica k > 1).
 * A colour that stops unasked is noticed and reported by watch() (process-watch.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { deployableFlows } from '../../core/flows.js';
import { COLORS } from '../../core/live.js';
import { encryptCredentials, extractCredentials, loadCredentialSecret, readCredentialSecret } from './credentials.js';
import { colorRedactor, readColorCredentials, redactedLines, tailFile } from './logs.js';
import { procStat, processUsage, runs, signalGroup, waitForExit } from './proc.js';
import { exitSupervisor } from './process-watch.js';
import { writeAtomicAsync } from '../fs/atomic.js';
import { renderSettings } from './settings.js';
import { RuntimeError, type Color, type ColorIdentity, type ColorSpec, type ExitRecord, type ReplicaView, type RunningColor, type RuntimeDriver } from './types.js';

export interface ProcessDriverOptions {
  stateDir: string;
  /** One line per lifecycle event. Never given env values or credentials. */
  log?: (line: string) => void;
}

/** One replica of a colour: replica absent or 1 is the colour itself. */
export type ReplicaRef = ColorIdentity & { replica?: number };

/** colour.json: what runs, and how to recognise it again (one per replica). */
export interface ColorRecord {
  fleet: string;
  instance: string;
  color: Color;
  /** This record's replica (absent: 1) and, in replica 1's, how many the colour has (absent: 1). */
  replica?: number;
  replicas?: number;
  port: number;
  rev: string;
  flowsHash: string;
  pid: number | null;
  /** /proc/<pid>/stat field 22 (clock ticks after boot): tells our process from a recycled pid. */
  pidStartTime: number | null;
  startedAt: string | null;
  /** The Node-RED version actually run (the installed one). */
  nodeRedVersion: string;
  status: 'created' | 'running' | 'exited';
  /** Set by stop() before it signals: this exit was asked for, nobody reports it. Cleared by start(). */
  stopRequestedAt?: string;
  /** How the last run ended, when it ended unasked and was noticed. Cleared by start(). */
  exit?: ExitRecord;
}

/** Variables of the daemon's environment a Node-RED process may see; everything else (tokens, database URLs) stays out. */
const BASE_ENV = ['PATH', 'HOME', 'LANG', 'TZ', 'NODE_ENV'];

export function processDriver(options: ProcessDriverOptions): RuntimeDriver {
  const stateDir = path.resolve(options.stateDir);
  const log = options.log ?? (() => {});
  let secret: Promise<string> | undefined;

  const colorDir = (ref: ColorIdentity) => {
    if (!/^[a-z0-9][a-z0-9-]*$/.test(ref.instance) || !COLORS.includes(ref.color)) {
      throw new RuntimeError(`invalid colour ${ref.instance}/${ref.color}: instance names are lower case letters, digits and dashes; colours blue or green`, 'InvalidName');
    }
    return path.join(stateDir, 'instances', ref.instance, ref.color);
  };
  const replicaOf = (ref: ReplicaRef) => ref.replica ?? 1;
  /** Replica 1 is the colour's own directory (as before replicas); replica k its replicas/<k>. */
  const dirOf = (ref: ReplicaRef) => (replicaOf(ref) > 1 ? path.join(colorDir(ref), 'replicas', String(replicaOf(ref))) : colorDir(ref));
  const key = (ref: ReplicaRef) => `${ref.fleet}/${ref.instance}/${ref.color}${replicaOf(ref) > 1 ? `/r${replicaOf(ref)}` : ''}`;

  const recordFile = (ref: ReplicaRef) => path.join(dirOf(ref), 'colour.json');
  const readAnyRecord = (ref: ReplicaRef) => readJson<ColorRecord>(recordFile(ref));
  async function readRecord(ref: ReplicaRef): Promise<ColorRecord | undefined> {
    const record = await readAnyRecord(ref);
    return record && record.fleet === ref.fleet ? record : undefined;
  }
  const writeRecord = (record: ColorRecord) => writeAtomicAsync(recordFile(record), `${JSON.stringify(record, null, 2)}\n`);

  /** The records of every replica of a colour, replica 1's first. */
  async function replicasOf(first: ColorRecord): Promise<ColorRecord[]> {
    const rest = await Promise.all(Array.from({ length: Math.max(0, (first.replicas ?? 1) - 1) }, (_, i) => readRecord({ ...first, replica: i + 2 })));
    return [first, ...rest.filter((r): r is ColorRecord => r !== undefined)];
  }

  /** Every record of the fleet in the registry, by instance name. */
  async function fleetRecords(fleet: string): Promise<ColorRecord[]> {
    const found: ColorRecord[] = [];
    const instancesDir = path.join(stateDir, 'instances');
    const instances = await fs.readdir(instancesDir).catch(() => [] as string[]);
    for (const instance of instances.sort()) {
      for (const color of COLORS) {
        const record = await readJson<ColorRecord>(path.join(instancesDir, instance, color, 'colour.json'));
        if (record?.fleet === fleet) found.push(record);
      }
    }
    return found;
  }

  const supervisor = exitSupervisor({
    recordFile,
    running: async (fleet) => (await Promise.all((await fleetRecords(fleet)).map(replicasOf))).flat().filter((r) => r.status === 'running'),
    log,
  });

  const statusOf = (record: ColorRecord) => (record.status === 'running' && !isAlive(record) ? 'exited' : record.status);

  /** The colour as the engine sees it: replica 1's fields; running while any replica runs; each replica listed when it has several. */
  function view(all: ColorRecord[]): RunningColor {
    const record = all[0]!;
    // Running by the registry but not our child (started by an earlier driver): followed from now on,
    // and if it is already gone, the next look notices it.
    for (const r of all) if (r.status === 'running') supervisor.seen(r);
    const statuses = all.map(statusOf);
    const status = statuses.includes('running') ? 'running' : statuses[0]!;
    const down = all.find((r, i) => statuses[i] === 'exited' && r.exit);
    const replicas: ReplicaView[] = all.map((r, i) => ({
      index: replicaOf(r),
      id: r.pid === null ? '' : String(r.pid),
      url: `http://127.0.0.1:${r.port}`,
      status: statuses[i]!,
      port: r.port,
      ...(statuses[i] === 'exited' ? { reason: r.exit?.reason ?? 'exited' } : {}),
    }));
    return {
      fleet: record.fleet,
      instance: record.instance,
      color: record.color,
      runtime: 'process',
      id: record.pid === null ? '' : String(record.pid),
      port: record.port,
      rev: record.rev,
      flowsHash: record.flowsHash,
      status,
      ...(record.startedAt ? { startedAt: record.startedAt } : {}),
      url: `http://127.0.0.1:${record.port}`,
      logFile: path.join(colorDir(record), 'node-red.log'),
      ...(status === 'exited' && (record.exit ?? down?.exit) ? { exit: (record.exit ?? down?.exit)! } : {}),
      ...((record.replicas ?? 1) > 1 ? { replicas } : {}),
    };
  }

  const viewOf = async (first: ColorRecord) => view(await replicasOf(first));

  /** Generated once per state dir; every colour's credential file is encrypted with it. */
  function credentialSecret(): Promise<string> {
    secret ??= loadCredentialSecret(stateDir);
    secret.catch(() => (secret = undefined));
    return secret;
  }

  /** Every replica, at once. */
  async function stop(ref: ColorIdentity, opts?: { timeoutMs?: number }): Promise<void> {
    const first = await readRecord(ref);
    if (!first) return;
    await settleAll((await replicasOf(first)).map((r) => stopReplica(r, opts)));
  }

  async function stopReplica(ref: ReplicaRef, opts?: { timeoutMs?: number }): Promise<void> {
    const found = await readRecord(ref);
    if (!found || found.status !== 'running') return;
    // Marked before the signal, so that no watcher (of this driver or another) reports the exit.
    const record: ColorRecord = { ...found, stopRequestedAt: new Date().toISOString() };
    await writeRecord(record);
    if (isAlive(record)) {
      const pid = record.pid!;
      log(`process: stopping ${key(ref)} (pid ${pid})`);
      signalGroup(pid, 'SIGTERM');
      if (!(await waitForExit(pid, record.pidStartTime, opts?.timeoutMs ?? 10_000))) {
        log(`process: ${key(ref)} (pid ${pid}) ignored SIGTERM, killing it`);
        signalGroup(pid, 'SIGKILL');
        if (!(await waitForExit(pid, record.pidStartTime, 5_000))) throw new RuntimeError(`could not stop ${key(ref)}: pid ${pid} survives SIGKILL`, 'StopFailed');
      }
    }
    await writeRecord({ ...record, status: 'exited' });
  }

  /** Replica k of a new colour: its own userDir, port, env (the colour's plus spec.replicaEnv[k-1]) and record. */
  async function createReplica(spec: ColorSpec, replica: number, port: number, count: number, credentialSecretValue: string): Promise<ColorRecord> {
    const ref: ReplicaRef = { ...spec, replica };
    const dir = dirOf(ref);
    const userDir = path.join(dir, 'userDir');
    await fs.mkdir(userDir, { recursive: true, mode: 0o700 });
    const shared = spec.context === 'shared' ? spec.sharedContext : undefined;
    if (spec.context === 'shared' && !shared && replica === 1) log(`process: ${key(spec)} wants context: shared, but no Redis is configured (REDIS_URL); its context stays in memory and is lost on a swap`);
    const settings = renderSettings({ port, admin: spec.admin, credentialSecret: credentialSecretValue, settings: spec.settings, ...(shared ? { sharedContext: shared } : {}) });
    await writeAtomicAsync(path.join(userDir, 'settings.js'), settings, 0o600);
    // The state dir may sit inside an ESM package; without this, settings.js would not load as CommonJS.
    await writeAtomicAsync(path.join(userDir, 'package.json'), `${JSON.stringify({ name: 'node-red-project', description: 'A Node-RED Project', version: '0.0.1', private: true }, null, 4)}`);
    // Node-RED keeps credentials out of flows.json and hashes what is left: write it the same way,
    // so that the rev it reports at start is flowsRev(deployableFlows(flows)).
    await writeAtomicAsync(path.join(userDir, 'flows.json'), JSON.stringify(deployableFlows(spec.flows)));
    const credentials = extractCredentials(spec.flows);
    if (credentials) await writeAtomicAsync(path.join(userDir, 'flows_cred.json'), JSON.stringify(encryptCredentials(credentialSecretValue, credentials)), 0o600);
    const record: ColorRecord = {
      fleet: spec.fleet,
      instance: spec.instance,
      color: spec.color,
      ...(replica > 1 ? { replica } : count > 1 ? { replicas: count } : {}),
      port,
      rev: spec.rev,
      flowsHash: spec.flowsHash,
      pid: null,
      pidStartTime: null,
      startedAt: null,
      nodeRedVersion: installedNodeRed().version,
      status: 'created',
    };
    // Apart from the registry and owner-only, like settings.js: a restarted Tower can start the colour again.
    await writeAtomicAsync(path.join(dir, 'env.json'), JSON.stringify({ ...spec.env, ...spec.replicaEnv?.[replica - 1] }), 0o600);
    await writeRecord(record);
    return record;
  }

  async function startReplica(record: ColorRecord): Promise<void> {
    const ref: ReplicaRef = record;
    const dir = dirOf(ref);
    const env = await readJson<Record<string, string>>(path.join(dir, 'env.json'));
    if (!env) throw new RuntimeError(`${key(ref)} has no env.json; create it again`, 'NotCreated');
    if (!(await portIsFree(record.port))) {
      throw new RuntimeError(`cannot start ${key(ref)}: port ${record.port} on 127.0.0.1 is already in use (another program or another colour); give the colour a free port`, 'PortInUse');
    }
    const userDir = path.join(dir, 'userDir');
    const logFile = await fs.open(path.join(dir, 'node-red.log'), 'a', 0o600);
    let child: ChildProcess;
    let pid: number;
    try {
      // The title tells the colours apart in ps; Node-RED sets it once it listens.
      const args = [installedNodeRed().redJs, '--settings', path.join(userDir, 'settings.js'), '--userDir', userDir, '--title', processTitle(ref)];
      child = spawn(process.execPath, args, {
        cwd: userDir,
        env: childEnv(env),
        // Own process group and no pipe to us: the instance outlives the reconciler, even a SIGKILLed one.
        detached: true,
        stdio: ['ignore', logFile.fd, logFile.fd],
      });
      const spawning = child;
      pid = await new Promise<number>((resolve, reject) => {
        spawning.once('error', (err) => reject(new RuntimeError(`could not start Node-RED for ${key(ref)}: ${err.message}`, 'SpawnFailed', { cause: err })));
        spawning.once('spawn', () => resolve(spawning.pid!));
      });
      // Later errors (none expected: we never signal through this handle) must not crash the daemon.
      // The handle stays with the supervisor for its exit event, unref'd: the daemon may exit before Node-RED.
      child.on('error', () => {});
      child.unref();
    } finally {
      await logFile.close();
    }
    const stat = await procStat(pid);
    const { stopRequestedAt: _asked, exit: _exit, ...rest } = record;
    const started: ColorRecord = { ...rest, pid, pidStartTime: stat?.startTime ?? null, startedAt: new Date().toISOString(), status: 'running' };
    await writeRecord(started);
    supervisor.spawned(started, child);
    log(`process: started ${key(ref)} pid ${pid} port ${record.port}`);
  }

  return {
    kind: 'process',

    async list(fleet) {
      return Promise.all((await fleetRecords(fleet)).map(viewOf));
    },

    async cannotRun(instance, wants) {
      return versionProblem(instance, wants.nodeRedVersion);
    },

    async create(spec) {
      const problem = versionProblem(key(spec), spec.nodeRedVersion);
      if (problem) throw new RuntimeError(problem, 'NodeRedVersionNotInstalled');
      const count = spec.replicas ?? 1;
      const ports = [spec.port, ...(spec.replicaPorts ?? [])].slice(0, count);
      if (ports.length < count || new Set(ports).size < count) throw new RuntimeError(`${key(spec)} wants ${count} replicas: it needs ${count} different ports, got ${ports.join(', ')}`, 'ReplicaPorts');
      const existing = await readAnyRecord(spec);
      if (existing && existing.fleet !== spec.fleet) {
        throw new RuntimeError(`${stateDir} already holds ${spec.instance}/${spec.color} of fleet ${existing.fleet}; give each fleet its own state directory`, 'FleetMismatch');
      }
      const alive = existing ? (await replicasOf(existing)).find(isAlive) : undefined;
      if (alive) throw new RuntimeError(`${key(alive)} is running (pid ${alive.pid}); stop or remove it before creating it again`, 'ColorRunning');
      // A colour is created fresh: nothing (sessions, context, old credentials, old replicas) carries over.
      await fs.rm(colorDir(spec), { recursive: true, force: true });
      const credentialSecretValue = await credentialSecret();
      const records: ColorRecord[] = [];
      for (let k = 1; k <= count; k++) records.push(await createReplica(spec, k, ports[k - 1]!, count, credentialSecretValue));
      log(`process: created ${key(spec)} port ${ports.join(', ')} rev ${spec.rev.slice(0, 12)}`);
      return view(records);
    },

    async start(ref) {
      const first = await readRecord(ref);
      if (!first) throw new RuntimeError(`${key(ref)} does not exist; create it first`, 'NotCreated');
      // Only the replicas that do not run: a repair of one replica leaves the others serving.
      const all = await replicasOf(first);
      await settleAll(all.filter((r) => !isAlive(r)).map(startReplica));
      return viewOf((await readRecord(ref)) ?? first);
    },

    stop,

    async remove(ref) {
      const record = await readAnyRecord(ref);
      if (record && record.fleet !== ref.fleet) return; // another fleet's colour: not ours to delete
      await stop(ref);
      const dir = colorDir(ref);
      await fs.rm(dir, { recursive: true, force: true });
      // The instance directory goes with its last colour.
      await fs.rmdir(path.dirname(dir)).catch(() => {});
      log(`process: removed ${key(ref)}`);
    },

    async inspect(ref) {
      const record = await readRecord(ref);
      return record ? viewOf(record) : undefined;
    },

    /** All replicas together. */
    async usage(ref) {
      const record = await readRecord(ref);
      if (!record) return undefined;
      const each = await Promise.all((await replicasOf(record)).filter(isAlive).map((r) => processUsage(r.pid!)));
      const known = each.filter((u) => u !== undefined);
      return known.length ? { cpuSeconds: known.reduce((a, u) => a + u.cpuSeconds, 0), rssBytes: known.reduce((a, u) => a + u.rssBytes, 0) } : undefined;
    },

    /** node-red.log of one replica (default 1), redacted (logs.ts); following ends when the process is no longer running. */
    async *logs(colour, opts) {
      const first = await readRecord(colour);
      if (!first) throw new RuntimeError(`${key(colour)} does not exist`, 'NotFound');
      const ref: ReplicaRef = { ...colour, replica: opts.replica ?? 1 };
      if (!(await readRecord(ref))) throw new RuntimeError(`${key(colour)} has no replica ${opts.replica} (it has ${first.replicas ?? 1})`, 'NotFound');
      const dir = dirOf(ref);
      const secretValue = await readCredentialSecret(stateDir);
      const env = (await readJson<Record<string, string>>(path.join(dir, 'env.json'))) ?? {};
      const credentials = await readColorCredentials(path.join(dir, 'userDir', 'flows_cred.json'), secretValue);
      const redact = colorRedactor({ env, credentials, credentialSecret: secretValue, secretEnv: opts.secretEnv, secrets: opts.secrets });
      const running = async () => ((r) => r !== undefined && isAlive(r))(await readRecord(ref).catch(() => undefined));
      yield* redactedLines(tailFile(path.join(dir, 'node-red.log'), { ...opts, running }), redact);
    },

    watch: (fleet, onExit) => supervisor.watch(fleet, onExit),
  };
}

/** What ps shows for a colour's Node-RED: `node-red tower:<fleet>/<instance>/<color>`, `…/<color>/r<k>` for replica k > 1. */
export function processTitle(ref: ReplicaRef): string {
  return `node-red tower:${ref.fleet}/${ref.instance}/${ref.color}${(ref.replica ?? 1) > 1 ? `/r${ref.replica}` : ''}`;
}

/** Waits for every one, then throws the first failure. */
async function settleAll(work: Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(work)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** Processes run the Node-RED installed with Tower: another version cannot be had. */
function versionProblem(who: string, wanted: string): string | undefined {
  const installed = installedNodeRed().version;
  if (nodeRedVersionMatches(installed, wanted)) return undefined;
  return (
    `${who} wants Node-RED ${wanted}, but the process runtime runs the Node-RED installed with Tower, which is ${installed}. ` +
    `Use runtime: docker with an image of Node-RED ${wanted}, install Node-RED ${wanted} for Tower, or set nodeRedVersion to "${installed}".`
  );
}

/** "4.1" accepts 4.1.x, "4" any 4.x, "4.1.8" only itself; "4.1" does not accept 4.10. */
export function nodeRedVersionMatches(installed: string, wanted: string): boolean {
  const w = wanted.trim().replace(/^v/, '');
  return w !== '' && (installed === w || installed.startsWith(`${w}.`));
}

let nodeRed: { version: string; redJs: string } | undefined;
/** The Node-RED installed next to Tower (resolved from this package, not from the working directory). */
export function installedNodeRed(): { version: string; redJs: string } {
  if (!nodeRed) {
    const require = createRequire(import.meta.url);
    const redJs = require.resolve('node-red/red.js');
    const { version } = require('node-red/package.json') as { version: string };
    nodeRed = { version, redJs };
  }
  return nodeRed;
}

function childEnv(specEnv: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of BASE_ENV) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...specEnv };
}

/** Our process still runs: the record says running and its pid is still the process we started. */
function isAlive(record: ColorRecord): boolean {
  return record.pid !== null && record.status === 'running' && runs(record.pid, record.pidStartTime);
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

async function readJson<T>(file: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new RuntimeError(`${file} is not valid JSON; remove the colour's directory to forget it`, 'StateCorrupt');
  }
}
