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
 * Every git command runs with a timeout, a minimal environment (no prompts, English messages,
 * only the file/git/http(s)/ssh transports) and credentials passed as git-credentials.ts says.
 * Errors are typed by what the daemon should do: GitUnreachableError (transient — keep running
 * the last good revision and retry), GitAuthError and GitNotFoundError (stalled until the
 * configuration or the remote changes); their messages carry the URL without userinfo, the
 * branch and git's stderr with secrets scrubbed.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join, posix, resolve } from 'node:path';
import { GitPluginError, simpleGit } from 'simple-git';
import type { RepoReader } from '../../core/load.js';
import { directoryReader } from '../fs/repo-reader.js';
import { GitUrlError, gitAuth, hasControlChars, parseGitUrl, scrub, type GitAuth, type GitCredentials, type GitRemote } from './git-credentials.js';

/** The commit a revision names. */
export interface CommitInfo {
  revision: string;
  author: string;
  email: string;
  message: string;
  /** Author date, ISO 8601. */
  date: string;
}

export interface FetchResult {
  /** The branch head (for a directory: a content hash). */
  revision: string;
  /** Whether revision differs from what the cache held before this fetch (true on an empty cache). */
  changed: boolean;
  /** What the cache held before; undefined on an empty cache. */
  previous?: string;
}

export interface SourceCheckout {
  /** The whole tree of the revision. */
  dir: string;
  /** dir + the configured path: where fleet.yaml is. */
  fleetDir: string;
  /** directoryReader(fleetDir). */
  reader: RepoReader;
  commit: CommitInfo;
}

/** What the daemon reads the desired state from: a Git remote or a local directory. */
export interface FleetSource {
  readonly kind: 'git' | 'directory';
  /** For logs and the status page; never holds credentials. */
  describe(): string;
  fetch(): Promise<FetchResult>;
  checkout(revision: string): Promise<SourceCheckout>;
  /** Commits after `from` up to and including `to`, newest first, at most `max` (default 100). */
  revisionsBetween?(from: string, to: string, max?: number): Promise<CommitInfo[]>;
  /** Calls onChange when the source changes by itself (a directory being edited). */
  watch?(onChange: () => void): { close(): Promise<void> };
}

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
  revisionsBetween(from: string, to: string, max?: number): Promise<CommitInfo[]>;
}

export type GitErrorReason =
  | 'Unreachable'
  | 'Timeout'
  | 'AuthFailed'
  | 'BranchNotFound'
  | 'PathNotFound'
  | 'RevisionNotFound'
  | 'InvalidConfig'
  | 'GitFailed';

export class GitSourceError extends Error {
  override name = 'GitSourceError';
  readonly reason: GitErrorReason;
  /** The remote without userinfo. */
  readonly url: string;
  readonly branch: string;
  /** git's stderr, scrubbed. */
  readonly stderr?: string;
  /** Worth retrying as it is (the remote may come back); otherwise something must change first. */
  readonly transient: boolean;

  constructor(message: string, details: { reason: GitErrorReason; url: string; branch: string; stderr?: string; transient?: boolean }) {
    super(message);
    this.reason = details.reason;
    this.url = details.url;
    this.branch = details.branch;
    this.stderr = details.stderr;
    this.transient = details.transient ?? false;
  }
}

/** The remote could not be reached (or did not answer in time): keep the last good revision, retry later. */
export class GitUnreachableError extends GitSourceError {
  override name = 'GitUnreachableError';
}

/** The remote refused the credentials (or asked for some and none were given). */
export class GitAuthError extends GitSourceError {
  override name = 'GitAuthError';
}

/** The branch, the path or the revision does not exist. */
export class GitNotFoundError extends GitSourceError {
  override name = 'GitNotFoundError';
}

const HEX = /^[0-9a-f]{4,64}$/i;
const FULL_HEX = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/i;
const MAX_STDERR = 2000;

/** Environment variables git may see from ours; everything else (EDITOR, GIT_DIR, GIT_ASKPASS, …) stays out. */
const PASS_ENV = [
  'PATH', 'HOME', 'USER', 'TMPDIR', 'TZ', 'SSH_AUTH_SOCK',
  'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'no_proxy', 'all_proxy',
  'SSL_CERT_FILE', 'SSL_CERT_DIR', 'CURL_CA_BUNDLE', 'GIT_SSL_CAINFO', 'GIT_SSL_CAPATH',
  // Tracing for whoever debugs; header values are redacted by git itself (GIT_TRACE_REDACT).
  'GIT_TRACE', 'GIT_TRACE_PACKET', 'GIT_TRACE_CURL', 'GIT_TRACE_CURL_NO_DATA', 'GIT_TRACE2', 'GIT_TRACE2_EVENT',
  'GIT_CONFIG_NOSYSTEM',
];

