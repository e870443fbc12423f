/**
 * A colour's Node-RED log, for `tower logs`: read from the process driver's node-red.log or
 * from Docker's container log, cut into lines, and redacted before anyone sees a line.
 *
 * What is redacted is what the colour was given in secret, read from where the driver keeps
 * it (not from the fleet repository, which `tower logs` may not have, nor from Tower's
 * environment, which may not be the daemon's): the values of its env variables that fleet.yaml
 * gave by reference (the caller names them: `secretEnv`) or whose names look secret (SECRET_NAME),
 * its node credentials (flows_cred.json, decrypted with the state dir's credentialSecret — the
 * broker's login too, which reaches instances that way), the credentialSecret itself, what the
 * caller adds (`secrets`: the admin password), and the password of any URL (scheme://user:pw@).
 * Each in the encodings it travels in (core/redact.ts), and each line of a multi-line one.
 * A colour whose credentials cannot be read is not shown: its lines could not be redacted.
 *
 * Lines are bounded: one longer than MAX_LINE_CHARS is cut (after redaction; a secret longer
 * than the margin read past the cut could show in part). Reading is bounded as well: the last
 * lines of a file are found by scanning back from its end, then streamed, never held whole.
 */
import { promises as fs } from 'node:fs';
import type Dockerode from 'dockerode';
import { SECRET_NAME, redactor } from '../../core/redact.js';
import { decryptCredentials } from './credentials.js';
import { RuntimeError, type RuntimeDriver } from './types.js';

export type LogRequest = Parameters<RuntimeDriver['logs']>[1];

/** The most `--lines` may ask for. */
export const MAX_LOG_LINES = 10_000;
/** A line longer than this is cut. */
export const MAX_LINE_CHARS = 64 * 1024;
/** Bytes read of a line before it is cut: the cut line plus room to find a secret that crosses the cut. */
const MAX_LINE_BYTES = MAX_LINE_CHARS + 8 * 1024;
const CHUNK = 64 * 1024;
const POLL_MS = 200;

/** A line as read: `cut` when it went on past MAX_LINE_BYTES (the rest, up to its newline, is dropped). */
export interface Line {
  text: string;
  cut?: boolean;
}

/** What the driver knows of a colour's secrets; see the header for what becomes of each. */
export interface ColorSecrets {
  /** The environment the colour runs with, secrets resolved. */
  env: Record<string, string>;
  /** Its node credentials as Node-RED stores them (node id → field → value). */
  credentials?: Record<string, unknown>;
  credentialSecret?: string | undefined;
  secretEnv?: readonly string[] | undefined;
  secrets?: readonly string[] | undefined;
}

/** One function that takes every secret of a colour out of a text. */
export function colorRedactor(s: ColorSecrets): (text: string) => string {
  const values: string[] = [...(s.secrets ?? [])];
  if (s.credentialSecret) values.push(s.credentialSecret);
  const named = new Set(s.secretEnv ?? []);
  for (const [name, value] of Object.entries(s.env)) {
    // By name only, "true" or "8080" would redact every such word: a guess must look like a secret.
    if (named.has(name) || (SECRET_NAME.test(name) && value.length >= 6 && !/^(true|false|yes|no|on|off|[0-9.]+)$/i.test(value))) values.push(value);
  }
  stringsIn(s.credentials, values, 0);
  // A multi-line secret (a PEM key) is written a line at a time: each of its lines counts too.
  const all = values.flatMap((v) => (v.includes('\n') ? [v, ...v.split(/\r?\n/).map((l) => l.trim())] : [v]));
  const redact = redactor(all);
  return (text) => maskUrlPasswords(redact(text));
}

