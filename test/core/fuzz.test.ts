/**
 * The loader under fuzzing (fast-check): hostile repositories — see test/helpers/fuzz-loader.ts
 * — each end valid or with diagnostics that carry file and position; none throws, none hangs.
 * A short run with a fixed seed; `npm run bench:fuzz -- --seconds N` runs it for longer.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzzCase, libraryReader, readCorpus, runCase } from '../helpers/fuzz-loader.js';

const SEED = 20261202;
// Small corpus files keep each case quick; bench/fuzz uses them all.
const corpus = readCorpus(40_000);
const library = libraryReader();

describe('fuzzing the loader', () => {
  it('has corpus files to mutate', () => {
    expect(corpus.length).toBeGreaterThan(20);
  });

  it('any hostile repository loads to a result — valid, or diagnostics with file and position — in bounded time', () => {
    let valid = 0;
    let slowest = 0;
    fc.assert(
      fc.property(fuzzCase({ corpus, bulkMax: 3000 }), (c) => {
        const o = runCase(c, library);
        if (!o.ok) throw new Error(`${o.problem}\n  case: ${c.label}`);
        if (o.valid) valid++;
        slowest = Math.max(slowest, o.ms);
        // A hang would be minutes; a slow case on a busy 2-core machine is seconds.
        expect(o.ms, c.label).toBeLessThan(10_000);
      }),
      { seed: SEED, numRuns: 200 },
    );
    // The generator is not only noise: some cases come through valid.
    expect(valid).toBeGreaterThan(10);
  });
});
