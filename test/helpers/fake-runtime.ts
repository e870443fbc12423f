/**
 * A faithful in-memory FleetRuntime: engine tests without processes. Colours, switches,
 * retained gate state, Node-RED's flows and the registry live in maps; every port behaves
 * like its real adapter where the engine could tell the difference (a dead colour refuses
 * connections, a dead switch refuses routes, a stale rev is refused with 409, a restarted
 * colour runs the flows it last had). Colours answer only at the URL their driver reported
 * (`http://<color>.<instance>.fake:<port>`), the stable address at `http://127.0.0.1:<port>`,
 * forwarded to whatever port the switch routes to — so an engine that guesses an address,
 * or routes to a stale port, fails here as it would in production.
 *
 * Fault hooks make the world misbehave; seed helpers (plant, plantSwitch, setApplied) build
 * any observed state without running the engine.
 */
import { AdminApiError, FlowsConflictError } from '../../src/adapters/nodered/admin.js';
import { RuntimeError } from '../../src/adapters/runtime/types.js';
import { contentHash, deployableFlows, flowsRev } from '../../src/core/flows.js';
import type { DesiredInstance, FlowNode, RuntimeKind } from '../../src/core/model.js';
import type { Color } from '../../src/core/rollout.js';
import { TowerError, type AdminClient, type Broker, type ColorExit, type ColorIdentity, type ColorStatus, type DeployGate, type ExitRecord, type FleetRuntime, type Registry, type RegistryStore, type RunningColor, type RuntimeDriver, type SmokeRunner, type SwitchStatus, type TrafficSwitch, type Upstream } from '../../src/engine/ports.js';

export interface FakeColor extends ColorIdentity {
  id: string;
  port: number;
  url: string;
  status: ColorStatus;
  /** What the driver recorded at create: the rev and hash it was started with. */
  rev: string;
  flowsHash: string;
  /** What its Node-RED runs now (deployable: credentials out), as GET /flows would answer. */
  flows: FlowNode[];
  startedAt?: string;
  exit?: ExitRecord;
}

export interface FakeSwitch {
  listenPort: number;
  active?: Upstream;
  running: boolean;
}

const clone = <T>(v: T): T => structuredClone(v);
const key = (instance: string, color: Color) => `${instance}/${color}`;
const refused = (url: string) => new AdminApiError(`GET /flows: connect ECONNREFUSED ${url}`, 'GET', '/flows', undefined, 'ECONNREFUSED');
/** The flows a colour loads when it was told to answer a wrong rev: a stale flows file. */
const STALE_NODE: FlowNode = { id: 'fake-stale', type: 'comment', name: 'left over from another deploy' };

export class FakeRuntime implements FleetRuntime {
  readonly colors = new Map<string, FakeColor>();
  readonly routers = new Map<string, FakeSwitch>();
  /** Retained gate messages per topic. */
  readonly retained = new Map<string, string>();
  readonly endedSessions: string[] = [];
  /** What was done to the world, in order: "create web/green", "route web green", "setFlows web/blue". */
  readonly calls: string[] = [];
  readonly adminCredentials = { username: 'admin', password: 'fake-password' };
  broker?: Broker;
  gate?: DeployGate;
  redisUrl?: string;
  private reg: Registry = { instances: {} };
  private nextPort = 50_000;
  private nextId = 1;
  private readonly failStarts = new Map<string, number>();
  private readonly staleFlows = new Set<string>();
  private readonly smokeFailures = new Set<string>();
  private readonly unrunnable = new Map<string, string>();
  private readonly exitWatchers = new Set<{ fleet: string; onExit: (exit: ColorExit) => void }>();
  private readonly switchWatchers = new Set<(instance: string) => void>();

  constructor(readonly fleet = 'test', options: { gate?: boolean } = {}) {
    if (options.gate) this.installGate();
  }

  // ------------------------------------------------------------------ ports

  readonly registry: RegistryStore = {
    read: () => clone(this.reg),
    write: (r) => void (this.reg = clone(r)),
    update: (change) => {
      const r = clone(this.reg);
      change(r);
      this.reg = clone(r);
      return r;
    },
  };

