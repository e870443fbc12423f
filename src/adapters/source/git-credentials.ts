/**
 * Remote URLs and credentials for the Git source. Secrets reach git only through its
 * environment — never a URL, a config file or a command line (/proc/<pid>/cmdline is world
 * readable; /proc/<pid>/environ is not) — and every text that leaves this module for a log or
 * an error has them scrubbed.
 *
 * - http(s): a token sent as an `Authorization` header through `http.<origin>.extraHeader`,
 *   set with GIT_CONFIG_COUNT/GIT_CONFIG_KEY_n/GIT_CONFIG_VALUE_n and scoped to the remote's
 *   origin, so a redirect to another host never carries it.
 * - ssh: a key file through GIT_SSH_COMMAND (`ssh -i <file> -o IdentitiesOnly=yes ...`).
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';

export type GitUrlKind = 'file' | 'http' | 'ssh' | 'git';

export interface GitRemote {
  kind: GitUrlKind;
  /** What git is given: userinfo with a password (or an http token) removed, local paths absolute. */
  url: string;
  /** For logs and errors: `url` without any userinfo at all. */
  display: string;
  /** scheme://host[:port]/ of an http(s) remote: the scope of the auth header. */
  origin?: string;
  /** Credentials that came inside the URL (https://user:token@host/...), moved out of it. */
  urlUser?: string;
  urlPassword?: string;
}

export class GitUrlError extends Error {
  override name = 'GitUrlError';
}

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;
const TRANSPORT_HELPER = /^[a-z][a-z0-9+.-]*::/i;
// user@host:path, as scp writes it: a colon before any slash, and not a scheme.
const SCP_LIKE = /^(?:[^@/:\s]+@)?[^@/:\s]+:(?!\/\/)/;

/** Parses a remote given as file://, a plain path, http(s)://, ssh://, git:// or user@host:path. */
export function parseGitUrl(input: string, cwd: string = process.cwd()): GitRemote {
  const raw = input.trim();
  if (raw === '') throw new GitUrlError('the Git URL is empty');
  // An argument that starts with "-" would be an option to git.
  if (raw.startsWith('-')) throw new GitUrlError('a Git URL may not start with "-"');
  if (hasControlChars(raw)) throw new GitUrlError('a Git URL may not contain control characters');
  if (TRANSPORT_HELPER.test(raw)) throw new GitUrlError('transport helpers (<transport>::<address>) are not allowed as a Git URL');
  const scheme = SCHEME.exec(raw)?.[1]?.toLowerCase();
  if (scheme !== undefined) {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      throw new GitUrlError(`not a valid URL: ${stripUserinfo(raw)}`);
    }
    const user = u.username === '' ? undefined : decodeURIComponent(u.username);
    const password = u.password === '' ? undefined : decodeURIComponent(u.password);
    if (scheme === 'file') {
      return { kind: 'file', url: raw, display: raw };
    }
    if (scheme === 'http' || scheme === 'https') {
      u.username = '';
      u.password = '';
      const url = u.toString();
      return { kind: 'http', url, display: url, origin: `${u.protocol}//${u.host}/`, urlUser: user, urlPassword: password };
    }
    if (scheme === 'ssh' || scheme === 'git+ssh' || scheme === 'ssh+git') {
      // The user name selects the account (git@…) and stays; a password cannot be used by ssh
      // non-interactively and is dropped, never stored.
      u.password = '';
      const url = u.toString();
      u.username = '';
      return { kind: 'ssh', url, display: u.toString(), urlUser: user, urlPassword: password };
    }
    if (scheme === 'git') {
      u.username = '';
      u.password = '';
      return { kind: 'git', url: u.toString(), display: u.toString() };
    }
    throw new GitUrlError(`unsupported Git URL scheme "${scheme}:" (use https://, ssh://, git@host:path, file:// or a path)`);
  }
  if (SCP_LIKE.test(raw) && !isAbsolute(raw) && !raw.startsWith('.')) {
    const at = raw.indexOf('@');
    const colon = raw.indexOf(':');
    return { kind: 'ssh', url: raw, display: at >= 0 && at < colon ? raw.slice(at + 1) : raw };
  }
  const path = resolve(cwd, raw);
  return { kind: 'file', url: path, display: path };
}

export interface GitCredentials {
  /** http(s): a token (or password), sent as an Authorization header. */
  token?: string;
  /** http(s): a file holding the token; read on every fetch, so it can be rotated. */
  tokenFile?: string;
  /** http(s) Basic user name; default the URL's user name, else "x-access-token" (GitHub; GitLab takes "oauth2"). */
  username?: string;
  /** http(s): "basic" (default; GitHub, GitLab, Gitea, Bitbucket) or "bearer". */
  scheme?: 'basic' | 'bearer';
  /** ssh: a private key file. */
  sshKeyFile?: string;
  /** ssh: a known_hosts file; default ssh's own. New hosts are accepted and remembered, changed keys refused. */
  knownHostsFile?: string;
}

/**
 * Credentials from the environment: GIT_TOKEN or GIT_TOKEN_FILE, GIT_USERNAME,
 * GIT_AUTH_SCHEME (basic|bearer), GIT_SSH_KEY_FILE, GIT_KNOWN_HOSTS_FILE.
 */
