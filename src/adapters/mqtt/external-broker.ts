/**
 * A broker given as MQTT_URL (mqtt://[user:password@]host:port or mqtts://…) and, for mqtts,
 * MQTT_CA_FILE, MQTT_CERT_FILE with MQTT_KEY_FILE, and MQTT_REJECT_UNAUTHORIZED. Tower's own
 * clients (the deploy gate, MQTT smoke checks) connect with all of it; the instances get the
 * address in their environment (TOWER_MQTT_URL, …) and the login through their credential
 * store (src/core/broker-credentials.ts). The URL Tower keeps and shows has no login in it.
 *
 * The files are read when Tower opens its runtime: a renewed certificate takes a restart of
 * Tower, and reaches an instance when a colour of it starts.
 */
import { readFileSync } from 'node:fs';
import type { IClientOptions } from 'mqtt';
import type { BrokerLogin, BrokerTls } from '../../core/broker-credentials.js';
import type { BrokerEndpoint } from './embedded-broker.js';

const PEM_FILES = [
  ['ca', 'MQTT_CA_FILE'],
  ['cert', 'MQTT_CERT_FILE'],
  ['key', 'MQTT_KEY_FILE'],
] as const;

type ReadFile = (file: string) => string;
const readText: ReadFile = (file) => readFileSync(file, 'utf8');

/** Every problem with the broker settings of `env`; the messages name variables and file paths, never a value. */
export function brokerEnvProblems(env: NodeJS.ProcessEnv, readFile: ReadFile = readText): string[] {
  return parse(env, readFile).problems;
}

/** The broker MQTT_URL names (undefined without MQTT_URL); throws with every problem of the settings. */
export function brokerFromEnv(env: NodeJS.ProcessEnv, readFile: ReadFile = readText): BrokerEndpoint | undefined {
  const { broker, problems } = parse(env, readFile);
  if (problems.length) throw new Error(`the MQTT broker settings: ${problems.join('; ')}`);
  return broker;
}

/** mqtt.js options for a login: user, password and, for mqtts, the CA, client certificate and key. */
export function mqttLoginOptions(login: BrokerLogin): Pick<IClientOptions, 'username' | 'password' | 'ca' | 'cert' | 'key' | 'rejectUnauthorized'> {
  const tls = login.tls;
  return {
    ...(login.username !== undefined ? { username: login.username } : {}),
    ...(login.password !== undefined ? { password: login.password } : {}),
    ...(tls?.ca !== undefined ? { ca: tls.ca } : {}),
    ...(tls?.cert !== undefined ? { cert: tls.cert } : {}),
    ...(tls?.key !== undefined ? { key: tls.key } : {}),
    ...(tls ? { rejectUnauthorized: tls.rejectUnauthorized } : {}),
  };
}

function parse(env: NodeJS.ProcessEnv, readFile: ReadFile): { broker?: BrokerEndpoint; problems: string[] } {
  const problems: string[] = [];
  let url: URL | undefined;
  if (env.MQTT_URL) {
    try {
      url = new URL(env.MQTT_URL);
    } catch {
      problems.push('MQTT_URL: not a URL'); // never echo it: it may carry a password
    }
    if (url && !['mqtt:', 'mqtts:', 'tcp:'].includes(url.protocol)) {
      problems.push(`MQTT_URL: expected mqtt://host:port or mqtts://host:port, got ${url.protocol}//…`);
      url = undefined;
    }
  }
  const secure = url?.protocol === 'mqtts:';
  const tlsVars = [...PEM_FILES.map(([, name]) => name), 'MQTT_REJECT_UNAUTHORIZED'].filter((name) => env[name]);
  if (tlsVars.length && !secure && !problems.length) {
    problems.push(`${tlsVars.join(', ')}: only for a TLS broker, but MQTT_URL is ${url ? 'not mqtts://…' : 'not set (the embedded broker speaks plain MQTT on loopback)'}`);
  }
  if (Boolean(env.MQTT_CERT_FILE) !== Boolean(env.MQTT_KEY_FILE)) problems.push('MQTT_CERT_FILE and MQTT_KEY_FILE: a client certificate needs both');
  const reject = env.MQTT_REJECT_UNAUTHORIZED;
  if (reject && reject !== 'true' && reject !== 'false') problems.push('MQTT_REJECT_UNAUTHORIZED: true or false');
  const pem: Partial<Record<'ca' | 'cert' | 'key', string>> = {};
  for (const [field, name] of PEM_FILES) {
    const file = env[name];
    if (!file) continue;
    let text: string;
    try {
      text = readFile(file);
    } catch (err) {
      problems.push(`${name} ${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      continue;
    }
    if (!/-----BEGIN [A-Z0-9 ]+-----/.test(text)) problems.push(`${name} ${file}: no PEM block in it (-----BEGIN …-----)`);
    else pem[field] = text;
  }
  let login: BrokerLogin = {};
  try {
    login = { ...(url?.username ? { username: decodeURIComponent(url.username) } : {}), ...(url?.password ? { password: decodeURIComponent(url.password) } : {}) };
  } catch {
    problems.push('MQTT_URL: its user or password is not valid percent-encoding');
  }
  if (problems.length || !url) return { problems };
  const port = Number(url.port || (secure ? 8883 : 1883));
  const tls: BrokerTls | undefined = secure ? { ...pem, rejectUnauthorized: reject !== 'false' } : undefined;
  const broker: BrokerEndpoint = { url: `${secure ? 'mqtts' : 'mqtt'}://${url.hostname}:${port}`, host: url.hostname, port, embedded: false, ...login, ...(tls ? { tls } : {}) };
  return { broker, problems };
}
