import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { diffFleet } from '../core/diff.js';
import type { ObservedFleet } from '../core/model.js';
import { parseObserved } from '../core/observed.js';
import { buildPlan } from '../core/plan.js';
import { planJson, planMarkdown, planText, type PlanReport } from '../core/render.js';
import { loadDirectory } from '../repository.js';
import type { Io } from './io.js';

export interface PlanOptions {
  observed?: string;
  format: 'text' | 'json' | 'markdown';
}

/** Like `terraform plan -detailed-exitcode`: 0 no changes, 2 changes, 1 invalid input. */
export const PLAN_EXIT = { noChanges: 0, invalid: 1, changes: 2 } as const;

export function planReport(dir: string, observed: ObservedFleet | undefined): PlanReport {
  const repo = loadDirectory(resolve(dir));
  if (!repo.valid || !repo.fleet) {
    return { fleet: repo.fleet?.name ?? '(unknown)', valid: false, instances: [], diagnostics: repo.diagnostics };
  }
  const instances = diffFleet(repo.instances, observed);
  const plan = buildPlan(repo.fleet, instances);
  return { fleet: repo.fleet.name, valid: true, plan, instances, diagnostics: repo.diagnostics };
}

export function planCommand(dir: string, options: PlanOptions, io: Io): number {
  let observed: ObservedFleet | undefined;
  if (options.observed) {
    let data: unknown;
    try {
      data = JSON.parse(readFileSync(options.observed, 'utf8'));
    } catch (err) {
      io.stderr(`${options.observed}:1:1: error: cannot read the observed fleet: ${(err as Error).message}\n`);
      return PLAN_EXIT.invalid;
    }
    const parsed = parseObserved(data);
    if (!parsed.observed) {
      io.stderr(`${options.observed}:1:1: error: ${parsed.error}\n`);
      return PLAN_EXIT.invalid;
    }
    observed = parsed.observed;
  }
  const report = planReport(dir, observed);
  const render = options.format === 'json' ? (r: PlanReport) => JSON.stringify(planJson(r), null, 2) + '\n' : options.format === 'markdown' ? planMarkdown : planText;
  (report.valid ? io.stdout : io.stderr)(render(report));
  if (!report.valid) return PLAN_EXIT.invalid;
  return report.plan?.hasChanges ? PLAN_EXIT.changes : PLAN_EXIT.noChanges;
}
