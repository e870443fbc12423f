/**
 * The fleet repository as a Git remote: a source of truth the daemon polls (or is poked by a
 * webhook) and checks out revision by revision.
 *
 * Layout of workDir (a cache in the state dir; delete it and it is rebuilt):
 *   mirror.git/                 bare, blobless (partial clone, --filter=blob:none), one branch:
 *                               every fetch moves only the new commits and trees; blobs come on
 *                               demand when a revision is checked out
 *   checkouts/<commit>/         a plain, complete tree of that commit, no .git; made in a
 *                               temp dir and renamed into place, so one that exists is whole;
 *                               the most recently used few are kept, older ones removed
 *
 * Servers without partial-clone support (file:// and plain paths by default) get a full
 * fetch instead; git says so with a warning and carries on.
 *
 * How git runs (timeout, environment, credentials) and what its failures mean (typed errors:
 * transient or stalled) is git-process.ts.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join, posix, resolve } from 'node:path';
import type { CommitInfo, FetchResult, FleetSource, SourceCheckout } from '../../engine/ports.js';
import { directoryReader } from '../fs/repo-reader.js';
import { hasControlChars, parseGitUrl, type GitCredentials, type GitRemote } from './git-credentials.js';
import { GitNotFoundError, gitRunner, GitSourceError } from './git-process.js';

export { classify, GitAuthError, GitNotFoundError, GitSourceError, GitUnreachableError, type GitErrorReason } from './git-process.js';

export interface GitSourceOptions {
  /** https://, http://, ssh://, git@host:path, git://, file:// or a path. */
  url: string;
  branch?: string;
  /** Sub-directory holding fleet.yaml; default the top of the repository. */
  path?: string;
  /** A cache directory (in the state dir), owned by this source. */
  workDir: string;
  /** Read nothing from the environment by itself: pass credentialsFromEnv() to use GIT_TOKEN etc. */
  credentials?: GitCredentials;
  log?: (line: string) => void;
  /** Each git command is killed after this long without output; default 60 s. */
  timeoutMs?: number;
  /** Fetch only this many commits of history (shallow); default the whole history (it is blobless). */
  depth?: number;
  /** Checkouts kept on disk, most recently used first; default 3. */
  keepCheckouts?: number;
}

export interface GitSource extends FleetSource {
  readonly kind: 'git';
  readonly branch: string;
  readonly path: string;
  /** A Git checkout always names its commit. */
  checkout(revision: string): Promise<SourceCheckout & { commit: CommitInfo }>;
  /** Commits after `from` up to and including `to`, newest first, at most `max` (default 100). */
  revisionsBetween(from: string, to: string, max?: number): Promise<CommitInfo[]>;
}

const HEX = /^[0-9a-f]{4,64}$/i;
const FULL_HEX = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/i;

