import { resolve } from 'node:path';
import { formatDiagnostic } from '../core/diagnostics.js';
import { planText, type PlanReport } from '../core/render.js';
import { applyFleet, PreflightError } from '../engine/apply.js';
import { loadDirectory } from '../repository.js';
import { openRuntime } from '../runtime.js';
import type { Io } from './io.js';
import { progressPrinter } from './progress.js';
import { lockStateDir, STATE_DIR_IN_USE_EXIT } from './state-lock.js';

export const APPLY_EXIT = { converged: 0, failed: 1, invalid: 2, inUse: STATE_DIR_IN_USE_EXIT } as const;

export interface ApplyOptions {
  stateDir: string;
  dryRun?: boolean;
}

/** tower apply: make the live fleet match DIR, once. */
export async function applyCommand(dir: string, options: ApplyOptions, io: Io): Promise<number> {
  const repo = loadDirectory(resolve(dir));
  for (const d of repo.diagnostics) io.stderr(formatDiagnostic(d) + '\n');
  if (!repo.valid || !repo.fleet) {
    io.stderr(`${dir}: invalid; nothing was changed on the fleet\n`);
    return APPLY_EXIT.invalid;
  }
  const rt = await openRuntime({ stateDir: resolve(options.stateDir), env: io.env, log: (l) => io.stdout(`${l}\n`) });
  const unlock = lockStateDir(rt.state, 'tower apply', io);
  if (!unlock) {
    await rt.close();
    return APPLY_EXIT.inUse;
  }
  try {
    let outcome;
    try {
      outcome = await applyFleet(rt, { fleet: repo.fleet, instances: repo.instances, diagnostics: repo.diagnostics }, { dryRun: options.dryRun ?? false, env: io.env, onEvent: progressPrinter(io) });
    } catch (err) {
      if (!(err instanceof PreflightError)) throw err;
      for (const p of err.problems) io.stderr(`error: ${p}\n`);
      io.stderr('nothing was changed on the fleet\n');
      return APPLY_EXIT.invalid;
    }
    const { decision, result } = outcome;
    if (options.dryRun || !result) {
      const report: PlanReport = { fleet: repo.fleet.name, valid: true, plan: decision.plan, instances: decision.diffs, diagnostics: [] };
      io.stdout(planText(report));
      return APPLY_EXIT.converged;
    }
    if (result.ok) {
      io.stdout(`converged: fleet ${repo.fleet.name} runs what ${dir} describes\n`);
      return APPLY_EXIT.converged;
    }
    const f = result.failure!;
    io.stderr(`failed: ${f.instance}${f.phase ? ` in ${f.phase}` : ''}: ${f.error}\n`);
    for (const r of result.instances) {
      if (r.state.outcome === 'rolled-back') io.stderr(r.path === 'create' ? `  ${r.instance}: not created (removed again)\n` : `  ${r.instance}: rolled back — it runs what it ran before\n`);
      else if (r.state.outcome === 'failed') io.stderr(`  ${r.instance}: rollback incomplete: ${r.state.error} — run tower apply again to repair\n`);
      else io.stderr(`  ${r.instance}: runs the new version\n`);
    }
    return APPLY_EXIT.failed;
  } finally {
    unlock();
    await rt.close();
  }
}
