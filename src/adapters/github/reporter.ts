/**
 * Reports what the daemon does to GitHub: a commit status per revision, a check run with the
 * plan, timeline and results (GitHub App only), annotations for validation errors, and the
 * sticky plan comment on pull requests.
 *
 * Never in the rollout's way: every method only renders and enqueues, and returns at once.
 * One background worker sends, in order, with exponential backoff; it honours `retry-after`
 * and rate-limit resets, and pauses the whole queue while GitHub is down (one outage, not one
 * per report). The queue holds desired state per key — the status of a commit, the check run
 * of a commit, the comment of a pull request — so a newer report replaces an older one that was
 * not sent yet, and it is bounded: when full, the oldest entry is dropped (and logged).
 */
import type { Logger } from 'pino';
import type { PlanReport } from '../../core/render.js';
import { describeError, isTransient, parseRepo, retryAfterMs, type GithubClient } from './client.js';
import { upsertPlanComment } from './comment.js';
import {
  annotations as toAnnotations,
  batches,
  conclusionOf,
  finishedOutput,
  finishedStatus,
  rejectedOutput,
  rejectedStatus,
  revisionPageUrl,
  startedOutput,
  startedStatus,
  type Annotation,
  type CheckConclusion,
  type RevisionRejected,
  type RolloutFinished,
  type RolloutStarted,
  type StatusState,
} from './render.js';

export type { InstanceReport, RevisionRejected, RolloutFinished, RolloutStarted, FinishedOutcome } from './render.js';

export interface PullRequestPlan {
  number: number;
  headSha: string;
  /** The plan as Markdown (core/render.ts planMarkdown). */
  markdown: string;
}

export interface ReporterQueueOptions {
  /** Entries kept while GitHub is unreachable; beyond, the oldest is dropped. Default 500. */
  maxItems?: number;
  /** First wait after a failure (doubles each time, ±20 % jitter). Default 1 s. */
  initialBackoffMs?: number;
  /** Longest wait between attempts. Default 5 min. */
  maxBackoffMs?: number;
  /** Attempts per entry before it is dropped. Default 20 (about an hour and a half with the defaults). */
  maxAttempts?: number;
}

export interface GithubReporterOptions {
  client: GithubClient;
  /** owner/name */
  repo: string;
  fleet: string;
  /** The status page: target_url of statuses, details_url of check runs. */
  statusPageUrl?: string;
  log: Logger;
  /** Where fleet.yaml sits inside the Git repository ('' = at the top): annotation paths are relative to the Git repository. */
  pathPrefix?: string;
  queue?: ReporterQueueOptions;
}

export interface GithubReporter {
  rolloutStarted(e: RolloutStarted): void;
  rolloutFinished(e: RolloutFinished): void;
  revisionRejected(e: RevisionRejected): void;
  pullRequestPlan(e: PullRequestPlan): void;
  /** Resolves true once everything queued was delivered (or given up), false after timeoutMs. */
  flush(timeoutMs: number): Promise<boolean>;
  /** Entries not delivered yet, including the one being sent. */
  readonly pending: number;
  /** Stops the worker; what was not delivered is dropped (call flush first to wait for it). */
  close(): void;
}

interface Job {
  key: string;
  attempts: number;
  /** Sends; `progress` survives retries so a half-sent batch sequence resumes where it stopped. */
  run(job: Job): Promise<void>;
  progress: number;
}

interface CheckRunSlot {
  id?: number;
  plan?: PlanReport;
}

interface DesiredCheck {
  status: 'in_progress' | 'completed';
  conclusion?: CheckConclusion;
  title: string;
  summary: string;
  text?: string;
  annotations: Annotation[];
}

/** Check run ids and plans are remembered for this many revisions. */
const MAX_TRACKED_REVISIONS = 256;

/** A Git commit id (SHA-1 or SHA-256): statuses and checks need one; a directory source has none. */
export function isCommitSha(revision: string): boolean {
  return /^[0-9a-f]{40}$|^[0-9a-f]{64}$/i.test(revision);
}