export function credentialsFromEnv(env: NodeJS.ProcessEnv = process.env): GitCredentials | undefined {
  const creds: GitCredentials = {};
  if (env.GIT_TOKEN) creds.token = env.GIT_TOKEN;
  if (env.GIT_TOKEN_FILE) creds.tokenFile = env.GIT_TOKEN_FILE;
  if (env.GIT_USERNAME) creds.username = env.GIT_USERNAME;
  if (env.GIT_AUTH_SCHEME === 'basic' || env.GIT_AUTH_SCHEME === 'bearer') creds.scheme = env.GIT_AUTH_SCHEME;
  if (env.GIT_SSH_KEY_FILE) creds.sshKeyFile = env.GIT_SSH_KEY_FILE;
  if (env.GIT_KNOWN_HOSTS_FILE) creds.knownHostsFile = env.GIT_KNOWN_HOSTS_FILE;
  return Object.keys(creds).length > 0 ? creds : undefined;
}

export interface GitAuth {
  /** Added to git's environment. */
  env: Record<string, string>;
  /** Every form of the secret that could show up in git's output, for scrub(). */
  secrets: string[];
}

/**
 * The environment that authenticates git against remote. `baseEnv` is the environment it
 * will run with (GIT_CONFIG_COUNT entries already there are kept; ours are appended).
 */
export function gitAuth(remote: GitRemote, creds: GitCredentials | undefined, baseEnv: Record<string, string> = {}): GitAuth {
  const env: Record<string, string> = {};
  const secrets: string[] = [];
  if (remote.kind === 'http') {
    let token = creds?.token;
    if (token === undefined && creds?.tokenFile !== undefined) token = readTokenFile(creds.tokenFile);
    token ??= remote.urlPassword;
    let user = creds?.username ?? remote.urlUser;
    // https://TOKEN@host/ — a token alone in the user-name position (GitHub accepts it so).
    if (token === undefined && remote.urlUser !== undefined && remote.urlPassword === undefined) {
      token = remote.urlUser;
      user = creds?.username ?? 'x-access-token';
    }
    if (token !== undefined && token !== '') {
      const scheme = creds?.scheme ?? 'basic';
      const basic = Buffer.from(`${user ?? 'x-access-token'}:${token}`).toString('base64');
      const header = scheme === 'bearer' ? `Authorization: Bearer ${token}` : `Authorization: Basic ${basic}`;
      const count = Number.parseInt(baseEnv.GIT_CONFIG_COUNT ?? '0', 10) || 0;
      env.GIT_CONFIG_COUNT = String(count + 1);
      // simple-git refuses config keys that contain "alias"; such a host gets the header unscoped.
      const scoped = remote.origin !== undefined && !remote.origin.toLowerCase().includes('alias');
      env[`GIT_CONFIG_KEY_${count}`] = scoped ? `http.${remote.origin}.extraHeader` : 'http.extraHeader';
      env[`GIT_CONFIG_VALUE_${count}`] = header;
      secrets.push(token, basic, encodeURIComponent(token));
    }
    if (remote.urlPassword !== undefined) secrets.push(remote.urlPassword, encodeURIComponent(remote.urlPassword));
    // A long user name with no password is most likely a token itself.
    if (remote.urlUser !== undefined && remote.urlPassword === undefined && remote.urlUser.length >= 8) secrets.push(remote.urlUser);
  } else if (remote.kind === 'ssh') {
    const parts = ['ssh', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=accept-new'];
    if (creds?.sshKeyFile !== undefined) parts.push('-i', shellQuote(resolve(creds.sshKeyFile)), '-o', 'IdentitiesOnly=yes');
    if (creds?.knownHostsFile !== undefined) parts.push('-o', shellQuote(`UserKnownHostsFile=${resolve(creds.knownHostsFile)}`));
    env.GIT_SSH_COMMAND = parts.join(' ');
    env.GIT_SSH_VARIANT = 'ssh';
    if (remote.urlPassword !== undefined) secrets.push(remote.urlPassword, encodeURIComponent(remote.urlPassword));
  }
  return { env, secrets: [...new Set(secrets.filter((s) => s.length >= 3))] };
}

function readTokenFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    // The path is configuration, not a secret; the content never appears.
    throw new GitUrlError(`cannot read the Git token file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const token = text.trim();
  if (token === '') throw new GitUrlError(`the Git token file ${file} is empty`);
  return token;
}

/** Newlines and the like would let a value break out of a config line. */
export function hasControlChars(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

/** For GIT_SSH_COMMAND, which git runs through the shell. */
function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./=:@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** scheme://user:pass@host → scheme://host, for showing a URL someone typed. */
export function stripUserinfo(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@'"]*@/gi, '$1');
}

/**
 * Text from git (stderr) or about it, made safe to log: known secrets replaced, userinfo
 * removed from any URL, Authorization header values masked.
 */
export function scrub(text: string, secrets: readonly string[] = []): string {
  let out = text;
  // Longest first, so a secret that contains another is replaced whole.
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) {
    if (s.length >= 3) out = out.split(s).join('***');
  }
  out = out.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@'"]*@/gi, '$1***@');
  out = out.replace(/(authorization:\s*)([a-z]+\s+)?[^\s'"]+/gi, '$1$2***');
  return out;
}
