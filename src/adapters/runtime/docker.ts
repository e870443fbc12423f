/**
 * The docker runtime driver: each colour of an instance is one container, named
 * tower-<fleet>-<instance>-<color>, on the host network (Node-RED binds 127.0.0.1:<port>).
 * With replicas: N, replica k > 1 is its own container, tower-<fleet>-<instance>-<color>-r<k>,
 * with its own port and userDir (…/<color>/replicas/<k>/data), labelled with its index.
 *
 * The container's labels are the only record: list(fleet) is a label query, so a restarted
 * reconciler finds exactly what runs without a registry of its own. The userDir is a host
 * directory (<stateDir>/docker/<instance>/<color>/data) bind-mounted as /data, the official
 * image's userDir, holding the settings.js and flows.json Tower writes before start.
 *
 * With context: shared, the Redis context store and the ioredis it requires are staged in the
 * state directory and bind-mounted read-only (docker-context.ts); settings.js requires the store
 * at its in-container path.
 *
 * Containers have no restart policy: a colour that dies stays down until Tower's engine starts
 * it again, having heard of it through watch() (docker-watch.ts, on Docker's event stream).
 * Docker restarting it behind Tower's back would hide a crash loop from the engine and the
 * status page.
 */
import { chown, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type Dockerode from 'dockerode';
import { deployableFlows } from '../../core/flows.js';
import { encryptCredentials, extractCredentials, loadCredentialSecret, readCredentialSecret } from './credentials.js';
import { colorRedactor, dockerLogLines, envOfList, readColorCredentials, redactedLines } from './logs.js';
import { stageContextStore } from './docker-context.js';
import { dockerSupervisor, exitOfState } from './docker-watch.js';
import { renderSettings } from './settings.js';
import {
  RuntimeError,
  type ColorIdentity,
  type ColorSpec,
  type ColorStatus,
  type ExitRecord,
  type ResourceUsage,
  type RunningColor,
  type RuntimeDriver,
} from './types.js';

const PREFIX = 'dev.redforge.tower';
export const LABELS = {
  fleet: `${PREFIX}.fleet`,
  instance: `${PREFIX}.instance`,
  color: `${PREFIX}.color`,
  rev: `${PREFIX}.rev`,
  flowsHash: `${PREFIX}.flows-hash`,
  port: `${PREFIX}.port`,
  nodeRedVersion: `${PREFIX}.node-red-version`,
  /** This container's replica (absent: 1) and how many the colour has (absent: 1). */
  replica: `${PREFIX}.replica`,
  replicas: `${PREFIX}.replicas`,
} as const;

/** The official image runs Node-RED as node-red (uid/gid 1000); it must own /data. */
const IMAGE_UID = 1000;
const DEFAULT_STOP_MS = 10_000;

export interface DockerDriverOptions {
  docker: Dockerode;
  /** Tower's state directory; userDirs live under <stateDir>/docker/. */
  stateDir: string;
  /** Image for a spec without `image`; default: the official nodered/node-red:<nodeRedVersion>. */
  imageFor?: (spec: Pick<ColorSpec, 'nodeRedVersion'>) => string;
  /** How the container runs, when not as the image says (tests: host node + Node-RED bind-mounted). */
  run?: { cmd?: string[]; binds?: string[]; entrypoint?: string[] };
  /** Encrypts flow credentials; default: the state dir's, in <stateDir>/secrets.json (shared with the process driver). */
  credentialSecret?: string;
  /** One line per noticed exit and event-stream trouble. Never given env values or credentials. */
  log?: (line: string) => void;
}

export function containerName(ref: ColorIdentity, replica = 1): string {
  return `tower-${ref.fleet}-${ref.instance}-${ref.color}${replica > 1 ? `-r${replica}` : ''}`;
}

export function dockerDriver(options: DockerDriverOptions): RuntimeDriver {
  const { docker, stateDir, run = {} } = options;
  const imageFor = options.imageFor ?? ((spec: Pick<ColorSpec, 'nodeRedVersion'>) => `nodered/node-red:${spec.nodeRedVersion}`);
  const colorDir = (ref: ColorIdentity): string => join(stateDir, 'docker', ref.instance, ref.color);
  const replicaDir = (ref: ColorIdentity, replica: number): string => (replica > 1 ? join(colorDir(ref), 'replicas', String(replica)) : colorDir(ref));
  const supervisor = dockerSupervisor({
    docker,
    fleetLabel: (fleet) => `${LABELS.fleet}=${fleet}`,
    identify: colorOfLabels,
    log: options.log ?? (() => {}),
  });
  let secret: Promise<string> | undefined;
  const credentialSecret = (): Promise<string> => {
    secret ??= options.credentialSecret !== undefined ? Promise.resolve(options.credentialSecret) : loadCredentialSecret(stateDir);
    secret.catch(() => (secret = undefined)); // a failed read is retried next time
    return secret;
  };

  async function inspectOne(name: string): Promise<Container | undefined> {
    const info = await call(`inspect ${name}`, () => docker.getContainer(name).inspect(), [404]);
    if (!info) return undefined;
    const started = info.State.StartedAt && !info.State.StartedAt.startsWith('0001-') ? info.State.StartedAt : undefined;
    return fromLabels(info.Id, info.Config.Labels ?? {}, info.State.Status, started, exitOfState(info.State));
  }

  /** The colour: replica 1's container, and the others' when its labels say it has several. */
  async function inspect(ref: ColorIdentity): Promise<RunningColor | undefined> {
    const first = await inspectOne(containerName(ref));
    if (!first) return undefined;
    const rest = await Promise.all(Array.from({ length: replicaCount(first) - 1 }, (_, i) => inspectOne(containerName(ref, i + 2))));
    return withReplicas([first, ...rest.filter((r): r is Container => r !== undefined)], replicaCount(first));
  }

  /** Every replica's container name (replica 1's labels say how many). */
  async function names(ref: ColorIdentity): Promise<string[]> {
    const first = await inspectOne(containerName(ref));
    return Array.from({ length: first ? replicaCount(first) : 1 }, (_, i) => containerName(ref, i + 1));
  }

  /** Tower does not pull images: one the engine lacks fails now, not half way through a rollout. */
  async function imageProblem(image: string): Promise<string | undefined> {
    const found = await call(`inspect image ${image}`, () => docker.getImage(image).inspect(), [404]);
    if (found) return undefined;
    return `image ${image} is not on the Docker host, and Tower does not pull images: load it first (docker pull ${image}, or docker load -i <file>.tar where no registry is reachable)`;
  }

  async function createReplica(spec: ColorSpec, replica: number, port: number, count: number): Promise<void> {
    const name = containerName(spec, replica);
    const image = spec.image ?? imageFor(spec);
    // Parse before any side effect: a bad limit leaves nothing behind.
    const memory = spec.resources.memory !== undefined ? memoryBytes(spec.resources.memory) : undefined;
    const cpus = spec.resources.cpu !== undefined ? nanoCpus(spec.resources.cpu) : undefined;
    const shared = spec.context === 'shared' ? spec.sharedContext : undefined;
    if (spec.context === 'shared' && !shared) options.log?.(`docker: ${name} wants context: shared, but no Redis is configured (REDIS_URL); its context stays in memory and is lost on a swap`);
    const store = shared ? stageContextStore(stateDir) : undefined;

    const missing = await imageProblem(image);
    if (missing) throw new RuntimeError(missing, 'ImageMissing');

    // create replaces what an earlier attempt left under this colour's name, but only if it is ours.
    const existing = await call(`inspect ${name}`, () => docker.getContainer(name).inspect(), [404]);
    if (existing) {
      if (existing.Config.Labels?.[LABELS.fleet] !== spec.fleet) {
        throw new RuntimeError(`container ${name} exists but is not Tower's (no label ${LABELS.fleet}=${spec.fleet}): rename or remove it`, 'NameConflict');
      }
      await supervisor.asked(name, () => call(`remove ${name}`, () => docker.getContainer(name).remove({ force: true, v: true }), [404, 409]));
    }
    const dir = replicaDir(spec, replica);
    const dataDir = join(dir, 'data');
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const secretValue = await credentialSecret();
    const settings = renderSettings({
      port,
      host: '127.0.0.1',
      admin: spec.admin,
      credentialSecret: secretValue,
      settings: spec.settings,
      ...(shared && store ? { sharedContext: { ...shared, modulePath: store.modulePath } } : {}),
    });
    const files: Record<string, string> = {
      'settings.js': settings,
      // As Node-RED stores them: credentials apart, so the rev it reports is flowsRev(deployableFlows(flows)).
      'flows.json': JSON.stringify(deployableFlows(spec.flows)),
    };
    const credentials = extractCredentials(spec.flows);
    if (credentials) files['flows_cred.json'] = JSON.stringify(encryptCredentials(secretValue, credentials));
    for (const [file, text] of Object.entries(files)) await writeFile(join(dataDir, file), text, { mode: 0o600 });
    // Root hands /data to the image's user; anyone else runs the container as themselves.
    const user = await giveToContainer(dataDir, Object.keys(files));

    const labels: Record<string, string> = {
      ...spec.labels,
      [LABELS.fleet]: spec.fleet,
      [LABELS.instance]: spec.instance,
      [LABELS.color]: spec.color,
      [LABELS.rev]: spec.rev,
      [LABELS.flowsHash]: spec.flowsHash,
      [LABELS.port]: String(port),
      [LABELS.nodeRedVersion]: spec.nodeRedVersion,
      ...(count > 1 ? { [LABELS.replica]: String(replica), [LABELS.replicas]: String(count) } : {}),
    };
    const create: Dockerode.ContainerCreateOptions = {
      name,
      Image: image,
      Env: Object.entries({ ...spec.env, ...spec.replicaEnv?.[replica - 1] }).map(([k, v]) => `${k}=${v}`),
      Labels: labels,
      ...(run.entrypoint ? { Entrypoint: run.entrypoint } : {}),
      ...(run.cmd ? { Cmd: run.cmd } : {}),
      ...(user ? { User: user } : {}),
      HostConfig: {
        NetworkMode: 'host',
        Binds: [`${dataDir}:/data`, ...(store?.binds ?? []), ...(run.binds ?? [])],
        // Never restarted by Docker: Tower hears the die event and decides (backoff, CrashLoop).
        RestartPolicy: { Name: 'no' },
        ...(memory !== undefined ? { Memory: memory } : {}),
        ...(cpus !== undefined ? { NanoCpus: cpus } : {}),
      },
    };
    try {
      await call(`create ${name}`, () => docker.createContainer(create), [], Object.values(spec.env));
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  async function usageOf(name: string): Promise<ResourceUsage | undefined> {
    const c = docker.getContainer(name);
    const info = await call(`inspect ${name}`, () => c.inspect(), [404]);
    if (!info?.State.Running) return undefined;
    const stats = await call(`stats ${name}`, () => c.stats({ stream: false, 'one-shot': true }), [404, 409]);
    if (!stats) return undefined;
    const mem = stats.memory_stats;
    // As `docker stats` shows it: page cache that can be dropped is not the process's memory.
    const inactive = mem.stats?.total_inactive_file ?? mem.stats?.inactive_file ?? 0;
    return {
      cpuSeconds: (stats.cpu_stats.cpu_usage.total_usage ?? 0) / 1e9,
      rssBytes: Math.max(0, (mem.usage ?? 0) - inactive),
    };
  }

  return {
    kind: 'docker',

    async cannotRun(instance, wants) {
      const image = wants.image ?? imageFor(wants);
      const problem = await imageProblem(image);
      return problem ? `instance ${instance}: ${problem}` : undefined;
    },

    async list(fleet) {
      const found = await call(`list containers of fleet ${fleet}`, () =>
        docker.listContainers({ all: true, filters: { label: [`${LABELS.fleet}=${fleet}`] } }),
      );
      const containers = found.flatMap((c) => fromLabels(c.Id, c.Labels, c.State) ?? []);
      // How an exited container ended is in its inspect only: one call per exited one (usually none).
      const all = await Promise.all(containers.map(async (c) => (c.status === 'exited' ? ((await inspectOne(containerName(c, replicaOf(c)))) ?? c) : c)));
      // One colour per instance and colour, its replicas in order (replica 1's fields speak for it, or the lowest left's).
      const byColor = new Map<string, Container[]>();
      for (const c of all.sort((a, b) => replicaOf(a) - replicaOf(b))) byColor.set(`${c.instance}/${c.color}`, [...(byColor.get(`${c.instance}/${c.color}`) ?? []), c]);
      return [...byColor.values()].map((replicas) => withReplicas(replicas, Math.max(...replicas.map(replicaCount))));
    },

    async create(spec) {
      const count = spec.replicas ?? 1;
      const ports = [spec.port, ...(spec.replicaPorts ?? [])].slice(0, count);
      if (ports.length < count || new Set(ports).size < count) throw new RuntimeError(`${containerName(spec)} wants ${count} replicas: it needs ${count} different ports, got ${ports.join(', ')}`, 'ReplicaPorts');
      // Replicas an earlier colour of this name had beyond this one's count go first.
      const earlier = await names(spec);
      for (const name of earlier.slice(count)) await supervisor.asked(name, () => call(`remove ${name}`, () => docker.getContainer(name).remove({ force: true, v: true }), [404, 409]));
      await rm(colorDir(spec), { recursive: true, force: true });
      for (let k = 1; k <= count; k++) await createReplica(spec, k, ports[k - 1]!, count);
      return mustExist(await inspect(spec), containerName(spec));
    },

    /** Starts the replicas that do not run (304: one that runs is left alone). */
    async start(ref) {
      await Promise.all((await names(ref)).map((name) => call(`start ${name}`, () => docker.getContainer(name).start(), [304])));
      return mustExist(await inspect(ref), containerName(ref));
    },

    async stop(ref, opts) {
      const t = Math.max(0, Math.ceil((opts?.timeoutMs ?? DEFAULT_STOP_MS) / 1000));
      await Promise.all((await names(ref)).map((name) => supervisor.asked(name, () => call(`stop ${name}`, () => docker.getContainer(name).stop({ t }), [304, 404]))));
    },

    async remove(ref) {
      // 409: a removal is already in progress.
      await Promise.all((await names(ref)).map((name) => supervisor.asked(name, () => call(`remove ${name}`, () => docker.getContainer(name).remove({ force: true, v: true }), [404, 409]))));
      await rm(colorDir(ref), { recursive: true, force: true });
    },

    inspect,

    /** All replicas together. */
    async usage(ref): Promise<ResourceUsage | undefined> {
      const each = (await Promise.all((await names(ref)).map(usageOf))).filter((u): u is ResourceUsage => u !== undefined);
      return each.length ? { cpuSeconds: each.reduce((a, u) => a + u.cpuSeconds, 0), rssBytes: each.reduce((a, u) => a + u.rssBytes, 0) } : undefined;
    },

    /** The container's log (stdout and stderr) of one replica (default 1), redacted (logs.ts); Docker ends a followed log when the container stops. */
    async *logs(ref, opts) {
      const name = containerName(ref, opts.replica ?? 1);
      const container = docker.getContainer(name);
      const info = await call(`inspect ${name}`, () => container.inspect(), [404]);
      if (!info || info.Config.Labels?.[LABELS.fleet] !== ref.fleet) throw new RuntimeError(`${name} does not exist`, 'NotFound');
      const env = envOfList(info.Config.Env ?? []);
      const secretValue = options.credentialSecret ?? (await readCredentialSecret(stateDir));
      const credentials = await readColorCredentials(join(replicaDir(ref, opts.replica ?? 1), 'data', 'flows_cred.json'), secretValue);
      const redact = colorRedactor({ env, credentials, credentialSecret: secretValue, secretEnv: opts.secretEnv, secrets: opts.secrets });
      yield* redactedLines(dockerLogLines(container, { lines: opts.lines, follow: opts.follow ?? false, signal: opts.signal, tty: info.Config.Tty }), redact);
    },

    watch: (fleet, onExit) => supervisor.watch(fleet, onExit),
  };
}

/** resources.memory ("256Mi", "1Gi", "512Ki" or bytes) in bytes. */
export function memoryBytes(memory: string): number {
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(memory);
  if (!m) throw new RuntimeError(`resources.memory "${memory}" is not a size like 256Mi or 1Gi`, 'InvalidResources');
  const unit = m[2] === 'Ki' ? 2 ** 10 : m[2] === 'Mi' ? 2 ** 20 : m[2] === 'Gi' ? 2 ** 30 : 1;
  return Number(m[1]) * unit;
}

/** resources.cpu (0.5, "0.5" or millicores "500m") in Docker's NanoCpus. */
export function nanoCpus(cpu: number | string): number {
  const milli = typeof cpu === 'string' ? /^(\d+)m$/.exec(cpu) : null;
  const cores = milli ? Number(milli[1]) / 1000 : typeof cpu === 'number' ? cpu : /^\d+(\.\d+)?$/.test(cpu) ? Number(cpu) : NaN;
  if (!(cores > 0) || !Number.isFinite(cores)) {
    throw new RuntimeError(`resources.cpu "${cpu}" is not a number of cores like 0.5 or 500m`, 'InvalidResources');
  }
  return Math.round(cores * 1e9);
}

/** The colour a container's labels (or an event's attributes, which carry them) name. */
function colorOfLabels(labels: Record<string, string>): (ColorIdentity & { replica?: number }) | undefined {
  const fleet = labels[LABELS.fleet];
  const instance = labels[LABELS.instance];
  const color = labels[LABELS.color];
  const replica = Number(labels[LABELS.replica] ?? 1);
  return fleet && instance && (color === 'blue' || color === 'green') ? { fleet, instance, color, ...(replica > 1 ? { replica } : {}) } : undefined;
}

const replicaOf = (c: { replica?: number }): number => c.replica ?? 1;
const replicaCount = (c: Container): number => c.replicaCount ?? 1;

/** One container: a colour's replica, with its index and (from its labels) how many the colour has. */
type Container = RunningColor & { replica?: number; replicaCount?: number };

/** The colour as the engine sees it: replica 1's fields, running while any replica runs, each replica listed when it has several. */
function withReplicas(all: Container[], count: number): RunningColor {
  const { replica: _r, replicaCount: _n, ...first } = all[0]!;
  if (count <= 1) return first;
  const status = all.some((c) => c.status === 'running') ? 'running' : first.status;
  const exited = all.find((c) => c.status === 'exited' && c.exit);
  return {
    ...first,
    status,
    ...(status === 'exited' && (first.exit ?? exited?.exit) ? { exit: (first.exit ?? exited?.exit)! } : {}),
    replicas: all.map((c) => ({ index: replicaOf(c), id: c.id, url: c.url, status: c.status, port: c.port, ...(c.status === 'exited' ? { reason: c.exit?.reason ?? 'exited' } : {}) })),
  };
}

/** One container as a colour, with its replica index and the colour's replica count (from its labels) for withReplicas. */
function fromLabels(id: string, labels: Record<string, string>, state: string, startedAt?: string, exit?: ExitRecord): Container | undefined {
  const identity = colorOfLabels(labels);
  const port = Number(labels[LABELS.port]);
  // Not ours, or labels edited by hand: nothing to adopt.
  if (!identity || !Number.isInteger(port) || port <= 0) return undefined;
  const status = colorStatus(state);
  return {
    runtime: 'docker',
    ...identity,
    id,
    port,
    rev: labels[LABELS.rev] ?? '',
    flowsHash: labels[LABELS.flowsHash] ?? '',
    status,
    ...(startedAt ? { startedAt } : {}),
    url: `http://127.0.0.1:${port}`,
    ...(status === 'exited' && exit ? { exit } : {}),
    ...(Number(labels[LABELS.replicas] ?? 1) > 1 ? { replicaCount: Number(labels[LABELS.replicas]) } : {}),
  };
}

function colorStatus(state: string): ColorStatus {
  if (state === 'running' || state === 'created') return state;
  if (state === 'exited' || state === 'dead') return 'exited';
  return 'unknown';
}

function mustExist(color: RunningColor | undefined, name: string): RunningColor {
  if (!color) throw new RuntimeError(`docker: container ${name} vanished right after it was created or started`, 'DockerError');
  return color;
}

/** chown the userDir to the image's user when we are root; otherwise run the container as us. */
async function giveToContainer(dataDir: string, files: string[]): Promise<string | undefined> {
  const uid = process.getuid?.();
  const gid = process.getgid?.();
  if (uid === undefined || gid === undefined) return undefined;
  if (uid !== 0) return `${uid}:${gid}`;
  for (const p of [dataDir, ...files.map((f) => join(dataDir, f))]) await chown(p, IMAGE_UID, IMAGE_UID);
  return undefined;
}

/**
 * Runs one Docker API call. Statuses in `ok` mean "already so" (404 on remove, 304 on stop)
 * and resolve to undefined; anything else becomes a RuntimeError with Docker's status and
 * message, with the given secret values blanked out.
 */
async function call<T>(what: string, fn: () => Promise<T>): Promise<T>;
async function call<T>(what: string, fn: () => Promise<T>, ok: readonly number[], secrets?: readonly string[]): Promise<T | undefined>;
async function call<T>(what: string, fn: () => Promise<T>, ok: readonly number[] = [], secrets: readonly string[] = []): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    const status = httpStatus(err);
    if (status !== undefined && ok.includes(status)) return undefined;
    let message = dockerMessage(err);
    for (const s of secrets) if (s.length >= 4) message = message.split(s).join('***');
    throw new RuntimeError(
      `docker: ${what} failed${status !== undefined ? ` (HTTP ${status})` : ''}: ${message}`,
      status !== undefined ? 'DockerError' : 'DockerUnavailable',
    );
  }
}

function httpStatus(err: unknown): number | undefined {
  const status = typeof err === 'object' && err !== null ? (err as { statusCode?: unknown }).statusCode : undefined;
  return typeof status === 'number' ? status : undefined;
}

/** Docker's own message ({"message": ...}), not dockerode's "(HTTP code 404) no such container - ..." wrapper. */
function dockerMessage(err: unknown): string {
  const json = typeof err === 'object' && err !== null ? (err as { json?: unknown }).json : undefined;
  if (typeof json === 'object' && json !== null && typeof (json as { message?: unknown }).message === 'string') {
    return (json as { message: string }).message.trim();
  }
  return err instanceof Error ? err.message.trim() : String(err);
}
