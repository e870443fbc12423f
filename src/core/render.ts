/**
 * How a plan reads: plain text for terminals, JSON for tools, Markdown for pull requests
 * (with a Mermaid diagram per changed tab when the report carries the flows).
 * All three are pure functions of the same PlanReport.
 */
import { formatDiagnostic, type Diagnostic } from './diagnostics.js';
import type { ContainerDiff, InstanceDiff, NodeRef } from './diff.js';
import { tabDiagram, type DiagramFlows, type TabDiagram } from './mermaid.js';
import type { Plan, PlanStep } from './plan.js';
import { describeAb, describeCanary } from './canary.js';

export interface PlanReport {
  fleet: string;
  /** The Git revision planned, when known. */
  revision?: string;
  valid: boolean;
  plan?: Plan;
  instances: InstanceDiff[];
  diagnostics: Diagnostic[];
  /**
   * The nodes of the changed tabs on both sides (core/mermaid.ts diagramFlows), from which
   * the Markdown draws its diagrams; without it the Markdown lists the nodes only. Not part
   * of the JSON contract: planJson leaves it out.
   */
  flows?: DiagramFlows;
}

/** The JSON contract of `tower plan --format json`. */
export function planJson(report: PlanReport): Record<string, unknown> {
  const byName = new Map(report.instances.map((d) => [d.name, d]));
  return {
    fleet: report.fleet,
    ...(report.revision ? { revision: report.revision } : {}),
    valid: report.valid,
    hasChanges: report.plan?.hasChanges ?? false,
    ...(report.plan
      ? {
          plan: { name: report.plan.name, source: report.plan.source, order: report.plan.order, maxParallel: report.plan.maxParallel, onFailure: report.plan.onFailure },
        }
      : {}),
    waves: (report.plan?.waves ?? []).map((w) => ({
      index: w.index,
      steps: w.steps.map((s) => {
        const d = byName.get(s.instance);
        return {
          instance: s.instance,
          action: s.action,
          strategy: s.strategy,
          ...(s.canary ? { canary: s.canary } : {}),
          ...(s.ab ? { ab: s.ab } : {}),
          after: s.after,
          reason: s.reason,
          ...(d ? { flows: d.change, counts: d.counts, config: d.config, desiredRev: d.desiredRev, observedRev: d.observedRev } : {}),
        };
      }),
    })),
    unchanged: report.plan?.unchanged ?? [],
    instances: report.instances,
    diagnostics: report.diagnostics,
  };
}

export function planText(report: PlanReport): string {
  const lines: string[] = [];
  lines.push(`Fleet ${report.fleet}${report.revision ? ` at ${report.revision.slice(0, 12)}` : ''}`);
  for (const d of report.diagnostics) lines.push(formatDiagnostic(d));
  if (!report.valid) {
    const errors = report.diagnostics.filter((d) => d.severity === 'error').length;
    lines.push(`${errors} error${errors === 1 ? '' : 's'}: nothing can be planned until ${errors === 1 ? 'it is' : 'they are'} fixed.`);
    return lines.join('\n') + '\n';
  }
  const plan = report.plan!;
  if (!plan.hasChanges) {
    lines.push(`No changes. ${plan.unchanged.length} instance${plan.unchanged.length === 1 ? ' is' : 's are'} up to date.`);
    return lines.join('\n') + '\n';
  }
  lines.push(`Plan ${plan.name} (${plan.order}, maxParallel ${plan.maxParallel}, on failure ${plan.onFailure}) from ${plan.source}`);
  const byName = new Map(report.instances.map((d) => [d.name, d]));
  for (const wave of plan.waves) {
    lines.push('');
    lines.push(`Wave ${wave.index + 1}:`);
    for (const step of wave.steps) {
      const d = byName.get(step.instance);
      lines.push(`  ${symbol(step)} ${step.instance}: ${describeStep(step)}${d ? ` — ${summary(d)}` : ''}  (${step.reason})`);
      if (!d) continue;
      for (const c of d.config) lines.push(`      config ${c.field}: ${c.from ?? '(unset)'} -> ${c.to ?? '(unset)'}`);
      for (const c of d.containers) {
        lines.push(`      ${containerHeading(c)}`);
        if (d.action === 'create') continue; // a new instance: the tab headings say enough
        for (const n of c.added) lines.push(`        + ${nodeName(n)}`);
        for (const n of c.removed) lines.push(`        - ${nodeName(n)}`);
        for (const n of c.changed) lines.push(`        ~ ${nodeName(n)}: ${n.properties.join(', ')}${n.cosmetic ? ' (layout)' : ''}`);
      }
      if (d.note) lines.push(`      note: ${d.note}`);
    }
  }
  if (plan.unchanged.length) lines.push('', `Unchanged: ${plan.unchanged.join(', ')}`);
  const total = plan.waves.reduce((n, w) => n + w.steps.length, 0);
  lines.push('', `${total} instance${total === 1 ? '' : 's'} to change in ${plan.waves.length} wave${plan.waves.length === 1 ? '' : 's'}.`);
  return lines.join('\n') + '\n';
}

