/**
 * Server-sent status events: one loop per connected client.
 *
 * The daemon emits 'status' many times per rollout (every phase of every instance), so the
 * listener only marks the stream dirty; the loop sends the newest snapshot when it gets to
 * it, and bursts collapse into one event. The first event goes out at once: it is the
 * client's starting point, and after a reconnect it resynchronises whatever was missed.
 */
import type { SSEStreamingApi } from 'hono/streaming';

export interface StatusStreamOptions {
  /** Registers a change listener; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void;
  /** The JSON to send, read fresh for each event. */
  snapshot(): Promise<unknown>;
  /** A comment line keeps proxies and browsers from timing the idle stream out. */
  heartbeatMs?: number;
  /** At most one event per this interval; the page fetches its fragment once per event. */
  minIntervalMs?: number;
  /** How long an EventSource waits before reconnecting (sent once, as `retry:`). */
  retryMs?: number;
}

export const HEARTBEAT_MS = 15_000;

/** Runs until the client goes away (the stream is aborted); always unsubscribes. */
export async function pumpStatus(stream: SSEStreamingApi, opts: StatusStreamOptions): Promise<void> {
  const heartbeatMs = opts.heartbeatMs ?? HEARTBEAT_MS;
  const minIntervalMs = opts.minIntervalMs ?? 250;
  let dirty = true;
  let wake: ((timedOut: boolean) => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const poke = (timedOut = false) => {
    const w = wake;
    wake = undefined;
    clearTimeout(timer);
    w?.(timedOut);
  };
  /** Resolves true after ms, or false earlier when poked (a change, or the client left). */
  const pause = (ms: number) =>
    new Promise<boolean>((resolve) => {
      wake = resolve;
      timer = setTimeout(() => poke(true), ms);
    });

  const unsubscribe = opts.subscribe(() => {
    dirty = true;
    poke();
  });
  stream.onAbort(() => poke());
  try {
    let first = true;
    let lastSent = 0;
    while (!stream.aborted && !stream.closed) {
      if (dirty) {
        const wait = lastSent + minIntervalMs - Date.now();
        if (wait > 0) {
          await pause(wait);
          continue;
        }
        dirty = false;
        const data = JSON.stringify(await opts.snapshot());
        if (stream.aborted) break;
        await stream.writeSSE({ event: 'status', data, ...(first ? { retry: opts.retryMs ?? 3000 } : {}) });
        first = false;
        lastSent = Date.now();
        continue;
      }
      const timedOut = await pause(heartbeatMs);
      if (timedOut && !stream.aborted) await stream.write(': heartbeat\n\n');
    }
  } finally {
    unsubscribe();
    clearTimeout(timer);
  }
}
