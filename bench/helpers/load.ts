/**
 * Open-loop load: requests (or MQTT messages) are fired on a fixed schedule whatever the
 * answers do, so a stall shows up as failures instead of slowing the client down. Every loop
 * is bounded in count (rate × window) and in time (window + client timeout + margin).
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { sleep } from './procs.js';

export interface HttpLoadOptions {
  port: number;
  path: string;
  ratePerSec: number;
  windowMs: number;
  /** Each request gets this long, from being fired to the end of its body; then it is a failure. */
  timeoutMs: number;
  /** Is this a correct answer? (status 200 is checked first) */
  accept(body: string): boolean;
  /** Reuse connections (keep-alive pool); default: a new connection per request. */
  keepAlive?: boolean;
}

export interface HttpLoadResult {
  planned: number;
  sent: number;
  ok: number;
  failed: number;
  /** Failure reasons: "timeout", "ECONNRESET", "HTTP 404", "body: …", "unsettled". */
  reasons: Record<string, number>;
  /** Correct answers by body (e.g. "v1 blue", "v2 green"). */
  bodies: Record<string, number>;
  latencyMs: { p50: number; p99: number; max: number };
  /** How late the timer fired the latest request against its schedule (event loop stalls). */
  maxScheduleLagMs: number;
  /** ms since the load started when each failure was fired, for diagnosis. */
  failedAtMs: number[];
}

export interface HttpLoad {
  /** performance.now() of the first request. */
  readonly t0: number;
  done: Promise<HttpLoadResult>;
}

export function openLoopHttp(o: HttpLoadOptions): HttpLoad {
  const planned = Math.round((o.ratePerSec * o.windowMs) / 1000);
  const interval = 1000 / o.ratePerSec;
  const agent = o.keepAlive ? new http.Agent({ keepAlive: true, maxSockets: Infinity }) : false;
  const t0 = performance.now();
  const reasons: Record<string, number> = {};
  const bodies: Record<string, number> = {};
  const latencies: number[] = [];
  const failedAtMs: number[] = [];
  let sent = 0;
  let settled = 0;
  let ok = 0;
  let maxLag = 0;
  let firing = true;
  let resolveDone!: (r: HttpLoadResult) => void;
  const done = new Promise<HttpLoadResult>((r) => (resolveDone = r));

  const result = (): HttpLoadResult => {
    const sorted = [...latencies].sort((a, b) => a - b);
    const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
    const unsettled = sent - settled;
    if (unsettled > 0) reasons.unsettled = unsettled;
    return { planned, sent, ok, failed: sent - ok, reasons, bodies, latencyMs: { p50: q(0.5), p99: q(0.99), max: sorted.at(-1) ?? 0 }, maxScheduleLagMs: maxLag, failedAtMs };
  };
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    clearInterval(ticker);
    clearTimeout(hardStop);
    if (agent) agent.destroy();
    resolveDone(result());
  };

  const fire = (index: number) => {
    const firedAt = performance.now();
    sent++;
    let over = false;
    const end = (good: boolean, reason: string, body?: string) => {
      if (over) return;
      over = true;
      clearTimeout(timer);
      settled++;
      if (good) {
        ok++;
        bodies[body!] = (bodies[body!] ?? 0) + 1;
        latencies.push(performance.now() - firedAt);
      } else {
        reasons[reason] = (reasons[reason] ?? 0) + 1;
        failedAtMs.push(Math.round(firedAt - t0));
      }
      if (!firing && settled === sent) finish();
    };
    const req = http.request({ host: '127.0.0.1', port: o.port, path: o.path, method: 'GET', agent, headers: { 'x-bench-request': String(index) } });
    const timer = setTimeout(() => {
      end(false, 'timeout');
      req.destroy();
    }, o.timeoutMs);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err: NodeJS.ErrnoException) => end(false, err.code ?? err.message));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8').trim();
        if (res.statusCode !== 200) end(false, `HTTP ${res.statusCode}`);
        else if (!o.accept(body)) end(false, `body: ${body.slice(0, 40)}`);
        else end(true, '', body);
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => end(false, err.code ?? err.message));
    req.end();
  };

  const ticker = setInterval(() => {
    const now = performance.now();
    // Catch up after a stall (open loop), but never beyond the planned count or the window (+1 s).
    while (sent < planned && now >= t0 + sent * interval && now <= t0 + o.windowMs + 1_000) {
      maxLag = Math.max(maxLag, now - (t0 + sent * interval));
      fire(sent);
    }
    if (sent >= planned || now > t0 + o.windowMs + 1_000) {
      clearInterval(ticker);
      firing = false;
      if (sent === settled) finish();
    }
  }, 2);
  // Whatever happens, the load ends: every request has its own timeout, this is the backstop.
  const hardStop = setTimeout(finish, o.windowMs + o.timeoutMs + 5_000);
  return { t0, done };
}

