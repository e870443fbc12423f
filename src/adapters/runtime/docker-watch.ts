/**
 * Exit supervision for the docker driver: the Docker engine's event stream (die, oom, destroy,
 * and start to know what runs), filtered by the fleet's label, tells within milliseconds that a
 * colour stopped. The driver never restarts anything — containers have no restart policy —
 * Tower's engine decides that.
 *
 * - die → "exited with code N" or "killed by SIGNAL" (exit code 128 + N); after an oom event
 *   for the same container, "out of memory".
 * - destroy not asked for → "container removed" (a `docker rm -f` gives die, then destroy:
 *   both are reported, the colour is gone and needs creating, not only starting).
 * - The driver's own stop() and remove() (and create() replacing a container) are wrapped in
 *   asked(): the die and destroy they cause are ignored until the container starts again.
 * - The stream ends (Docker restarted, connection cut): reconnect with backoff, then list the
 *   fleet once and report what stopped while nobody listened.
 */
import type { IncomingMessage } from 'node:http';
import type Dockerode from 'dockerode';
import { exitInfo, signalOfExitCode } from './exit.js';
import type { ColorExit, ColorIdentity, ExitRecord } from './types.js';

export interface DockerSupervisor {
  /** Runs a stop or removal of container `name` that the driver was asked for: nobody hears of it. */
  asked<T>(name: string, op: () => Promise<T>): Promise<T>;
  watch(fleet: string, onExit: (exit: ColorExit) => void): () => void;
}

export interface DockerSupervisorOptions {
  docker: Dockerode;
  /** The label filter that selects a fleet's containers: `<fleet label>=<fleet>`. */
  fleetLabel(fleet: string): string;
  /** The colour (and replica, when several) a container's labels name, if it is a well-formed Tower colour. */
  identify(labels: Record<string, string>): (ColorIdentity & { replica?: number }) | undefined;
  log(line: string): void;
  /** Reconnect backoff: first wait and cap. Default 250 ms doubling to 5 s. */
  retry?: { minMs: number; maxMs: number };
}

/** How a container's last run ended, from inspect's State; undefined while it runs or never ran. */
export function exitOfState(state: { Status: string; ExitCode: number; OOMKilled: boolean; FinishedAt: string }): ExitRecord | undefined {
  if ((state.Status !== 'exited' && state.Status !== 'dead') || !state.FinishedAt || state.FinishedAt.startsWith('0001-')) return undefined;
  const finished = new Date(state.FinishedAt);
  const at = Number.isNaN(finished.getTime()) ? state.FinishedAt : finished.toISOString();
  return exitInfo(at, state.ExitCode, signalOfExitCode(state.ExitCode), state.OOMKilled);
}

