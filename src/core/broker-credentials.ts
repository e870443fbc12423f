/**
 * The fleet broker's login (MQTT_URL's user and password, MQTT_CA_FILE, MQTT_CERT_FILE,
 * MQTT_KEY_FILE), delivered to the instances the way fleet.yaml's node credentials are:
 * merged into the flows a colour gets, so that Node-RED keeps them in its credential store,
 * encrypted — never in flows.json, the env or a log. The flows themselves are not changed,
 * so the rev Node-RED reports is still the rev of the flows in Git.
 *
 * What "points at the fleet broker" means: an `mqtt-broker` config node whose `broker` is
 * "${TOWER_MQTT_URL}" (mqtt://host:port or mqtts://host:port, set per colour) or
 * "${TOWER_MQTT_HOST}" (with "${TOWER_MQTT_PORT}"). Such a node gets `user` and `password`.
 *
 * TLS cannot be switched on by the environment: Node-RED substitutes "${VAR}" as a string,
 * and "false" is as true as "true". So a node that is to work against a plain and a TLS
 * broker alike names the broker by URL (the scheme decides) and keeps `usetls: true` with a
 * `tls` config node — Node-RED adds that node's options to the connection, which a plain
 * mqtt:// connection ignores. That tls-config node (its ca/cert/key paths empty) gets the CA,
 * the client certificate and its key as its credentials (cadata, certdata, keydata). Whether
 * the server certificate is checked comes from the broker node's `verifyservercert`
 * ("${TOWER_MQTT_VERIFY_SERVER_CERT}": Node-RED compares it with "true"), as long as the
 * tls-config node does not set verifyservercert itself. flows/deploy-gate.json is written so.
 *
 * A node fleet.yaml gives credentials to is left alone: the fleet's own setting wins.
 */
import type { FlowNode } from './model.js';

/** mqtts only. PEM texts; `rejectUnauthorized: false` accepts any server certificate. */
export interface BrokerTls {
  ca?: string;
  cert?: string;
  key?: string;
  rejectUnauthorized: boolean;
}

/** What a client needs beyond the broker's address. Secret: never logged. */
export interface BrokerLogin {
  username?: string;
  password?: string;
  /** Present for an mqtts:// broker. */
  tls?: BrokerTls;
}

/** The fleet's broker as clients reach it: `url` is mqtt(s)://host:port, never with the login. */
export interface BrokerConnection extends BrokerLogin {
  url: string;
  host: string;
  port: number;
}

/** The `broker` property values that mean "the fleet's broker" (Tower sets them per colour). */
export const FLEET_BROKER_URL = '${TOWER_MQTT_URL}';
export const FLEET_BROKER_HOST = '${TOWER_MQTT_HOST}';

export function pointsAtFleetBroker(node: FlowNode): boolean {
  return node.type === 'mqtt-broker' && (node.broker === FLEET_BROKER_URL || node.broker === FLEET_BROKER_HOST);
}

export interface FleetBrokerCredentials {
  /** node id → credential field → value, for withCredentials(). */
  credentials: Record<string, Record<string, string>>;
  /** Nodes that point at the fleet broker but cannot reach it as configured, in words. */
  warnings: string[];
}

/**
 * The credentials the fleet broker's nodes get. `given`: the ids of nodes fleet.yaml gives
 * credentials to (left alone).
 */
export function fleetBrokerCredentials(flows: readonly FlowNode[], login: BrokerLogin | undefined, given: ReadonlySet<string>): FleetBrokerCredentials {
  const credentials: Record<string, Record<string, string>> = {};
  const warnings: string[] = [];
  if (!login) return { credentials, warnings };
  const byId = new Map(flows.map((n) => [n.id, n]));
  const user = defined({ user: login.username, password: login.password });
  const tls = login.tls;
  const tlsData = tls ? defined({ cadata: tls.ca, certdata: tls.cert, keydata: tls.key }) : {};
  for (const broker of flows.filter(pointsAtFleetBroker)) {
    if (Object.keys(user).length > 0 && !given.has(broker.id)) credentials[broker.id] = user;
    if (!tls) continue;
    const name = `mqtt-broker "${broker.id}"`;
    if (!broker.usetls && broker.broker === FLEET_BROKER_HOST) {
      warnings.push(`${name} connects to the fleet broker without TLS (usetls is off), but MQTT_URL is mqtts://: set its broker to "${FLEET_BROKER_URL}", usetls to true and tls to a tls-config node`);
      continue;
    }
    if (Object.keys(tlsData).length === 0) continue;
    const tlsNode = broker.usetls && typeof broker.tls === 'string' && broker.tls !== '' ? byId.get(broker.tls) : undefined;
    if (!tlsNode || tlsNode.type !== 'tls-config') {
      const why = !broker.usetls ? 'usetls is off' : typeof broker.tls === 'string' && broker.tls !== '' ? `its tls node "${broker.tls}" is not a tls-config node of the flows` : 'it names no tls-config node (tls)';
      warnings.push(`${name} gets no CA or client certificate (MQTT_CA_FILE, MQTT_CERT_FILE): ${why}`);
      continue;
    }
    // A tls-config node with its own files, or credentials from fleet.yaml, is the flow's to decide.
    if (hasFiles(tlsNode) || given.has(tlsNode.id)) continue;
    credentials[tlsNode.id] = tlsData;
  }
  return { credentials, warnings };
}

/** The login's secrets, for redaction: the password and the client key (not the user or the certificates, which are no secrets). */
export function brokerSecrets(login: BrokerLogin | undefined): string[] {
  return [login?.password, login?.tls?.key].filter((s): s is string => typeof s === 'string' && s !== '');
}

function hasFiles(tlsNode: FlowNode): boolean {
  return [tlsNode.ca, tlsNode.cert, tlsNode.key].some((p) => typeof p === 'string' && p.trim() !== '');
}

function defined(fields: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(fields).filter((e): e is [string, string] => typeof e[1] === 'string' && e[1] !== ''));
}
