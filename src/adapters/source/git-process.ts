/**
 * Running git for the Git source, and what its failures mean.
 *
 * Every git command runs with a timeout (counted without output, so a long fetch that is
 * moving is not killed), a minimal environment (no prompts, English messages, only the
 * file/git/http(s)/ssh transports) and credentials passed as git-credentials.ts says.
 * Errors are typed by what the daemon should do: GitUnreachableError (transient — keep running
 * the last good revision and retry), GitAuthError and GitNotFoundError (stalled until the
 * configuration or the remote changes); their messages carry the URL without userinfo, the
 * branch and git's stderr with secrets scrubbed.
 */
import { GitPluginError, simpleGit } from 'simple-git';
import { GitUrlError, gitAuth, scrub, type GitAuth, type GitCredentials, type GitRemote } from './git-credentials.js';

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

/** Runs git with args, naming `what` in errors; extraEnv adds to the environment (GIT_DIR, …). */
export type RunGit = (args: string[], what: string, extraEnv?: Record<string, string>) => Promise<string>;

export interface GitRunnerOptions {
  /** git's working directory (absolute). */
  workDir: string;
  remote: GitRemote;
  branch: string;
  /** What errors say the commands were about: `branch "main" of <url>`. */
  where: string;
  credentials: GitCredentials | undefined;
  /** Each command is killed after this long without output. */
  timeoutMs: number;
}

export function gitRunner(options: GitRunnerOptions): RunGit {
  const { workDir, remote, branch, where, timeoutMs } = options;
  const display = remote.display;

  /** Credentials are read per operation, so a rotated token file is picked up. */
  function auth(env: Record<string, string>): GitAuth {
    try {
      return gitAuth(remote, options.credentials, env);
    } catch (err) {
      if (err instanceof GitUrlError) throw new GitSourceError(err.message, { reason: 'InvalidConfig', url: display, branch });
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

  return git;
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