function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of PASS_ENV) {
    const v = process.env[name];
    if (v !== undefined) env[name] = v;
  }
  env.GIT_TERMINAL_PROMPT = '0';
  env.GIT_TRACE_REDACT = '1';
  env.GIT_ALLOW_PROTOCOL = 'file:git:http:https:ssh';
  // Errors are classified by git's words, so they must be English.
  env.LC_ALL = 'C';
  env.LANG = 'C';
  return env;
}

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

  let prepared = false;
  // Last revision whose path was checked, so an unchanged fetch costs no extra command.
  let pathChecked: string | undefined;

  /** Credentials are read per operation, so a rotated token file is picked up. */
  function auth(env: Record<string, string>): GitAuth {
    try {
      return gitAuth(remote, options.credentials, env);
    } catch (err) {
      if (err instanceof GitUrlError) throw invalid(err.message);
      throw err;
    }
  }

  /** Runs git; failures become typed, scrubbed errors that name what was being done. */
  async function git(args: string[], what: string, extraEnv: Record<string, string> = {}): Promise<string> {
    const env = baseEnv();
    const a = auth(env);
    Object.assign(env, a.env, extraEnv);
    const g = simpleGit({
      baseDir: workDir,
      timeout: { block: timeoutMs },
      trimmed: false,
      // Both are how git-credentials.ts passes secrets: through the environment, never argv.
      unsafe: { allowUnsafeConfigEnvCount: true, allowUnsafeSshCommand: true },
    }).env(env);
    try {
      return await g.raw(args);
    } catch (err) {
      throw toSourceError(err, what, a.secrets);
    }
  }

  function toSourceError(err: unknown, what: string, secrets: readonly string[]): GitSourceError {
    if (err instanceof GitPluginError && err.plugin === 'timeout') {
      return new GitUnreachableError(`${what} of ${where} timed out after ${timeoutMs} ms without progress`, {
        reason: 'Timeout', url: display, branch, transient: true,
      });
    }
    const raw = err instanceof Error ? err.message : String(err);
    let stderr = scrub(withoutProgress(raw), secrets).trim();
    if (stderr.length > MAX_STDERR) stderr = `${stderr.slice(0, MAX_STDERR)}…`;
    const reason = classify(stderr);
    const message = `${what} of ${where} failed (${reason}): ${stderr || 'no output from git'}`;
    const details = { reason, url: display, branch, stderr };
    switch (reason) {
      case 'Unreachable':
        return new GitUnreachableError(message, { ...details, transient: true });
      case 'AuthFailed':
        return new GitAuthError(message, details);
      case 'BranchNotFound':
        return new GitNotFoundError(`${what}: branch "${branch}" does not exist on ${display}`, details);
      default:
        return new GitSourceError(message, details);
    }
  }

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

  async function checkout(revision: string): Promise<SourceCheckout> {
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

const PROGRESS = /^(remote: )?(Enumerating|Counting|Compressing|Receiving|Resolving|Total|Unpacking|Checking connectivity|Updating files)\b/;

/** git's stderr without its progress meters (lines rewritten with \r). */
function withoutProgress(text: string): string {
  return text
    .split(/\r\n|\r|\n/)
    .map((l) => l.trimEnd())
    .filter((l) => l !== '' && !PROGRESS.test(l))
    .join('\n');
}

/** What kind of failure git's stderr (LC_ALL=C) describes. */
export function classify(stderr: string): GitErrorReason {
  const s = stderr.toLowerCase();
  if (s.includes("couldn't find remote ref") || s.includes('could not find remote ref')) return 'BranchNotFound';
  if (
    s.includes('authentication failed') ||
    s.includes('could not read username') ||
    s.includes('could not read password') ||
    /returned error: 40[13]\b/.test(s) ||
    s.includes('permission denied (publickey') ||
    s.includes('host key verification failed') ||
    s.includes('invalid credentials')
  ) {
    return 'AuthFailed';
  }
  if (
    s.includes('does not appear to be a git repository') ||
    s.includes('could not read from remote repository') ||
    s.includes('repository not found') ||
    s.includes('failed to connect') ||
    s.includes('could not resolve host') ||
    s.includes('could not resolve hostname') ||
    s.includes('connection refused') ||
    s.includes('connection timed out') ||
    s.includes('operation timed out') ||
    s.includes('network is unreachable') ||
    s.includes('no route to host') ||
    s.includes('connection reset') ||
    s.includes('the remote end hung up') ||
    /returned error: (404|5\d\d)\b/.test(s) ||
    s.includes('unable to access') ||
    s.includes('ssl') ||
    s.includes('early eof')
  ) {
    return 'Unreachable';
  }
  return 'GitFailed';
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
