/**
 * `tower run` configuration: flags, or the same settings as environment variables
 * (12-factor), validated once at start with every problem reported.
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseDuration } from '../core/duration.js';
import { brokerEnvProblems } from '../adapters/mqtt/external-broker.js';

export interface RunConfig {
  /** A Git URL (https, ssh, git@, file://) or a local directory. */
  repo: string;
  /** How the repo is read: a Git remote, or a directory watched for edits. */
  sourceKind: 'git' | 'directory';
  branch: string;
  /** Sub-directory of the repository that holds fleet.yaml. */
  path: string;
  intervalMs: number;
  listen: { host: string; port: number };
  stateDir: string;
  webhookSecret?: string;
  databaseUrl?: string;
  redisUrl?: string;
  mqttUrl?: string;
  logLevel: string;
  /** Who may act among daemons of one fleet (TOWER_LEADER); auto: a Lease when the fleet runs on Kubernetes, else Redis with REDIS_URL, else the state-dir lock. */
  leader: LeaderMode;
  /** The Kubernetes Lease's duration (TOWER_LEADER_LEASE, default 15 s): a standby takes over this long after the leader's last renew. */
  leaderLeaseSeconds: number;
  /** Where people reach the status page (links in GitHub statuses); default the listen address. */
  publicUrl?: string;
  github?: GithubConfig;
}

export const LEADER_MODES = ['auto', 'kubernetes', 'redis', 'lock'] as const;
export type LeaderMode = (typeof LEADER_MODES)[number];

export interface GithubConfig {
  /** owner/name */
  repo: string;
  apiUrl?: string;
  token?: string;
  app?: { appId: string; privateKey: string; installationId: number };
}

export interface RunFlags {
  repo?: string;
  branch?: string;
  path?: string;
  interval?: string;
  listen?: string;
  stateDir?: string;
  logLevel?: string;
  githubRepo?: string;
  githubApiUrl?: string;
  leader?: string;
}

/** The environment variable behind each flag. */
export const RUN_ENV = {
  repo: 'TOWER_REPO',
  branch: 'TOWER_BRANCH',
  path: 'TOWER_PATH',
  interval: 'TOWER_INTERVAL',
  listen: 'TOWER_LISTEN',
  stateDir: 'TOWER_STATE_DIR',
  logLevel: 'TOWER_LOG_LEVEL',
  githubRepo: 'TOWER_GITHUB_REPO',
  githubApiUrl: 'GITHUB_API_URL',
  leader: 'TOWER_LEADER',
} as const;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];

