/**
 * The fleet broker's login for the nodes that point at it (src/core/broker-credentials.ts) and
 * the broker environment every colour gets (towerEnvironment): pure, driven with data.
 */
import { describe, expect, it } from 'vitest';
import { brokerSecrets, fleetBrokerCredentials, type BrokerLogin } from '../../src/core/broker-credentials.js';
import { towerEnvironment } from '../../src/core/instance-env.js';
import type { Fleet, FlowNode } from '../../src/core/model.js';

const CA = '-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n';
const CERT = '-----BEGIN CERTIFICATE-----\nclient\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n';
const TLS_LOGIN: BrokerLogin = { username: 'tower', password: 'pw-1234', tls: { ca: CA, cert: CERT, key: KEY, rejectUnauthorized: true } };

/** A broker node as the editor exports it, pointing wherever `broker` says. */
function brokerNode(id: string, broker: string, extra: Partial<FlowNode> = {}): FlowNode {
  return { id, type: 'mqtt-broker', name: id, broker, port: '${TOWER_MQTT_PORT}', clientid: '', usetls: false, protocolVersion: '4', ...extra };
}

function tlsNode(id: string, extra: Partial<FlowNode> = {}): FlowNode {
  return { id, type: 'tls-config', name: id, cert: '', key: '', ca: '', certname: '', keyname: '', caname: '', servername: '', alpnprotocol: '', ...extra };
}

const byUrl = (id: string, tls: string) => brokerNode(id, '${TOWER_MQTT_URL}', { usetls: true, tls, verifyservercert: '${TOWER_MQTT_VERIFY_SERVER_CERT}' });

describe('fleetBrokerCredentials', () => {
  it('gives user and password to every node that points at the fleet broker, and to no other', () => {
    const flows = [brokerNode('by-host', '${TOWER_MQTT_HOST}'), byUrl('by-url', 'tls'), tlsNode('tls'), brokerNode('elsewhere', 'mqtt.example.com'), { id: 'fn', type: 'function', z: 't', broker: '${TOWER_MQTT_HOST}' }];
    const { credentials, warnings } = fleetBrokerCredentials(flows, { username: 'tower', password: 'pw-1234' }, new Set());
    expect(credentials).toEqual({ 'by-host': { user: 'tower', password: 'pw-1234' }, 'by-url': { user: 'tower', password: 'pw-1234' } });
    expect(warnings).toEqual([]);
  });

  it('leaves a node alone that fleet.yaml gives credentials to', () => {
    const flows = [brokerNode('mine', '${TOWER_MQTT_HOST}'), brokerNode('theirs', '${TOWER_MQTT_HOST}')];
    expect(fleetBrokerCredentials(flows, { username: 'tower', password: 'pw-1234' }, new Set(['mine'])).credentials).toEqual({ theirs: { user: 'tower', password: 'pw-1234' } });
  });

  it('gives nothing without a login: the embedded broker, or a broker without a user', () => {
    const flows = [brokerNode('b', '${TOWER_MQTT_HOST}')];
    expect(fleetBrokerCredentials(flows, undefined, new Set())).toEqual({ credentials: {}, warnings: [] });
    expect(fleetBrokerCredentials(flows, {}, new Set())).toEqual({ credentials: {}, warnings: [] });
  });

  it("gives the CA, client certificate and key to the fleet broker nodes' tls-config node, once", () => {
    const flows = [byUrl('consumers', 'shared-tls'), byUrl('control', 'shared-tls'), tlsNode('shared-tls')];
    const { credentials, warnings } = fleetBrokerCredentials(flows, TLS_LOGIN, new Set());
    expect(credentials).toEqual({
      consumers: { user: 'tower', password: 'pw-1234' },
      control: { user: 'tower', password: 'pw-1234' },
      'shared-tls': { cadata: CA, certdata: CERT, keydata: KEY },
    });
    expect(warnings).toEqual([]);
  });

  it('leaves a tls-config node alone that reads its own files, or that fleet.yaml gives credentials to', () => {
    const flows = [byUrl('a', 'files'), tlsNode('files', { ca: '/etc/ssl/fleet-ca.pem' }), byUrl('b', 'given'), tlsNode('given')];
    expect(Object.keys(fleetBrokerCredentials(flows, TLS_LOGIN, new Set(['given'])).credentials).sort()).toEqual(['a', 'b']);
  });

  it.each([
    ['without TLS against an mqtts broker', [brokerNode('legacy', '${TOWER_MQTT_HOST}')], 'mqtt-broker "legacy" connects to the fleet broker without TLS (usetls is off), but MQTT_URL is mqtts://: set its broker to "${TOWER_MQTT_URL}", usetls to true and tls to a tls-config node'],
    ['by URL, with usetls off', [brokerNode('plain', '${TOWER_MQTT_URL}')], 'mqtt-broker "plain" gets no CA or client certificate (MQTT_CA_FILE, MQTT_CERT_FILE): usetls is off'],
    ['with no tls node named', [brokerNode('no-tls', '${TOWER_MQTT_URL}', { usetls: true, tls: '' })], 'mqtt-broker "no-tls" gets no CA or client certificate (MQTT_CA_FILE, MQTT_CERT_FILE): it names no tls-config node (tls)'],
    ['naming a tls node that is not there', [byUrl('dangling', 'gone')], 'mqtt-broker "dangling" gets no CA or client certificate (MQTT_CA_FILE, MQTT_CERT_FILE): its tls node "gone" is not a tls-config node of the flows'],
  ])('warns about a broker node %s, and still gives it the login', (_what, flows, warning) => {
    const got = fleetBrokerCredentials(flows, TLS_LOGIN, new Set());
    expect(got.warnings).toEqual([warning]);
    expect(got.credentials[flows[0]!.id]).toEqual({ user: 'tower', password: 'pw-1234' });
  });

  it('does not warn about TLS settings an mqtts broker does not need (no CA, no client certificate)', () => {
    const flows = [brokerNode('plain', '${TOWER_MQTT_URL}')];
    expect(fleetBrokerCredentials(flows, { tls: { rejectUnauthorized: true } }, new Set())).toEqual({ credentials: {}, warnings: [] });
  });
});

