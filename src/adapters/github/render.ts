/**
 * What GitHub shows for a revision: commit status descriptions (at most 140 characters —
 * GitHub answers 422 to longer ones) and check run output (title, summary and text of at most
 * 65,535 characters each, annotations from diagnostics). Pure functions of the reports.
 */
import type { Diagnostic } from '../../core/diagnostics.js';
import { planMarkdown, type PlanReport } from '../../core/render.js';
import { PHASES, type Phase } from '../../core/rollout.js';
import { truncateMarkdown } from './split.js';

export const STATUS_DESCRIPTION_LIMIT = 140;
export const CHECK_OUTPUT_LIMIT = 65_535;
export const ANNOTATIONS_PER_REQUEST = 50;

export type FinishedOutcome = 'succeeded' | 'rolled-back' | 'failed' | 'superseded' | 'interrupted';

export interface InstanceReport {
  name: string;
  /** 0-based; when absent, taken from the plan given at rolloutStarted. */
  wave?: number;
  /** blue-green, swap, in-place, create, delete, … */
  path: string;
  /** succeeded, rolled-back, failed, … */
  outcome: string;
  phases: { phase: Phase; ms: number }[];
  error?: string;
  ms?: number;
}

export interface RolloutStarted {
  revision: string;
  plan: PlanReport;
}

export interface RolloutFinished {
  revision: string;
  outcome: FinishedOutcome;
  /** Why it failed, in words (the daemon's `instance in PHASE: reason`). */
  error?: string;
  instances: InstanceReport[];
  ms: number;
}

export interface RevisionRejected {
  revision: string;
  diagnostics: Diagnostic[];
}

export type StatusState = 'pending' | 'success' | 'failure' | 'error';
export type CheckConclusion = 'success' | 'failure' | 'cancelled' | 'neutral';

/** Cut to `limit` characters with an ellipsis; whitespace runs (newlines in errors) collapse first. */
export function clip(text: string, limit: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (flat.length <= limit) return flat;
  let end = limit - 1;
  const code = flat.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end--;
  return `${flat.slice(0, end)}…`;
}

export function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms < 120_000 ? `${Math.round(ms / 1000)} s` : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function planSize(report: PlanReport): { instances: number; waves: number } {
  const waves = report.plan?.waves ?? [];
  return { instances: waves.reduce((n, w) => n + w.steps.length, 0), waves: waves.length };
}

export function startedStatus(e: RolloutStarted): { state: StatusState; description: string } {
  const { instances, waves } = planSize(e.plan);
  return { state: 'pending', description: clip(`rolling out: ${plural(instances, 'instance')} in ${plural(waves, 'wave')}`, STATUS_DESCRIPTION_LIMIT) };
}

export function finishedStatus(e: RolloutFinished): { state: StatusState; description: string } {
  const reason = e.error ?? 'no reason given';
  switch (e.outcome) {
    case 'succeeded':
      return { state: 'success', description: clip(`the fleet runs this revision (${plural(e.instances.length, 'instance')} changed in ${seconds(e.ms)})`, STATUS_DESCRIPTION_LIMIT) };
    case 'rolled-back':
      return { state: 'failure', description: clip(`rolled back: ${reason}`, STATUS_DESCRIPTION_LIMIT) };
    case 'failed':
      return { state: 'error', description: clip(`failed: ${reason}`, STATUS_DESCRIPTION_LIMIT) };
    case 'superseded':
      return { state: 'error', description: clip('superseded: a newer revision arrived before this one was rolled out', STATUS_DESCRIPTION_LIMIT) };
    case 'interrupted':
      return { state: 'error', description: clip(`interrupted: ${reason}`, STATUS_DESCRIPTION_LIMIT) };
  }
}

export function rejectedStatus(e: RevisionRejected): { state: StatusState; description: string } {
  const errors = e.diagnostics.filter((d) => d.severity === 'error');
  const first = errors[0];
  const where = first ? `, first: ${first.file}:${first.line} ${first.message}` : '';
  return { state: 'failure', description: clip(`invalid: ${plural(errors.length, 'error')}${where}`, STATUS_DESCRIPTION_LIMIT) };
}

export function conclusionOf(outcome: FinishedOutcome): CheckConclusion {
  return outcome === 'succeeded' ? 'success' : outcome === 'rolled-back' || outcome === 'failed' ? 'failure' : 'cancelled';
}

