/**
 * Bodies from senders nobody has verified yet (the webhook's, before its signature is
 * checked): how many may be received at once, how many bytes they may hold together, and how
 * long one may take. Anyone who can reach the port can send them, so each bound is what keeps
 * eighty slow 25 MB uploads from holding two gigabytes: a sender beyond the count or the
 * budget is refused before a byte of its body is read, and one that takes too long is cut.
 */

export interface UploadLimits {
  /** Unverified bodies received at once; more get 503 before their body is read. */
  concurrent: number;
  /** Bytes all unverified bodies may hold together (declared lengths are reserved up front). */
  budgetBytes: number;
  /** One body's bytes (GitHub caps its payloads at 25 MB). */
  maxBytes: number;
  /** From the request's arrival until its last byte. */
  deadlineMs: number;
}

export type Admission = { ok: true; slot: UploadSlot } | { ok: false; why: 'busy' };

/** One admitted upload: it reserves bytes as they come and gives everything back once released. */
export interface UploadSlot {
  /** Reserves n more bytes; false when the shared budget cannot hold them. */
  reserve(n: number): boolean;
  release(): void;
}

/** The shared count and byte budget of unverified uploads. */
export class UploadGate {
  private active = 0;
  private reserved = 0;

  constructor(readonly limits: UploadLimits) {}

  /** Takes a place, reserving the declared length when there is one. */
  admit(declared: number | undefined): Admission {
    if (this.active >= this.limits.concurrent) return { ok: false, why: 'busy' };
    if (declared !== undefined && this.reserved + declared > this.limits.budgetBytes) return { ok: false, why: 'busy' };
    this.active++;
    let mine = 0;
    let released = false;
    const take = (n: number): boolean => {
      if (released) return false;
      if (this.reserved + n > this.limits.budgetBytes) return false;
      this.reserved += n;
      mine += n;
      return true;
    };
    if (declared !== undefined) take(declared);
    let received = 0;
    return {
      ok: true,
      slot: {
        // What was declared was reserved up front: only bytes beyond it take more.
        reserve: (n) => {
          received += n;
          return received <= mine || take(received - mine);
        },
        release: () => {
          if (released) return;
          released = true;
          this.active--;
          this.reserved -= mine;
        },
      },
    };
  }

  /** Unverified uploads being received now, and the bytes reserved for them. */
  get usage(): { active: number; reservedBytes: number } {
    return { active: this.active, reservedBytes: this.reserved };
  }
}

/** The body as it arrived, in chunks: joined only once someone needs it whole (after its signature checked out). */
export type BodyRead = { ok: true; chunks: Uint8Array[]; size: number } | { ok: false; why: 'too-large' | 'over-budget' | 'timeout' | 'failed' };

/**
 * Reads a request body chunk by chunk into memory, never past `maxBytes` or the slot's budget,
 * and gives up at `deadline` (a Date.now() timestamp). Stops reading at the first bound it
 * hits; what was read is let go. `onChunk` sees each chunk as it arrives (a running HMAC).
 */
export async function readBounded(body: ReadableStream<Uint8Array> | null, slot: UploadSlot, maxBytes: number, deadline: number, onChunk?: (chunk: Uint8Array) => void): Promise<BodyRead> {
  if (!body) return { ok: true, chunks: [], size: 0 };
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), Math.max(0, deadline - Date.now()));
  });
  const stop = (why: Exclude<BodyRead, { ok: true }>['why']): BodyRead => {
    chunks.length = 0;
    // Not awaited: cancelling a stalled upload's stream must not hold the answer back.
    reader.cancel().catch(() => undefined);
    return { ok: false, why };
  };
  try {
    for (;;) {
      const next = await Promise.race([reader.read(), timeout]).catch(() => 'failed' as const);
      if (next === 'timeout' || next === 'failed') return stop(next);
      if (next.done) break;
      size += next.value.byteLength;
      if (size > maxBytes) return stop('too-large');
      if (!slot.reserve(next.value.byteLength)) return stop('over-budget');
      onChunk?.(next.value);
      chunks.push(next.value);
    }
  } finally {
    clearTimeout(timer);
  }
  return { ok: true, chunks, size };
}