export function gitSource(options: GitSourceOptions): GitSource {
  const branch = options.branch ?? 'main';
  // Absolute: git runs with its cwd in workDir and GIT_DIR pointing into it.
  const workDir = resolve(options.workDir);
  const mirror = join(workDir, 'mirror.git');
  const checkouts = join(workDir, 'checkouts');
  const log = options.log ?? (() => {});
  const timeoutMs = options.timeoutMs ?? 60_000;
  const keep = Math.max(1, options.keepCheckouts ?? 3);
  const ref = `refs/remotes/origin/${branch}`;

  let remote: GitRemote;
  try {
    remote = parseGitUrl(options.url);
  } catch (err) {
    throw new GitSourceError(err instanceof Error ? err.message : String(err), { reason: 'InvalidConfig', url: '(invalid)', branch });
  }
  const display = remote.display;
  const invalid = (message: string) => new GitSourceError(message, { reason: 'InvalidConfig', url: display, branch });
  if (!validBranch(branch)) throw invalid(`not a valid branch name: ${JSON.stringify(branch)}`);
  const subPath = normalizeSubPath(options.path ?? '');
  if (subPath === undefined) throw invalid(`path must be a relative path inside the repository, not ${JSON.stringify(options.path)}`);
  const path: string = subPath;
  if (options.depth !== undefined && !(Number.isInteger(options.depth) && options.depth > 0)) throw invalid('depth must be a positive integer');
  const where = `branch "${branch}" of ${display}`;
  const git = gitRunner({ workDir, remote, branch, where, credentials: options.credentials, timeoutMs });

  let prepared = false;
  // Last revision whose path was checked, so an unchanged fetch costs no extra command.
  let pathChecked: string | undefined;

  const mirrorEnv = { GIT_DIR: mirror };

  async function prepare(): Promise<void> {
    if (prepared) return;
    await mkdir(workDir, { recursive: true, mode: 0o700 });
    if (!existsSync(join(mirror, 'HEAD'))) {
      // Made aside and renamed into place, so a mirror with a HEAD is a configured one.
      const tmp = `${mirror}.tmp-${randomBytes(4).toString('hex')}`;
      try {
        await git(['init', '--bare', '--quiet', tmp], 'git init');
        // The whole config at once: one `git config` per key would cost a process (and
        // simple-git's 50 ms wait for a silent one) each.
        await writeFile(join(tmp, 'config'), mirrorConfig(remote.url), { mode: 0o600 });
        await rm(mirror, { recursive: true, force: true });
        await rename(tmp, mirror);
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
      log(`git: new cache for ${display} in ${mirror}`);
    } else {
      const current = (await git(['config', '--get', 'remote.origin.url'], 'git config', mirrorEnv).catch(() => '')).trim();
      if (current !== remote.url) {
        await git(['config', 'remote.origin.url', remote.url], 'git config', mirrorEnv);
        log(`git: cache now fetches from ${display}`);
      }
    }
    // Leftovers of a checkout interrupted by a crash.
    for (const name of await readdir(checkouts).catch(() => [] as string[])) {
      if (name.startsWith('.tmp-')) await rm(join(checkouts, name), { recursive: true, force: true });
    }
    prepared = true;
  }

  async function revParse(rev: string): Promise<string | undefined> {
    try {
      const out = (await git(['rev-parse', '--verify', '--quiet', `${rev}^{commit}`], 'git rev-parse', mirrorEnv)).trim();
      return out === '' ? undefined : out;
    } catch {
      return undefined;
    }
  }

  async function assertPath(revision: string): Promise<void> {
    if (path === '' || pathChecked === revision) return;
    // Trees are in the blobless mirror, so this needs no network.
    const type = (await git(['cat-file', '-t', `${revision}:${path}`], 'git cat-file', mirrorEnv).catch(() => '')).trim();
    if (type !== 'tree') {
      throw new GitNotFoundError(`path "${path}" is not a directory at ${revision.slice(0, 12)} on ${where}`, {
        reason: 'PathNotFound', url: display, branch,
      });
    }
    pathChecked = revision;
  }

  async function fetch(): Promise<FetchResult> {
    await prepare();
    const previous = await revParse(ref);
    const started = Date.now();
    // --verbose: a fetch with nothing new is otherwise silent, and simple-git waits 50 ms
    // more for a process that printed nothing.
    // --progress: the timeout counts time without output, so a long fetch that is moving
    // is not killed, and a stalled one is.
    const args = ['fetch', '--verbose', '--progress', '--no-tags', '--no-write-fetch-head', '--filter=blob:none'];
    if (options.depth !== undefined) args.push(`--depth=${options.depth}`);
    args.push('origin', `+refs/heads/${branch}:${ref}`);
    await git(args, 'git fetch', mirrorEnv);
    // Not revParse: after a successful fetch the ref exists, and any failure here is a real one.
    const revision = (await git(['rev-parse', '--verify', `${ref}^{commit}`], 'git rev-parse', mirrorEnv)).trim();
    await assertPath(revision);
    const changed = revision !== previous;
    log(`git: ${where} at ${revision.slice(0, 12)}${changed ? (previous ? ` (was ${previous.slice(0, 12)})` : ' (first fetch)') : ' (unchanged)'} in ${Date.now() - started} ms`);
    return { revision, changed, previous };
  }

  async function resolveRevision(revision: string): Promise<string> {
    if (!HEX.test(revision)) {
      throw new GitNotFoundError(`not a commit id: ${JSON.stringify(revision.slice(0, 80))}`, { reason: 'RevisionNotFound', url: display, branch });
    }
    let full = await revParse(revision);
    if (full === undefined && FULL_HEX.test(revision)) {
      // Not on the branch we fetch (a pull request's head, say): ask for it by id.
      await git(['fetch', '--no-tags', '--no-write-fetch-head', '--filter=blob:none', 'origin', revision], 'git fetch', mirrorEnv).catch(() => undefined);
      full = await revParse(revision);
    }
    if (full === undefined) {
      throw new GitNotFoundError(`revision ${revision} does not exist in ${display}`, { reason: 'RevisionNotFound', url: display, branch });
    }
    return full;
  }

  async function commitInfo(revision: string): Promise<CommitInfo> {
    const out = await git(['log', '-1', '--no-show-signature', `--format=${LOG_FORMAT}`, revision, '--'], 'git log', mirrorEnv);
    const info = parseLog(out)[0];
    if (!info) throw new GitSourceError(`git log printed nothing for ${revision}`, { reason: 'GitFailed', url: display, branch });
    return info;
  }

  async function checkout(revision: string): Promise<SourceCheckout & { commit: CommitInfo }> {
    await prepare();
    const full = await resolveRevision(revision);
    await assertPath(full);
    const dir = join(checkouts, full);
    if (existsSync(dir)) {
      const now = new Date();
      await utimes(dir, now, now).catch(() => undefined);
    } else {
      await mkdir(checkouts, { recursive: true });
      const tmp = join(checkouts, `.tmp-${full}-${randomBytes(4).toString('hex')}`);
      const index = `${tmp}.index`;
      await mkdir(tmp);
      try {
        // A private index and work tree: the mirror stays bare, and missing blobs are
        // fetched in one batch.
        await git(['read-tree', '-u', '--reset', full], 'git read-tree', { ...mirrorEnv, GIT_WORK_TREE: tmp, GIT_INDEX_FILE: index });
        await rename(tmp, dir).catch(async (err: NodeJS.ErrnoException) => {
          if (!existsSync(dir)) throw err;
        });
      } finally {
        await rm(tmp, { recursive: true, force: true });
        await rm(index, { force: true });
      }
    }
    const fleetDir = path === '' ? dir : join(dir, ...path.split('/'));
    if (!isDirectory(fleetDir)) {
      throw new GitNotFoundError(`path "${path}" is not a directory at ${full.slice(0, 12)} on ${where}`, { reason: 'PathNotFound', url: display, branch });
    }
    const commit = await commitInfo(full);
    await pruneCheckouts(full);
    return { dir, fleetDir, reader: directoryReader(fleetDir), commit };
  }

  async function pruneCheckouts(current: string): Promise<void> {
    const names = (await readdir(checkouts).catch(() => [] as string[])).filter((n) => FULL_HEX.test(n) && n !== current);
    const dated = await Promise.all(names.map(async (n) => ({ n, t: (await stat(join(checkouts, n)).catch(() => undefined))?.mtimeMs ?? 0 })));
    dated.sort((a, b) => b.t - a.t);
    for (const { n } of dated.slice(keep - 1)) {
      await rm(join(checkouts, n), { recursive: true, force: true });
      log(`git: removed old checkout ${n.slice(0, 12)}`);
    }
  }

  async function revisionsBetween(from: string, to: string, max = 100): Promise<CommitInfo[]> {
    await prepare();
    const head = await resolveRevision(to);
    const base = HEX.test(from) ? await revParse(from) : undefined;
    const range = base === undefined ? head : `${base}..${head}`;
    const limit = Math.max(1, Math.min(Math.floor(max), 10_000));
    const out = await git(['log', `--max-count=${limit}`, '--no-show-signature', `--format=${LOG_FORMAT}%x1e`, range, '--'], 'git log', mirrorEnv);
    return parseLog(out);
  }

  // One operation at a time: fetch and checkout share the mirror and its refs.
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = chain.then(fn, fn);
    chain = next.catch(() => undefined);
    return next;
  };

  const described = path === '' ? `${display}#${branch}` : `${display}#${branch}:${path}`;
  return {
    kind: 'git',
    describe: () => described,
    branch,
    path,
    fetch: () => serial(fetch),
    checkout: (revision: string) => serial(() => checkout(revision)),
    revisionsBetween: (from: string, to: string, max?: number) => serial(() => revisionsBetween(from, to, max)),
  };
}