/** Check output fields, each within GitHub's limit; the note says what was cut and where to see it all. */
/** The status page's drawing of a revision (its plan page), under the configured status page URL. */
export function revisionPageUrl(statusPageUrl: string, revision: string): string {
  return new URL(`revisions/${encodeURIComponent(revision)}`, statusPageUrl.endsWith('/') ? statusPageUrl : `${statusPageUrl}/`).toString();
}

export function fitOutput(markdown: string, statusPageUrl?: string): string {
  return truncateMarkdown(markdown, CHECK_OUTPUT_LIMIT, (omitted) => `\n\n> **Truncated:** ${omitted.toLocaleString('en-US')} more characters did not fit GitHub's ${CHECK_OUTPUT_LIMIT.toLocaleString('en-US')}-character limit.${statusPageUrl ? ` The full report is on the [status page](${statusPageUrl}).` : ' Run `tower plan` for the full plan.'}\n`);
}

export function startedOutput(fleet: string, e: RolloutStarted, statusPageUrl?: string): { title: string; summary: string; text: string } {
  const { instances, waves } = planSize(e.plan);
  const lines = [`Tower is rolling revision \`${e.revision.slice(0, 12)}\` out to fleet \`${fleet}\`: ${plural(instances, 'instance')} in ${plural(waves, 'wave')}, blue-green — each new colour is verified before it gets traffic.`];
  if (statusPageUrl) lines.push('', `Follow it on the [status page](${statusPageUrl}); [the changes, drawn](${revisionPageUrl(statusPageUrl, e.revision)}).`);
  return { title: `Rolling out: ${plural(instances, 'instance')} in ${plural(waves, 'wave')}`, summary: fitOutput(lines.join('\n'), statusPageUrl), text: fitOutput(planMarkdown({ ...e.plan, revision: e.revision }), statusPageUrl) };
}

function escapeCell(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\|/g, '\\|').replace(/\s+/g, ' ');
}

const OUTCOME_ICON: Record<string, string> = { succeeded: ':white_check_mark:', 'rolled-back': ':leftwards_arrow_with_hook:', failed: ':x:', skipped: ':fast_forward:' };

export function finishedOutput(fleet: string, e: RolloutFinished, plan: PlanReport | undefined, statusPageUrl?: string): { title: string; summary: string; text: string } {
  const waveOf = new Map<string, number>();
  for (const w of plan?.plan?.waves ?? []) for (const s of w.steps) waveOf.set(s.instance, w.index);
  const instances = e.instances.map((i) => ({ ...i, wave: i.wave ?? waveOf.get(i.name) ?? 0 })).sort((a, b) => a.wave - b.wave || (a.name < b.name ? -1 : 1));
  const reason = e.error ? clip(e.error, 1000) : undefined;
  const title =
    e.outcome === 'succeeded'
      ? `The fleet runs this revision`
      : e.outcome === 'rolled-back'
        ? clip(`Rolled back: ${reason ?? 'no reason given'}`, 200)
        : e.outcome === 'failed'
          ? clip(`Failed: ${reason ?? 'no reason given'}`, 200)
          : e.outcome === 'superseded'
            ? 'Superseded by a newer revision'
            : clip(`Interrupted: ${reason ?? ''}`, 200);

  const summary: string[] = [];
  const rev = `\`${e.revision.slice(0, 12)}\``;
  if (e.outcome === 'succeeded') summary.push(`:white_check_mark: Fleet \`${fleet}\` runs ${rev}: ${plural(instances.length, 'instance')} changed in ${seconds(e.ms)}.`);
  else if (e.outcome === 'rolled-back') summary.push(`:leftwards_arrow_with_hook: The rollout of ${rev} failed and was **rolled back** — the fleet runs the revision it ran before.`, '', `**Reason:** ${escapeCell(reason ?? 'no reason given')}`);
  else if (e.outcome === 'failed') summary.push(`:x: The rollout of ${rev} **failed**.`, '', `**Reason:** ${escapeCell(reason ?? 'no reason given')}`);
  else if (e.outcome === 'superseded') summary.push(`:fast_forward: A newer revision arrived; the rollout of ${rev} stopped between waves. What it changed stays; the newer revision takes over.`);
  else summary.push(`:warning: The rollout of ${rev} was interrupted${reason ? `: ${escapeCell(reason)}` : ''}. Tower repairs from what runs and tries again.`);
  if (statusPageUrl) summary.push('', `[Status page](${statusPageUrl}) · [the changes, drawn](${revisionPageUrl(statusPageUrl, e.revision)})`);
  summary.push('', '| Wave | Instance | Path | Result | Time | Error |', '| ---: | --- | --- | --- | ---: | --- |');
  for (const i of instances) {
    const total = i.ms ?? i.phases.reduce((n, p) => n + p.ms, 0);
    summary.push(`| ${i.wave + 1} | \`${i.name}\` | ${i.path} | ${OUTCOME_ICON[i.outcome] ?? ''} ${i.outcome} | ${seconds(total)} | ${i.error ? escapeCell(clip(i.error, 300)) : ''} |`);
  }

  const text: string[] = ['### Timeline', '', `Phases per instance (${PHASES.join(' → ')}), wave by wave; total ${seconds(e.ms)}.`, ''];
  const waves = [...new Set(instances.map((i) => i.wave))];
  for (const w of waves) {
    text.push(`**Wave ${w + 1}**`, '', `| Instance | ${PHASES.join(' | ')} | Total |`, `| --- | ${PHASES.map(() => '---:').join(' | ')} | ---: |`);
    for (const i of instances.filter((x) => x.wave === w)) {
      const byPhase = new Map<Phase, number>();
      for (const p of i.phases) byPhase.set(p.phase, (byPhase.get(p.phase) ?? 0) + p.ms);
      const total = i.ms ?? i.phases.reduce((n, p) => n + p.ms, 0);
      text.push(`| \`${i.name}\` | ${PHASES.map((p) => (byPhase.has(p) ? seconds(byPhase.get(p)!) : '–')).join(' | ')} | ${seconds(total)} |`);
    }
    text.push('');
  }
  if (plan) text.push('<details><summary>The plan</summary>', '', planMarkdown({ ...plan, revision: e.revision }), '</details>');
  return { title, summary: fitOutput(summary.join('\n') + '\n', statusPageUrl), text: fitOutput(text.join('\n') + '\n', statusPageUrl) };
}