describe('brokerSecrets', () => {
  it('are the password and the client key, not the user or the certificates', () => {
    expect(brokerSecrets(TLS_LOGIN)).toEqual(['pw-1234', KEY]);
    expect(brokerSecrets(undefined)).toEqual([]);
  });
});

describe('the broker environment of a colour', () => {
  const fleet = { name: 'f', instances: [] } as unknown as Fleet;
  const env = (broker: Parameters<typeof towerEnvironment>[3]) => towerEnvironment(fleet, 'web', 'blue', broker, (p) => `http://127.0.0.1:${p}`);
  const mqttVars = (e: Record<string, string>) => Object.fromEntries(Object.entries(e).filter(([k]) => /^TOWER_MQTT_(URL|HOST|PORT|VERIFY)/.test(k)));

  it.each([
    ['a plain broker', { host: '127.0.0.1', port: 1883 }, { TOWER_MQTT_URL: 'mqtt://127.0.0.1:1883', TOWER_MQTT_HOST: '127.0.0.1', TOWER_MQTT_PORT: '1883', TOWER_MQTT_VERIFY_SERVER_CERT: 'true' }],
    ['a TLS broker', { host: 'mq.example.com', port: 8883, tls: { rejectUnauthorized: true } }, { TOWER_MQTT_URL: 'mqtts://mq.example.com:8883', TOWER_MQTT_HOST: 'mq.example.com', TOWER_MQTT_PORT: '8883', TOWER_MQTT_VERIFY_SERVER_CERT: 'true' }],
    ['a TLS broker whose certificate is not checked', { host: 'mq', port: 8883, tls: { rejectUnauthorized: false } }, { TOWER_MQTT_URL: 'mqtts://mq:8883', TOWER_MQTT_HOST: 'mq', TOWER_MQTT_PORT: '8883', TOWER_MQTT_VERIFY_SERVER_CERT: 'false' }],
    ['an IPv6 address', { host: '::1', port: 1883 }, { TOWER_MQTT_URL: 'mqtt://[::1]:1883', TOWER_MQTT_HOST: '::1', TOWER_MQTT_PORT: '1883', TOWER_MQTT_VERIFY_SERVER_CERT: 'true' }],
  ])('%s', (_what, broker, expected) => {
    expect(mqttVars(env(broker))).toEqual(expected);
  });

  it('carries no login, whatever the broker object holds', () => {
    const text = JSON.stringify(env({ host: 'mq', port: 8883, tls: { rejectUnauthorized: true }, ...TLS_LOGIN } as Parameters<typeof towerEnvironment>[3]));
    expect(text).not.toContain('pw-1234');
    expect(text).not.toContain('BEGIN');
    expect(text).not.toContain('"tower"');
  });

  it('has no broker variables without a broker', () => {
    expect(mqttVars(env(undefined))).toEqual({});
  });
});
