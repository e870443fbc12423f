import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { decide } from '../core/decide.js';
import { formatDiagnostic, internalError, type Diagnostic } from '../core/diagnostics.js';
import { parseJsonText } from '../core/json-source.js';
import { diagramFlows } from '../core/mermaid.js';
import type { ObservedFleet } from '../core/model.js';
import { liveFromObserved, parseObserved } from '../core/observed.js';
import { planJson, planMarkdown, planText, type PlanReport } from '../core/render.js';
import { loadDirectory, NotAFleetDirectory } from '../repository.js';
import type { Io } from './io.js';

export interface PlanOptions {
  observed?: string;
  format: 'text' | 'json' | 'markdown';
}

/** `--github-pr N`: also post (or update) the plan as the pull request's sticky comment. */
export interface GithubPlanOptions {
  githubPr: number;
  /** owner/name; default $GITHUB_REPOSITORY (set by GitHub Actions). */
  githubRepo?: string;
  /** default $GITHUB_API_URL (set by GitHub Actions, also on GitHub Enterprise Server), else https://api.github.com */
  githubApiUrl?: string;
}

/** Like `terraform plan -detailed-exitcode`: 0 no changes, 2 changes, 1 invalid input. */
export const PLAN_EXIT = { noChanges: 0, invalid: 1, changes: 2 } as const;

export function planReport(dir: string, observed: ObservedFleet | undefined): PlanReport {
  const repo = loadDirectory(resolve(dir));
  if (!repo.valid || !repo.fleet) {
    return { fleet: repo.fleet?.name ?? '(unknown)', valid: false, instances: [], diagnostics: repo.diagnostics };
  }
  // The same decide as the daemon's, against the observed fleet given as data.
  const decision = decide({ desired: { fleet: repo.fleet, instances: repo.instances }, mode: 'rollout', canPlan: true, live: liveFromObserved(observed), restarts: {}, now: 0 });
  // The changed tabs of both sides, for the Markdown's diagrams (not in the JSON).
  const flows = diagramFlows(decision.diffs, repo.instances, observed?.instances ?? []);
  return { fleet: repo.fleet.name, valid: true, plan: decision.plan, instances: decision.diffs, diagnostics: repo.diagnostics, flows };
}

export function planCommand(dir: string, options: PlanOptions, io: Io): number {
  return runPlan(dir, options, io).code;
}

/**
 * The output contract: with --format json, stdout carries the JSON report whatever the exit
 * code — a valid plan, an invalid repository, an unreadable --observed file, a DIR that is
 * no fleet repository — and stderr says the same for people. Text and Markdown reports of
 * an invalid repository go to stderr.
 */
function runPlan(dir: string, options: PlanOptions, io: Io): { code: number; report?: PlanReport } {
  const json = options.format === 'json';
  const failed = (d: Diagnostic, line: string): { code: number } => {
    if (json) io.stdout(renderJson({ fleet: '(unknown)', valid: false, instances: [], diagnostics: [d] }));
    io.stderr(line);
    return { code: PLAN_EXIT.invalid };
  };
  let observed: ObservedFleet | undefined;
  if (options.observed) {
    const at = (message: string): Diagnostic => ({ severity: 'error', code: 'ObservedInvalid', file: options.observed!, line: 1, col: 1, message });
    let text: string;
    try {
      text = readFileSync(options.observed, 'utf8');
    } catch (err) {
      const d = at(`cannot read the observed fleet: ${(err as Error).message}`);
      return failed(d, `${formatDiagnostic(d)}\n`);
    }
    // Nesting is checked before JSON.parse's result reaches diff's recursive walks.
    const value = parseJsonText(options.observed, text, { code: 'ObservedInvalid', hint: 'the observed fleet is JSON, as `tower status --format json` prints it' });
    if (!value.ok) return failed(value.diagnostic, `${formatDiagnostic(value.diagnostic)}\n`);
    const parsed = parseObserved(value.value);
    if (!parsed.observed) {
      const d = at(parsed.error ?? 'not an observed fleet');
      return failed(d, `${d.file}:1:1: error: ${d.message}\n`);
    }
    observed = parsed.observed;
  }
  let report: PlanReport;
  try {
    report = planReport(dir, observed);
  } catch (err) {
    if (!json) throw err; // the CLI says it in one line (NotAFleetDirectory) or as a crash
    if (err instanceof NotAFleetDirectory) {
      io.stdout(renderJson({ fleet: '(unknown)', valid: false, instances: [], diagnostics: [{ severity: 'error', code: 'FileNotFound', file: 'fleet.yaml', line: 1, col: 1, message: err.message }] }));
      throw err;
    }
    return failed(internalError(err), `tower plan: internal error: ${(err as Error).message}\n`);
  }
  if (json) {
    io.stdout(renderJson(report));
    if (!report.valid) for (const d of report.diagnostics) if (d.severity === 'error') io.stderr(`${formatDiagnostic(d)}\n`);
  } else {
    const render = options.format === 'markdown' ? planMarkdown : planText;
    (report.valid ? io.stdout : io.stderr)(render(report));
  }
  if (!report.valid) return { code: PLAN_EXIT.invalid, report };
  return { code: report.plan?.hasChanges ? PLAN_EXIT.changes : PLAN_EXIT.noChanges, report };
}

