/**
 * Reads server-sent events from a response body, frame by frame, each read bounded by a
 * timeout (a stream that never sends must fail the test, not hang it).
 */
export interface SseFrame {
  event?: string;
  data?: string;
  retry?: number;
  /** Comment lines (": heartbeat"), without the colon. */
  comments: string[];
}

export class SseReader {
  private buffer = '';
  private pending?: ReturnType<ReadableStreamDefaultReader<Uint8Array>['read']>;
  private readonly decoder = new TextDecoder();
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;

  constructor(body: ReadableStream<Uint8Array>) {
    this.reader = body.getReader();
  }

  /** The next frame; throws when none arrives within timeoutMs or the stream ends. */
  async next(timeoutMs: number): Promise<SseFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const end = this.buffer.indexOf('\n\n');
      if (end >= 0) {
        const raw = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        return parse(raw);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no SSE frame within ${timeoutMs} ms (buffered: ${JSON.stringify(this.buffer)})`);
      // A read that timed out stays pending and is awaited again: no chunk is lost.
      this.pending ??= this.reader.read();
      let timer: NodeJS.Timeout | undefined;
      const result = await Promise.race([this.pending, new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), left)))]);
      clearTimeout(timer);
      if (result === 'timeout') continue;
      this.pending = undefined;
      if (result.done) throw new Error(`the event stream ended (buffered: ${JSON.stringify(this.buffer)})`);
      this.buffer += this.decoder.decode(result.value, { stream: true });
    }
  }

  /** The next frame that carries an event (skipping heartbeats). */
  async nextEvent(timeoutMs: number): Promise<SseFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frame = await this.next(Math.max(deadline - Date.now(), 1));
      if (frame.event !== undefined || frame.data !== undefined) return frame;
    }
  }

  /** Every frame that arrives within ms (none is fine). */
  async collect(ms: number): Promise<SseFrame[]> {
    const frames: SseFrame[] = [];
    const deadline = Date.now() + ms;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return frames;
      try {
        frames.push(await this.next(left));
      } catch (err) {
        if (/no SSE frame within/.test((err as Error).message)) return frames;
        throw err;
      }
    }
  }

  async cancel(): Promise<void> {
    await this.reader.cancel().catch(() => undefined);
  }
}

function parse(raw: string): SseFrame {
  const frame: SseFrame = { comments: [] };
  for (const line of raw.split('\n')) {
    if (line.startsWith(':')) frame.comments.push(line.slice(1).trim());
    else if (line.startsWith('event: ')) frame.event = line.slice(7);
    else if (line.startsWith('data: ')) frame.data = frame.data === undefined ? line.slice(6) : `${frame.data}\n${line.slice(6)}`;
    else if (line.startsWith('retry: ')) frame.retry = Number(line.slice(7));
  }
  return frame;
}
