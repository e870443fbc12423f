/**
 * The stand-in's scheduler and kubelet, on one node: it binds pods (resource requests against
 * the node's allocatable), gives each a pod IP on loopback (127.1.x.y — every pod has its own
 * address, as in its own network namespace, so all of them listen on the same container port),
 * "pulls" images from a fixed table, materialises volumes (configMap, secret, projected,
 * emptyDir) and env (value, with $(VAR) expanded as the kubelet does; secretKeyRef, configMapKeyRef,
 * fieldRef), and runs the container.
 *
 * Images are emulated by what they run:
 *   node-red     the official nodered/node-red image: `node red.js --userDir /data $FLOWS <args>`,
 *                paths in args translated to the pod's volumes; Node-RED binds the pod IP
 *                (settings that bind loopback only stay unreachable, as in a real pod)
 *   never-ready  runs, never listens (a readiness probe never passes)
 *   crash        exits with code 1 a moment after it starts
 * An image not in the table fails to pull (ErrImagePull, then ImagePullBackOff).
 * With `run: false` (the bench), containers are marked running and ready without a process.
 *
 * Readiness and liveness httpGet probes run at the pod spec's own periods. A container that exits
 * is restarted with CrashLoopBackOff's doubling delay. Deletion is graceful: the pod leaves the
 * endpoints at once (not ready), its preStop hook runs (exec: the command on this host, e.g.
 * sleep; httpGet), then SIGTERM, then SIGKILL when terminationGracePeriodSeconds are up.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { iso, type KubeObject, type ObjectStore, type StoreEvent } from './store.js';
import { quantity } from './validate.js';

const RED_JS = fileURLToPath(new URL('../../../node_modules/node-red/red.js', import.meta.url));

export type ImageBehaviour = 'node-red' | 'never-ready' | 'crash';

export interface KubeletOptions {
  store: ObjectStore;
  /** Where pods' volumes and writable layers live (outside any ESM package: settings.js is CommonJS). */
  root: string;
  images: Record<string, ImageBehaviour>;
  /** false: containers run without a process and are ready at once (the bench's 1,000 pods). */
  run: boolean;
  node: { name: string; cpu: number; memoryBytes: number };
  /** CrashLoopBackOff's first delay (the kubelet's is 10 s, doubling up to 5 min). */
  crashBackoffMs: number;
  log: (line: string) => void;
}

interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string; optional?: boolean }; secretRef?: { name: string; optional?: boolean }; prefix?: string }[];
  ports?: { name?: string; containerPort: number }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean; subPath?: string }[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] }; httpGet?: HttpGet } };
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
    fieldRef?: { fieldPath: string };
  };
}
interface HttpGet {
  path?: string;
  port: number | string;
  scheme?: string;
}
interface Probe {
  httpGet?: HttpGet;
  initialDelaySeconds?: number;
  periodSeconds?: number;
  timeoutSeconds?: number;
  successThreshold?: number;
  failureThreshold?: number;
}
interface Volume {
  name: string;
  configMap?: { name: string; items?: { key: string; path: string }[]; optional?: boolean };
  secret?: { secretName: string; items?: { key: string; path: string }[]; optional?: boolean };
  projected?: { sources: { configMap?: { name: string; items?: { key: string; path: string }[]; optional?: boolean }; secret?: { name: string; items?: { key: string; path: string }[]; optional?: boolean } }[] };
  emptyDir?: Record<string, unknown>;
}
interface PodSpec {
  containers: Container[];
  volumes?: Volume[];
  nodeName?: string;
  terminationGracePeriodSeconds?: number;
}

/** What this kubelet keeps of a pod it runs (one container per pod: what Tower makes). */
interface Running {
  uid: string;
  namespace: string;
  name: string;
  ip: string;
  dir: string;
  child?: ChildProcess;
  containerID: string;
  startedAt?: string;
  ready: boolean;
  restarts: number;
  lastTerminated?: Record<string, unknown>;
  probeTimers: NodeJS.Timeout[];
  retry?: NodeJS.Timeout;
  terminating: boolean;
  /** Set before this kubelet kills the container itself (liveness, deletion): not a crash. */
  killing: boolean;
  output: string;
}