/** The mirror's config: bare, a partial clone of origin (blobless), housekeeping in the foreground. */
function mirrorConfig(url: string): string {
  const quoted = `"${url.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  return [
    '[core]',
    '\trepositoryformatversion = 1',
    '\tbare = true',
    '[extensions]',
    '\tpartialClone = origin',
    '[remote "origin"]',
    `\turl = ${quoted}`,
    '\tpromisor = true',
    '\tpartialclonefilter = blob:none',
    // Housekeeping runs inside our command (and its timeout), not as a stray background process.
    '[gc]',
    '\tautoDetach = false',
    '[maintenance]',
    '\tautoDetach = false',
    '',
  ].join('\n');
}

const LOG_FORMAT = '%H%x00%an%x00%ae%x00%aI%x00%B';

function parseLog(out: string): CommitInfo[] {
  const commits: CommitInfo[] = [];
  for (const record of out.split('\x1e')) {
    const text = record.replace(/^\n+/, '');
    if (text.trim() === '') continue;
    const [revision, author, email, date, ...rest] = text.split('\x00');
    if (!revision || author === undefined || email === undefined || date === undefined) continue;
    commits.push({ revision, author, email, date, message: rest.join('\x00').trim() });
  }
  return commits;
}

function validBranch(name: string): boolean {
  return (
    name.length > 0 &&
    name.length <= 255 &&
    !name.startsWith('-') &&
    !name.startsWith('/') &&
    !name.endsWith('/') &&
    !name.endsWith('.') &&
    !name.endsWith('.lock') &&
    !name.includes('..') &&
    !name.includes('//') &&
    !name.includes('@{') &&
    name !== '@' &&
    !hasControlChars(name) &&
    !/[ ~^:?*[\\]/.test(name) &&
    !name.split('/').some((part) => part.startsWith('.'))
  );
}

/** "fleet/", "./fleet" → "fleet"; "" for the top; undefined when it would leave the repository. */
function normalizeSubPath(p: string): string | undefined {
  if (p === '' || p === '.' || p === './') return '';
  if (p.includes('\\') || hasControlChars(p) || posix.isAbsolute(p)) return undefined;
  const n = posix.normalize(p).replace(/\/+$/, '');
  if (n === '.' || n === '') return '';
  if (n === '..' || n.startsWith('../')) return undefined;
  return n;
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}