/** Per tab, at most this many nodes are listed in Markdown; the rest are counted. */
export const MARKDOWN_NODES_PER_LIST = 25;

/**
 * Diagrams per plan: beyond these a tab gets its node list only. Each diagram fits one
 * GitHub comment on its own (DIAGRAM_LIMITS.maxChars); these keep a big plan to a few comments.
 */
export const MARKDOWN_DIAGRAMS = { max: 30, chars: 150_000 };

const LEGEND = '<sub>In the diagrams: 🟩 added · 🟥 removed · 🟨 changed · ⬜ unchanged, drawn for context. Thick wires are new, dotted ones ending in ✕ are removed, dotted arrows are link nodes.</sub>';

export function planMarkdown(report: PlanReport): string {
  const out: string[] = [];
  out.push(`### Tower plan for fleet \`${report.fleet}\`${report.revision ? ` at \`${report.revision.slice(0, 12)}\`` : ''}`);
  out.push('');
  const errors = report.diagnostics.filter((d) => d.severity === 'error');
  const warnings = report.diagnostics.filter((d) => d.severity === 'warning');
  if (!report.valid) {
    out.push(`:x: **${errors.length} validation error${errors.length === 1 ? '' : 's'}** — this revision cannot be deployed.`);
    out.push('');
    out.push(...diagnosticTable(errors));
    if (warnings.length) out.push('', ...diagnosticsDetails('Warnings', warnings));
    return out.join('\n') + '\n';
  }
  const plan = report.plan!;
  if (!plan.hasChanges) {
    out.push(`:white_check_mark: **No changes.** All ${plan.unchanged.length} instances are up to date.`);
    if (warnings.length) out.push('', ...diagnosticsDetails('Warnings', warnings));
    return out.join('\n') + '\n';
  }
  const byName = new Map(report.instances.map((d) => [d.name, d]));
  const steps = plan.waves.flatMap((w) => w.steps);
  out.push(
    `**${steps.length} instance${steps.length === 1 ? '' : 's'} to change in ${plan.waves.length} wave${plan.waves.length === 1 ? '' : 's'}** — plan \`${plan.name}\` (${plan.order}, maxParallel ${plan.maxParallel}, on failure \`${plan.onFailure}\`).`,
  );
  out.push('');
  out.push('| Wave | Instance | Action | Nodes + / − / ~ | Why here |');
  out.push('| ---: | --- | --- | --- | --- |');
  for (const wave of plan.waves) {
    for (const step of wave.steps) {
      const d = byName.get(step.instance);
      const counts = d ? `${d.counts.added} / ${d.counts.removed} / ${d.counts.changed}` : '';
      out.push(`| ${wave.index + 1} | \`${step.instance}\` | ${symbol(step)} ${describeStep(step)} | ${counts} | ${escapeCell(step.reason)} |`);
    }
  }
  if (plan.unchanged.length) {
    out.push('');
    out.push(`Unchanged: ${plan.unchanged.map((n) => `\`${n}\``).join(', ')}`);
  }
  const diagrams = drawDiagrams(report, plan.waves.flatMap((w) => w.steps.map((s) => byName.get(s.instance))));
  if (diagrams.size) out.push('', LEGEND);
  for (const wave of plan.waves) {
    for (const step of wave.steps) {
      const d = byName.get(step.instance);
      if (!d || (d.containers.length === 0 && d.config.length === 0 && !d.note)) continue;
      const drawn = d.containers.map((c) => diagrams.get(c));
      out.push('');
      out.push(`<details${drawn.some(Boolean) ? ' open' : ''}><summary><b>${escapeHtml(step.instance)}</b> — ${escapeHtml(summary(d))}</summary>`);
      out.push('');
      if (d.note) out.push(`> ${d.note}`, '');
      if (d.config.length) {
        out.push('| Setting | From | To |', '| --- | --- | --- |');
        for (const c of d.config) out.push(`| \`${c.field}\` | ${cellValue(c.from)} | ${cellValue(c.to)} |`);
        out.push('');
      }
      d.containers.forEach((c, i) => {
        const diagram = drawn[i];
        const lists = [
          ...nodeList('Added', c.added.map(nodeName)),
          ...nodeList('Removed', c.removed.map(nodeName)),
          ...nodeList('Changed', c.changed.map((n) => `${nodeName(n)}: ${n.properties.join(', ')}${n.cosmetic ? ' _(layout)_' : ''}`)),
        ];
        if (!diagram) {
          out.push(`<details><summary>${escapeHtml(containerHeading(c))}</summary>`, '', ...lists, '</details>', '');
          return;
        }
        out.push(`<details open><summary>${escapeHtml(containerHeading(c))}</summary>`, '');
        if (diagram === 'over-budget') out.push(`_No diagram: this plan already draws ${MARKDOWN_DIAGRAMS.max} tabs or ${MARKDOWN_DIAGRAMS.chars.toLocaleString('en-US')} characters of diagrams._`, '');
        else out.push('```mermaid', diagram.text.trimEnd(), '```', ...diagramNote(diagram), '');
        if (lists.length) out.push('<details><summary>The nodes</summary>', '', ...lists, '</details>', '');
        out.push('</details>', '');
      });
      out.push('</details>');
    }
  }
  if (warnings.length) out.push('', ...diagnosticsDetails('Warnings', warnings));
  return out.join('\n') + '\n';
}