export class Kubelet {
  private readonly pods = new Map<string, Running>();
  // Random per stand-in: two stand-ins (in one test file or in parallel ones) must not hand out the same pod IP.
  private nextIp = 1 + Math.floor(Math.random() * (2 ** 16 - 4096));
  private readonly queue = new Map<string, Promise<void>>();
  private readonly onEvent = (e: StoreEvent) => {
    if (e.resource !== 'pods') return;
    const uid = e.object.metadata.uid!;
    this.serial(uid, () => this.sync(e));
  };
  private closed = false;

  constructor(private readonly o: KubeletOptions) {
    o.store.events.on('event', this.onEvent);
  }

  /** The pod's log so far (stdout and stderr of its container). */
  logs(namespace: string, name: string): string | undefined {
    for (const r of this.pods.values()) if (r.namespace === namespace && r.name === name) return r.output;
    return undefined;
  }

  /** Kills a pod's container as the OOM killer or a crash would (tests: kill -9 inside the pod). */
  crash(namespace: string, name: string, signal: NodeJS.Signals = 'SIGKILL'): boolean {
    for (const r of this.pods.values()) {
      if (r.namespace === namespace && r.name === name && r.child?.pid) {
        killGroup(r.child.pid, signal);
        return true;
      }
    }
    return false;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.o.store.events.off('event', this.onEvent);
    await Promise.all([...this.pods.values()].map((r) => this.kill(r, 0)));
    this.pods.clear();
  }

  private serial(uid: string, fn: () => Promise<void>): void {
    const prev = this.queue.get(uid) ?? Promise.resolve();
    const next = prev.then(fn).catch((err: Error) => this.o.log(`kubelet: ${err.stack ?? err.message}`));
    this.queue.set(uid, next);
    void next.then(() => {
      if (this.queue.get(uid) === next) this.queue.delete(uid);
    });
  }

  private async sync(e: StoreEvent): Promise<void> {
    if (this.closed) return;
    const pod = e.object;
    const uid = pod.metadata.uid!;
    if (e.type === 'DELETED') {
      const r = this.pods.get(uid);
      if (r) await this.kill(r, 0);
      return;
    }
    const current = this.o.store.get('pods', pod.metadata.namespace, pod.metadata.name);
    if (!current || current.metadata.uid !== uid) return;
    const r = this.pods.get(uid);
    if (current.metadata.deletionTimestamp) {
      if (r && !r.terminating) await this.terminate(current, r);
      else if (!r) this.o.store.remove('pods', current.metadata.namespace, current.metadata.name);
      return;
    }
    if (!r && e.type === 'ADDED') await this.admit(current);
  }

