/**
 * A local directory as the source of truth: a watcher that turns an editor's burst of
 * events into one callback, and a content hash that stands in for a commit id, so the
 * daemon treats a saved edit like a new revision.
 *
 * Ignored everywhere (watching and hashing alike): .git, node_modules and the litter editors
 * leave — vim swap files and its 4913 probe, backups (*~), emacs lock and autosave files
 * (.#*, #*#), JetBrains safe-write temporaries, .DS_Store.
 */
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { watch as chokidarWatch } from 'chokidar';
import { directoryReader } from '../fs/repo-reader.js';
import type { CommitInfo, FetchResult, FleetSource, SourceCheckout } from '../../engine/ports.js';

const IGNORED_DIRS = new Set(['.git', 'node_modules']);

/** Whether a path (relative to the watched directory, either separator) is ignored. */
export function isIgnoredPath(rel: string): boolean {
  if (rel === '' || rel === '.') return false;
  const parts = rel.split(/[\\/]/).filter((p) => p !== '');
  if (parts.some((p) => IGNORED_DIRS.has(p))) return true;
  const base = parts[parts.length - 1] ?? '';
  return (
    /\.sw[a-p]$/.test(base) || // vim swap files: .swp, .swo, …
    base === '4913' || // vim's probe that the directory is writable
    base.endsWith('~') ||
    base.startsWith('.#') ||
    (base.startsWith('#') && base.endsWith('#')) ||
    base.endsWith('___jb_tmp___') ||
    base.endsWith('___jb_old___') ||
    base === '.DS_Store'
  );
}

export interface WatchOptions {
  /** Quiet time after the last event before onChange runs; default 300 ms. */
  debounceMs?: number;
  /** Under a steady stream of events, run onChange at least this often; default 10 × debounceMs. */
  maxWaitMs?: number;
  /** Events for a file wait until its size has been stable this long (large files being written); default 200 ms, false to turn off. */
  writeStableMs?: number | false;
  /** More paths to ignore (relative to dir): the state directory, when it lives inside. */
  ignore?: (rel: string) => boolean;
  /** Poll instead of inotify (network file systems, some bind mounts). */
  usePolling?: boolean;
  log?: (line: string) => void;
}

export interface ChangeBatch {
  /** Paths relative to dir that changed in this burst, sorted. */
  paths: string[];
}

export interface DirectoryWatcher {
  /** Resolves once the initial scan is done and changes are being seen. */
  ready: Promise<void>;
  /** Stops watching; a pending callback is dropped. Idempotent. */
  close(): Promise<void>;
}

/**
 * Watches dir recursively and calls onChange once per burst of changes. Calls never
 * overlap: changes during a running (async) callback are collected into one more call after it.
 */
