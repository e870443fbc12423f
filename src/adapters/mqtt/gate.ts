/**
 * Tower's side of the deploy gate (flows/deploy-gate.json, included as lib:deploy-gate).
 *
 * Per colour, two retained topics on the fleet's broker:
 *   <base>          the command Tower publishes: "open" | "closed" (QoS 1, retained)
 *   <base>/state    what the gate reports after acting: "open" | "closed" (QoS 1, retained)
 * with <base> = tower/gate/<fleet>/<instance>/<color> (env TOWER_GATE_TOPIC of the colour).
 * The gate reports "open" only once its consumers' subscriptions are in place, so
 * open(green) resolving means the broker already delivers to green: close(blue) may follow.
 *
 * The colour's consumers are one persistent MQTT v5 session, client id TOWER_MQTT_CLIENT_ID
 * (consumerClientIdFor): open = Clean Start off + Session Expiry 1 h; closed = the session
 * ended. Measured with mosquitto 2.0.11 (persistence on), which is why:
 *  - an offline persistent member of a shared subscription keeps getting its round-robin
 *    share queued (50 of 100), so a closed colour must end its session, not just disconnect;
 *  - a restart (SIGTERM) keeps persistent sessions, their plain subscriptions and queued
 *    messages, but not shared subscriptions: until a consumer subscribes again, messages
 *    for a $share/… topic are dropped (PUBACKed all the same). Plain topics lose nothing;
 *  - mqtt.js does not send its subscriptions again when it resumes a session, so after a
 *    restart a $share consumer would never get anything again: the gate reconnects a
 *    dropped consumer connection with a new client, which subscribes from scratch;
 *  - closing by "reconnect with Session Expiry 0, then disconnect" lost 0 of 3000 over ten
 *    closes at 500/s, with about one redelivered duplicate per two closes.
 * A broker restart may also swallow a command or the gate's answer: each open/close repeats
 * its request after every reconnect of Tower's own connection.
 */
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import type { ISubscriptionMap, MqttClient } from 'mqtt';
import { formatDuration } from '../../core/duration.js';
import type { BrokerLogin } from '../../core/broker-credentials.js';
import { maskUrlPassword } from '../../core/redact.js';
import { mqttLoginOptions } from './external-broker.js';

export type GateCommand = 'open' | 'closed';

export interface DeployGate {
  /** Publish "open" (retained) and wait until the gate reports "open". */
  open(topicBase: string): Promise<void>;
  /** Publish "closed" (retained) and wait until the gate reports "closed". */
  close(topicBase: string): Promise<void>;
  /** Remove the retained command and state, e.g. once a colour is stopped for good. */
  clear(topicBase: string): Promise<void>;
  /**
   * End the consumers' persistent session of a colour that no longer runs (clientId from
   * consumerClientIdFor): the broker drops its subscriptions and whatever it had queued for
   * it, so that nothing keeps collecting work for a colour nobody will start again. Never
   * for a running colour: the broker would hand the session over and cut its connection.
   */
  endSession(clientId: string): Promise<void>;
  /** The retained state ("open", "closed", …) or null when there is none. */
  state(topicBase: string): Promise<string | null>;
  /** The keys of the replica gates with a state retained under a colour's gate: <topicBase>/<key>/state (pods gone included). */
  replicaKeys(topicBase: string): Promise<string[]>;
  /** Close the connection. The gate object is unusable afterwards. */
  end(): Promise<void>;
}

/** The fleet's broker: its URL (e.g. mqtt://127.0.0.1:1883) and login (user, password, TLS). */
export interface DeployGateOptions extends BrokerLogin {
  url: string;
  /** For connecting and for each open/close/clear/state. Default 10 s. */
  timeoutMs?: number;
}

/** The topic base of one colour's gate: tower/gate/<fleet>/<instance>/<color>. */
export { gateTopicFor as gateTopic } from '../../core/instance-env.js';
/** The client id of one colour's gated consumers: tower/<fleet>/<instance>/<color>. */
export { consumerClientIdFor as consumerClientId } from '../../core/instance-env.js';

const DEFAULT_TIMEOUT_MS = 10_000;

