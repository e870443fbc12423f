/**
 * pumpStatus on its own, with short intervals: heartbeats while idle, bursts of changes
 * collapsed into one event, and the subscription released when the client leaves.
 */
import { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { describe, expect, it } from 'vitest';
import { pumpStatus, type StatusStreamOptions } from '../../src/server/sse.js';
import { SseReader } from '../helpers/sse-reader.js';
import { until } from '../helpers/status-fixture.js';

function harness(opts: Partial<StatusStreamOptions>) {
  const listeners = new Set<() => void>();
  let version = 0;
  let snapshots = 0;
  const app = new Hono().get('/events', (c) =>
    streamSSE(c, (stream) =>
      pumpStatus(stream, {
        subscribe(listener) {
          listeners.add(listener);
          return () => void listeners.delete(listener);
        },
        snapshot: async () => {
          snapshots++;
          return { version };
        },
        ...opts,
      }),
    ),
  );
  return {
    listeners,
    snapshots: () => snapshots,
    change(): void {
      version++;
      for (const l of [...listeners]) l();
    },
    async open(): Promise<SseReader> {
      const res = await app.request('/events');
      return new SseReader(res.body!);
    },
  };
}

describe('pumpStatus', () => {
  it('sends a heartbeat comment while nothing changes', async () => {
    const h = harness({ heartbeatMs: 50 });
    const events = await h.open();
    try {
      expect((await events.nextEvent(1_000)).data).toBe('{"version":0}');
      const frame = await events.next(1_000);
      expect(frame.comments).toEqual(['heartbeat']);
      expect(frame.event).toBeUndefined();
    } finally {
      await events.cancel();
    }
    await until(() => h.listeners.size === 0, 1_000, 'unsubscribed');
  });

  it('collapses a burst of changes into one event with the newest status', async () => {
    const h = harness({ heartbeatMs: 60_000, minIntervalMs: 100 });
    const events = await h.open();
    try {
      await events.nextEvent(1_000);
      for (let i = 0; i < 50; i++) h.change();
      const frames = (await events.collect(600)).filter((f) => f.event === 'status');
      expect(frames.map((f) => f.data)).toEqual(['{"version":50}']);
      expect(h.snapshots()).toBe(2);
      // and a later change is sent too
      h.change();
      expect((await events.nextEvent(1_000)).data).toBe('{"version":51}');
    } finally {
      await events.cancel();
    }
    await until(() => h.listeners.size === 0, 1_000, 'unsubscribed');
  });

  it('releases the subscription when the client leaves while waiting', async () => {
    const h = harness({ heartbeatMs: 60_000 });
    const events = await h.open();
    await events.nextEvent(1_000);
    expect(h.listeners.size).toBe(1);
    await events.cancel();
    await until(() => h.listeners.size === 0, 1_000, 'unsubscribed');
    h.change(); // nobody listens: nothing happens, nothing throws
  });
});
