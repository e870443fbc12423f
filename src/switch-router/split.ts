/**
 * Weighted split and per-colour accounting for the router (a canary or an A/B test between
 * the two colours of an instance).
 *
 * Split: each new connection draws its colour from a shuffled deck of 100 cards, `weight` of
 * them the canary's — so every 100 draws hold exactly the declared shares, in an order no
 * client pattern can line up with. A keep-alive connection keeps its colour (its requests see
 * one version) until the weights change; then its next request draws again.
 *
 * Accounting: counters and a fixed latency histogram per colour (src/core/traffic.ts), so the
 * memory is the same after a billion requests as after one.
 */
import { bucketOf, emptyTraffic, type ColorTraffic, type TrafficStats } from '../core/traffic.js';
import type { Color } from '../adapters/runtime/types.js';
import type { Upstream, WeightedUpstream } from '../adapters/switch/types.js';

export type { WeightedUpstream };

const DECK = 100;

export class Splitter {
  private upstreams: WeightedUpstream[] = [];
  private readonly deck = new Uint8Array(DECK);
  private next = DECK;
  /** Bumped by every change of weights: sticky choices made before it are drawn again. */
  private generation = 0;
  private readonly sticky = new WeakMap<object, { generation: number; upstream: Upstream }>();

  constructor(private readonly random: () => number = Math.random) {}

  get current(): WeightedUpstream[] | undefined {
    return this.upstreams.length ? this.upstreams.map((u) => ({ ...u })) : undefined;
  }

  /** A split of two colours (weights 0..100 adding up to 100), or undefined: no split. */
  set(upstreams: WeightedUpstream[] | undefined): void {
    this.upstreams = (upstreams ?? []).map((u) => ({ color: u.color, port: u.port, weight: u.weight }));
    this.generation += 1;
    this.next = DECK;
  }

  /** The colour for a request on this connection; undefined when there is no split. */
  pick(connection: object): Upstream | undefined {
    if (!this.upstreams.length) return undefined;
    const held = this.sticky.get(connection);
    if (held && held.generation === this.generation) return held.upstream;
    const upstream = this.draw();
    this.sticky.set(connection, { generation: this.generation, upstream });
    return upstream;
  }

  private draw(): Upstream {
    if (this.next >= DECK) this.shuffle();
    const u = this.upstreams[this.deck[this.next++]!]!;
    return { color: u.color, port: u.port };
  }

  private shuffle(): void {
    let card = 0;
    this.upstreams.forEach((u, index) => {
      for (let n = 0; n < u.weight && card < DECK; n++) this.deck[card++] = index;
    });
    for (let i = DECK - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      const t = this.deck[i]!;
      this.deck[i] = this.deck[j]!;
      this.deck[j] = t;
    }
    this.next = 0;
  }
}

/** Weights that make a split: both colours, distinct, integer weights 0..100 adding up to 100. */
export function isSplit(value: unknown): value is WeightedUpstream[] {
  if (!Array.isArray(value) || value.length !== 2) return false;
  const ok = value.every((v: Partial<WeightedUpstream>) => typeof v === 'object' && v !== null && (v.color === 'blue' || v.color === 'green')
    && Number.isInteger(v.port) && v.port! > 0 && v.port! < 65536 && Number.isInteger(v.weight) && v.weight! >= 0 && v.weight! <= 100);
  return ok && value[0].color !== value[1].color && value[0].weight + value[1].weight === 100;
}

export type RequestEnd = { status: number } | 'failed' | 'aborted';

export class Accounting {
  private readonly colors: Record<Color, ColorTraffic> = { blue: emptyTraffic(), green: emptyTraffic() };

  constructor(readonly since: string) {}

  record(color: Color, end: RequestEnd, ms: number): void {
    const c = this.colors[color];
    if (end === 'aborted') {
      c.aborted += 1;
      return;
    }
    c.requests += 1;
    if (end === 'failed') c.failed += 1;
    else if (end.status < 400) c.ok += 1;
    else if (end.status < 500) c.clientErrors += 1;
    else c.serverErrors += 1;
    c.latency[bucketOf(ms)]! += 1;
  }

  snapshot(): TrafficStats {
    return { since: this.since, colors: { blue: copy(this.colors.blue), green: copy(this.colors.green) } };
  }
}

function copy(t: ColorTraffic): ColorTraffic {
  return { ...t, latency: [...t.latency] };
}