export function deployGate(opts: DeployGateOptions): DeployGate {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const clientId = `tower-gate-${randomBytes(6).toString('hex')}`;
  let connecting: Promise<MqttClient> | undefined;
  let ended = false;
  // topic -> listeners; one 'message' handler on the one connection dispatches.
  const listeners = new Map<string, Set<(payload: string) => void>>();
  // topic -> how many calls use the subscription, and its SUBACK.
  type Sub = { count: number; ready: Promise<unknown> };
  const subs = new Map<string, Sub>();
  // Last payload seen per subscribed state topic ('' = cleared).
  const seen = new Map<string, string>();
  // Listeners of wildcard subscriptions (replicaKeys): each sees every message.
  const everything = new Set<(topic: string, payload: string) => void>();

  const client = (): Promise<MqttClient> => {
    if (ended) return Promise.reject(new Error('the deploy gate connection was ended'));
    connecting ??= connect(opts, clientId, timeoutMs, (topic, payload) => {
      if (subs.has(topic)) seen.set(topic, payload);
      for (const l of listeners.get(topic) ?? []) l(payload);
      for (const l of everything) l(topic, payload);
    }).catch((err: unknown) => {
      connecting = undefined; // the next call tries again
      throw err;
    });
    return connecting;
  };

  // Synchronous, so that the caller's finally can always release what it took.
  const acquire = (c: MqttClient, topic: string): Sub => {
    let sub = subs.get(topic);
    if (!sub) {
      seen.delete(topic);
      const fresh: Sub = { count: 0, ready: Promise.resolve() };
      fresh.ready = subscribe(c, topic).catch((err: unknown) => {
        if (subs.get(topic) === fresh) subs.delete(topic); // the next call subscribes again
        throw err;
      });
      fresh.ready.catch(() => undefined); // callers that still wait see the error; no one else must
      subs.set(topic, fresh);
      sub = fresh;
    }
    sub.count++;
    return sub;
  };

  const release = (c: MqttClient, topic: string, sub: Sub | undefined): void => {
    if (!sub || --sub.count > 0) return;
    // A failed SUBSCRIBE (e.g. cut short by a broker restart) is no longer in `subs`, yet
    // mqtt.js subscribes it again on reconnect: unsubscribe it too, unless a newer user has it.
    const current = subs.get(topic);
    if (current && current !== sub) return;
    subs.delete(topic);
    seen.delete(topic);
    c.unsubscribeAsync(topic).catch(() => undefined);
  };

  const listen = (topic: string, l: (payload: string) => void): (() => void) => {
    const set = listeners.get(topic) ?? new Set();
    set.add(l);
    listeners.set(topic, set);
    return () => {
      set.delete(l);
      if (set.size === 0) listeners.delete(topic);
    };
  };

  const command = async (topicBase: string, want: GateCommand): Promise<void> => {
    const c = await client();
    const stateTopic = `${topicBase}/state`;
    // The broker keeps each connection's messages in order: after the echo of our own
    // "clear the state" message, every state we see was published after it — a stale
    // retained "open" can never pass for an answer.
    let cleared = false;
    let last: string | undefined;
    let done: () => void = () => undefined;
    const reported = new Promise<void>((resolve) => (done = resolve));
    const unlisten = listen(stateTopic, (payload) => {
      if (!cleared) {
        cleared = payload === '';
        return;
      }
      if (payload === '') return;
      last = payload;
      if (payload === want) done();
    });
    const request = async (): Promise<void> => {
      await c.publishAsync(stateTopic, '', { qos: 1, retain: true });
      await c.publishAsync(topicBase, want, { qos: 1, retain: true });
    };
    // After a broker restart our messages or the gate's answer may be gone: subscribe again
    // (before clearing, so that the echo comes back) and ask again from the start.
    const again = (): void => {
      cleared = false;
      subscribe(c, stateTopic)
        .then(request)
        .catch(() => undefined); // the next reconnect tries again; the timeout bounds it all
    };
    const sub = acquire(c, stateTopic);
    c.on('connect', again);
    try {
      await bounded(
        (async () => {
          // A SUBSCRIBE cut short by a lost connection is repeated by `again` on reconnect.
          if (await sub.ready.then(() => true, () => false)) await request();
          await reported;
        })(),
        timeoutMs,
        () => `the deploy gate of ${describeBase(topicBase)} did not report ${want} within ${formatDuration(timeoutMs)} — does the instance include lib:deploy-gate?${last === undefined ? '' : ` (it last reported "${last}")`}`,
      );
    } finally {
      c.off('connect', again);
      unlisten();
      release(c, stateTopic, sub);
    }
  };

  return {
    open: (topicBase) => command(topicBase, 'open'),
    close: (topicBase) => command(topicBase, 'closed'),

    async clear(topicBase) {
      const c = await client();
      await bounded(
        Promise.all([c.publishAsync(topicBase, '', { qos: 1, retain: true }), c.publishAsync(`${topicBase}/state`, '', { qos: 1, retain: true })]),
        timeoutMs,
        () => `could not clear the deploy gate of ${describeBase(topicBase)}: the broker did not acknowledge within ${formatDuration(timeoutMs)}`,
      );
    },

    async endSession(clientId) {
      // Clean Start on and no Session Expiry: the old session is discarded on connect, and
      // the new one ends with the disconnect.
      const c = mqtt.connect(opts.url, { ...mqttLoginOptions(opts), clientId, clean: true, protocolVersion: 5, reconnectPeriod: 0, connectTimeout: timeoutMs });
      c.on('error', () => undefined); // reported by the timeout below
      try {
        await bounded(
          new Promise<void>((resolve) => c.once('connect', () => resolve())).then(() => c.endAsync()),
          timeoutMs,
          () => `could not end the MQTT session ${clientId}: the broker at ${maskUrlPassword(opts.url)} did not answer within ${formatDuration(timeoutMs)}`,
        );
      } finally {
        c.end(true);
      }
    },

    async state(topicBase) {
      const c = await client();
      const stateTopic = `${topicBase}/state`;
      const sub = acquire(c, stateTopic);
      try {
        return await bounded(
          (async () => {
            await sub.ready;
            // A round trip after the SUBACK: the broker sends a retained message right after
            // the SUBACK, so by the UNSUBACK of this never-subscribed topic it has arrived.
            await c.unsubscribeAsync(`${topicBase}/probe`);
            const s = seen.get(stateTopic);
            return s === undefined || s === '' ? null : s;
          })(),
          timeoutMs,
          () => `could not read the deploy gate state of ${describeBase(topicBase)}: the broker did not answer within ${formatDuration(timeoutMs)}`,
        );
      } finally {
        release(c, stateTopic, sub);
      }
    },

    async replicaKeys(topicBase) {
      const c = await client();
      const found = new Map<string, string>();
      const filter = `${topicBase}/+/state`;
      const collect = (topic: string, payload: string) => {
        const key = topic.startsWith(`${topicBase}/`) && topic.endsWith('/state') ? topic.slice(topicBase.length + 1, -'/state'.length) : '';
        if (key && !key.includes('/')) found.set(key, payload);
      };
      everything.add(collect);
      try {
        return await bounded(
          (async () => {
            await subscribe(c, filter);
            // As in state(): the retained messages come right after the SUBACK, before this UNSUBACK.
            await c.unsubscribeAsync(`${topicBase}/probe`);
            return [...found].filter(([, payload]) => payload !== '').map(([key]) => key);
          })(),
          timeoutMs,
          () => `could not list the replica gates of ${describeBase(topicBase)}: the broker did not answer within ${formatDuration(timeoutMs)}`,
        );
      } finally {
        everything.delete(collect);
        c.unsubscribeAsync(filter).catch(() => undefined);
      }
    },

    async end() {
      ended = true;
      const pending = connecting;
      connecting = undefined;
      if (!pending) return;
      const c = await pending.catch(() => undefined);
      if (c) await bounded(c.endAsync(), 2000, () => 'end').catch(() => c.end(true));
    },
  };
}

