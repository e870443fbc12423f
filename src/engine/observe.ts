/**
 * What runs: the instances of the fleet as the drivers, switches and Node-RED itself report
 * them. The registry only fills in what cannot be read from the live system (the config an
 * instance was started with, as references).
 */
import { assessInstance, type Health } from '../core/health.js';
import type { FlowNode, ObservedFleet, RuntimeConfig } from '../core/model.js';
import type { Color } from '../core/rollout.js';
import type { NodeRedAdmin } from '../adapters/nodered/admin.js';
import type { RunningColor, RuntimeDriver } from '../adapters/runtime/types.js';
import type { SwitchStatus, TrafficSwitch } from '../adapters/switch/types.js';
import type { InstanceRecord, Registry } from './state-dir.js';

export interface LiveInstance {
  name: string;
  record?: InstanceRecord;
  switch?: SwitchStatus;
  colors: Partial<Record<Color, RunningColor>>;
  /** The colour the switch routes to. */
  active?: Color;
  /** The other colour, when it runs (a warm standby, or a leftover). */
  standby?: Color;
  /** The active colour's flows as Node-RED reports them; null when unreadable. */
  flows: FlowNode[] | null;
  rev?: string;
  config?: RuntimeConfig;
  health: Health;
}

export interface ObserveDeps {
  fleet: string;
  drivers: RuntimeDriver[];
  trafficSwitch: TrafficSwitch;
  admin(url: string): NodeRedAdmin;
  registry: Registry;
}

export async function observeFleet(deps: ObserveDeps): Promise<Map<string, LiveInstance>> {
  const running = (await Promise.all(deps.drivers.map((d) => d.list(deps.fleet)))).flat();
  const switches = await deps.trafficSwitch.list();
  const names = new Set<string>([...Object.keys(deps.registry.instances), ...running.map((r) => r.instance), ...switches.map((s) => s.instance)]);
  const found = await Promise.all(
    [...names].sort().map(async (name): Promise<LiveInstance> => {
      const colors: Partial<Record<Color, RunningColor>> = {};
      for (const r of running.filter((x) => x.instance === name)) colors[r.color] = r;
      const sw = switches.find((s) => s.instance === name);
      const routed = sw?.active?.color;
      const active = routed && colors[routed]?.status === 'running' ? routed : undefined;
      const other: Color | undefined = routed ? (routed === 'blue' ? 'green' : 'blue') : undefined;
      const standby = other && colors[other]?.status === 'running' ? other : undefined;
      let flows: FlowNode[] | null = null;
      let rev: string | undefined;
      let adminUp = false;
      if (active) {
        try {
          const got = await deps.admin(colors[active]!.url).getFlows();
          flows = got.flows as FlowNode[];
          rev = got.rev;
          adminUp = true;
        } catch {
          adminUp = false;
        }
      }
      const record = deps.registry.instances[name];
      const config = active ? (record?.colors[active]?.config ?? record?.applied?.config) : undefined;
      return {
        name,
        record,
        switch: sw,
        colors,
        ...(routed ? { active: routed } : {}),
        ...(standby ? { standby } : {}),
        flows,
        ...(rev ? { rev } : {}),
        ...(config ? { config } : {}),
        health: assessInstance({ switchUp: sw?.running ?? false, routedTo: routed, activeRunning: active !== undefined, adminUp }),
      };
    }),
  );
  return new Map(found.map((l) => [l.name, l]));
}

/** The observed fleet as the diff takes it. Instances that do not run at all are absent. */
export function toObservedFleet(live: Map<string, LiveInstance>): ObservedFleet {
  const instances = [...live.values()]
    .filter((l) => l.switch || Object.keys(l.colors).length > 0)
    .map((l) => ({ name: l.name, flows: l.flows, ...(l.rev ? { rev: l.rev } : {}), ...(l.config ? { config: l.config } : {}) }));
  return { instances };
}