/** The diagram of every tab of these instances, in order, as far as the budget goes. */
function drawDiagrams(report: PlanReport, diffs: readonly (InstanceDiff | undefined)[]): Map<ContainerDiff, TabDiagram | 'over-budget'> {
  const out = new Map<ContainerDiff, TabDiagram | 'over-budget'>();
  let count = 0;
  let chars = 0;
  for (const d of diffs) {
    const flows = d && report.flows?.[d.name];
    if (!d || !flows) continue;
    for (const c of d.containers) {
      const diagram = count < MARKDOWN_DIAGRAMS.max ? tabDiagram(c, flows) : undefined;
      if (diagram && chars + diagram.text.length <= MARKDOWN_DIAGRAMS.chars) {
        out.set(c, diagram);
        count++;
        chars += diagram.text.length;
      } else if (diagram || (count >= MARKDOWN_DIAGRAMS.max && c.kind !== 'config')) {
        out.set(c, 'over-budget');
      }
    }
  }
  return out;
}

/** What a diagram leaves out, when it does. */
function diagramNote(diagram: TabDiagram): string[] {
  if (diagram.drawn === diagram.total && diagram.leftOutChanged === 0) return [];
  const parts: string[] = [];
  if (diagram.neighbourhood) parts.push(`A big tab: drawn are its changed nodes and their neighbours one wire away, ${diagram.drawn} of ${diagram.total}`);
  else parts.push(`Drawn: ${diagram.drawn} of ${diagram.total} nodes`);
  parts.push(`${plural(diagram.total - diagram.drawn, 'node')} left out`);
  const note = `${parts.join('; ')}${diagram.leftOutChanged ? `, ${diagram.leftOutChanged} of them changed (listed below)` : ''}.`;
  return [`<sub>${note}</sub>`];
}

