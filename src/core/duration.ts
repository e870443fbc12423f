/**
 * Durations as fleet.yaml writes them (schemas/common.schema.json#/$defs/duration):
 * an integer and a unit — 500ms, 30s, 5m, 1h.
 */

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
const DURATION = /^([0-9]+)(ms|s|m|h)$/;

/** "30s" -> 30000. Throws on anything the schema would refuse, so a typo never means "0". */
export function parseDuration(text: string): number {
  const m = DURATION.exec(text.trim());
  if (!m) throw new Error(`invalid duration "${text}": expected a whole number and a unit (ms, s, m or h), e.g. 500ms, 30s, 5m`);
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}

/** 10000 -> "10 s", 500 -> "500 ms", 1500 -> "1.5 s", 120000 -> "2 min": for messages a person reads. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${trim(ms / 1000)} s`;
  if (ms < 3_600_000) return `${trim(ms / 60_000)} min`;
  return `${trim(ms / 3_600_000)} h`;
}

function trim(n: number): string {
  return String(Math.round(n * 10) / 10);
}