  readonly driver: RuntimeDriver = {
    kind: 'process',
    cannotRun: async (instance, wants) => this.unrunnable.get(instance) ?? this.unrunnable.get(wants.nodeRedVersion),
    list: async (fleet) => [...this.colors.values()].filter((c) => c.fleet === fleet).map((c) => this.view(c)),
    create: async (spec) => {
      const k = key(spec.instance, spec.color);
      if (this.colors.get(k)?.status === 'running') throw new RuntimeError(`${k} is running; stop or remove it before creating it again`, 'ColorRunning');
      const flows = deployableFlows(clone(spec.flows));
      if (this.matches(this.staleFlows, spec.instance, spec.color)) flows.push(STALE_NODE);
      const c: FakeColor = { fleet: spec.fleet, instance: spec.instance, color: spec.color, id: `fake-${this.nextId++}`, port: spec.port, url: `http://${spec.color}.${spec.instance}.fake:${spec.port}`, status: 'created', rev: spec.rev, flowsHash: spec.flowsHash, flows };
      this.colors.set(k, c);
      this.calls.push(`create ${k}`);
      return this.view(c);
    },
    start: async (ref) => {
      const k = key(ref.instance, ref.color);
      const c = this.colors.get(k);
      if (!c || c.fleet !== ref.fleet) throw new RuntimeError(`${k} does not exist; create it first`, 'NotCreated');
      if (c.status === 'running') return this.view(c);
      const left = this.failStarts.get(k) ?? this.failStarts.get(ref.instance) ?? 0;
      if (left > 0) {
        this.failStarts.set(this.failStarts.has(k) ? k : ref.instance, left - 1);
        this.calls.push(`start-failed ${k}`);
        throw new RuntimeError(`cannot start ${k}: port ${c.port} on 127.0.0.1 is already in use`, 'PortInUse');
      }
      Object.assign(c, { status: 'running', startedAt: new Date().toISOString() });
      delete c.exit;
      this.calls.push(`start ${k}`);
      return this.view(c);
    },
    stop: async (ref) => {
      const c = this.colors.get(key(ref.instance, ref.color));
      if (c?.status === 'running') c.status = 'exited';
      if (c) this.calls.push(`stop ${key(ref.instance, ref.color)}`);
    },
    remove: async (ref) => {
      if (this.colors.delete(key(ref.instance, ref.color))) this.calls.push(`remove ${key(ref.instance, ref.color)}`);
    },
    inspect: async (ref) => {
      const c = this.colors.get(key(ref.instance, ref.color));
      return c && c.fleet === ref.fleet ? this.view(c) : undefined;
    },
    // No Node-RED runs here, so nothing is logged.
    logs: () => (async function* (): AsyncGenerator<string> {
      yield* [];
    })(),
    watch: (fleet, onExit) => {
      const w = { fleet, onExit };
      this.exitWatchers.add(w);
      return () => void this.exitWatchers.delete(w);
    },
  };

  switchFor(): TrafficSwitch {
    return this.trafficSwitch;
  }

  switches(): TrafficSwitch[] {
    return [this.trafficSwitch];
  }

  readonly trafficSwitch: TrafficSwitch = {
    kind: 'builtin',
    url: (port) => `http://127.0.0.1:${port}`,
    ensure: async (instance, listenPort) => {
      const taken = [...this.routers].find(([name, s]) => name !== instance && s.listenPort === listenPort);
      if (taken) throw new Error(`switch for instance ${instance}: port ${listenPort} is already in use by ${taken[0]}`);
      const s = this.routers.get(instance) ?? { listenPort, running: true };
      Object.assign(s, { listenPort, running: true }); // a dead router resumes its route
      this.routers.set(instance, s);
      this.calls.push(`ensure ${instance}`);
      return this.switchStatus(instance, s);
    },
    route: async (instance, upstream) => {
      const s = this.liveSwitch(instance);
      s.active = { ...upstream };
      this.calls.push(`route ${instance} ${upstream.color}`);
      return this.switchStatus(instance, s);
    },
    drain: async (instance) => {
      this.liveSwitch(instance);
      return { drained: true, inflight: 0 };
    },
    status: async (instance) => {
      const s = this.routers.get(instance);
      return s ? this.switchStatus(instance, s) : undefined;
    },
    list: async () => [...this.routers.keys()].sort().map((name) => this.switchStatus(name, this.routers.get(name)!)),
    remove: async (instance) => {
      if (this.routers.delete(instance)) this.calls.push(`remove-switch ${instance}`);
    },
    watch: (onExit) => {
      this.switchWatchers.add(onExit);
      return () => void this.switchWatchers.delete(onExit);
    },
  };

  drivers(): RuntimeDriver[] {
    return [this.driver];
  }

  driverFor(kind: RuntimeKind): RuntimeDriver {
    if (kind !== 'process') throw new TowerError(`the fake runtime has no ${kind} driver`, 'NoDriver', 'stalled');
    return this.driver;
  }

  async ensureBroker(): Promise<Broker> {
    if (!this.gate) this.installGate();
    return this.broker!;
  }