interface DockerEvent {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

export function dockerSupervisor(options: DockerSupervisorOptions): DockerSupervisor {
  const { docker, log } = options;
  const retry = options.retry ?? { minMs: 250, maxMs: 5_000 };
  /** Containers with a stop or removal in flight that the driver was asked for. */
  const inFlight = new Map<string, number>();
  const watches = new Set<FleetWatch>();

  class FleetWatch {
    /** Asked-for stops and removals done: their die/destroy are ignored until the next start. */
    readonly quiet = new Set<string>(inFlight.keys());
    /** What runs, as far as the stream told: compared with a fresh list after a reconnect. */
    readonly running = new Map<string, ColorIdentity>();
    /** Reported since the container's last start: a die is reported once, a destroy once. */
    readonly reported = new Map<string, 'died' | 'removed'>();
    readonly oom = new Set<string>();
    /** Containers an event spoke of while a resync listed the fleet: the event is newer. */
    touched: Set<string> | undefined;
    closed = false;
    connections = 0;
    waitMs = retry.minMs;
    abort: AbortController | undefined;
    stream: IncomingMessage | undefined;
    timer: NodeJS.Timeout | undefined;

    constructor(
      readonly fleet: string,
      readonly onExit: (exit: ColorExit) => void,
    ) {}

    async connect(): Promise<void> {
      this.timer = undefined;
      if (this.closed) return;
      this.abort = new AbortController();
      let stream: IncomingMessage;
      try {
        stream = (await docker.getEvents({
          filters: { type: ['container'], event: ['start', 'die', 'oom', 'destroy'], label: [options.fleetLabel(this.fleet)] },
          abortSignal: this.abort.signal,
        })) as IncomingMessage;
      } catch (err) {
        if (this.closed) return;
        if (this.waitMs === retry.minMs) log(`docker: cannot watch fleet ${this.fleet} (${message(err)}); retrying`);
        return this.retryLater();
      }
      if (this.closed) {
        stream.destroy();
        return;
      }
      this.stream = stream;
      // Watching must not keep the daemon alive.
      stream.socket?.unref();
      let buffer = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        buffer += chunk;
        for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
          const line = buffer.slice(0, nl).trim();
          buffer = buffer.slice(nl + 1);
          if (line) this.parse(line);
        }
      });
      const connectedAt = Date.now();
      let ended = false;
      const end = (why: string) => {
        if (ended || this.closed) return;
        ended = true;
        this.stream = undefined;
        stream.destroy();
        // A stream that lived a while starts the backoff afresh; one the engine keeps dropping does not.
        if (Date.now() - connectedAt > retry.maxMs) this.waitMs = retry.minMs;
        log(`docker: event stream of fleet ${this.fleet} ended (${why}); reconnecting`);
        this.retryLater();
      };
      // on, not once: a second 'error' without a listener would crash the daemon.
      stream.on('end', () => end('closed by the engine'));
      stream.on('error', (err) => end(message(err)));
      stream.on('close', () => end('connection closed'));
      const again = this.connections++ > 0;
      await this.resync(again).catch((err: unknown) => log(`docker: could not list fleet ${this.fleet} after connecting: ${message(err)}`));
      if (!this.closed) log(`docker: watching fleet ${this.fleet}${again ? ' again' : ''}`);
    }

    retryLater(): void {
      if (this.closed || this.timer) return;
      this.timer = setTimeout(() => void this.connect(), this.waitMs);
      this.timer.unref();
      this.waitMs = Math.min(this.waitMs * 2, retry.maxMs);
    }

    /** What runs now; after a reconnect, the colours that stopped while the stream was down are reported. */
    async resync(report: boolean): Promise<void> {
      const touched = (this.touched = new Set<string>());
      try {
        const found = await docker.listContainers({ all: true, filters: { label: [options.fleetLabel(this.fleet)] } });
        const present = new Map(found.map((c) => [containerName(c.Names), c] as const));
        for (const [name, ref] of [...this.running]) {
          const c = present.get(name);
          if (touched.has(name) || c?.State === 'running') continue;
          this.running.delete(name);
          if (!report || this.ignored(name) || this.reported.has(name)) continue;
          const state = c ? (await docker.getContainer(c.Id).inspect().catch(() => undefined))?.State : undefined;
          const exit = state ? exitOfState(state) : undefined;
          // Noticed now; it ended at exit.at (FinishedAt), which inspect() and list() report.
          if (exit) this.report(name, ref, { ...exit, at: now() }, 'died');
          else this.report(name, ref, removed(), 'removed');
        }
        for (const [name, c] of present) {
          const ref = options.identify(c.Labels ?? {});
          if (ref && c.State === 'running' && !touched.has(name)) this.running.set(name, ref);
        }
      } finally {
        this.touched = undefined;
      }
    }

    parse(line: string): void {
      let event: DockerEvent;
      try {
        event = JSON.parse(line) as DockerEvent;
      } catch {
        log(`docker: ignoring an event of fleet ${this.fleet} that is not JSON: ${line.slice(0, 120)}`);
        return;
      }
      const attributes = event.Actor?.Attributes ?? {};
      const name = attributes.name;
      const ref = options.identify(attributes);
      if (event.Type !== 'container' || !name || !ref) return;
      this.touched?.add(name);
      switch (event.Action) {
        case 'start':
          this.running.set(name, ref);
          this.reported.delete(name);
          this.oom.delete(name);
          if (!inFlight.has(name)) this.quiet.delete(name);
          return;
        case 'oom':
          this.oom.add(name);
          return;
        case 'die': {
          this.running.delete(name);
          const oom = this.oom.delete(name);
          if (this.ignored(name) || this.reported.has(name)) return;
          const code = attributes.exitCode !== undefined && /^\d+$/.test(attributes.exitCode) ? Number(attributes.exitCode) : null;
          this.report(name, ref, exitInfo(now(), code, signalOfExitCode(code), oom), 'died');
          return;
        }
        case 'destroy':
          this.running.delete(name);
          if (this.ignored(name) || this.reported.get(name) === 'removed') return;
          this.report(name, ref, removed(), 'removed');
          return;
      }
    }

    ignored(name: string): boolean {
      return inFlight.has(name) || this.quiet.has(name);
    }

    report(name: string, ref: ColorIdentity & { replica?: number }, exit: ExitRecord, as: 'died' | 'removed'): void {
      this.reported.set(name, as);
      const replica = (ref.replica ?? 1) > 1 ? { replica: ref.replica! } : {};
      log(`docker: ${ref.fleet}/${ref.instance}/${ref.color}${replica.replica ? ` replica ${replica.replica}` : ''} stopped unasked: ${exit.reason}`);
      try {
        this.onExit({ fleet: ref.fleet, instance: ref.instance, color: ref.color, ...replica, ...exit });
      } catch (err) {
        log(`docker: a watcher of fleet ${this.fleet} threw on ${name}: ${message(err)}`);
      }
    }

    close(): void {
      this.closed = true;
      if (this.timer) clearTimeout(this.timer);
      this.abort?.abort();
      this.stream?.destroy();
    }
  }

  return {
    async asked(name, op) {
      inFlight.set(name, (inFlight.get(name) ?? 0) + 1);
      for (const w of watches) w.quiet.add(name);
      try {
        return await op();
      } finally {
        const left = (inFlight.get(name) ?? 1) - 1;
        if (left > 0) inFlight.set(name, left);
        else inFlight.delete(name);
      }
    },

    watch(fleet, onExit) {
      const w = new FleetWatch(fleet, onExit);
      watches.add(w);
      void w.connect();
      return () => {
        watches.delete(w);
        w.close();
      };
    },
  };
}

const now = () => new Date().toISOString();
const removed = (): ExitRecord => ({ at: now(), code: null, signal: null, reason: 'container removed' });

/** listContainers names carry a leading slash; events do not. */
function containerName(names: string[] | undefined): string {
  return (names?.[0] ?? '').replace(/^\//, '');
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
