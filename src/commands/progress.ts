/**
 * Progress of a rollout: on a terminal, a block of lines redrawn in place (one per instance
 * of the current wave); otherwise plain lines, one per event, for logs and CI.
 */
import { formatDuration } from '../core/duration.js';
import type { RolloutEvent } from '../engine/events.js';
import type { Io } from './io.js';

export function progressPrinter(io: Io): (e: RolloutEvent) => void {
  return io.isTTY ? ttyPrinter(io) : linePrinter(io);
}

function linePrinter(io: Io): (e: RolloutEvent) => void {
  let waves = 0;
  return (e) => {
    switch (e.type) {
      case 'rollout-start':
        waves = e.waves;
        io.stdout(`rollout: ${e.instances} instance${e.instances === 1 ? '' : 's'} in ${e.waves} wave${e.waves === 1 ? '' : 's'}\n`);
        break;
      case 'wave-start':
        io.stdout(`wave ${e.wave + 1}/${waves}: ${e.instances.join(', ')}\n`);
        break;
      case 'phase':
        io.stdout(`  ${e.instance}: ${e.phase}${e.path !== 'blue-green' ? ` (${e.path})` : ''}\n`);
        break;
      case 'instance-end':
        io.stdout(`  ${e.instance}: ${describeOutcome(e.outcome)} in ${formatDuration(e.ms)}${e.error ? ` — ${e.error}` : ''}\n`);
        break;
      case 'wave-end':
        io.stdout(`wave ${e.wave + 1}/${waves}: ${e.ok ? 'healthy' : 'FAILED'}\n`);
        break;
      case 'rollback-start':
        io.stdout(`rolling back ${e.instances.join(', ')} (${e.reason})\n`);
        break;
      case 'cleanup':
        io.stdout(`cleaning up: ${e.instances.join(', ')}\n`);
        break;
      case 'warning':
        io.stdout(`warning: ${e.instance ? `${e.instance}: ` : ''}${e.message}\n`);
        break;
      case 'rollout-end':
        io.stdout(`rollout ${e.ok ? 'converged' : 'failed'} in ${formatDuration(e.ms)}\n`);
        break;
      case 'repair':
        io.stdout(`repair: ${e.instance}: ${e.reason} — ${e.ok ? `${e.kind} done in ${formatDuration(e.ms)}` : `${e.kind} FAILED: ${e.error}`}\n`);
        break;
    }
  };
}

function ttyPrinter(io: Io): (e: RolloutEvent) => void {
  const plain = linePrinter(io);
  let lines: Map<string, string> = new Map();
  let drawn = 0;
  let header = '';
  const draw = () => {
    if (drawn) io.stdout(`\x1b[${drawn}A`);
    const rows = [header, ...[...lines.entries()].map(([name, text]) => `  ${name.padEnd(16)} ${text}`)];
    for (const row of rows) io.stdout(`\x1b[2K${row}\n`);
    drawn = rows.length;
  };
  let waves = 0;
  return (e) => {
    switch (e.type) {
      case 'rollout-start':
        waves = e.waves;
        plain(e);
        break;
      case 'wave-start':
        lines = new Map(e.instances.map((n) => [n, 'waiting']));
        header = `wave ${e.wave + 1}/${waves}`;
        drawn = 0;
        draw();
        break;
      case 'phase':
        lines.set(e.instance, `${e.phase}${e.path !== 'blue-green' ? ` (${e.path})` : ''} …`);
        draw();
        break;
      case 'instance-end':
        lines.set(e.instance, `${describeOutcome(e.outcome)} in ${formatDuration(e.ms)}${e.error ? ` — ${e.error}` : ''}`);
        draw();
        break;
      case 'wave-end':
        header = `wave ${e.wave + 1}/${waves}: ${e.ok ? 'healthy' : 'FAILED'}`;
        draw();
        break;
      default:
        plain(e);
    }
  };
}

function describeOutcome(outcome: string): string {
  switch (outcome) {
    case 'awaiting-cleanup':
    case 'succeeded':
      return 'done';
    case 'rolled-back':
      return 'rolled back';
    case 'failed':
      return 'FAILED (rollback incomplete)';
    default:
      return outcome;
  }
}