  /** Node-RED's Admin API at url: resolved on every call, as an HTTP request would be. */
  admin(url: string): AdminClient {
    const get = () => {
      const c = this.resolve(url);
      return { rev: flowsRev(c.flows), flows: clone(c.flows) };
    };
    return {
      getFlows: async () => get(),
      setFlows: async (flows, { rev, type }) => {
        const c = this.resolve(url);
        const live = flowsRev(c.flows);
        if (rev !== undefined && rev !== live) throw new FlowsConflictError('/flows', rev, live);
        if (type !== 'reload') c.flows = deployableFlows(clone([...flows]));
        this.calls.push(`setFlows ${key(c.instance, c.color)}`);
        return flowsRev(c.flows);
      },
      waitUntilReady: async () => {
        try {
          return get();
        } catch {
          throw new AdminApiError(`Node-RED at ${url} not ready: ECONNREFUSED`, 'GET', '/flows', undefined, 'not_ready');
        }
      },
    };
  }

  readonly smoke: SmokeRunner = async ({ baseUrl, checks }) => {
    let target: FakeColor | undefined;
    try {
      target = this.resolve(baseUrl);
    } catch {
      return checks.map((c) => ({ name: c.name ?? 'check', ok: false, message: `connect ECONNREFUSED ${baseUrl}` }));
    }
    const fails = this.matches(this.smokeFailures, target.instance, target.color);
    return checks.map((c) => ({ name: c.name ?? 'check', ok: !fails, message: fails ? 'expected status 200, got 500' : 'ok' }));
  };

  async freePort(): Promise<number> {
    return this.nextPort++;
  }

  /** Shared context as the real runtime gives it without REDIS_URL: an (unreachable) Redis URL. */
  async ensureSharedContext(): Promise<string> {
    return (this.redisUrl ??= 'redis://redis.fake:6379');
  }

  async stopEmbedded(): Promise<void> {}

  async close(): Promise<void> {
    await this.gate?.end();
  }

  // ------------------------------------------------------------------ faults

  /** The next `times` starts of the colour (or of any colour of the instance) fail with PortInUse. */
  failStart(instance: string, color?: Color, times = Infinity): void {
    this.failStarts.set(color ? key(instance, color) : instance, times);
  }

  /** Colours created from now on load other flows than they were given: their Node-RED answers a wrong rev. */
  answerWrongRev(instance: string, color?: Color): void {
    this.staleFlows.add(color ? key(instance, color) : instance);
  }

  /** HTTP smoke checks against the colour (or any colour of the instance) fail. */
  failSmoke(instance: string, color?: Color): void {
    this.smokeFailures.add(color ? key(instance, color) : instance);
  }

  refuseToRun(instanceOrVersion: string, why: string): void {
    this.unrunnable.set(instanceOrVersion, why);
  }

  /** The colour dies by itself (crash, OOM): the driver reports it exited. */
  kill(instance: string, color: Color, reason = 'killed by the test'): void {
    const c = this.must(instance, color);
    c.status = 'exited';
    c.exit = { at: new Date().toISOString(), code: null, signal: 'SIGKILL', reason };
    for (const w of this.exitWatchers) if (w.fleet === c.fleet) w.onExit({ fleet: c.fleet, instance, color, ...c.exit });
  }

  /** The switch's router dies; its record (port, route) stays, as the builtin switch's file does. */
  killSwitch(instance: string): void {
    this.routers.get(instance)!.running = false;
    for (const onExit of this.switchWatchers) onExit(instance);
  }

  deleteSwitch(instance: string): void {
    this.routers.delete(instance);
    for (const onExit of this.switchWatchers) onExit(instance);
  }

  /** Someone deploys from the editor: the colour's live flows change (Tower's records do not). */
  edit(instance: string, color: Color, change: (flows: FlowNode[]) => FlowNode[]): void {
    const c = this.must(instance, color);
    c.flows = deployableFlows(change(clone(c.flows)));
  }

  // ------------------------------------------------------------------ seeding

  /** A colour that runs `runs` (its flows and config), recorded in the registry unless record is false. */
  plant(instance: string, color: Color, runs: DesiredInstance, o: { status?: ColorStatus; parkedUntil?: number; record?: boolean } = {}): FakeColor {
    const port = this.nextPort++;
    const c: FakeColor = { fleet: this.fleet, instance, color, id: `fake-${this.nextId++}`, port, url: `http://${color}.${instance}.fake:${port}`, status: o.status ?? 'running', rev: runs.rev, flowsHash: contentHash(runs.flowList), flows: deployableFlows(clone(runs.flowList)), startedAt: new Date(0).toISOString() };
    if (c.status === 'exited') c.exit = { at: new Date(0).toISOString(), code: 1, signal: null, reason: 'exited with code 1' };
    this.colors.set(key(instance, color), c);
    if (o.record !== false) {
      this.registry.update((r) => {
        const rec = (r.instances[instance] ??= { port: runs.port, colors: {} });
        rec.colors[color] = { port, rev: runs.rev, flowsHash: c.flowsHash, config: clone(runs.config), startedAt: c.startedAt!, ...(o.parkedUntil !== undefined ? { keepWarmUntil: new Date(o.parkedUntil).toISOString() } : {}) };
      });
    }
    return c;
  }