/**
 * A SUBSCRIBE that is always sent: mqtt.js skips topics it believes subscribed already (its
 * resubscribe list), and then the broker sends no retained message — which state() and the
 * "clear" echo of open/close wait for.
 */
function subscribe(c: MqttClient, topic: string): Promise<unknown> {
  const map: ISubscriptionMap = Object.assign({ [topic]: { qos: 1 as const } }, { resubscribe: true });
  return c.subscribeAsync(map);
}

/** "tower/gate/redforge/storage/green" -> "storage/green" (the rest of the topic as it is). */
function describeBase(topicBase: string): string {
  const parts = topicBase.split('/');
  return parts.length === 5 && parts[0] === 'tower' && parts[1] === 'gate' ? `${parts[3]}/${parts[4]}` : topicBase;
}

function connect(broker: DeployGateOptions, clientId: string, timeoutMs: number, onMessage: (topic: string, payload: string) => void): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    // Reconnects on its own later (a broker restart must not end Tower's gate control);
    // only the first connection is bounded here.
    const c = mqtt.connect(broker.url, { ...mqttLoginOptions(broker), clientId, clean: true, reconnectPeriod: 1000, connectTimeout: timeoutMs, protocolVersion: 4 });
    c.setMaxListeners(0); // each open/close in flight listens for reconnects; a wave may run many
    let lastError = '';
    const onError = (err: Error) => (lastError = err.message);
    c.on('error', onError);
    const timer = setTimeout(() => {
      c.end(true);
      reject(new Error(`cannot connect to the MQTT broker at ${maskUrlPassword(broker.url)} within ${formatDuration(timeoutMs)}${lastError ? `: ${lastError}` : ''}`));
    }, timeoutMs);
    c.once('connect', () => {
      clearTimeout(timer);
      c.on('message', (topic, payload) => onMessage(topic, payload.toString('utf8')));
      resolve(c);
    });
  });
}

function bounded<T>(p: Promise<T>, ms: number, message: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message())), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