export function githubReporter(options: GithubReporterOptions): GithubReporter {
  const { client, fleet, statusPageUrl } = options;
  const { owner, repo } = parseRepo(options.repo);
  const log = options.log.child({ github: options.repo });
  const octokit = client.octokit;
  const context = `tower/${fleet}`;
  const maxItems = options.queue?.maxItems ?? 500;
  const initialBackoff = options.queue?.initialBackoffMs ?? 1_000;
  const maxBackoff = options.queue?.maxBackoffMs ?? 5 * 60_000;
  const maxAttempts = options.queue?.maxAttempts ?? 20;
  // The queue does the retrying (with backoff, across the whole queue): one attempt per request.
  const request = { retries: 0 };

  const jobs = new Map<string, Job>();
  const runs = new Map<string, CheckRunSlot>();
  let inFlight: Job | undefined;
  let working = false;
  let scheduled = false;
  let closed = false;
  let failures = 0;
  let pausedUntil = 0;
  let sleeper: { timer: NodeJS.Timeout; wake: () => void } | undefined;
  let waiters: (() => void)[] = [];
  let skippedNonCommit = false;

  function slot(sha: string): CheckRunSlot {
    let s = runs.get(sha);
    if (!s) {
      s = {};
      runs.set(sha, s);
      if (runs.size > MAX_TRACKED_REVISIONS) runs.delete(runs.keys().next().value!);
    }
    return s;
  }

  function enqueue(key: string, run: (job: Job) => Promise<void>): void {
    if (closed) return;
    if (jobs.has(key)) jobs.delete(key); // superseded: the newer state replaces it
    else if (jobs.size >= maxItems) {
      const oldest = jobs.keys().next().value!;
      jobs.delete(oldest);
      log.warn({ dropped: oldest, maxItems }, 'GitHub report queue full: dropped the oldest report');
    }
    jobs.set(key, { key, attempts: 0, progress: 0, run });
    // The worker starts on a later turn: not one line of sending code runs in the caller's.
    if (!working && !scheduled) {
      scheduled = true;
      setImmediate(() => {
        scheduled = false;
        kick();
      });
    }
  }

  function kick(): void {
    if (working || closed) return;
    working = true;
    work()
      .catch((err: unknown) => log.error({ err: describeError(err, client.redact) }, 'GitHub report worker failed'))
      .finally(() => {
        working = false;
        notify();
        if (jobs.size && !closed) kick();
      });
  }

  function notify(): void {
    if (jobs.size || inFlight) return;
    const w = waiters;
    waiters = [];
    w.forEach((resolve) => resolve());
  }

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        sleeper = undefined;
        resolve();
      }, ms);
      timer.unref();
      sleeper = { timer, wake: resolve };
    });
  }

  function backoff(): number {
    const base = Math.min(initialBackoff * 2 ** Math.max(failures - 1, 0), maxBackoff);
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  // Ends when the queue is empty: each turn delivers, drops or delays (attempts are bounded) one entry.
  async function work(): Promise<void> {
    while (!closed && jobs.size) {
      const wait = pausedUntil - Date.now();
      if (wait > 0) {
        await sleep(wait);
        continue;
      }
      const job = jobs.values().next().value!;
      jobs.delete(job.key);
      inFlight = job;
      try {
        await job.run(job);
        failures = 0;
      } catch (err) {
        const what = describeError(err, client.redact);
        job.attempts++;
        if (!isTransient(err)) {
          log.error({ report: job.key, err: what }, 'GitHub refused a report; dropped');
        } else if (job.attempts >= maxAttempts) {
          log.error({ report: job.key, attempts: job.attempts, err: what }, 'GitHub unreachable for too long; report dropped');
        } else {
          failures++;
          const delay = Math.min(retryAfterMs(err, Date.now()) ?? backoff(), Math.max(maxBackoff, 60_000) * 3);
          pausedUntil = Date.now() + delay;
          // Back at the front, unless a newer report for the same key arrived meanwhile.
          if (!jobs.has(job.key) && !closed) {
            const rest = [...jobs];
            jobs.clear();
            jobs.set(job.key, job);
            for (const [k, v] of rest) jobs.set(k, v);
          }
          log.warn({ report: job.key, attempt: job.attempts, retryInMs: delay, queued: jobs.size, err: what }, 'GitHub unavailable; the report stays queued');
        }
      } finally {
        inFlight = undefined;
      }
    }
  }

  function guarded(what: string, fn: () => void): void {
    // A reporting bug must never reach the rollout.
    try {
      fn();
    } catch (err) {
      log.error({ err: describeError(err, client.redact) }, `GitHub report not queued: ${what}`);
    }
  }

  function commitOnly(revision: string): boolean {
    if (isCommitSha(revision)) return true;
    if (!skippedNonCommit) log.info({ revision }, 'revision is not a Git commit (directory source): no commit statuses or check runs');
    skippedNonCommit = true;
    return false;
  }

  function status(sha: string, state: StatusState, description: string): void {
    enqueue(`status:${sha}`, async () => {
      await octokit.rest.repos.createCommitStatus({ owner, repo, sha, state, description, context, ...(statusPageUrl ? { target_url: statusPageUrl } : {}), request });
      log.debug({ sha, state }, 'commit status sent');
    });
  }

  function checkRun(sha: string, desired: DesiredCheck): void {
    if (!client.checksEnabled) return;
    // The first request carries the first 50 annotations; each further one the next 50 (GitHub appends them).
    const chunks = batches(desired.annotations);
    const count = Math.max(chunks.length, 1);
    enqueue(`check:${sha}`, async (job) => {
      const s = slot(sha);
      if (s.id === undefined && job.progress === 0) {
        // A run this fleet already has on the commit (a daemon restarted mid-rollout, a retried revision) is continued, not doubled.
        const { data } = await octokit.rest.checks.listForRef({ owner, repo, ref: sha, check_name: context, filter: 'latest', per_page: 1, request });
        s.id = data.check_runs[0]?.id;
      }
      for (let i = job.progress; i < count; i++) {
        const last = i === count - 1;
        const output = { title: desired.title, summary: desired.summary, ...(i === 0 && desired.text !== undefined ? { text: desired.text } : {}), ...(chunks[i] ? { annotations: chunks[i] } : {}) };
        const state = last
          ? { status: desired.status, ...(desired.conclusion ? { conclusion: desired.conclusion, completed_at: new Date().toISOString() } : {}) }
          : { status: 'in_progress' as const };
        if (s.id === undefined) {
          const { data } = await octokit.rest.checks.create({ owner, repo, name: context, head_sha: sha, external_id: `${fleet}@${sha}`, started_at: new Date().toISOString(), ...(statusPageUrl ? { details_url: statusPageUrl } : {}), ...state, output, request });
          s.id = data.id;
        } else {
          await octokit.rest.checks.update({ owner, repo, check_run_id: s.id, ...state, output, request });
        }
        job.progress = i + 1;
      }
      log.debug({ sha, status: desired.status, conclusion: desired.conclusion, annotations: desired.annotations.length }, 'check run sent');
    });
  }

  return {
    rolloutStarted(e) {
      guarded('rollout started', () => {
        if (!commitOnly(e.revision)) return;
        const s = startedStatus(e);
        status(e.revision, s.state, s.description);
        if (client.checksEnabled) {
          slot(e.revision).plan = e.plan;
          checkRun(e.revision, { status: 'in_progress', ...startedOutput(fleet, e, statusPageUrl), annotations: [] });
        }
      });
    },
    rolloutFinished(e) {
      guarded('rollout finished', () => {
        if (!commitOnly(e.revision)) return;
        const s = finishedStatus(e);
        status(e.revision, s.state, s.description);
        if (client.checksEnabled) {
          const plan = runs.get(e.revision)?.plan;
          checkRun(e.revision, { status: 'completed', conclusion: conclusionOf(e.outcome), ...finishedOutput(fleet, e, plan, statusPageUrl), annotations: [] });
        }
      });
    },
    revisionRejected(e) {
      guarded('revision rejected', () => {
        if (!commitOnly(e.revision)) return;
        const s = rejectedStatus(e);
        status(e.revision, s.state, s.description);
        checkRun(e.revision, { status: 'completed', conclusion: 'failure', ...rejectedOutput(e, statusPageUrl), annotations: toAnnotations(e.diagnostics, options.pathPrefix) });
      });
    },
    pullRequestPlan(e) {
      guarded('pull request plan', () => {
        enqueue(`comment:${e.number}`, async () => {
          // The link first: it stays in the first part when the comment is split.
          const markdown = statusPageUrl ? `[The changes, drawn as the editor lays them out](${revisionPageUrl(statusPageUrl, e.headSha)}) — on Tower's status page\n\n${e.markdown}` : e.markdown;
          const r = await upsertPlanComment(octokit, { owner, repo, number: e.number, fleet }, markdown, { headSha: e.headSha, request });
          log.info({ pr: e.number, headSha: e.headSha.slice(0, 12), ...r, urls: undefined }, 'plan comment up to date');
        });
      });
    },
    flush(timeoutMs) {
      if (!jobs.size && !inFlight && !working) return Promise.resolve(true);
      return new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w !== done);
          resolve(false);
        }, timeoutMs);
        function done() {
          clearTimeout(timer);
          resolve(true);
        }
        waiters.push(done);
      });
    },
    get pending() {
      return jobs.size + (inFlight ? 1 : 0);
    },
    close() {
      closed = true;
      if (jobs.size) log.warn({ dropped: [...jobs.keys()] }, 'GitHub reporter closed with reports not delivered');
      jobs.clear();
      if (sleeper) {
        clearTimeout(sleeper.timer);
        sleeper.wake();
        sleeper = undefined;
      }
      notify();
    },
  };
}