export interface MqttLoadOptions {
  url: string;
  /** Where the work goes (the instance consumes it through a shared subscription). */
  topic: string;
  /** Where the instance reports each processed message: JSON with `id`. */
  resultsTopic: string;
  ratePerSec: number;
  windowMs: number;
  /** More connect options for both clients: a login, a CA, a client certificate. */
  connect?: IClientOptions;
}

export interface MqttLoadResult {
  planned: number;
  /** Publishes the broker acknowledged (PUBACK). */
  published: number;
  /** Publishes that failed or were never acknowledged. */
  unacknowledged: number;
  /** Distinct ids of acknowledged messages processed. */
  processed: number;
  /** Acknowledged messages never processed. */
  lost: number;
  /** Extra processings of an id already processed. */
  duplicated: number;
  /** Processed per colour that reported it. */
  byColor: Record<string, number>;
  maxScheduleLagMs: number;
  lostIds: string[];
}

export interface MqttLoad {
  readonly t0: number;
  done: Promise<MqttLoadResult>;
}

/** Subscribes to the results first, then publishes QoS 1 at a fixed rate; counts what came back. */
export async function openLoopMqtt(o: MqttLoadOptions, log: (line: string) => void): Promise<MqttLoad> {
  const tag = Math.random().toString(36).slice(2, 8);
  const collector: MqttClient = await mqtt.connectAsync(o.url, { ...o.connect, clientId: `bench-collector-${tag}`, clean: true, reconnectPeriod: 0, protocolVersion: 4 });
  const publisher: MqttClient = await mqtt.connectAsync(o.url, { ...o.connect, clientId: `bench-publisher-${tag}`, clean: true, reconnectPeriod: 0, protocolVersion: 4 });
  const seen = new Map<string, number>();
  const byColor: Record<string, number> = {};
  collector.on('message', (_topic, payload) => {
    try {
      const m = JSON.parse(payload.toString('utf8')) as { id?: string; color?: string };
      if (!m.id?.startsWith(`${tag}-`)) return;
      seen.set(m.id, (seen.get(m.id) ?? 0) + 1);
      byColor[m.color ?? '?'] = (byColor[m.color ?? '?'] ?? 0) + 1;
    } catch {
      // not ours
    }
  });
  await collector.subscribeAsync(o.resultsTopic, { qos: 1 });

  const planned = Math.round((o.ratePerSec * o.windowMs) / 1000);
  const interval = 1000 / o.ratePerSec;
  const acked: string[] = [];
  let unacknowledged = 0;
  let maxLag = 0;
  const pending: Promise<void>[] = [];
  const t0 = performance.now();

  const done = (async (): Promise<MqttLoadResult> => {
    try {
      for (let i = 0; i < planned; i++) {
        const due = t0 + i * interval;
        const wait = due - performance.now();
        if (wait > 1) await sleep(wait);
        if (performance.now() > t0 + o.windowMs + 1_000) break; // bounded in time too
        maxLag = Math.max(maxLag, performance.now() - due);
        const id = `${tag}-${i}`;
        pending.push(
          publisher.publishAsync(o.topic, JSON.stringify({ id }), { qos: 1 }).then(
            () => void acked.push(id),
            () => void unacknowledged++,
          ),
        );
      }
      // Every publish is acknowledged (or failed) within 10 s.
      await Promise.race([Promise.all(pending), sleep(10_000)]);
      unacknowledged = planned - acked.length;
      // Wait until everything acknowledged was processed, or nothing new came for 3 s (at most 20 s).
      let last = -1;
      let quietSince = performance.now();
      const deadline = performance.now() + 20_000;
      while (performance.now() < deadline) {
        const have = acked.filter((id) => seen.has(id)).length;
        if (have === acked.length) break;
        if (seen.size !== last) {
          last = seen.size;
          quietSince = performance.now();
        } else if (performance.now() - quietSince > 3_000) break;
        await sleep(100);
      }
      await sleep(500); // a late duplicate gets a chance to show
      const lostIds = acked.filter((id) => !seen.has(id));
      let duplicated = 0;
      for (const n of seen.values()) duplicated += n - 1;
      if (lostIds.length) log(`mqtt: lost ids (first 20): ${lostIds.slice(0, 20).join(' ')}`);
      return {
        planned,
        published: acked.length,
        unacknowledged,
        processed: acked.filter((id) => seen.has(id)).length,
        lost: lostIds.length,
        duplicated,
        byColor,
        maxScheduleLagMs: maxLag,
        lostIds,
      };
    } finally {
      await Promise.allSettled([publisher.endAsync(), collector.endAsync()]);
    }
  })();
  return { t0, done };
}