  /** A switch on listenPort routing to the colour's port (or to a port nothing listens on, if the colour does not exist). */
  plantSwitch(instance: string, listenPort: number, routed?: Color, running = true): void {
    const target = routed ? this.colors.get(key(instance, routed)) : undefined;
    this.routers.set(instance, { listenPort, running, ...(routed ? { active: { color: routed, port: target?.port ?? 1 } } : {}) });
  }

  /** Tower's record that it last applied and verified this colour. */
  setApplied(instance: string, color: Color, at = new Date(0)): void {
    this.registry.update((r) => {
      const c = r.instances[instance]?.colors[color];
      if (c) r.instances[instance]!.applied = { color, rev: c.rev, flowsHash: c.flowsHash, config: c.config, at: at.toISOString() };
    });
  }

  // ------------------------------------------------------------------ reading the world

  /** What the stable address serves, through the switch (undefined when it does not answer). */
  async serving(instance: string): Promise<{ color: Color; rev: string; flows: FlowNode[] } | undefined> {
    const s = this.routers.get(instance);
    if (!s) return undefined;
    try {
      const c = this.resolve(this.trafficSwitch.url(s.listenPort));
      return { color: c.color, rev: flowsRev(c.flows), flows: clone(c.flows) };
    } catch {
      return undefined;
    }
  }

  /** Colours nobody routes to nor keeps warm (keepWarmUntil after now), as "instance/color". */
  orphans(now: number): string[] {
    const parked = (c: FakeColor) => {
      const until = this.reg.instances[c.instance]?.colors[c.color]?.keepWarmUntil;
      return until !== undefined && Date.parse(until) > now;
    };
    return [...this.colors.values()].filter((c) => this.routers.get(c.instance)?.active?.color !== c.color && !parked(c)).map((c) => key(c.instance, c.color)).sort();
  }

  color(instance: string, color: Color): FakeColor | undefined {
    return this.colors.get(key(instance, color));
  }

  // ------------------------------------------------------------------ internals

  private installGate(): void {
    this.broker = { url: 'mqtt://127.0.0.1:1883', host: '127.0.0.1', port: 1883, embedded: true };
    this.gate = {
      open: async (topic) => void this.retained.set(topic, 'open'),
      close: async (topic) => void this.retained.set(topic, 'closed'),
      clear: async (topic) => void this.retained.delete(topic),
      endSession: async (clientId) => void this.endedSessions.push(clientId),
      state: async (topic) => this.retained.get(topic) ?? null,
      end: async () => {},
    };
  }

  /** The running colour an HTTP request to url reaches: a colour's own address, or the stable one through its switch. */
  private resolve(url: string): FakeColor {
    const u = new URL(url);
    const port = Number(u.port);
    if (u.hostname === '127.0.0.1') {
      const s = [...this.routers.values()].find((x) => x.listenPort === port);
      if (!s?.running) throw refused(url);
      const c = s.active ? [...this.colors.values()].find((x) => x.port === s.active!.port && x.status === 'running') : undefined;
      if (!c) throw new AdminApiError(`GET /flows: HTTP 502 bad_gateway (${url})`, 'GET', '/flows', 502, 'bad_gateway');
      return c;
    }
    const [color, instance] = u.hostname.split('.');
    const c = this.colors.get(key(instance ?? '', color as Color));
    if (!c || c.port !== port || c.status !== 'running') throw refused(url);
    return c;
  }

  private liveSwitch(instance: string): FakeSwitch {
    const s = this.routers.get(instance);
    if (!s?.running) throw new Error(`switch for instance ${instance} is not running; call ensure() first`);
    return s;
  }

  private switchStatus(instance: string, s: FakeSwitch): SwitchStatus {
    return { instance, listenPort: s.listenPort, ...(s.active ? { active: { ...s.active } } : {}), inflight: {}, running: s.running };
  }

  private view(c: FakeColor): RunningColor {
    return { fleet: c.fleet, instance: c.instance, color: c.color, runtime: 'process', id: c.id, port: c.port, rev: c.rev, flowsHash: c.flowsHash, status: c.status, url: c.url, ...(c.startedAt ? { startedAt: c.startedAt } : {}), ...(c.exit ? { exit: { ...c.exit } } : {}) };
  }

  private matches(set: Set<string>, instance: string, color: Color): boolean {
    return set.has(instance) || set.has(key(instance, color));
  }

  private must(instance: string, color: Color): FakeColor {
    const c = this.colors.get(key(instance, color));
    if (!c) throw new Error(`the fake has no ${key(instance, color)}`);
    return c;
  }
}
