/**
 * replicas: N and MQTT. The replicas of a colour each run the instance's consumers, each with
 * its own persistent session (core/instance-env.ts). On a plain topic the broker gives every
 * session every message, so N replicas would process each message N times; on a shared
 * subscription, `$share/<group>/<topic>`, it gives each message to one member of the group.
 * With one group for the instance (written in the flow, so the same for both colours), each
 * message is processed by one replica of one colour, during a swap too: the new colour's
 * replicas join the group before the old colour's leave (the deploy gate).
 *
 * So an instance with replicas may not consume through the deploy gate on a plain topic.
 * Consumers that do not go through the gate (always connected: every replica and colour
 * listens, e.g. an error log) are not work consumers and are left alone.
 */
import type { Diagnostic } from './diagnostics.js';
import type { FlowNode } from './model.js';

/** The broker config node of lib:deploy-gate that work consumers connect through. */
export const GATE_CONSUMER_BROKER = 'tower-gate-consumer';

export function unsharedConsumerDiagnostics(instance: string, replicas: number, nodes: readonly FlowNode[], at: { file: string; line: number; col: number }): Diagnostic[] {
  if (replicas <= 1) return [];
  return nodes
    .filter((n) => n.type === 'mqtt in' && n.broker === GATE_CONSUMER_BROKER && typeof n.topic === 'string' && n.topic !== '' && !n.topic.startsWith('$share/'))
    .slice(0, 20)
    .map((n) => ({
      severity: 'error' as const,
      code: 'UnsharedConsumer' as const,
      file: at.file,
      line: at.line,
      col: at.col,
      message: `instance "${instance}" has replicas: ${replicas}, but its consumer "${typeof n.name === 'string' && n.name ? n.name : n.id}" subscribes to "${String(n.topic)}" through the deploy gate: each of the ${replicas} replicas would process every message`,
      hint: `subscribe to a shared subscription, "$share/${instance}/${String(n.topic)}" (one group for the instance: each message goes to one replica of one colour, also during a swap)`,
    }));
}