function nodeList(title: string, items: string[]): string[] {
  if (items.length === 0) return [];
  const shown = items.slice(0, MARKDOWN_NODES_PER_LIST).map((i) => `- ${escapeMarkdown(i)}`);
  if (items.length > MARKDOWN_NODES_PER_LIST) shown.push(`- … and ${items.length - MARKDOWN_NODES_PER_LIST} more`);
  return [`**${title}** (${items.length})`, '', ...shown, ''];
}

function diagnosticTable(diagnostics: Diagnostic[]): string[] {
  const rows = diagnostics.slice(0, 100).map((d) => `| \`${d.file}:${d.line}:${d.col}\` | ${escapeCell(d.message)}${d.hint ? `<br>_${escapeCell(d.hint)}_` : ''} |`);
  if (diagnostics.length > 100) rows.push(`| | … and ${diagnostics.length - 100} more (run \`tower validate\`) |`);
  return ['| Where | Problem |', '| --- | --- |', ...rows];
}

function diagnosticsDetails(title: string, diagnostics: Diagnostic[]): string[] {
  return [`<details><summary>${title} (${diagnostics.length})</summary>`, '', ...diagnosticTable(diagnostics), '', '</details>'];
}

function symbol(step: PlanStep): string {
  return step.action === 'create' ? '+' : step.action === 'delete' ? '-' : '~';
}

function describeStep(step: PlanStep): string {
  switch (step.action) {
    case 'create':
      return 'create';
    case 'delete':
      return 'delete (drain, then remove)';
    default:
      if (step.strategy === 'in-place') return 'update in place (layout only)';
      if (step.ab) return `update (A/B: ${describeAb(step.ab)})`;
      return step.canary ? `update (canary: ${describeCanary(step.canary)})` : `update (${step.strategy})`;
  }
}

function summary(d: InstanceDiff): string {
  const parts: string[] = [];
  const { added, removed, changed } = d.counts;
  if (d.action === 'create') parts.push(plural(added, 'node'));
  else if (added || removed || changed) parts.push(`${added} added, ${removed} removed, ${changed} changed node${added + removed + changed === 1 ? '' : 's'}`);
  const tabs = d.containers.filter((c) => c.kind !== 'config').length;
  if (tabs) parts.push(`${tabs} tab${tabs === 1 ? '' : 's'}`);
  if (d.config.length) parts.push(`${d.config.length} setting${d.config.length === 1 ? '' : 's'}`);
  if (d.change === 'cosmetic' && d.config.length === 0) parts.push('layout only');
  return parts.join(', ') || (d.action === 'update' ? 'flows replaced' : d.action);
}

function containerHeading(c: ContainerDiff): string {
  const kind = c.kind === 'config' ? '' : c.kind === 'subflow' ? '' : 'tab ';
  const what = c.change === 'added' ? `added, ${plural(c.added.length, 'node')}` : c.change === 'removed' ? 'removed' : `${c.added.length} added, ${c.removed.length} removed, ${c.changed.length} changed`;
  const own = c.properties.length ? `; ${c.properties.join(', ')} changed` : '';
  return `${kind}${c.label} — ${what}${own}${c.cosmetic && c.change === 'changed' ? ' (layout only)' : ''}`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function nodeName(n: NodeRef): string {
  return n.name ? `${n.type} "${n.name}" (${n.id})` : `${n.type} (${n.id})`;
}

function cellValue(v: string | undefined): string {
  return v === undefined ? '_(unset)_' : `\`${v.replace(/`/g, "'")}\``;
}

function escapeCell(s: string): string {
  return escapeMarkdown(s).replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function escapeMarkdown(s: string): string {
  return escapeHtml(s).replace(/([\\`*_[\]])/g, '\\$1');
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
