/**
 * observe: what runs, as plain data for decide — every colour the drivers report (alive or
 * not), every switch (route, alive), the routed colour's flows through Node-RED's Admin API,
 * its deploy gate, and what Tower recorded when it started each colour (the registry keeps
 * only what cannot be read from the live system: the config, as references, and keepWarm).
 */
import { flowsUseGate, type LiveColor, type LiveInstance } from '../core/live.js';
import { checkValueShape } from '../core/nesting.js';
import { gateTopicFor } from '../core/instance-env.js';
import type { FlowNode } from '../core/model.js';
import type { Color } from '../core/rollout.js';
import type { FleetRuntime, RunningColor } from './ports.js';

export async function observeFleet(rt: FleetRuntime, fleet: string): Promise<LiveInstance[]> {
  const registry = rt.registry.read();
  const running = (await Promise.all(rt.drivers().map((d) => d.list(fleet)))).flat();
  const switches = (await Promise.all(rt.switches().map(async (s) => (await s.list()).map((status) => ({ status, of: s }))))).flat();
  const names = new Set<string>([...Object.keys(registry.instances), ...running.map((r) => r.instance), ...switches.map((s) => s.status.instance)]);
  return Promise.all(
    [...names].sort().map(async (name): Promise<LiveInstance> => {
      const record = registry.instances[name];
      const colors: Partial<Record<Color, LiveColor>> = {};
      for (const r of running.filter((x) => x.instance === name)) colors[r.color] = liveColor(r, record?.colors[r.color]);
      const found = switches.find((s) => s.status.instance === name);
      const sw = found?.status;
      const routed = sw?.active?.color;
      const serving = routed ? colors[routed] : undefined;
      let flows: FlowNode[] | null = null;
      let rev: string | undefined;
      let adminUp = false;
      if (serving?.status === 'running') {
        try {
          const got = await rt.admin(serving.url).getFlows();
          adminUp = true;
          rev = got.rev;
          // Flows deployed from the editor are not checked like Git's: too deep to compare safely is unreadable.
          if (checkValueShape(got.flows).ok) flows = got.flows;
        } catch {
          // does not answer: decide reports it
        }
      }
      // Open when every running replica's gate is (a replica's own repair reopens it by the retained command).
      const gated = serving?.replicas?.filter((r) => r.status === 'running').map((r) => r.key ?? r.index) ?? [1];
      const gate = flows && routed && rt.gate && flowsUseGate(flows) ? { open: (await Promise.all(gated.map((k) => rt.gate!.state(gateTopicFor(fleet, name, routed, k)).catch(() => null)))).every((s) => s === 'open') } : undefined;
      // Replicas named by their pods: which of them are gone, their gate state (and maybe session) left behind.
      const keys = new Set(serving?.replicas?.flatMap((r) => (r.key ? [r.key] : [])));
      // Pods terminating still run (their preStop lets work finish): not gone yet.
      const present = new Set([...keys, ...(running.find((x) => x.instance === name && x.color === routed)?.leaving ?? [])]);
      if (gate && keys.size && rt.gate?.replicaKeys) {
        const gone = (await rt.gate.replicaKeys(gateTopicFor(fleet, name, routed!)).catch(() => [])).filter((k) => !present.has(k));
        if (gone.length) Object.assign(gate, { gone });
      }
      // The routed colour's replicas: ready when their Admin API answers (the one at the colour's URL was just asked;
      // on Kubernetes that is a ready pod, not necessarily replica 1).
      if (serving?.replicas) {
        serving.replicas = await Promise.all(serving.replicas.map(async (r) => ({ ...r, ready: r.status === 'running' && (r.url === serving.url ? adminUp : await rt.admin(r.url).getFlows().then(() => true, () => false)) })));
      }
      // Whether the flows use the gate decides if a dead routed colour may be failed over: read it
      // from the warm standby when the routed colour cannot answer.
      const other = routed ? colors[routed === 'blue' ? 'green' : 'blue'] : undefined;
      const gatedFrom = flows ?? (other?.status === 'running' ? await rt.admin(other.url).getFlows().then((f) => f.flows, () => null) : null);
      return {
        name,
        ...(record?.port ? { port: record.port } : {}),
        ...(sw ? { switch: { kind: found!.of.kind, running: sw.running, port: sw.listenPort, url: found!.of.url(sw.listenPort, name), ...(routed ? { routed } : {}), ...canaryWeightOf(sw.split, routed) } } : {}),
        colors,
        flows,
        ...(rev ? { rev } : {}),
        adminUp,
        ...(gate ? { gate } : {}),
        ...(gatedFrom ? { gated: flowsUseGate(gatedFrom) } : {}),
        ...(record?.applied ? { applied: { color: record.applied.color, rev: record.applied.rev, config: record.applied.config, at: record.applied.at, ...(record.applied.revision ? { revision: record.applied.revision } : {}) } } : {}),
      };
    }),
  );
}

/** The weight of the colour that is not routed, in a split. */
function canaryWeightOf(split: { color: Color; weight: number }[] | undefined, routed: Color | undefined): { canaryWeight?: number } {
  const canary = routed ? split?.find((u) => u.color !== routed) : undefined;
  return canary ? { canaryWeight: canary.weight } : {};
}

function liveColor(r: RunningColor, record: { rev: string; config: LiveColor['config']; keepWarmUntil?: string } | undefined): LiveColor {
  return {
    color: r.color,
    runtime: r.runtime,
    status: r.status,
    port: r.port,
    url: r.url,
    // The registry knows about in-place deploys; the driver keeps the rev the colour started with.
    rev: record?.rev ?? r.rev,
    ...(record?.config ? { config: record.config } : {}),
    ...(record?.keepWarmUntil ? { parkedUntil: Date.parse(record.keepWarmUntil) } : {}),
    ...(r.startedAt ? { startedAt: r.startedAt } : {}),
    ...(r.exit ? { exit: r.exit } : {}),
    ...(r.replicas ? { replicas: r.replicas.map((x) => ({ index: x.index, url: x.url, status: x.status, ...(x.port !== undefined ? { port: x.port } : {}), ...(x.reason ? { reason: x.reason } : {}), ...(x.key ? { key: x.key } : {}) })) } : {}),
  };
}