export function watchDirectory(dir: string, onChange: (batch: ChangeBatch) => void | Promise<void>, options: WatchOptions = {}): DirectoryWatcher {
  const debounceMs = options.debounceMs ?? 300;
  const maxWaitMs = options.maxWaitMs ?? debounceMs * 10;
  const stable = options.writeStableMs ?? 200;
  const log = options.log ?? (() => {});
  const extra = options.ignore;
  const ignored = (path: string): boolean => {
    const rel = relative(dir, path);
    if (rel.startsWith(`..${sep}`) || rel === '..') return false;
    return isIgnoredPath(rel) || (extra !== undefined && rel !== '' && extra(rel));
  };

  const watcher = chokidarWatch(dir, {
    ignoreInitial: true,
    followSymlinks: false,
    ignored,
    usePolling: options.usePolling ?? false,
    awaitWriteFinish: stable === false ? false : { stabilityThreshold: stable, pollInterval: Math.max(10, Math.min(100, Math.floor(stable / 4))) },
  });

  let pending = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let firstEventAt = 0;
  let running = false;
  let closed = false;

  const fire = (): void => {
    timer = undefined;
    if (closed || pending.size === 0) return;
    if (running) return; // picked up when the running call ends
    const batch = { paths: [...pending].sort() };
    pending = new Set();
    running = true;
    void (async () => {
      try {
        await onChange(batch);
      } catch (err) {
        log(`watch: onChange failed: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        running = false;
        if (pending.size > 0 && !closed) schedule();
      }
    })();
  };

  const schedule = (): void => {
    if (closed) return;
    const now = Date.now();
    if (timer === undefined) firstEventAt = now;
    else clearTimeout(timer);
    // Debounce, but never past maxWaitMs from the burst's first event.
    const wait = Math.max(0, Math.min(debounceMs, firstEventAt + maxWaitMs - now));
    timer = setTimeout(fire, wait);
  };

  watcher.on('all', (_event, path) => {
    if (closed) return;
    pending.add(relative(dir, path).split(sep).join('/'));
    schedule();
  });
  watcher.on('error', (err) => log(`watch: ${err instanceof Error ? err.message : String(err)}`));

  const ready = new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  return {
    ready,
    async close() {
      if (closed) return;
      closed = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      await watcher.close();
    },
  };
}

export interface DirectorySourceOptions {
  /** Sub-directory holding fleet.yaml; the revision covers only it. */
  path?: string;
  /** More paths to ignore, relative to the fleet directory (e.g. a state dir inside it). */
  ignore?: (rel: string) => boolean;
  /** Refuse directories bigger than this: they are not fleets. Defaults: 20,000 files, 512 MiB. */
  maxFiles?: number;
  maxBytes?: number;
  watch?: Omit<WatchOptions, 'ignore'>;
}

export interface DirectoryRevision {
  /** sha256 (hex) over every file's path and content (links: their target), ignored files left out. */
  revision: string;
  files: number;
  bytes: number;
  /** The newest modification time among the files, ISO 8601; undefined for an empty directory. */
  modified?: string;
}

/** The content hash of a directory: its "revision". Bounded by maxFiles and maxBytes. */
export async function directoryRevision(dir: string, options: Pick<DirectorySourceOptions, 'ignore' | 'maxFiles' | 'maxBytes'> = {}): Promise<DirectoryRevision> {
  const maxFiles = options.maxFiles ?? 20_000;
  const maxBytes = options.maxBytes ?? 512 * 1024 * 1024;
  const entries: { rel: string; abs: string; link: boolean }[] = [];
  // Directories still to read; symbolic links are hashed as links, never followed, so this ends.
  const queue: string[] = [''];
  while (queue.length > 0) {
    const relDir = queue.pop()!;
    const items = await readdir(join(dir, relDir), { withFileTypes: true });
    for (const item of items) {
      const rel = relDir === '' ? item.name : `${relDir}/${item.name}`;
      if (isIgnoredPath(rel) || options.ignore?.(rel)) continue;
      if (item.isDirectory()) queue.push(rel);
      else if (item.isFile() || item.isSymbolicLink()) {
        entries.push({ rel, abs: join(dir, rel), link: item.isSymbolicLink() });
        if (entries.length > maxFiles) throw new Error(`${dir} holds more than ${maxFiles} files: not a fleet directory`);
      }
    }
  }
  entries.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  const hash = createHash('sha256');
  let bytes = 0;
  let newest = 0;
  for (const e of entries) {
    const st = await lstat(e.abs).catch(() => undefined);
    if (!st) continue; // deleted while we looked: the watcher will report it
    newest = Math.max(newest, st.mtimeMs);
    if (e.link) {
      const target = await readlink(e.abs).catch(() => '');
      hash.update(`L\0${e.rel}\0${target}\0`);
      continue;
    }
    const content = await readFile(e.abs).catch(() => undefined);
    if (!content) continue;
    bytes += content.length;
    if (bytes > maxBytes) throw new Error(`${dir} holds more than ${maxBytes} bytes: not a fleet directory`);
    hash.update(`F\0${e.rel}\0${content.length}\0`);
    hash.update(content);
  }
  return { revision: hash.digest('hex'), files: entries.length, bytes, modified: newest > 0 ? new Date(newest).toISOString() : undefined };
}

export interface DirectorySource extends FleetSource {
  readonly kind: 'directory';
  /** Its commit is made up: the content hash, author "local", the newest file's time. */
  checkout(revision: string): Promise<SourceCheckout & { commit: CommitInfo }>;
  watch(onChange: () => void): DirectoryWatcher;
}

/**
 * A local directory as a FleetSource. fetch() hashes it; checkout() reads it in place. It is
 * live: when it changed after fetch(), checkout's commit.revision is what it holds now, and
 * the watcher fires again so the next pass sees it.
 */
export function directorySource(dir: string, options: DirectorySourceOptions = {}): DirectorySource {
  const path = (options.path ?? '').replace(/^\/+|\/+$/g, '');
  if (path.split('/').includes('..')) throw new Error(`path ${path}: must stay inside ${dir}`);
  const fleetDir = path === '' ? dir : join(dir, path);
  const hashOptions = { ignore: options.ignore, maxFiles: options.maxFiles, maxBytes: options.maxBytes };
  let last: string | undefined;

  return {
    kind: 'directory',
    describe: () => fleetDir,
    async fetch(): Promise<FetchResult> {
      const { revision } = await directoryRevision(fleetDir, hashOptions);
      const previous = last;
      last = revision;
      return { revision, changed: revision !== previous, previous };
    },
    async checkout(_revision: string): Promise<SourceCheckout & { commit: CommitInfo }> {
      const now = await directoryRevision(fleetDir, hashOptions);
      const commit: CommitInfo = {
        revision: now.revision,
        author: 'local',
        email: '',
        message: `local directory ${fleetDir}`,
        date: now.modified ?? new Date(0).toISOString(),
      };
      return { dir, fleetDir, reader: directoryReader(fleetDir), commit };
    },
    watch(onChange: () => void): DirectoryWatcher {
      return watchDirectory(fleetDir, () => onChange(), { ...options.watch, ignore: options.ignore });
    },
  };
}