export function rejectedOutput(e: RevisionRejected, statusPageUrl?: string): { title: string; summary: string } {
  const errors = e.diagnostics.filter((d) => d.severity === 'error');
  const warnings = e.diagnostics.length - errors.length;
  const lines = [`:x: Revision \`${e.revision.slice(0, 12)}\` cannot be deployed: **${plural(errors.length, 'error')}**${warnings ? `, ${plural(warnings, 'warning')}` : ''}. The fleet keeps running the last good revision.`, ''];
  lines.push('| Where | Code | Problem |', '| --- | --- | --- |');
  for (const d of e.diagnostics.slice(0, 200)) lines.push(`| \`${d.file}:${d.line}:${d.col}\` | ${d.code} | ${escapeCell(d.message)}${d.hint ? ` — _${escapeCell(d.hint)}_` : ''} |`);
  if (e.diagnostics.length > 200) lines.push(`| | | … and ${e.diagnostics.length - 200} more (run \`tower validate\`) |`);
  if (statusPageUrl) lines.push('', `[This revision on the status page](${revisionPageUrl(statusPageUrl, e.revision)})`);
  return { title: `Invalid: ${plural(errors.length, 'error')}`, summary: fitOutput(lines.join('\n') + '\n', statusPageUrl) };
}

export interface Annotation {
  path: string;
  start_line: number;
  end_line: number;
  start_column?: number;
  end_column?: number;
  annotation_level: 'failure' | 'warning' | 'notice';
  title: string;
  message: string;
  raw_details?: string;
}

/** Diagnostics as check annotations; `pathPrefix` is where the fleet repository sits inside the Git repository. */
export function annotations(diagnostics: readonly Diagnostic[], pathPrefix = ''): Annotation[] {
  const prefix = pathPrefix.replace(/^\/+|\/+$/g, '');
  return diagnostics.map((d) => {
    const line = Math.max(d.line, 1);
    return {
      path: prefix ? `${prefix}/${d.file}` : d.file,
      start_line: line,
      end_line: line,
      ...(d.col >= 1 ? { start_column: d.col, end_column: d.col } : {}),
      annotation_level: d.severity === 'error' ? 'failure' : 'warning',
      title: d.code,
      message: clip(`${d.message}${d.hint ? ` — ${d.hint}` : ''}`, 4000),
      ...(d.instances?.length || d.nodeId ? { raw_details: [d.instances?.length ? `instances: ${d.instances.join(', ')}` : '', d.nodeId ? `node: ${d.nodeId}` : ''].filter(Boolean).join('\n') } : {}),
    };
  });
}

/** GitHub takes at most 50 annotations per request. */
export function batches<T>(items: readonly T[], size = ANNOTATIONS_PER_REQUEST): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
