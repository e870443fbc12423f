/**
 * The environment Tower gives every instance (pure: the caller resolves secret references).
 * Flows find the broker and each other through these, never through fixed addresses.
 */
import type { Color } from './rollout.js';
import type { DesiredInstance, Fleet } from './model.js';

export interface BrokerAddress {
  host: string;
  port: number;
  /** An mqtts:// broker; rejectUnauthorized false accepts any server certificate. */
  tls?: { rejectUnauthorized: boolean };
}

/** TOWER_URL_EMBEDDINGS for "embeddings", TOWER_URL_TEXT_CHUNKER for "text-chunker". */
export function urlVariable(instance: string): string {
  return `TOWER_URL_${instance.toUpperCase().replace(/-/g, '_')}`;
}

/**
 * A colour's deploy gate; replica k > 1 of it has its own, …/<color>/r<k> (replica 1 keeps the colour's, as before replicas).
 * A replica whose runtime cannot give it its index (pods of one template) is named by a key instead, …/<color>/<key>: its pod's name.
 */
export function gateTopicFor(fleet: string, instance: string, color: Color, replica: ReplicaKey = 1): string {
  return `tower/gate/${fleet}/${instance}/${color}${replicaSuffix(replica)}`;
}

/**
 * The MQTT client id of a colour's gated consumers (TOWER_MQTT_CLIENT_ID): one persistent
 * session per instance and colour, so the broker keeps the colour's messages while it is
 * briefly away. Names are [a-z0-9-], so the slashes keep ids of different fleets apart.
 */
export function consumerClientIdFor(fleet: string, instance: string, color: Color, replica: ReplicaKey = 1): string {
  return `tower/${fleet}/${instance}/${color}${replicaSuffix(replica)}`;
}

/** A replica's index 1..N, or the key its runtime names it by (kubernetes: the pod's name). */
export type ReplicaKey = number | string;

function replicaSuffix(replica: ReplicaKey): string {
  if (typeof replica === 'string') return `/${replica}`;
  return replica > 1 ? `/r${replica}` : '';
}

/**
 * What replica k's environment adds to its colour's, index k-1 for replica k: TOWER_REPLICA,
 * and its own deploy gate and MQTT session — replicas of a colour must not share a client id
 * (the broker would hand the session back and forth between them), and each confirms its
 * gate itself. Work is shared between them by the flows' shared subscriptions
 * ($share/<group>/<topic>, see gatedConsumerProblems). Empty for a colour of one replica.
 */
export function replicaEnvironments(fleet: string, instance: string, color: Color, replicas: number): Record<string, string>[] {
  if (replicas <= 1) return [];
  return Array.from({ length: replicas }, (_, i) => ({
    TOWER_REPLICA: String(i + 1),
    TOWER_GATE_TOPIC: gateTopicFor(fleet, instance, color, i + 1),
    TOWER_MQTT_CLIENT_ID: consumerClientIdFor(fleet, instance, color, i + 1),
  }));
}

/**
 * `stableUrl` gives an instance's stable address (its port and name) as its peers reach it (the traffic switch's).
 * The broker: TOWER_MQTT_URL (mqtt:// or mqtts://, never a login: that goes to the credential
 * store, see broker-credentials.ts), TOWER_MQTT_HOST/_PORT, and TOWER_MQTT_VERIFY_SERVER_CERT
 * ("true" or "false", for an mqtt-broker node's verifyservercert).
 */
export function towerEnvironment(fleet: Fleet, instance: string, color: Color, broker: BrokerAddress | undefined, stableUrl: (port: number, instance: string) => string): Record<string, string> {
  const env: Record<string, string> = {
    TOWER_FLEET: fleet.name,
    TOWER_INSTANCE: instance,
    TOWER_COLOR: color,
    TOWER_GATE_TOPIC: gateTopicFor(fleet.name, instance, color),
    TOWER_MQTT_CLIENT_ID: consumerClientIdFor(fleet.name, instance, color),
  };
  if (broker) {
    env.TOWER_MQTT_URL = `${broker.tls ? 'mqtts' : 'mqtt'}://${broker.host.includes(':') && !broker.host.startsWith('[') ? `[${broker.host}]` : broker.host}:${broker.port}`;
    env.TOWER_MQTT_HOST = broker.host;
    env.TOWER_MQTT_PORT = String(broker.port);
    env.TOWER_MQTT_VERIFY_SERVER_CERT = String(broker.tls?.rejectUnauthorized ?? true);
  }
  for (const other of fleet.instances) env[urlVariable(other.name)] = stableUrl(other.port, other.name);
  return env;
}

/** Whether any instance talks MQTT (an mqtt-broker config node) or has MQTT smoke checks. */
export function usesMqtt(instances: readonly DesiredInstance[]): boolean {
  return instances.some((i) => i.smoke.some((c) => c.mqtt) || i.flowList.some((n) => n.type === 'mqtt-broker'));
}
