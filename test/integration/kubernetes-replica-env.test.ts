/**
 * Replicas in pods: the pods of a Deployment share one template, so each one's deploy gate and
 * MQTT session are named after the pod itself ($(TOWER_POD_NAME) from the downward API, expanded
 * by the kubelet), and plain env values reach the pod as written ($ doubled against expansion).
 * The expansion is the stand-in kubelet's, which follows the kubelet's rules.
 */
import { describe, expect, it } from 'vitest';
import { colorObjects } from '../../src/adapters/runtime/kubernetes-objects.js';
import { consumerClientIdFor, gateTopicFor } from '../../src/core/instance-env.js';
import type { ColorSpec } from '../../src/engine/ports.js';
import { expandEnv } from '../helpers/kube-standin/kubelet.js';

const spec: ColorSpec = {
  fleet: 'f', instance: 'work', color: 'green', port: 1880, flows: [{ id: 't', type: 'tab', label: 'work' }], rev: 'a'.repeat(64), flowsHash: 'b'.repeat(64),
  env: { PRICE: 'costs $5 or $(AMOUNT) $$', TOWER_GATE_TOPIC: gateTopicFor('f', 'work', 'green'), TOWER_MQTT_CLIENT_ID: consumerClientIdFor('f', 'work', 'green') },
  nodeRedVersion: '4.1', resources: {}, settings: {}, context: 'memory', labels: {}, admin: { username: 'tower', password: 'pw-123456' },
};

type EnvVar = { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } };

/** The env a pod named `pod` gets, as the kubelet makes it (fieldRef metadata.name, then expansion in order). */
function podEnv(replicas: number, pod: string): Record<string, string> {
  const env = ((colorObjects(spec, { image: 'nodered/node-red:4.1', credentialSecret: 'c', drainMs: 1000, replicas }).deployment.spec as { template: { spec: { containers: { env: EnvVar[] }[] } } }).template.spec.containers[0]!.env);
  const out: Record<string, string> = {};
  for (const e of env) {
    if (e.valueFrom?.fieldRef) out[e.name] = e.valueFrom.fieldRef.fieldPath === 'metadata.name' ? pod : '';
    else if (!e.valueFrom) out[e.name] = expandEnv(e.value ?? '', out);
  }
  return out;
}

describe('the env of replicas in pods', () => {
  it('names each pod\'s gate and session after the pod; one replica keeps the colour\'s', () => {
    const a = podEnv(2, 'f-work-green-6b7f-abcde');
    const b = podEnv(2, 'f-work-green-6b7f-fghij');
    expect(a).toMatchObject({ TOWER_REPLICA: 'f-work-green-6b7f-abcde', TOWER_GATE_TOPIC: 'tower/gate/f/work/green/f-work-green-6b7f-abcde', TOWER_MQTT_CLIENT_ID: 'tower/f/work/green/f-work-green-6b7f-abcde' });
    expect(b.TOWER_MQTT_CLIENT_ID).not.toBe(a.TOWER_MQTT_CLIENT_ID);
    // What the engine asks for is what the pod got (ReplicaView.key = the pod's name).
    expect(a.TOWER_GATE_TOPIC).toBe(gateTopicFor('f', 'work', 'green', 'f-work-green-6b7f-abcde'));
    const one = podEnv(1, 'f-work-green-6b7f-abcde');
    expect(one).toMatchObject({ TOWER_GATE_TOPIC: 'tower/gate/f/work/green', TOWER_MQTT_CLIENT_ID: 'tower/f/work/green' });
    expect(one.TOWER_REPLICA).toBeUndefined();
  });

  it('passes plain values as written, $( and $$ included', () => {
    expect(podEnv(2, 'p').PRICE).toBe('costs $5 or $(AMOUNT) $$');
    expect(podEnv(1, 'p').PRICE).toBe('costs $5 or $(AMOUNT) $$');
  });

  it('expands as the kubelet does: defined names, $$, unknown names and a lone $ kept', () => {
    expect(expandEnv('$(A)-$(B)-$$(A)-$x-$-$(', { A: 'a' })).toBe('a-$(B)-$(A)-$x-$-$(');
  });
});
