/**
 * Server-sent status events: one loop per connected client, one shared frame for all of them.
 *
 * The daemon emits 'status' many times per rollout (every phase of every instance), so the
 * listener only marks the stream dirty; the loop sends the newest frame when it gets to it,
 * and bursts collapse into one event. The first event goes out at once: it is the client's
 * starting point, and after a reconnect it resynchronises whatever was missed.
 *
 * Under load: the frame (`event: status` + the status JSON) is built and encoded once per
 * change by a StatusFeed and the same bytes are handed to every stream, so 256 clients cost
 * one copy, not 256. Writes are never queued behind a client: once more than
 * `maxBacklogBytes` of what a stream wrote is still unsent (the Node response's writableLength
 * plus what the stream handed over and the response has not taken), the stream writes nothing
 * more — a change waits, and the client gets the newest frame once it has caught up. A client
 * that stays behind for `stallMs` is dropped: its connection closed, its buffers freed. A
 * browser reconnects on its own and resynchronises from the first event.
 */
import type { SSEStreamingApi } from 'hono/streaming';

export interface StatusStreamOptions {
  /** Registers a change listener; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void;
  /** The newest `event: status` frame, encoded (see StatusFeed): the same bytes for every stream. */
  frame(): Promise<Uint8Array>;
  /**
   * Bytes already written to the connection that the client has not taken yet (the Node
   * response's writableLength); the stream adds what it handed over and was not yet written.
   */
  buffered?(): number;
  /** A client that stopped reading is dropped: this closes its connection (and frees its buffers). */
  drop?(): void;
  /** With more than this unsent, the client is behind: nothing more is written to it until it catches up. */
  maxBacklogBytes?: number;
  /** A client behind for this long is dropped. */
  stallMs?: number;
  /** A comment line keeps proxies and browsers from timing the idle stream out. */
  heartbeatMs?: number;
  /** At most one event per this interval; the page fetches its fragment once per event. */
  minIntervalMs?: number;
  /** How long an EventSource waits before reconnecting (sent once, as `retry:`). */
  retryMs?: number;
}

export const HEARTBEAT_MS = 15_000;
/** Unsent bytes past which a client is behind (a frame it has not taken yet, more or less). */
export const MAX_BACKLOG_BYTES = 64 * 1024;
/** How long a client may stay behind before it is dropped: a 2 MB status over a slow link takes seconds, not this. */
export const STALL_MS = 30_000;
/** How often a stream looks again whether a client that is behind has caught up. */
const BACKLOG_CHECK_MS = 250;

const encoder = new TextEncoder();
const HEARTBEAT = encoder.encode(': heartbeat\n\n');

/** `event: status` with the JSON on one data line (JSON.stringify never writes a raw line break). */
export function statusFrame(data: unknown): Uint8Array {
  return encoder.encode(`event: status\ndata: ${JSON.stringify(data)}\n\n`);
}

/**
 * The frame every stream sends, built at most once per change: the first stream that asks
 * after a change builds it, the others get the same promise and the same bytes. The feed holds
 * one subscription to the daemon while any stream listens.
 */
export class StatusFeed {
  private current?: Promise<Uint8Array>;
  private readonly listeners = new Set<() => void>();
  private unsubscribe?: () => void;

  constructor(
    private readonly source: { subscribe(listener: () => void): () => void; snapshot(): Promise<unknown> },
  ) {}

  /** Listeners hear of a change after the feed has forgotten the old frame. */
  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    this.unsubscribe ??= this.source.subscribe(() => {
      this.current = undefined;
      for (const l of [...this.listeners]) l();
    });
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) {
        this.unsubscribe?.();
        this.unsubscribe = undefined;
        this.current = undefined;
      }
    };
  };

  frame = (): Promise<Uint8Array> => {
    const built = (this.current ??= this.source.snapshot().then(statusFrame));
    // A failed build is not kept: the next ask tries again.
    built.catch(() => {
      if (this.current === built) this.current = undefined;
    });
    return built;
  };

  /** Streams listening now. */
  get size(): number {
    return this.listeners.size;
  }
}

/** How a stream ended: the client left (or the server closed it), or it was dropped for not reading. */
export type StreamEnd = 'closed' | 'dropped';

/** Runs until the client goes away (the stream is aborted) or is dropped; always unsubscribes. */
export async function pumpStatus(stream: SSEStreamingApi, opts: StatusStreamOptions): Promise<StreamEnd> {
  const heartbeatMs = opts.heartbeatMs ?? HEARTBEAT_MS;
  const minIntervalMs = opts.minIntervalMs ?? 250;
  const maxBacklog = opts.maxBacklogBytes ?? MAX_BACKLOG_BYTES;
  const stallMs = opts.stallMs ?? STALL_MS;
  let dirty = true;
  let wake: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const poke = () => {
    const w = wake;
    wake = undefined;
    clearTimeout(timer);
    w?.();
  };
  /** Resolves after ms, or earlier when poked (a change, or the client left). */
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      wake = resolve;
      timer = setTimeout(poke, ms);
    });

  /** Handed to the stream and not yet taken by the connection. */
  let pending = 0;
  const send = (bytes: Uint8Array) => {
    pending += bytes.byteLength;
    // StreamingApi.write never rejects; it settles once the response has taken the chunk.
    void stream.write(bytes).then(() => {
      pending -= bytes.byteLength;
    });
  };
  let behindSince: number | undefined;
  /** 'send' when the client has taken (nearly) all it was sent; 'wait' while it is behind; 'drop' when it has been for stallMs. */
  const state = (now: number): 'send' | 'wait' | 'drop' => {
    if (pending + (opts.buffered?.() ?? 0) <= maxBacklog) {
      behindSince = undefined;
      return 'send';
    }
    behindSince ??= now;
    return now - behindSince >= stallMs ? 'drop' : 'wait';
  };

  const unsubscribe = opts.subscribe(() => {
    dirty = true;
    poke();
  });
  stream.onAbort(() => poke());
  let end: StreamEnd = 'closed';
  try {
    let first = true;
    let lastSent = -Infinity;
    let lastWrite = Date.now();
    while (!stream.aborted && !stream.closed) {
      const now = Date.now();
      const s = state(now);
      if (s === 'drop') {
        end = 'dropped';
        opts.drop?.();
        stream.abort();
        break;
      }
      if (s === 'send' && dirty && now >= lastSent + minIntervalMs) {
        dirty = false;
        const frame = await opts.frame();
        if (stream.aborted) break;
        // `retry:` on its own line just before the first frame's lines: one event on the wire.
        if (first) send(encoder.encode(`retry: ${opts.retryMs ?? 3000}\n`));
        send(frame);
        first = false;
        lastSent = lastWrite = Date.now();
        continue;
      }
      if (s === 'send' && now >= lastWrite + heartbeatMs) {
        send(HEARTBEAT);
        lastWrite = now;
        continue;
      }
      // Until a change, the next frame's turn or the heartbeat; while behind, until the next look.
      const next = s === 'wait' ? now + BACKLOG_CHECK_MS : Math.min(lastWrite + heartbeatMs, dirty ? lastSent + minIntervalMs : Infinity);
      await pause(Math.max(0, next - now));
    }
  } finally {
    unsubscribe();
    clearTimeout(timer);
  }
  return end;
}
