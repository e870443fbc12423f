import { resolve } from 'node:path';
import { formatDiagnostic, internalError, type Diagnostic } from '../core/diagnostics.js';
import type { LoadedRepository } from '../core/load.js';
import type { FlowNode } from '../core/model.js';
import { loadDirectory, NotAFleetDirectory } from '../repository.js';
import type { Io } from './io.js';

export interface ValidateOptions {
  format: 'text' | 'json';
}

/**
 * tower validate [DIR]: exit 0 when valid, 1 when not. Warnings never fail validation.
 * With --format json, stdout carries the JSON report whatever the exit code (also when DIR
 * is no fleet repository); stderr says the same for people.
 */
export function validateCommand(dir: string, options: ValidateOptions, io: Io): number {
  if (options.format === 'json') return validateJson(dir, io);
  const repo = loadDirectory(resolve(dir));
  for (const d of repo.diagnostics) (d.severity === 'error' ? io.stderr : io.stdout)(formatDiagnostic(d) + '\n');
  const errors = repo.diagnostics.filter((d) => d.severity === 'error').length;
  const warnings = repo.diagnostics.length - errors;
  if (repo.valid) {
    const nodes = repo.instances.reduce((n, i) => n + countNodes(i.flowList), 0);
    io.stdout(`${dir}: valid — fleet ${repo.fleet?.name}, ${repo.instances.length} instances, ${nodes} nodes (tabs and subflow definitions not counted)${warnings ? `, ${warnings} warning${warnings === 1 ? '' : 's'}` : ''}\n`);
    return 0;
  }
  io.stderr(`${dir}: ${errors} error${errors === 1 ? '' : 's'}${warnings ? `, ${warnings} warning${warnings === 1 ? '' : 's'}` : ''}\n`);
  return 1;
}

function validateJson(dir: string, io: Io): number {
  const out = (valid: boolean, fleet: string | undefined, instances: { name: string; rev: string; nodes: number }[], diagnostics: readonly Diagnostic[]) =>
    io.stdout(JSON.stringify({ valid, fleet, instances, diagnostics }, null, 2) + '\n');
  let repo: LoadedRepository;
  try {
    repo = loadDirectory(resolve(dir));
  } catch (err) {
    if (err instanceof NotAFleetDirectory) {
      out(false, undefined, [], [{ severity: 'error', code: 'FileNotFound', file: 'fleet.yaml', line: 1, col: 1, message: err.message }]);
      throw err; // and the CLI's one line on stderr
    }
    out(false, undefined, [], [internalError(err)]);
    io.stderr(`tower validate: internal error: ${(err as Error).message}\n`);
    return 1;
  }
  out(repo.valid, repo.fleet?.name, repo.instances.map((i) => ({ name: i.name, rev: i.rev, nodes: countNodes(i.flowList) })), repo.diagnostics);
  for (const d of repo.diagnostics) if (d.severity === 'error') io.stderr(formatDiagnostic(d) + '\n');
  return repo.valid ? 0 : 1;
}

/**
 * Nodes as tower plan counts them (a new instance's "N nodes, M tabs"): every entry of the
 * flow list but the tabs and subflow definitions — config nodes, groups and the nodes inside
 * subflows count.
 */
export function countNodes(flows: readonly FlowNode[]): number {
  let n = 0;
  for (const node of flows) if (node.type !== 'tab' && node.type !== 'subflow') n++;
  return n;
}
