/**
 * bench/fuzz: the loader fuzzed for a set time — the cases of test/core/fuzz.test.ts (hostile
 * repositories, test/helpers/fuzz-loader.ts), as many as fit, from the whole corpus.
 *
 *   npm run bench:fuzz [-- --seconds 60 --seed 42 --slow-ms 5000]
 *   npm run bench:fuzz -- --seed 42 --case 17.3          # run one case again, and write its files
 *   npm run bench:fuzz -- --verbose                      # name each case before it runs
 *
 * Prints the runs, the failures (each with the case that reproduces it), how many cases came
 * through valid, and the slowest case. A failure is an exception, a result that breaks the
 * rules every result keeps (file and position on each diagnostic, valid exactly when there is
 * no error, …) or a case slower than --slow-ms (a hang shows as a run that never ends: each
 * case runs to its end, on this thread). Failing cases are written to --out (default
 * test-output/fuzz/) to be loaded with `tower validate`. Exit 1 when any case failed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import fc from 'fast-check';
import { caseSize, fuzzCase, libraryReader, readCorpus, runCase, type FuzzCase } from '../test/helpers/fuzz-loader.js';
import { PACKAGE_ROOT } from '../src/paths.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    seed: { type: 'string' },
    'slow-ms': { type: 'string', default: '5000' },
    case: { type: 'string' },
    out: { type: 'string', default: join(PACKAGE_ROOT, 'test-output', 'fuzz') },
    batch: { type: 'string', default: '20' },
    verbose: { type: 'boolean', default: false },
  },
});

const SECONDS = Number(values.seconds);
const SEED = values.seed !== undefined ? Number(values.seed) : Date.now() % 2 ** 31;
const SLOW_MS = Number(values['slow-ms']);
const BATCH = Number(values.batch);
const OUT = values.out!;

const corpus = readCorpus();
const library = libraryReader();
const arbitrary = fuzzCase({ corpus, hugeFlows: true });

/** Case b.i: the i-th case of batch b; batch b is drawn with seed SEED + b, so any case can be drawn again alone. */
function batch(b: number): FuzzCase[] {
  return fc.sample(arbitrary, { seed: SEED + b, numRuns: BATCH });
}

function save(id: string, c: FuzzCase, problem: string): string {
  const dir = join(OUT, `${SEED}-${id}`);
  for (const [file, content] of Object.entries(c.files)) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    writeFileSync(join(dir, file), content);
  }
  writeFileSync(join(dir, 'PROBLEM.txt'), `${problem}\n\ncase: ${c.label}\nreproduce: npm run bench:fuzz -- --seed ${SEED} --case ${id}\n`);
  return dir;
}

function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`;
}

if (values.case) {
  const [b, i] = values.case.split('.').map(Number) as [number, number];
  const c = batch(b)[i];
  if (!c) throw new Error(`no case ${values.case}`);
  save(values.case, c, '(running)'); // written first: a case may not come back
  const o = runCase(c, library);
  const dir = save(values.case, c, o.ok ? 'passed' : o.problem!);
  console.log(`case ${values.case} (seed ${SEED}): ${o.ok ? `ok, ${o.valid ? 'valid' : 'invalid'}` : `FAILED: ${o.problem}`} in ${formatMs(o.ms)}\n  ${c.label}\n  files: ${dir}`);
  process.exitCode = o.ok ? 0 : 1;
} else {
  process.stderr.write(`bench/fuzz: seed ${SEED}, ${SECONDS} s, ${corpus.length} corpus files; a case slower than ${SLOW_MS} ms fails\n`);
  const started = performance.now();
  const deadline = started + SECONDS * 1000;
  let runs = 0;
  let valid = 0;
  let bytes = 0;
  const failures: { id: string; problem: string; label: string; dir: string }[] = [];
  let slowest = { ms: 0, id: '', label: '', size: 0 };
  const times: number[] = [];
  let lastReport = started;
  for (let b = 0; performance.now() < deadline; b++) {
    const cases = batch(b);
    for (let i = 0; i < cases.length && performance.now() < deadline; i++) {
      const c = cases[i]!;
      const id = `${b}.${i}`;
      if (values.verbose) process.stderr.write(`case ${id}: ${c.label.slice(0, 200)}\n`);
      const o = runCase(c, library);
      runs++;
      bytes += caseSize(c);
      times.push(o.ms);
      if (o.valid) valid++;
      if (o.ms > slowest.ms) slowest = { ms: o.ms, id, label: c.label, size: caseSize(c) };
      const problem = !o.ok ? o.problem! : o.ms > SLOW_MS ? `slow: ${formatMs(o.ms)} (limit ${SLOW_MS} ms)` : undefined;
      if (problem) {
        const dir = save(id, c, problem);
        failures.push({ id, problem, label: c.label, dir });
        process.stderr.write(`FAIL case ${id}: ${problem.split('\n')[0]}\n  ${c.label.slice(0, 300)}\n  files: ${dir}\n`);
      }
      if (performance.now() - lastReport > 10_000) {
        lastReport = performance.now();
        process.stderr.write(`  ${runs} runs, ${failures.length} failures, ${((lastReport - started) / 1000).toFixed(0)} s\n`);
      }
    }
  }
  const elapsed = (performance.now() - started) / 1000;
  times.sort((a, b) => a - b);
  const pct = (p: number) => times[Math.min(times.length - 1, Math.floor((p / 100) * times.length))] ?? 0;
  console.log(`bench/fuzz: seed ${SEED}, ${elapsed.toFixed(0)} s, ${corpus.length} corpus files`);
  console.log(`  runs          ${runs}   (${(runs / elapsed).toFixed(1)}/s, ${(bytes / 1024 / 1024).toFixed(0)} MiB of input)`);
  console.log(`  failures      ${failures.length}   (goal 0)`);
  console.log(`  valid         ${valid}   (${((100 * valid) / Math.max(1, runs)).toFixed(0)} % of the cases loaded without an error)`);
  console.log(`  time per case median ${formatMs(pct(50))}, p99 ${formatMs(pct(99))}, slowest ${formatMs(slowest.ms)}   (goal: every case under ${SLOW_MS} ms)`);
  console.log(`  slowest case  ${slowest.id} (${(slowest.size / 1024).toFixed(0)} KiB): ${slowest.label.slice(0, 400)}`);
  for (const f of failures.slice(0, 10)) console.log(`  FAILED ${f.id}: ${f.problem.split('\n')[0]}\n    ${f.label.slice(0, 300)}\n    reproduce: npm run bench:fuzz -- --seed ${SEED} --case ${f.id}   (files: ${f.dir})`);
  if (failures.length > 10) console.log(`  … and ${failures.length - 10} more failures`);
  process.exitCode = failures.length ? 1 : 0;
}
