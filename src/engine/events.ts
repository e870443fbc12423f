/** What the executor tells as it goes: the recorder, the CLI's progress and the logs listen. */
import type { RepairKind } from '../core/repairs.js';
import type { Verdict } from '../core/canary.js';
import type { Color, Outcome, Phase, RolloutPath } from '../core/rollout.js';
import type { TrafficSummary } from '../core/traffic.js';

export type RolloutEvent =
  | { type: 'rollout-start'; waves: number; instances: number }
  | { type: 'wave-start'; wave: number; instances: string[] }
  | { type: 'phase'; wave: number; instance: string; phase: Phase; path: RolloutPath }
  | { type: 'instance-end'; wave: number; instance: string; outcome: Outcome; error?: string; ms: number }
  | { type: 'wave-end'; wave: number; ok: boolean }
  | { type: 'rollback-start'; reason: string; instances: string[] }
  | { type: 'cleanup'; instances: string[] }
  | { type: 'repair'; instance: string; kind: RepairKind; reason: string; ok: boolean; error?: string; ms: number }
  | { type: 'warning'; instance?: string; message: string }
  /** A canary step's reading: its weight and both colours' numbers since the step began. */
  | { type: 'canary'; instance: string; color: Color; step: number; steps: number; weight: number; canary: TrafficSummary; baseline: TrafficSummary; verdict: Verdict; elapsedMs: number; variants?: [string, string] }
  | { type: 'rollout-end'; ok: boolean; ms: number };
