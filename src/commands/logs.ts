/**
 * tower logs <instance>: the Node-RED log of the colour that serves an instance (or of the
 * colour asked for), from whichever runtime runs it — the process driver's node-red.log or
 * the container's log — with secrets redacted by the driver (adapters/runtime/logs.ts says
 * what is redacted). Needs only the state directory: no fleet repository, no daemon.
 *
 * Which colour: the one the instance's switch routes to; else the one Tower last applied;
 * else the only one there is. With two and neither, the user is asked for --color.
 */
import { resolve } from 'node:path';
import { isSecretRef } from '../core/model.js';
import type { Color, RunningColor, RuntimeDriver } from '../engine/ports.js';
import { openRuntime, type LocalRuntime } from '../runtime.js';
import type { Io } from './io.js';

export interface LogsOptions {
  stateDir: string;
  color?: Color;
  follow?: boolean;
  lines: number;
  /** Which replica of a colour that has several (default 1). */
  replica?: number;
}

/** Exit 0 when the log was shown (to its end, or until Ctrl-C), 1 when the instance or colour does not exist or the log cannot be read. */
export async function logsCommand(instance: string, options: LogsOptions, io: Io, signal?: AbortSignal): Promise<number> {
  const rt = await openRuntime({ stateDir: resolve(options.stateDir), env: io.env });
  const fail = (message: string) => {
    io.stderr(`tower logs: ${message}\n`);
    return 1;
  };
  let stopSignals = () => {};
  try {
    const registry = rt.registry.read();
    const fleet = registry.fleet;
    if (!fleet) return fail(`nothing is managed from ${options.stateDir} (run tower apply first)`);
    const colors = (await Promise.all(rt.drivers().map(async (driver) => (await driver.list(fleet)).filter((c) => c.instance === instance).map((c) => ({ c, driver }))))).flat();
    if (colors.length === 0) {
      const names = [...new Set([...Object.keys(registry.instances), ...(await Promise.all(rt.drivers().map((d) => d.list(fleet)))).flat().map((c) => c.instance)])].sort();
      return fail(`instance ${instance} does not exist in fleet ${fleet} (managed from ${options.stateDir})${names.length ? `; its instances: ${names.join(', ')}` : ''}`);
    }
    const color = options.color ?? (await servingColor(rt, instance, colors.map((x) => x.c)));
    if (!color) return fail(`instance ${instance} has a blue and a green colour and neither is routed: say which with --color blue or --color green`);
    const found = colors.find((x) => x.c.color === color);
    if (!found) return fail(`instance ${instance} has no ${color} colour (it has ${colors.map((x) => x.c.color).join(' and ')})`);
    const replicas = found.c.replicas?.length ?? 1;
    if ((options.replica ?? 1) > replicas) return fail(`${color} of instance ${instance} has ${replicas === 1 ? 'one replica' : `replicas 1 to ${replicas}`}, not ${options.replica}`);

    let abort = signal;
    if (!abort && options.follow) {
      // Ctrl-C ends following, and the command, normally.
      const controller = new AbortController();
      const stop = () => controller.abort();
      process.once('SIGINT', stop).once('SIGTERM', stop);
      stopSignals = () => void process.off('SIGINT', stop).off('SIGTERM', stop);
      abort = controller.signal;
    }
    for await (const line of logsOf(rt, found.driver, found.c, options, io.env, abort)) io.stdout(`${line}\n`);
    return 0;
  } catch (err) {
    return fail((err as Error).message);
  } finally {
    stopSignals();
    await rt.close();
  }
}

/**
 * The last lines of the log of the colour that serves an instance, redacted as above: for the
 * status page's instance page. Undefined when no colour of it runs anywhere.
 */
export async function lastLogLines(rt: LocalRuntime, fleet: string, instance: string, lines: number, env: NodeJS.ProcessEnv): Promise<{ color: Color; lines: string[] } | undefined> {
  const colors = (await Promise.all(rt.drivers().map(async (driver) => (await driver.list(fleet)).filter((c) => c.instance === instance).map((c) => ({ c, driver }))))).flat();
  const color = await servingColor(rt, instance, colors.map((x) => x.c));
  const found = colors.find((x) => x.c.color === color);
  if (!found) return undefined;
  const out: string[] = [];
  for await (const line of logsOf(rt, found.driver, found.c, { stateDir: '', lines }, env, undefined)) out.push(line);
  return { color: found.c.color, lines: out.slice(-lines) };
}

function logsOf(rt: LocalRuntime, driver: RuntimeDriver, c: RunningColor, options: LogsOptions, env: NodeJS.ProcessEnv, signal: AbortSignal | undefined): AsyncIterable<string> {
  const instance = rt.registry.read().instances[c.instance];
  // The env references Tower started the colour with (fromEnv/fromFile): their values are secrets, whatever their names.
  const config = instance?.colors[c.color]?.config ?? (instance?.applied?.color === c.color ? instance.applied.config : undefined);
  const secretEnv = Object.entries(config?.env ?? {}).filter(([, v]) => isSecretRef(v)).map(([k]) => k);
  const secrets = [rt.adminCredentials.password, ...['REDIS_URL', 'MQTT_URL', 'DATABASE_URL'].flatMap((name) => urlPassword(env[name]))];
  return driver.logs(c, { lines: options.lines, follow: options.follow ?? false, ...(signal ? { signal } : {}), secrets, secretEnv, ...(options.replica ? { replica: options.replica } : {}) });
}

/** The colour the switch routes to; else the one last applied; else the only one. */
async function servingColor(rt: LocalRuntime, instance: string, colors: RunningColor[]): Promise<Color | undefined> {
  for (const s of rt.switches()) {
    const routed = (await s.status(instance).catch(() => undefined))?.active?.color;
    if (routed && colors.some((c) => c.color === routed)) return routed;
  }
  const applied = rt.registry.read().instances[instance]?.applied?.color;
  if (applied && colors.some((c) => c.color === applied)) return applied;
  return colors.length === 1 ? colors[0]!.color : undefined;
}

function urlPassword(value: string | undefined): string[] {
  if (!value) return [];
  try {
    const password = decodeURIComponent(new URL(value).password);
    return password ? [password] : [];
  } catch {
    return [];
  }
}
