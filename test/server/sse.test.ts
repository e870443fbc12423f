/**
 * pumpStatus on its own, with short intervals: heartbeats while idle, bursts of changes
 * collapsed into one event, the subscription released when the client leaves, a client that
 * stops reading dropped; and the StatusFeed building one frame per change for every stream.
 */
import { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { describe, expect, it } from 'vitest';
import { pumpStatus, StatusFeed, statusFrame, type StatusStreamOptions, type StreamEnd } from '../../src/server/sse.js';
import { SseReader } from '../helpers/sse-reader.js';
import { until } from '../helpers/status-fixture.js';

function harness(opts: Partial<StatusStreamOptions>) {
  const listeners = new Set<() => void>();
  let version = 0;
  let snapshots = 0;
  let padding = '';
  const ends: StreamEnd[] = [];
  const app = new Hono().get('/events', (c) =>
    streamSSE(c, async (stream) => {
      ends.push(
        await pumpStatus(stream, {
          subscribe(listener) {
            listeners.add(listener);
            return () => void listeners.delete(listener);
          },
          frame: async () => {
            snapshots++;
            return statusFrame(padding ? { version, padding } : { version });
          },
          ...opts,
        }),
      );
    }),
  );
  return {
    listeners,
    ends,
    snapshots: () => snapshots,
    /** Makes every later frame about `bytes` long. */
    pad(bytes: number): void {
      padding = 'p'.repeat(bytes);
    },
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

  it('writes nothing more to a client that stopped reading, then drops it after stallMs, and lets go of it', async () => {
    let dropped = 0;
    const h = harness({ heartbeatMs: 60_000, minIntervalMs: 10, maxBacklogBytes: 1_000, stallMs: 600, drop: () => void dropped++ });
    h.pad(100 * 1024);
    const events = await h.open();
    await events.nextEvent(1_000); // it read once, then never again
    const started = Date.now();
    // Every change is a 100 KB frame: without backpressure fifty of them would pile up.
    for (let i = 0; i < 50 && h.ends.length === 0; i++) {
      h.change();
      await new Promise((r) => setTimeout(r, 20));
    }
    await until(() => h.ends.length === 1, 3_000, 'the stream ended');
    expect(h.ends).toEqual(['dropped']);
    expect(Date.now() - started).toBeGreaterThanOrEqual(550);
    expect(dropped).toBe(1);
    expect(h.listeners.size).toBe(0);
    // The first frame, the one the response took without a reader, the one left waiting: no more were made.
    expect(h.snapshots()).toBeLessThanOrEqual(3);
    await events.cancel();
  });

  it('sends a client that was behind the newest frame once it catches up, and keeps it', async () => {
    let dropped = 0;
    const h = harness({ heartbeatMs: 60_000, minIntervalMs: 10, maxBacklogBytes: 1_000, stallMs: 5_000, drop: () => void dropped++ });
    h.pad(100 * 1024);
    const events = await h.open();
    try {
      await events.nextEvent(1_000);
      for (let i = 0; i < 10; i++) h.change();
      await new Promise((r) => setTimeout(r, 300)); // not reading meanwhile
      for (let i = 0; i < 10; i++) h.change();
      let got = 0;
      while (got < 20) got = (JSON.parse((await events.nextEvent(2_000)).data!) as { version: number }).version;
      expect(got).toBe(20);
      expect(h.snapshots()).toBeLessThan(8); // the versions in between were skipped, not queued
      expect(dropped).toBe(0);
      expect(h.ends).toEqual([]);
    } finally {
      await events.cancel();
    }
  });

  it('keeps a client that reads, however many frames it is sent', async () => {
    let dropped = 0;
    const h = harness({ heartbeatMs: 60_000, minIntervalMs: 10, maxBacklogBytes: 1_000, stallMs: 1_000, drop: () => void dropped++ });
    h.pad(100 * 1024);
    const events = await h.open();
    try {
      for (let i = 1; i <= 20; i++) {
        h.change();
        let got = 0;
        while (got < i) got = (JSON.parse((await events.nextEvent(2_000)).data!) as { version: number }).version;
        expect(got).toBe(i);
      }
      expect(dropped).toBe(0);
      expect(h.ends).toEqual([]);
    } finally {
      await events.cancel();
    }
  });

  it('counts what the connection still holds (the response\'s writableLength): no heartbeat while it is behind, dropped after stallMs', async () => {
    let buffered = 0;
    let dropped = 0;
    const h = harness({ heartbeatMs: 30, maxBacklogBytes: 1_000, stallMs: 300, buffered: () => buffered, drop: () => void dropped++ });
    const events = await h.open();
    try {
      await events.nextEvent(1_000);
      expect((await events.next(1_000)).comments).toEqual(['heartbeat']);
      buffered = 1_001; // the socket stopped draining
      const frames = await events.collect(200);
      expect(frames.filter((f) => f.comments.includes('heartbeat')).length).toBeLessThanOrEqual(1);
      await until(() => h.ends.length === 1, 1_000, 'dropped');
      expect(h.ends).toEqual(['dropped']);
      expect(dropped).toBe(1);
    } finally {
      await events.cancel();
    }
  });
});

describe('StatusFeed', () => {
  it('builds one frame per change, whatever the number of streams, and the same bytes for each', async () => {
    const listeners = new Set<() => void>();
    let builds = 0;
    let version = 0;
    const feed = new StatusFeed({
      subscribe(listener) {
        listeners.add(listener);
        return () => void listeners.delete(listener);
      },
      snapshot: async () => {
        builds++;
        return { version };
      },
    });
    const heard: number[] = [];
    const offs = Array.from({ length: 100 }, (_, i) => feed.subscribe(() => heard.push(i)));
    expect(listeners.size).toBe(1); // one subscription to the daemon for all
    const frames = await Promise.all(offs.map(() => feed.frame()));
    expect(builds).toBe(1);
    expect(new Set(frames).size).toBe(1);
    expect(new TextDecoder().decode(frames[0])).toBe('event: status\ndata: {"version":0}\n\n');

    version = 1;
    for (const l of [...listeners]) l();
    expect(heard).toHaveLength(100);
    const next = await Promise.all(offs.map(() => feed.frame()));
    expect(builds).toBe(2);
    expect(new TextDecoder().decode(next[99])).toContain('"version":1');

    for (const off of offs) off();
    expect(listeners.size).toBe(0);
  });

  it('does not keep a failed build', async () => {
    let fail = true;
    const feed = new StatusFeed({ subscribe: () => () => {}, snapshot: async () => (fail ? Promise.reject(new Error('store down')) : { ok: true }) });
    await expect(feed.frame()).rejects.toThrow('store down');
    fail = false;
    expect(new TextDecoder().decode(await feed.frame())).toContain('"ok":true');
  });
});
