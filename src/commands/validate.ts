import { resolve } from 'node:path';
import { formatDiagnostic } from '../core/diagnostics.js';
import type { FlowNode } from '../core/model.js';
import { loadDirectory } from '../repository.js';
import type { Io } from './io.js';

export interface ValidateOptions {
  format: 'text' | 'json';
}

/** tower validate [DIR]: exit 0 when valid, 1 when not. Warnings never fail validation. */
export function validateCommand(dir: string, options: ValidateOptions, io: Io): number {
  const repo = loadDirectory(resolve(dir));
  if (options.format === 'json') {
    io.stdout(JSON.stringify({ valid: repo.valid, fleet: repo.fleet?.name, instances: repo.instances.map((i) => ({ name: i.name, rev: i.rev, nodes: countNodes(i.flowList) })), diagnostics: repo.diagnostics }, null, 2) + '\n');
    return repo.valid ? 0 : 1;
  }
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
