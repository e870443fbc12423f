import { describe, expect, it } from 'vitest';
import { FleetMetrics } from '../../src/server/metrics.js';
import { syncedStatus } from '../helpers/status-fixture.js';

describe('metrics from the derived status', () => {
  it('a dead routed colour is not up, a crash loop is flagged, the fleet is not in sync', async () => {
    const s = syncedStatus();
    s.sync = 'Progressing';
    s.instances[1] = { ...s.instances[1]!, health: 'Degraded', condition: 'Dead', restarts: 0 };
    s.instances[3] = { ...s.instances[3]!, health: 'Degraded', condition: 'CrashLoop', restarts: 3 };
    const m = new FleetMetrics();
    m.fromStatus(s);
    m.restart('query', 'blue', 'restart');
    const text = (await m.render()).body;
    expect(text).toMatch(/tower_instance_up\{instance="errors",color="blue"\} 0/);
    expect(text).toMatch(/tower_instance_up\{instance="storage",color="blue"\} 1/);
    expect(text).toMatch(/tower_instance_condition\{instance="errors",condition="Dead"\} 1/);
    expect(text).toMatch(/tower_instance_crashloop\{instance="query"\} 1/);
    expect(text).toMatch(/tower_instance_crashloop\{instance="storage"\} 0/);
    expect(text).toMatch(/tower_instance_restarts_total\{instance="query",what="blue",kind="restart"\} 1/);
    expect(text).toMatch(/tower_fleet_in_sync 0/);
  });

  it('tower_leader says whether this daemon leads, as last set', async () => {
    const m = new FleetMetrics();
    m.leader(true);
    expect((await m.render()).body).toMatch(/^tower_leader 1$/m);
    m.leader(false);
    expect((await m.render()).body).toMatch(/^tower_leader 0$/m);
  });
});