/** scheme://user:password@ anywhere in a text: the password becomes [redacted]. */
export function maskUrlPasswords(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/[^/?#:@\s]*):([^/?#@\s]+)@/gi, '$1:[redacted]@');
}

/** A container's Env (NAME=value, as Docker lists it) as a map. */
export function envOfList(list: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of list) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

function stringsIn(value: unknown, out: string[], depth: number): void {
  if (typeof value === 'string') out.push(value);
  else if (depth < 8 && typeof value === 'object' && value !== null) for (const v of Object.values(value)) stringsIn(v, out, depth + 1);
}

/**
 * A colour's node credentials from its flows_cred.json: {} when it has none; an error when the
 * file is there but cannot be read or decrypted (then nothing could redact them). Node-RED
 * rewrites the file on a deploy: a half-written one is read again once.
 */
export async function readColorCredentials(file: string, credentialSecret: string | undefined): Promise<Record<string, unknown>> {
  for (let attempt = 0; ; attempt++) {
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new RuntimeError(`cannot read ${file} to redact the colour's credentials: ${(err as Error).message}`, 'CredentialsUnreadable');
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const credentials = parsed === undefined ? undefined : decryptCredentials(credentialSecret, parsed);
    if (credentials) return credentials;
    if (attempt > 0) throw new RuntimeError(`cannot decrypt ${file} with the state directory's credentialSecret, so the colour's credentials could not be redacted: its log is not shown`, 'CredentialsUnreadable');
    await sleep(100);
  }
}

/** The colour's lines, redacted and bounded: what a driver's logs() yields. */
export async function* redactedLines(lines: AsyncIterable<Line>, redact: (text: string) => string): AsyncGenerator<string> {
  for await (const line of lines) {
    const text = redact(line.text);
    yield line.cut || text.length > MAX_LINE_CHARS ? `${text.slice(0, MAX_LINE_CHARS)} … (line cut at ${MAX_LINE_CHARS.toLocaleString('en-US')} characters)` : text;
  }
}

/** Bytes in, lines out; a line that grows past MAX_LINE_BYTES is given cut, and the rest of it skipped. */
export class LineSplitter {
  #pending: Buffer[] = [];
  #bytes = 0;
  #skipping = false;

  push(chunk: Buffer): Line[] {
    const out: Line[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(0x0a, start); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      if (this.#skipping) this.#skipping = false;
      else out.push({ text: this.#take(chunk.subarray(start, nl)) });
      start = nl + 1;
    }
    if (start < chunk.length && !this.#skipping) {
      // Copied: the caller may reuse its buffer.
      this.#pending.push(Buffer.from(chunk.subarray(start)));
      this.#bytes += chunk.length - start;
      if (this.#bytes > MAX_LINE_BYTES) {
        out.push({ text: this.#take(Buffer.alloc(0)).slice(0, MAX_LINE_BYTES), cut: true });
        this.#skipping = true;
      }
    }
    return out;
  }

  /** The last line, when the text did not end with a newline. */
  flush(): Line | undefined {
    if (this.#skipping || this.#bytes === 0) return undefined;
    return { text: this.#take(Buffer.alloc(0)) };
  }

  reset(): void {
    this.#pending = [];
    this.#bytes = 0;
    this.#skipping = false;
  }

  #take(tail: Buffer): string {
    const bytes = this.#pending.length ? Buffer.concat([...this.#pending, tail]) : tail;
    this.#pending = [];
    this.#bytes = 0;
    return bytes.toString('utf8').replace(/\r$/, '');
  }
}

export interface TailOptions {
  lines: number;
  follow?: boolean | undefined;
  signal?: AbortSignal | undefined;
  /** Whether anything may still write to the file: following ends, after a last read, when not. */
  running(): Promise<boolean>;
}

/**
 * The last `lines` lines of a file; with follow, then every line appended, until the signal
 * aborts or `running` says no more will come. A file replaced (the colour created again) or
 * found shorter than what was read is read from its start (as with tail -f, a truncation
 * followed by more than was read, between two looks, goes unseen); a file not there yet is
 * waited for.
 */
export async function* tailFile(file: string, opts: TailOptions): AsyncGenerator<Line> {
  const splitter = new LineSplitter();
  let fh: fs.FileHandle | undefined;
  let ino = -1;
  let offset = 0;
  try {
    fh = await fs.open(file, 'r').catch(() => undefined);
    if (fh) {
      const st = await fh.stat();
      ino = st.ino;
      offset = await startOfLastLines(fh, st.size, opts.lines);
      yield* readRange(fh, offset, st.size, splitter);
      offset = st.size;
    }
    while (opts.follow && !opts.signal?.aborted) {
      const st = await fs.stat(file).catch(() => undefined);
      if (st && (st.ino !== ino || st.size < offset)) {
        await fh?.close();
        fh = await fs.open(file, 'r').catch(() => undefined);
        ino = fh ? (await fh.stat()).ino : -1;
        offset = 0;
        splitter.reset();
      }
      const size = fh ? (await fh.stat()).size : 0;
      if (fh && size > offset) {
        yield* readRange(fh, offset, size, splitter);
        offset = size;
        continue;
      }
      if (!(await opts.running())) {
        // What it wrote before it stopped.
        const last = fh ? (await fh.stat()).size : 0;
        if (fh && last > offset) yield* readRange(fh, offset, last, splitter);
        break;
      }
      await sleep(POLL_MS, opts.signal);
    }
    if (!opts.signal?.aborted) {
      const rest = splitter.flush();
      if (rest) yield rest;
    }
  } finally {
    await fh?.close();
  }
}

/** Where the last `n` lines of the first `size` bytes begin (the newline that ends the last line starts none). */
async function startOfLastLines(fh: fs.FileHandle, size: number, n: number): Promise<number> {
  const buf = Buffer.alloc(CHUNK);
  let seen = 0;
  for (let end = size; end > 0; ) {
    const pos = Math.max(0, end - CHUNK);
    const { bytesRead } = await fh.read(buf, 0, end - pos, pos);
    for (let i = bytesRead - 1; i >= 0; i--) {
      if (buf[i] !== 0x0a || pos + i === size - 1) continue;
      if (++seen === n) return pos + i + 1;
    }
    end = pos;
  }
  return 0;
}

/** The lines completed by bytes [from, to), read a chunk at a time. */
async function* readRange(fh: fs.FileHandle, from: number, to: number, splitter: LineSplitter): AsyncGenerator<Line> {
  const buf = Buffer.alloc(CHUNK);
  for (let pos = from; pos < to; ) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(CHUNK, to - pos), pos);
    if (bytesRead === 0) break;
    yield* splitter.push(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
}

/**
 * A container's log as lines: `tail` lines, then with follow every new one until the signal
 * aborts or the container stops (Docker ends the stream). Without a TTY, Docker multiplexes
 * stdout and stderr in frames (8-byte header: stream, 0, 0, 0, length big-endian); each stream
 * is cut into lines on its own, so that a line of one never splices into a line of the other.
 */
export async function* dockerLogLines(container: Dockerode.Container, opts: { lines: number; follow: boolean; signal?: AbortSignal | undefined; tty: boolean }): AsyncGenerator<Line> {
  const splitters = new Map<number, LineSplitter>();
  let frames: Buffer = Buffer.alloc(0);
  const take = (chunk: Buffer): Line[] => {
    if (opts.tty) return splitterOf(splitters, 1).push(chunk);
    frames = frames.length ? Buffer.concat([frames, chunk]) : chunk;
    const out: Line[] = [];
    while (frames.length >= 8) {
      const length = frames.readUInt32BE(4);
      if (frames.length < 8 + length) break;
      out.push(...splitterOf(splitters, frames[0]!).push(frames.subarray(8, 8 + length)));
      frames = frames.subarray(8 + length);
    }
    return out;
  };
  const base = { stdout: true, stderr: true, tail: opts.lines };
  const failed = (err: unknown) => new RuntimeError(`docker: logs of ${container.id} failed: ${err instanceof Error ? err.message : String(err)}`, 'DockerError', { cause: err });
  if (!opts.follow) {
    for (const line of take(await container.logs({ ...base, follow: false }).catch((err: unknown) => Promise.reject(failed(err))))) yield line;
  } else {
    const stream = (await container.logs({ ...base, follow: true, ...(opts.signal ? { abortSignal: opts.signal } : {}) }).catch((err: unknown) => Promise.reject(failed(err)))) as NodeJS.ReadableStream & { destroy(): void };
    const stop = () => stream.destroy();
    opts.signal?.addEventListener('abort', stop, { once: true });
    try {
      for await (const chunk of stream) for (const line of take(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk))) yield line;
    } catch (err) {
      if (!opts.signal?.aborted) throw err;
    } finally {
      opts.signal?.removeEventListener('abort', stop);
      stream.destroy();
    }
    if (opts.signal?.aborted) return;
  }
  for (const s of splitters.values()) {
    const rest = s.flush();
    if (rest) yield rest;
  }
}

function splitterOf(splitters: Map<number, LineSplitter>, stream: number): LineSplitter {
  let s = splitters.get(stream);
  if (!s) splitters.set(stream, (s = new LineSplitter()));
  return s;
}

/** Resolves after ms, or at once when the signal aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