export function parseRunConfig(flags: RunFlags, env: NodeJS.ProcessEnv, readFile: (file: string) => string): { config?: RunConfig; errors: string[] } {
  const errors: string[] = [];
  const pick = (key: keyof RunFlags): string | undefined => flags[key] ?? env[RUN_ENV[key]];

  const repo = pick('repo');
  if (!repo) errors.push(`no repository: pass --repo URL|DIR (or set ${RUN_ENV.repo})`);
  const branch = pick('branch') ?? 'main';
  const path = (pick('path') ?? '').replace(/^\/+|\/+$/g, '');
  if (path.split('/').includes('..')) errors.push(`--path ${path}: must stay inside the repository`);

  let intervalMs = 30_000;
  try {
    intervalMs = parseDuration(pick('interval') ?? '30s');
    if (intervalMs < 1_000) errors.push(`--interval ${pick('interval')}: at least 1s`);
  } catch {
    errors.push(`--interval ${pick('interval')}: not a duration (examples: 30s, 2m)`);
  }

  const listenText = pick('listen') ?? '127.0.0.1:8080';
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(listenText);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 0 || port > 65535) errors.push(`--listen ${listenText}: expected HOST:PORT, e.g. 127.0.0.1:8080`);

  const logLevel = pick('logLevel') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) errors.push(`--log-level ${logLevel}: one of ${LOG_LEVELS.join(', ')}`);

  const leader = (pick('leader') ?? 'auto') as LeaderMode;
  if (!LEADER_MODES.includes(leader)) errors.push(`--leader ${leader}: one of ${LEADER_MODES.join(', ')}`);
  else if (leader === 'redis' && !env.REDIS_URL) errors.push('--leader redis: set REDIS_URL (the Redis that holds the lease)');
  let leaderLeaseSeconds = 15;
  if (env.TOWER_LEADER_LEASE) {
    try {
      leaderLeaseSeconds = parseDuration(env.TOWER_LEADER_LEASE) / 1000;
    } catch {
      leaderLeaseSeconds = NaN;
    }
    if (!Number.isInteger(leaderLeaseSeconds) || leaderLeaseSeconds < 1 || leaderLeaseSeconds > 300) errors.push(`TOWER_LEADER_LEASE ${env.TOWER_LEADER_LEASE}: whole seconds from 1s to 5m (examples: 15s, 1m)`);
  }

  // Git credentials are read by the Git source itself (GIT_TOKEN, GIT_TOKEN_FILE, GIT_SSH_KEY_FILE); check they are usable.
  if (env.GIT_TOKEN_FILE) {
    try {
      readFile(env.GIT_TOKEN_FILE);
    } catch {
      errors.push(`GIT_TOKEN_FILE ${env.GIT_TOKEN_FILE}: cannot be read`);
    }
  }
  if (env.GIT_SSH_KEY_FILE && !existsSync(env.GIT_SSH_KEY_FILE)) errors.push(`GIT_SSH_KEY_FILE ${env.GIT_SSH_KEY_FILE}: no such file`);

  for (const [name, value, schemes] of [
    ['DATABASE_URL', env.DATABASE_URL, ['postgres:', 'postgresql:']],
    ['REDIS_URL', env.REDIS_URL, ['redis:', 'rediss:']],
  ] as const) {
    if (!value) continue;
    try {
      const u = new URL(value);
      if (!(schemes as readonly string[]).includes(u.protocol)) errors.push(`${name}: expected ${schemes.map((s) => `${s}//…`).join(' or ')}`);
    } catch {
      errors.push(`${name}: not a URL`); // never echo the value: it may carry a password
    }
  }

  // MQTT_URL, and for mqtts MQTT_CA_FILE, MQTT_CERT_FILE, MQTT_KEY_FILE, MQTT_REJECT_UNAUTHORIZED: checked as the runtime reads them.
  errors.push(...brokerEnvProblems(env, readFile));

  const github = parseGithub(pick('githubRepo'), pick('githubApiUrl'), env, readFile, errors);
  if (env.TOWER_PUBLIC_URL && !/^https?:\/\//.test(env.TOWER_PUBLIC_URL)) errors.push('TOWER_PUBLIC_URL: expected http(s)://…');

  const webhookSecret = env.TOWER_WEBHOOK_SECRET ?? env.GITHUB_WEBHOOK_SECRET;
  if (webhookSecret !== undefined && webhookSecret.length < 16) errors.push('TOWER_WEBHOOK_SECRET: use at least 16 characters');

  let sourceKind: RunConfig['sourceKind'] = 'git';
  if (repo && isLocalFleetDirectory(repo, path)) sourceKind = 'directory';
  else if (repo && !looksLikeGitUrl(repo) && !existsSync(repo)) errors.push(`--repo ${repo}: neither a Git URL nor an existing directory`);

  if (errors.length || !repo || !m) return { errors };
  return {
    errors,
    config: {
      repo: sourceKind === 'directory' ? resolve(repo) : repo,
      sourceKind,
      branch,
      path,
      intervalMs,
      listen: { host: m[1]!.replace(/^\[|\]$/g, ''), port },
      stateDir: resolve(pick('stateDir') ?? '.tower'),
      ...(webhookSecret ? { webhookSecret } : {}),
      ...(env.DATABASE_URL ? { databaseUrl: env.DATABASE_URL } : {}),
      ...(env.REDIS_URL ? { redisUrl: env.REDIS_URL } : {}),
      ...(env.MQTT_URL ? { mqttUrl: env.MQTT_URL } : {}),
      logLevel,
      leader,
      leaderLeaseSeconds,
      ...(env.TOWER_PUBLIC_URL ? { publicUrl: env.TOWER_PUBLIC_URL } : {}),
      ...(github ? { github } : {}),
    },
  };
}

/**
 * GitHub reporting is on when a repository is named: a token (statuses, comments) or a
 * GitHub App (also check runs) must then be given. Values are never echoed.
 */
function parseGithub(repo: string | undefined, apiUrl: string | undefined, env: NodeJS.ProcessEnv, readFile: (f: string) => string, errors: string[]): GithubConfig | undefined {
  if (!repo) return undefined;
  if (!/^[\w.-]+\/[\w.-]+$/.test(repo)) errors.push(`--github-repo ${repo}: expected owner/name`);
  let app: GithubConfig['app'];
  const appVars = [env.GITHUB_APP_ID, env.GITHUB_APP_PRIVATE_KEY ?? env.GITHUB_APP_PRIVATE_KEY_FILE, env.GITHUB_APP_INSTALLATION_ID];
  if (appVars.some(Boolean)) {
    if (!appVars.every(Boolean)) {
      errors.push('a GitHub App needs GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY (or GITHUB_APP_PRIVATE_KEY_FILE) and GITHUB_APP_INSTALLATION_ID');
    } else {
      let privateKey = env.GITHUB_APP_PRIVATE_KEY;
      if (!privateKey) {
        try {
          privateKey = readFile(env.GITHUB_APP_PRIVATE_KEY_FILE!);
        } catch {
          errors.push(`GITHUB_APP_PRIVATE_KEY_FILE ${env.GITHUB_APP_PRIVATE_KEY_FILE}: cannot be read`);
        }
      }
      const installationId = Number(env.GITHUB_APP_INSTALLATION_ID);
      if (!Number.isInteger(installationId) || installationId <= 0) errors.push('GITHUB_APP_INSTALLATION_ID: expected a number');
      if (privateKey) app = { appId: env.GITHUB_APP_ID!, privateKey, installationId };
    }
  }
  if (!app && !env.GITHUB_TOKEN) errors.push(`--github-repo ${repo}: set GITHUB_TOKEN (statuses and comments) or a GitHub App (GITHUB_APP_ID, …: also check runs)`);
  if (apiUrl && !/^https?:\/\//.test(apiUrl)) errors.push(`--github-api-url ${apiUrl}: expected http(s)://…`);
  return { repo, ...(apiUrl ? { apiUrl } : {}), ...(env.GITHUB_TOKEN ? { token: env.GITHUB_TOKEN } : {}), ...(app ? { app } : {}) };
}

function looksLikeGitUrl(repo: string): boolean {
  return /^(https?|ssh|git|file):\/\//.test(repo) || /^[\w.-]+@[\w.-]+:/.test(repo);
}

/**
 * A plain directory holding fleet.yaml (not a bare repository, not a Git URL) is watched
 * and read as it is on disk: the edit-save-see loop.
 */
function isLocalFleetDirectory(repo: string, path: string): boolean {
  if (looksLikeGitUrl(repo)) return false;
  const dir = resolve(repo, path);
  try {
    if (!statSync(dir).isDirectory()) return false;
  } catch {
    return false;
  }
  return existsSync(join(dir, 'fleet.yaml')) || existsSync(join(dir, 'fleet.yml'));
}
