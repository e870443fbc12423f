/**
 * Taking the fleet down for good (`tower destroy`): every colour, switch, gate state and
 * broker session goes, and Tower's record of what it applied with them — so that the next
 * start sees nothing running and creates the fleet again. The embedded broker and Redis stop
 * (their data stays in the state directory).
 */
import { InstanceActions } from './actions.js';
import { observeFleet } from './observe.js';
import type { FleetRuntime } from './ports.js';

export async function destroyAll(rt: FleetRuntime, fleet: string): Promise<string[]> {
  const removed: string[] = [];
  const live = await observeFleet(rt, fleet);
  for (const l of live) {
    if (l.switch) await rt.switchFor(l.switch.kind).remove(l.name);
    const actions = new InstanceActions(l.name, undefined, l, { fleet, runtime: rt, secretsEnv: {}, now: () => new Date(), onEvent: () => {} });
    for (const c of Object.values(l.colors)) await actions.discard(c.color, 0);
    removed.push(l.name);
  }
  rt.registry.write({ fleet, instances: {} });
  await rt.stopEmbedded();
  return removed;
}