function renderJson(report: PlanReport): string {
  return JSON.stringify(planJson(report), null, 2) + '\n';
}

/**
 * `tower plan --github-pr N`: the plan as usual, and the same plan (Markdown) as the PR's
 * sticky comment — an invalid fleet too, so the PR shows its errors with file:line. The exit
 * code stays the plan's (0/2/1); it is 1 when the comment could not be posted, with the
 * reason on stderr. The token comes from GITHUB_TOKEN and never appears in any output.
 */
export async function planToPullRequest(dir: string, options: PlanOptions & GithubPlanOptions, io: Io): Promise<number> {
  const token = io.env.GITHUB_TOKEN;
  const repoName = options.githubRepo ?? io.env.GITHUB_REPOSITORY;
  const where = `${repoName ?? '?'}#${options.githubPr}`;
  const fail = (why: string) => {
    io.stderr(`tower plan: the plan was not posted to ${where}: ${why}\n`);
    return PLAN_EXIT.invalid;
  };
  // The plan is printed whatever happens to the comment.
  const { code, report } = runPlan(dir, options, io);
  if (!report) return fail('there is no plan to post');
  if (!token) return fail('GITHUB_TOKEN is not set');
  if (!repoName) return fail('no repository: pass --github-repo owner/name (or set GITHUB_REPOSITORY)');
  // Loaded here, not at the top: a plain `tower plan` does not pay for octokit and pino.
  const [{ pino }, { DEFAULT_API_URL, describeError, githubClient, makeRedactor, parseRepo }, { upsertPlanComment }] = await Promise.all([
    import('pino'),
    import('../adapters/github/client.js'),
    import('../adapters/github/comment.js'),
  ]);
  let target: { owner: string; repo: string };
  try {
    target = parseRepo(repoName);
  } catch (err) {
    return fail((err as Error).message);
  }

  // Octokit's warnings (rate limits, retries) as plain lines on stderr.
  const log = pino({ level: 'warn', base: undefined, timestamp: false }, { write: (line: string) => io.stderr(`tower plan: GitHub: ${jsonMessage(line)}\n`) });
  let describe = (err: unknown) => describeError(err, makeRedactor([token]));
  try {
    // Two retries (after 1 s and 4 s) on 5xx and network errors: a CI job can wait that long, not longer.
    const client = await githubClient({ token, apiUrl: options.githubApiUrl ?? io.env.GITHUB_API_URL ?? DEFAULT_API_URL, log, retries: 2 });
    describe = client.describeError;
    const headSha = eventHeadSha(io.env, options.githubPr);
    const r = await upsertPlanComment(client.octokit, { ...target, number: options.githubPr, fleet: report.fleet }, planMarkdown(report), headSha ? { headSha } : {});
    const what = r.created && !r.updated && !r.unchanged ? 'posted' : r.updated || r.created || r.deleted ? 'updated' : 'unchanged';
    io.stderr(`tower plan: plan comment ${what} on ${where}: ${r.urls[0] ?? ''}${r.urls.length > 1 ? ` (${r.urls.length} parts)` : ''}\n`);
  } catch (err) {
    return fail(describe(err));
  }
  return code;
}

function jsonMessage(line: string): string {
  try {
    return String((JSON.parse(line) as { msg?: unknown }).msg ?? line.trim());
  } catch {
    return line.trim();
  }
}

/** In GitHub Actions, the PR's head commit is in the event payload (GITHUB_SHA is the merge commit). */
function eventHeadSha(env: NodeJS.ProcessEnv, pr: number): string | undefined {
  if (!env.GITHUB_EVENT_PATH) return undefined;
  try {
    const event = JSON.parse(readFileSync(env.GITHUB_EVENT_PATH, 'utf8')) as { pull_request?: { number?: number; head?: { sha?: string } } };
    return event.pull_request?.number === pr ? event.pull_request.head?.sha : undefined;
  } catch {
    return undefined;
  }
}