  /** Scheduling: requests must fit the node beside what is bound to it already. */
  private async admit(pod: KubeObject): Promise<void> {
    const spec = pod.spec as PodSpec;
    const want = requests(spec);
    const bound = this.o.store.list('pods', undefined, (p) => (p.spec as PodSpec).nodeName === this.o.node.name && !isDone(p));
    const used = bound.reduce((acc, p) => ({ cpu: acc.cpu + requests(p.spec as PodSpec).cpu, memory: acc.memory + requests(p.spec as PodSpec).memory }), { cpu: 0, memory: 0 });
    const short = [want.cpu + used.cpu > this.o.node.cpu ? 'Insufficient cpu' : undefined, want.memory + used.memory > this.o.node.memoryBytes ? 'Insufficient memory' : undefined].filter(Boolean);
    if (short.length) {
      const message = `0/1 nodes are available: ${short.map((s) => `1 ${s}`).join(', ')}. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.`;
      this.status(pod, () => ({ phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message, lastProbeTime: null, lastTransitionTime: iso(new Date()) }], qosClass: qos(spec) }));
      this.event(pod, 'Warning', 'FailedScheduling', message, 'default-scheduler');
      // Retried when anything else on the node goes away; a cheap timer stands in for the scheduler's queue.
      const retry = setTimeout(() => this.serial(pod.metadata.uid!, async () => {
        const now = this.o.store.get('pods', pod.metadata.namespace, pod.metadata.name);
        if (now && now.metadata.uid === pod.metadata.uid && !now.metadata.deletionTimestamp && !(now.spec as PodSpec).nodeName) await this.admit(now);
      }), 2_000);
      retry.unref();
      return;
    }
    let n = this.nextIp++;
    // x.y.z.0 is not a host address; using .1 instead would give two pods one IP.
    if ((n & 0xff) === 0) n = this.nextIp++;
    const ip = `127.${1 + ((n >> 16) & 0x7f)}.${(n >> 8) & 0xff}.${n & 0xff}`;
    const bind = this.o.store.get('pods', pod.metadata.namespace, pod.metadata.name)!;
    (bind.spec as PodSpec).nodeName = this.o.node.name;
    this.o.store.replace('pods', 'Pod', bind, { ignoreVersion: true });
    this.event(pod, 'Normal', 'Scheduled', `Successfully assigned ${pod.metadata.namespace}/${pod.metadata.name} to ${this.o.node.name}`, 'default-scheduler');
    const r: Running = { uid: pod.metadata.uid!, namespace: pod.metadata.namespace!, name: pod.metadata.name, ip, dir: join(this.o.root, pod.metadata.uid!), containerID: '', ready: false, restarts: 0, probeTimers: [], terminating: false, killing: false, output: '' };
    this.pods.set(r.uid, r);
    const now = iso(new Date());
    this.status(pod, () => ({
      phase: 'Pending',
      conditions: [cond('Initialized', true), cond('Ready', false, 'ContainersNotReady'), cond('ContainersReady', false, 'ContainersNotReady'), cond('PodScheduled', true)],
      hostIP: '127.0.0.1',
      podIP: ip,
      podIPs: [{ ip }],
      startTime: now,
      qosClass: qos(spec),
      containerStatuses: [this.containerStatus(pod, r, { waiting: { reason: 'ContainerCreating' } })],
    }));
    await this.startContainer(pod, r);
  }

  private async startContainer(pod: KubeObject, r: Running): Promise<void> {
    if (r.terminating || this.closed) return;
    const c = (pod.spec as PodSpec).containers[0]!;
    const behaviour = this.o.images[c.image];
    if (!behaviour) {
      const message = `rpc error: code = NotFound desc = failed to pull and unpack image "${c.image}": not found (the stand-in's registry holds: ${Object.keys(this.o.images).join(', ')})`;
      this.setWaiting(pod, r, 'ErrImagePull', message);
      this.event(pod, 'Warning', 'Failed', `Failed to pull image "${c.image}": ${message}`);
      r.retry = setTimeout(() => this.serial(r.uid, async () => {
        if (r.terminating) return;
        this.setWaiting(pod, r, 'ImagePullBackOff', `Back-off pulling image "${c.image}"`);
        this.event(pod, 'Normal', 'BackOff', `Back-off pulling image "${c.image}"`);
      }), 500);
      return;
    }
    let prepared: { env: Record<string, string>; mounts: Map<string, string> };
    try {
      prepared = this.prepare(pod, r, c);
    } catch (err) {
      const message = (err as Error).message;
      this.setWaiting(pod, r, 'CreateContainerConfigError', message);
      this.event(pod, 'Warning', 'Failed', `Error: ${message}`);
      r.retry = setTimeout(() => this.serial(r.uid, () => this.startContainer(this.fresh(pod) ?? pod, r)), 2_000);
      return;
    }
    r.containerID = `standin://${r.uid.slice(0, 8)}-${r.restarts}`;
    r.startedAt = iso(new Date());
    r.ready = false;
    if (!this.o.run) {
      r.ready = true;
      this.setRunning(pod, r);
      return;
    }
    if (c.command && behaviour === 'node-red') {
      this.setWaiting(pod, r, 'RunContainerError', 'the stand-in runs the image\'s own entrypoint only; it cannot run a command');
      return;
    }
    const child = this.spawnFor(behaviour, c, r, prepared);
    r.child = child;
    r.killing = false;
    child.stdout?.on('data', (d: Buffer) => (r.output = (r.output + d.toString()).slice(-200_000)));
    child.stderr?.on('data', (d: Buffer) => (r.output = (r.output + d.toString()).slice(-200_000)));
    child.once('exit', (code, signal) => this.serial(r.uid, () => this.exited(pod, r, child, code, signal)));
    this.event(pod, 'Normal', 'Started', `Started container ${c.name}`);
    this.setRunning(pod, r);
    this.probe(pod, r, c);
  }

  private spawnFor(behaviour: ImageBehaviour, c: Container, r: Running, p: { env: Record<string, string>; mounts: Map<string, string> }): ChildProcess {
    const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: join(r.dir, 'home'), NODE_ENV: 'production', ...p.env };
    mkdirSync(env.HOME!, { recursive: true });
    const opts = { env, cwd: r.dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'] as ['ignore', 'pipe', 'pipe'] };
    if (behaviour === 'never-ready') return spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e6)'], opts);
    if (behaviour === 'crash') return spawn(process.execPath, ['-e', 'setTimeout(() => process.exit(1), 200)'], opts);
    const translate = (arg: string) => hostPath(arg, p.mounts, r.dir);
    const args = (c.args ?? []).map(translate);
    const userDir = translate('/data');
    mkdirSync(userDir, { recursive: true });
    // The pod's own network namespace: whatever address settings.js binds, it is this pod's.
    const at = args.indexOf('--settings');
    const settingsFile = at >= 0 ? args[at + 1] : undefined;
    const wrapper = join(r.dir, 'netns-settings.cjs');
    writeFileSync(
      wrapper,
      `const s = ${settingsFile ? `require(${JSON.stringify(settingsFile)})` : '{}'};\n` +
        `const loopbackOnly = ['127.0.0.1', 'localhost', '::1'].includes(s.uiHost);\n` +
        // Bound to loopback inside a pod, Node-RED cannot be reached from outside it: here, an address nobody probes.
        `module.exports = Object.assign({}, s, { uiHost: loopbackOnly ? ${JSON.stringify(`127.254.${r.ip.split('.').slice(2).join('.')}`)} : ${JSON.stringify(r.ip)} });\n`,
    );
    if (at >= 0) args[at + 1] = wrapper;
    else args.push('--settings', wrapper);
    return spawn(process.execPath, [RED_JS, '--userDir', userDir, env.FLOWS ?? 'flows.json', ...args], opts);
  }

  /** Volumes and env, from the ConfigMaps and Secrets as they are now; throws what the kubelet would say. */
  private prepare(pod: KubeObject, r: Running, c: Container): { env: Record<string, string>; mounts: Map<string, string> } {
    const ns = pod.metadata.namespace!;
    const spec = pod.spec as PodSpec;
    const configMap = (name: string, optional?: boolean) => {
      const cm = this.o.store.get('configmaps', ns, name);
      if (!cm && !optional) throw new Error(`configmap "${name}" not found`);
      return (cm?.data ?? {}) as Record<string, string>;
    };
    const secret = (name: string, optional?: boolean) => {
      const s = this.o.store.get('secrets', ns, name);
      if (!s && !optional) throw new Error(`secret "${name}" not found`);
      return Object.fromEntries(Object.entries((s?.data ?? {}) as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
    };
    const pick = (data: Record<string, string>, items: { key: string; path: string }[] | undefined, what: string) => {
      if (!items) return Object.entries(data).map(([k, v]) => [k, v] as const);
      return items.map((i) => {
        if (!(i.key in data)) throw new Error(`${what}: key "${i.key}" not found`);
        return [i.path, data[i.key]!] as const;
      });
    };
    const mounts = new Map<string, string>();
    const volumes = new Map<string, string>();
    for (const v of spec.volumes ?? []) {
      const dir = join(r.dir, 'volumes', v.name);
      const files: (readonly [string, string])[] = [];
      if (v.configMap) files.push(...pick(configMap(v.configMap.name, v.configMap.optional), v.configMap.items, `configmap "${v.configMap.name}"`));
      if (v.secret) files.push(...pick(secret(v.secret.secretName, v.secret.optional), v.secret.items, `secret "${v.secret.secretName}"`));
      for (const s of v.projected?.sources ?? []) {
        if (s.configMap) files.push(...pick(configMap(s.configMap.name, s.configMap.optional), s.configMap.items, `configmap "${s.configMap.name}"`));
        if (s.secret) files.push(...pick(secret(s.secret.name, s.secret.optional), s.secret.items, `secret "${s.secret.name}"`));
      }
      // emptyDir survives a container restart: written once per pod.
      if (v.emptyDir && volumes.has(v.name)) continue;
      if (!v.emptyDir) rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      for (const [path, text] of files) {
        mkdirSync(join(dir, path, '..'), { recursive: true });
        writeFileSync(join(dir, path), text, { mode: 0o644 });
      }
      volumes.set(v.name, dir);
    }
    for (const m of c.volumeMounts ?? []) {
      const dir = volumes.get(m.name);
      if (!dir) throw new Error(`volume "${m.name}" is not declared`);
      mounts.set(m.mountPath, m.subPath ? join(dir, m.subPath) : dir);
    }
    const env: Record<string, string> = {};
    for (const from of c.envFrom ?? []) {
      const data = from.configMapRef ? configMap(from.configMapRef.name, from.configMapRef.optional) : from.secretRef ? secret(from.secretRef.name, from.secretRef.optional) : {};
      for (const [k, v] of Object.entries(data)) env[`${from.prefix ?? ''}${k}`] = v;
    }
    for (const e of c.env ?? []) {
      const f = e.valueFrom;
      if (!f) env[e.name] = expandEnv(e.value ?? '', env);
      else if (f.secretKeyRef) {
        const data = secret(f.secretKeyRef.name, f.secretKeyRef.optional);
        if (!(f.secretKeyRef.key in data)) {
          if (!f.secretKeyRef.optional) throw new Error(`couldn't find key ${f.secretKeyRef.key} in Secret ${ns}/${f.secretKeyRef.name}`);
        } else env[e.name] = data[f.secretKeyRef.key]!;
      } else if (f.configMapKeyRef) {
        const data = configMap(f.configMapKeyRef.name, f.configMapKeyRef.optional);
        if (!(f.configMapKeyRef.key in data)) {
          if (!f.configMapKeyRef.optional) throw new Error(`couldn't find key ${f.configMapKeyRef.key} in ConfigMap ${ns}/${f.configMapKeyRef.name}`);
        } else env[e.name] = data[f.configMapKeyRef.key]!;
      } else if (f.fieldRef) {
        const fields: Record<string, string> = { 'metadata.name': pod.metadata.name, 'metadata.namespace': ns, 'metadata.uid': pod.metadata.uid!, 'status.podIP': r.ip, 'spec.nodeName': this.o.node.name, 'status.hostIP': '127.0.0.1' };
        env[e.name] = fields[f.fieldRef.fieldPath] ?? '';
      }
    }
    return { env, mounts };
  }

  private probe(pod: KubeObject, r: Running, c: Container): void {
    const run = (p: Probe, onResult: (ok: boolean, streak: number) => void) => {
      let streak = 0;
      let last: boolean | undefined;
      const tick = async () => {
        if (r.terminating || !r.child || r.child.exitCode !== null) return;
        const ok = p.httpGet ? await httpGet(r.ip, p.httpGet, c, (p.timeoutSeconds ?? 1) * 1000) : true;
        streak = ok === last ? streak + 1 : 1;
        last = ok;
        onResult(ok, streak);
        const t = setTimeout(() => void tick(), (p.periodSeconds ?? 10) * 1000);
        t.unref();
        r.probeTimers.push(t);
        if (r.probeTimers.length > 4) r.probeTimers.shift();
      };
      const t = setTimeout(() => void tick(), (p.initialDelaySeconds ?? 0) * 1000);
      t.unref();
      r.probeTimers.push(t);
    };
    const ready = c.readinessProbe;
    if (ready) {
      run(ready, (ok, streak) => {
        const want = ok ? streak >= (ready.successThreshold ?? 1) : !(streak >= (ready.failureThreshold ?? 3)) && r.ready;
        if (want !== r.ready) this.serial(r.uid, async () => {
          if (r.terminating) return;
          r.ready = want;
          this.setRunning(this.fresh(pod) ?? pod, r);
        });
      });
    } else {
      r.ready = true;
      this.setRunning(pod, r);
    }
    const live = c.livenessProbe;
    if (live) {
      run(live, (ok, streak) => {
        if (ok || streak < (live.failureThreshold ?? 3) || !r.child?.pid) return;
        this.event(pod, 'Normal', 'Killing', `Container ${c.name} failed liveness probe, will be restarted`);
        r.killing = false; // a liveness kill counts as a restart, like a crash
        killGroup(r.child.pid, 'SIGKILL');
      });
    }
  }

  private async exited(pod: KubeObject, r: Running, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): Promise<void> {
    if (r.child !== child) return;
    r.child = undefined;
    r.probeTimers.forEach(clearTimeout);
    r.probeTimers = [];
    if (r.terminating || r.killing || this.closed) return;
    const exitCode = code ?? (signal ? 128 + (signal === 'SIGKILL' ? 9 : signal === 'SIGTERM' ? 15 : 6) : 1);
    r.lastTerminated = { terminated: { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', startedAt: r.startedAt, finishedAt: iso(new Date()), containerID: r.containerID, ...(signal ? { signal: exitCode - 128 } : {}) } };
    r.restarts++;
    r.ready = false;
    const delay = r.restarts === 1 ? 0 : Math.min(this.o.crashBackoffMs * 2 ** (r.restarts - 2), 300_000);
    const c = (pod.spec as PodSpec).containers[0]!;
    this.setWaiting(this.fresh(pod) ?? pod, r, 'CrashLoopBackOff', `back-off ${Math.round(delay / 1000)}s restarting failed container=${c.name} pod=${pod.metadata.name}_${pod.metadata.namespace}(${pod.metadata.uid})`);
    this.event(pod, 'Warning', 'BackOff', 'Back-off restarting failed container');
    r.retry = setTimeout(() => this.serial(r.uid, () => this.startContainer(this.fresh(pod) ?? pod, r)), delay);
    r.retry.unref();
  }

  /** Graceful deletion: out of the endpoints now, preStop, SIGTERM, SIGKILL at the end of the grace period; then the pod is gone. */
  private async terminate(pod: KubeObject, r: Running): Promise<void> {
    r.terminating = true;
    r.ready = false;
    if (r.retry) clearTimeout(r.retry);
    this.setRunning(pod, r);
    const graceMs = (pod.metadata.deletionGracePeriodSeconds ?? (pod.spec as PodSpec).terminationGracePeriodSeconds ?? 30) * 1000;
    const deadline = Date.now() + graceMs;
    const c = (pod.spec as PodSpec).containers[0]!;
    const preStop = c.lifecycle?.preStop;
    if (r.child && preStop && graceMs > 0) {
      this.event(pod, 'Normal', 'Killing', `Stopping container ${c.name}`);
      if (preStop.exec) {
        const [cmd, ...args] = preStop.exec.command;
        const hook = spawn(cmd!, args, { stdio: 'ignore', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
        await Promise.race([new Promise((done) => hook.once('exit', done).once('error', done)), sleep(deadline - Date.now())]);
        hook.kill('SIGKILL');
      } else if (preStop.httpGet) {
        await httpGet(r.ip, preStop.httpGet, c, Math.max(1, deadline - Date.now()));
      }
    }
    await this.kill(r, Math.max(0, deadline - Date.now()));
    this.pods.delete(r.uid);
    rmSync(r.dir, { recursive: true, force: true });
    this.o.store.remove('pods', pod.metadata.namespace, pod.metadata.name);
  }

  private async kill(r: Running, graceMs: number): Promise<void> {
    r.probeTimers.forEach(clearTimeout);
    if (r.retry) clearTimeout(r.retry);
    const child = r.child;
    if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
    r.killing = true;
    const exited = new Promise<void>((done) => child.once('exit', () => done()));
    killGroup(child.pid, graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
    if (graceMs > 0 && !(await Promise.race([exited.then(() => true), sleep(graceMs).then(() => false)]))) killGroup(child.pid, 'SIGKILL');
    await Promise.race([exited, sleep(5_000)]);
  }

  private fresh(pod: KubeObject): KubeObject | undefined {
    const now = this.o.store.get('pods', pod.metadata.namespace, pod.metadata.name);
    return now && now.metadata.uid === pod.metadata.uid ? now : undefined;
  }

  private setWaiting(pod: KubeObject, r: Running, reason: string, message: string): void {
    r.ready = false;
    this.status(pod, (s) => ({
      ...s,
      phase: r.restarts > 0 ? 'Running' : 'Pending',
      conditions: conditions(s, false),
      containerStatuses: [this.containerStatus(pod, r, { waiting: { reason, message } })],
    }));
  }

  private setRunning(pod: KubeObject, r: Running): void {
    const ready = r.ready && !r.terminating;
    this.status(pod, (s) => ({
      ...s,
      phase: 'Running',
      conditions: conditions(s, ready),
      containerStatuses: [this.containerStatus(pod, r, { running: { startedAt: r.startedAt } }, ready)],
    }));
  }

  private containerStatus(pod: KubeObject, r: Running, state: Record<string, unknown>, ready = false): Record<string, unknown> {
    const c = (pod.spec as PodSpec).containers[0]!;
    const running = 'running' in state;
    return {
      name: c.name,
      state,
      lastState: r.lastTerminated ?? {},
      ready,
      restartCount: r.restarts,
      image: c.image,
      imageID: this.o.images[c.image] ? `standin-registry/${c.image}@sha256:${'0'.repeat(64)}` : '',
      ...(r.containerID ? { containerID: r.containerID } : {}),
      started: running,
    };
  }

  private status(pod: KubeObject, change: (s: Record<string, unknown>) => Record<string, unknown>): void {
    const cur = this.fresh(pod);
    if (!cur) return;
    cur.status = change((cur.status ?? {}) as Record<string, unknown>);
    this.o.store.replace('pods', 'Pod', cur, { subresource: 'status', ignoreVersion: true });
  }

  private event(pod: KubeObject, type: 'Normal' | 'Warning', reason: string, message: string, component = 'kubelet'): void {
    const now = iso(new Date());
    try {
      this.o.store.create('events', 'Event', {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: `${pod.metadata.name}.${Date.now().toString(16)}${Math.floor(Math.random() * 1e6).toString(16)}`, namespace: pod.metadata.namespace! },
        involvedObject: { kind: 'Pod', namespace: pod.metadata.namespace, name: pod.metadata.name, uid: pod.metadata.uid, apiVersion: 'v1' },
        reason,
        message,
        type,
        source: { component, ...(component === 'kubelet' ? { host: this.o.node.name } : {}) },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
        reportingComponent: component,
        reportingInstance: this.o.node.name,
      });
    } catch {
      // an event is best effort, as in a cluster
    }
  }
}

/** A path inside the container (/data/x, /config/settings.js) on this host: the longest mount that holds it, else the container's own layer. */
function hostPath(arg: string, mounts: Map<string, string>, podDir: string): string {
  if (!arg.startsWith('/')) return arg;
  let best: [string, string] | undefined;
  for (const [mountPath, dir] of mounts) {
    const m = mountPath.replace(/\/+$/, '');
    if ((arg === m || arg.startsWith(`${m}/`)) && (!best || m.length > best[0].length)) best = [m, dir];
  }
  return best ? best[1] + arg.slice(best[0].length) : join(podDir, 'rootfs', arg);
}

function httpGet(ip: string, get: HttpGet, c: Container, timeoutMs: number): Promise<boolean> {
  const port = typeof get.port === 'number' ? get.port : (c.ports ?? []).find((p) => p.name === get.port)?.containerPort;
  if (!port) return Promise.resolve(false);
  return new Promise((resolve) => {
    const req = http.get({ host: ip, port, path: get.path ?? '/', timeout: timeoutMs, headers: { 'User-Agent': 'kube-probe/1.27' } }, (res) => {
      res.resume();
      resolve((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 400);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

function requests(spec: PodSpec): { cpu: number; memory: number } {
  return spec.containers.reduce(
    (acc, c) => {
      const r = c.resources?.requests ?? c.resources?.limits ?? {};
      return { cpu: acc.cpu + (r.cpu ? quantity(r.cpu) : 0), memory: acc.memory + (r.memory ? quantity(r.memory) : 0) };
    },
    { cpu: 0, memory: 0 },
  );
}

function qos(spec: PodSpec): string {
  const all = spec.containers.map((c) => c.resources ?? {});
  if (all.every((r) => !r.requests && !r.limits)) return 'BestEffort';
  const guaranteed = all.every((r) => r.limits?.cpu && r.limits?.memory && (!r.requests || (r.requests.cpu === r.limits.cpu && r.requests.memory === r.limits.memory)));
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

function cond(type: string, ok: boolean, reason?: string): Record<string, unknown> {
  return { type, status: ok ? 'True' : 'False', lastProbeTime: null, lastTransitionTime: iso(new Date()), ...(reason && !ok ? { reason } : {}) };
}

function conditions(s: Record<string, unknown>, ready: boolean): Record<string, unknown>[] {
  const old = (s.conditions ?? []) as { type: string; status: string }[];
  const keep = (type: string, ok: boolean, reason?: string) => {
    const was = old.find((c) => c.type === type);
    return was && was.status === (ok ? 'True' : 'False') ? was : cond(type, ok, reason);
  };
  return [keep('Initialized', true), keep('Ready', ready, 'ContainersNotReady'), keep('ContainersReady', ready, 'ContainersNotReady'), keep('PodScheduled', true)];
}

function isDone(p: KubeObject): boolean {
  const phase = (p.status as { phase?: string } | undefined)?.phase;
  return phase === 'Succeeded' || phase === 'Failed';
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // gone
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, Math.max(0, ms)).unref());
}

/**
 * The kubelet's expansion of an env value (k8s third_party/forked/golang/expansion): $(NAME) is
 * the value of a variable defined before it (envFrom, or earlier in env), left as written when
 * there is none; $$ is a $; any other $ stays.
 */
export function expandEnv(input: string, defined: Record<string, string>): string {
  let out = '';
  for (let i = 0; i < input.length; i++) {
    const c = input[i]!;
    if (c !== '$' || i + 1 >= input.length) {
      out += c;
      continue;
    }
    const next = input[i + 1]!;
    if (next === '$') {
      out += '$';
      i++;
    } else if (next === '(') {
      const close = input.indexOf(')', i + 2);
      if (close < 0) {
        out += '$(';
        i++;
      } else {
        const name = input.slice(i + 2, close);
        out += Object.hasOwn(defined, name) ? defined[name] : `$(${name})`;
        i = close;
      }
    } else {
      out += `$${next}`;
      i++;
    }
  }
  return out;
}
