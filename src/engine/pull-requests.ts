/**
 * Plans for pull requests: the head of a PR, loaded and validated, planned against the live
 * fleet, posted as one sticky comment. Plans run one at a time, in the background; a PR
 * whose head was already planned is not planned again.
 */
import type { Logger } from 'pino';
import { decide } from '../core/decide.js';
import { loadRepository, type RepoReader } from '../core/load.js';
import { diagramFlows } from '../core/mermaid.js';
import { planMarkdown, type PlanReport } from '../core/render.js';
import { observeFleet } from './observe.js';
import type { FleetRuntime, FleetSource } from './ports.js';

export interface PullRequestRef {
  number: number;
  headSha: string;
}

export interface PullRequestPlannerOptions {
  source: FleetSource;
  runtime: FleetRuntime;
  reporter: { pullRequestPlan(e: { number: number; headSha: string; markdown: string }): void };
  log: Logger;
  library?: RepoReader;
  /** The fleet's name when the PR's own fleet.yaml cannot be read. */
  fleetName(): string | undefined;
}

export class PullRequestPlanner {
  private readonly planned = new Map<number, string>();
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly opts: PullRequestPlannerOptions) {}

  /** Queues a plan of this PR head; returns at once. */
  enqueue(pr: PullRequestRef): void {
    if (this.planned.get(pr.number) === pr.headSha) return;
    this.planned.set(pr.number, pr.headSha);
    this.chain = this.chain.then(() => this.plan(pr)).catch(() => undefined);
  }

  /** The head this planner planned that `sha` names (a prefix), if any: read-only, for the status page's plan pages. */
  plannedHead(sha: string): string | undefined {
    const want = sha.toLowerCase();
    return [...this.planned.values()].find((h) => h.toLowerCase().startsWith(want));
  }

  /** Resolves when every queued plan has been made (for tests and shutdown). */
  idle(): Promise<void> {
    return this.chain;
  }

  private async plan(pr: PullRequestRef): Promise<void> {
    const log = this.opts.log.child({ pullRequest: pr.number, revision: pr.headSha.slice(0, 12) });
    try {
      const { reader } = await this.opts.source.checkout(pr.headSha);
      const repo = loadRepository(reader, { ...(this.opts.library ? { library: this.opts.library } : {}) });
      let report: PlanReport;
      if (!repo.valid || !repo.fleet) {
        report = { fleet: repo.fleet?.name ?? this.opts.fleetName() ?? 'fleet', revision: pr.headSha, valid: false, instances: [], diagnostics: repo.diagnostics };
      } else {
        // The plan the daemon would run if this head were merged now: the same decide, against what runs.
        const live = await observeFleet(this.opts.runtime, repo.fleet.name);
        const decision = decide({ desired: { fleet: repo.fleet, instances: repo.instances }, mode: 'rollout', canPlan: true, live, restarts: {}, now: Date.now() });
        const flows = diagramFlows(decision.diffs, repo.instances, live); // for the comment's diagrams
        report = { fleet: repo.fleet.name, revision: pr.headSha, valid: true, plan: decision.plan, instances: decision.diffs, diagnostics: repo.diagnostics, flows };
      }
      this.opts.reporter.pullRequestPlan({ number: pr.number, headSha: pr.headSha, markdown: planMarkdown(report) });
      log.info({ valid: report.valid, changes: report.plan?.hasChanges ?? false }, 'pull request planned');
    } catch (err) {
      this.planned.delete(pr.number); // try again on the next trigger
      log.warn({ err: (err as Error).message }, 'cannot plan the pull request');
    }
  }
}
