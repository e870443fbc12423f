/**
 * Tower's GitHub adapter against a CONTRACT TEST SERVER (test/helpers/github-contract-server.ts):
 * every request is checked against GitHub's published OpenAPI description — this is not
 * GitHub, which cannot be reached from here. Commit statuses, check runs, annotations, the
 * sticky plan comment and its split, rate limits, outages, token-only mode, redaction, polling,
 * GitHub Enterprise Server, and `tower plan --github-pr`.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { githubClient, TOKEN_ONLY_NOTICE, makeRedactor, type GithubClient } from '../../src/adapters/github/client.js';
import { markerIndex, planCommentBodies, planMarker, upsertPlanComment } from '../../src/adapters/github/comment.js';
import { pollPullRequests } from '../../src/adapters/github/pulls.js';
import { fitOutput } from '../../src/adapters/github/render.js';
import { githubReporter, type GithubReporter, type InstanceReport } from '../../src/adapters/github/reporter.js';
import { splitComment, truncateMarkdown } from '../../src/adapters/github/split.js';
import { main } from '../../src/cli.js';
import { bufferIo } from '../../src/commands/io.js';
import { planReport } from '../../src/commands/plan.js';
import type { Diagnostic } from '../../src/core/diagnostics.js';
import { planMarkdown } from '../../src/core/render.js';
import { loadDirectory } from '../../src/repository.js';
import { startGithubContractServer, type GithubContractServer } from '../helpers/github-contract-server.js';

const ROOT = join(import.meta.dirname, '..', '..');
const EXAMPLE = join(ROOT, 'fleet-example');
const TOKEN = `ghp_${randomBytes(18).toString('hex')}`;
const STATUS_PAGE = 'https://tower.example/fleet/redforge';
const REPO = 'redforge/fleet';
const APP_ID = 424242;
const INSTALLATION = 777;
const keys = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });

/** A 40-hex commit id per test revision. */
const sha = (n: number) => n.toString(16).padStart(8, '0').repeat(5);

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

/** A pino logger whose lines the test reads back (STYLE: capture log lines from a stream). */
function capture(): { log: Logger; lines: LogLine[]; text(): string } {
  const lines: LogLine[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { log, lines, text: () => lines.map((l) => JSON.stringify(l)).join('\n') };
}

/** Open code fences and <details> depth of one comment, as GitHub would parse them. */
function structure(text: string): { fenceOpen: boolean; depth: number; minDepth: number } {
  let fence: string | undefined;
  let depth = 0;
  let minDepth = 0;
  for (const line of text.split('\n')) {
    const m = /^ {0,3}(`{3,}|~{3,})(.*)$/.exec(line);
    if (m) {
      if (!fence) fence = m[1];
      else if (m[1]![0] === fence[0] && m[1]!.length >= fence.length && !m[2]!.trim()) fence = undefined;
      continue;
    }
    if (fence) continue;
    for (const tag of line.match(/<details\b[^>]*>|<\/details\s*>/gi) ?? []) {
      depth += tag.startsWith('</') ? -1 : 1;
      minDepth = Math.min(minDepth, depth);
    }
  }
  return { fenceOpen: fence !== undefined, depth, minDepth };
}

function expectBalanced(parts: string[]): void {
  for (const [i, p] of parts.entries()) expect(structure(p), `part ${i + 1}`).toEqual({ fenceOpen: false, depth: 0, minDepth: 0 });
}

/** Every line of the original appears in the parts, in order (parts add only markers and reopeners). */
function expectLinesKept(original: string, parts: string[]): void {
  const want = original.split('\n');
  let i = 0;
  for (const line of parts.join('\n').split('\n')) if (i < want.length && line === want[i]) i++;
  expect(i, `line ${i + 1} of the original is missing: ${JSON.stringify(want[i])}`).toBe(want.length);
}

/** A plan-shaped Markdown text of about `kb` KiB: nested details, node lists, and a long JSON fence. */
function bigPlan(kb: number, tag = ''): string {
  const out = ['### Tower plan for fleet `redforge`', '', '| Wave | Instance | Action |', '| ---: | --- | --- |', ...Array.from({ length: 60 }, (_, i) => `| ${(i % 3) + 1} | \`instance-${i}\` | ~ update (blue-green) |`), ''];
  let size = out.join('\n').length;
  for (let i = 0; size < kb * 1024; i++) {
    const block = [
      `<details><summary><b>instance-${i}</b>${tag} — 40 added, 0 removed, 3 changed nodes</summary>`,
      '',
      `<details><summary>tab Main ${i} — 40 added</summary>`,
      '',
      ...Array.from({ length: 40 }, (_, n) => `- function "transform ${i}.${n}" (${(i * 1000 + n).toString(16).padStart(16, '0')})`),
      '</details>',
      '',
      '```json',
      ...Array.from({ length: i % 7 === 3 ? 300 : 12 }, (_, n) => `{"id": "n${i}-${n}", "type": "function", "func": "msg.payload = msg.payload * ${n}; return msg;"}`),
      '```',
      '',
      '</details>',
      '',
    ];
    out.push(...block);
    size += block.join('\n').length + 1;
  }
  return out.join('\n') + '\n';
}

function diagnostics(n: number): Diagnostic[] {
  return Array.from({ length: n }, (_, i) => ({
    severity: i % 10 === 9 ? ('warning' as const) : ('error' as const),
    code: i % 2 ? ('DanglingWire' as const) : ('DuplicateNodeId' as const),
    file: `flows/flow-${i % 4}.json`,
    line: i + 1,
    col: 3,
    message: `node ${i.toString(16)} wires to a node that does not exist`,
    hint: 'remove the wire or add the node',
    instances: ['ingest'],
    nodeId: `n${i}`,
  }));
}

function results(error?: string): InstanceReport[] {
  const phases = (ms: number) => (['DRAIN', 'DEPLOY', 'VERIFY', 'RESUME', 'AUDIT', 'CLEANUP'] as const).map((phase) => ({ phase, ms }));
  return [
    { name: 'ingest', path: 'create', outcome: 'succeeded', phases: phases(100), ms: 1_350 },
    { name: 'embeddings', path: 'create', outcome: 'succeeded', phases: phases(120) },
    { name: 'storage', path: 'create', outcome: error ? 'rolled-back' : 'succeeded', phases: phases(200), ...(error ? { error } : {}) },
  ];
}

describe('splitComment (pure)', () => {
  it('returns text that fits unchanged, also exactly at the limit', () => {
    const text = 'a'.repeat(999) + '\n';
    expect(splitComment(text, 1000)).toEqual([text]);
    expect(splitComment('', 1000)).toEqual(['']);
    const over = 'line\n'.repeat(200) + 'x'; // 1001 characters
    const parts = splitComment(over, 1000);
    expect(parts.length).toBe(2);
    for (const p of parts) expect(p.length).toBeLessThanOrEqual(1000);
    expect(parts[0]).toMatch(/^<sub>part 1\/2<\/sub>/);
    expect(parts[0]).toMatch(/continued in the next comment \(part 2\/2\)/);
    expect(parts[1]).toMatch(/^<sub>part 2\/2, continued from the previous comment<\/sub>/);
    expectLinesKept(over, parts);
  });

  it('closes and reopens a code fence at every split, and keeps its info string', () => {
    const text = ['Before', '', '```diff', ...Array.from({ length: 2000 }, (_, i) => `+ line ${i}`), '```', '', 'After'].join('\n');
    const parts = splitComment(text, 2000);
    expect(parts.length).toBeGreaterThan(10);
    expectBalanced(parts);
    for (const p of parts.slice(1, -1)) expect(p).toMatch(/\n```diff\n\+ line/);
    for (const p of parts) expect(p.length).toBeLessThanOrEqual(2000);
    expectLinesKept(text, parts);
  });

  it('handles ~~~ fences, longer fences, and a fence that contains ``` lines', () => {
    const text = ['~~~~text', ...Array.from({ length: 300 }, (_, i) => (i % 50 === 0 ? '```' : `row ${i}`)), '~~~~', '', '````md', ...Array.from({ length: 300 }, (_, i) => (i % 40 === 0 ? '```js' : `md ${i}`)), '````'].join('\n');
    const parts = splitComment(text, 800);
    expectBalanced(parts);
    expectLinesKept(text, parts);
    expect(parts.some((p) => p.includes('~~~~text\nrow'))).toBe(true);
  });

  it('closes and reopens nested <details> (summary marked continued), with a fence inside', () => {
    const text = bigPlan(40);
    const parts = splitComment(text, 6000);
    expect(parts.length).toBeGreaterThan(6);
    expectBalanced(parts);
    expectLinesKept(text, parts);
    expect(parts.slice(1).some((p) => /<details><summary><b>instance-\d+<\/b> — [^<]* \(continued\)<\/summary>/.test(p))).toBe(true);
    for (const p of parts) expect(p.length).toBeLessThanOrEqual(6000);
  });

  it('repeats a table header when a table is split', () => {
    const text = ['| A | B |', '| --- | --- |', ...Array.from({ length: 400 }, (_, i) => `| a${i} | b${i} |`)].join('\n');
    const parts = splitComment(text, 1000);
    expect(parts.length).toBeGreaterThan(3);
    for (const p of parts.slice(1)) expect(p).toMatch(/\n\| A \| B \|\n\| --- \| --- \|\n\| a\d+/);
  });

  it('cuts a line longer than a part inside it, without losing a character or splitting a surrogate pair', () => {
    const long = 'abcdefghij'.repeat(1000);
    const parts = splitComment(long, 1000);
    const strip = (p: string) => p.replace(/^<sub>[^\n]*<\/sub>\n\n/, '').replace(/\n<sub>continued[^\n]*<\/sub>\n$/, '');
    expect(parts.map(strip).join('')).toBe(long);
    for (const p of parts) expect(p.length).toBeLessThanOrEqual(1000);

    const emoji = '🚀'.repeat(3000);
    const eparts = splitComment(emoji, 1001);
    for (const p of eparts) expect(p.length).toBeLessThanOrEqual(1001);
    expect(eparts.map(strip).join('')).toBe(emoji);
    for (const p of eparts) expect(strip(p)).toMatch(/^(🚀)+$/u);

    const fenced = ['```', 'x'.repeat(5000), '```'].join('\n');
    const fparts = splitComment(fenced, 1200);
    expectBalanced(fparts);
  });

  it('a plan comment of exactly 65,536 characters is one comment; one more character makes two', () => {
    const overhead = planCommentBodies('redforge', '', sha(1)).join('').length;
    const exact = 'x'.repeat(99) + '\n';
    const fill = (n: number) => exact.repeat(Math.floor(n / 100)) + 'y'.repeat(n % 100);
    const one = planCommentBodies('redforge', fill(65_536 - overhead), sha(1));
    expect(one.map((b) => b.length)).toEqual([65_536]);
    const two = planCommentBodies('redforge', fill(65_537 - overhead), sha(1));
    expect(two).toHaveLength(2);
    for (const b of two) expect(b.length).toBeLessThanOrEqual(65_536);
    expect(two.map((b) => markerIndex(b, 'redforge'))).toEqual([1, 2]);
  });

  it('truncateMarkdown keeps GitHub check output within 65,535 characters, balanced, with a note', () => {
    const text = bigPlan(200);
    const out = fitOutput(text, STATUS_PAGE);
    expect(out.length).toBeLessThanOrEqual(65_535);
    expect(structure(out)).toEqual({ fenceOpen: false, depth: 0, minDepth: 0 });
    expect(out).toMatch(/Truncated:\*\* [\d,]+ more characters did not fit/);
    expect(out).toContain(STATUS_PAGE);
    expect(truncateMarkdown('short', 100, () => 'note')).toBe('short');
  });
});

// One server and one App client for the file; the App's installation token is fetched once.
let server: GithubContractServer;
let appClient: GithubClient;
const appLog = capture();

beforeAll(async () => {
  server = await startGithubContractServer({ tokens: [TOKEN], app: { appId: APP_ID, publicKey: keys.publicKey, installationId: INSTALLATION } });
  appClient = await githubClient({ app: { appId: APP_ID, privateKey: keys.privateKey, installationId: INSTALLATION }, apiUrl: server.url, log: appLog.log });
});

afterAll(async () => {
  await server?.close();
});

describe('GitHub reporter against the contract server (a contract test — not GitHub)', () => {
  let reporter: GithubReporter;

  beforeAll(() => {
    reporter = githubReporter({ client: appClient, repo: REPO, fleet: 'redforge', statusPageUrl: STATUS_PAGE, log: appLog.log, queue: { initialBackoffMs: 200, maxBackoffMs: 1_000 } });
  });

  afterAll(() => reporter?.close());

  const statusesOf = (s: string) => server.statuses.filter((x) => x.sha === s);
  const runsOf = (s: string) => server.checkRuns.filter((x) => x.headSha === s);

  it('a rollout that succeeds: pending → success, and a check run in_progress (the plan) → completed (timeline, results)', async () => {
    expect(appClient.checksEnabled).toBe(true);
    const plan = planReport(EXAMPLE, undefined);
    const t0 = performance.now();
    reporter.rolloutStarted({ revision: sha(1), plan });
    // Rendering only (no request is made in the caller's turn); the bound leaves room for a busy CI machine.
    expect(performance.now() - t0).toBeLessThan(250);
    expect(await reporter.flush(30_000)).toBe(true);
    expect(statusesOf(sha(1)).map((s) => s.state)).toEqual(['pending']);
    expect(runsOf(sha(1))[0]).toMatchObject({ status: 'in_progress', name: 'tower/redforge', detailsUrl: STATUS_PAGE });
    expect(runsOf(sha(1))[0]!.output.text).toContain('Tower plan for fleet `redforge`');
    expect(runsOf(sha(1))[0]!.output.text).toContain('`ingest`');
    expect(runsOf(sha(1))[0]!.output.summary).toContain(`[the changes, drawn](${STATUS_PAGE}/revisions/${sha(1)})`);

    reporter.rolloutFinished({ revision: sha(1), outcome: 'succeeded', instances: results(), ms: 4_200 });
    expect(await reporter.flush(30_000)).toBe(true);

    const statuses = statusesOf(sha(1));
    expect(statuses.map((s) => s.state)).toEqual(['pending', 'success']);
    for (const s of statuses) {
      expect(s.context).toBe('tower/redforge');
      expect(s.targetUrl).toBe(STATUS_PAGE);
      expect(s.description!.length).toBeLessThanOrEqual(140);
    }
    expect(statuses[1]!.description).toMatch(/^the fleet runs this revision/);

    const runs = runsOf(sha(1));
    expect(runs).toHaveLength(1); // created once, then updated
    const run = runs[0]!;
    expect(run).toMatchObject({ status: 'completed', conclusion: 'success' });
    expect(run.history.map((h) => h.status)).toEqual(['in_progress', 'completed']);
    expect(run.output.title).toBe('The fleet runs this revision');
    for (const name of ['ingest', 'embeddings', 'storage']) expect(run.output.summary).toContain(`\`${name}\``);
    expect(run.output.summary).toMatch(/\| 1 \| `ingest` \| create \| :white_check_mark: succeeded \| 1\.4 s \|/);
    expect(run.output.text).toContain('### Timeline');
    expect(run.output.text).toMatch(/\| Instance \| DRAIN \| DEPLOY \| VERIFY \| RESUME \| AUDIT \| CLEANUP \| Total \|/);
    expect(run.output.text).toMatch(/\| `storage` \| 0\.2 s \| 0\.2 s \| 0\.2 s \| 0\.2 s \| 0\.2 s \| 0\.2 s \| 1\.2 s \|/);
    expect(run.output.text).toContain('<details><summary>The plan</summary>');
  });

  it('a rollout that is rolled back: pending → failure with the reason, within 140 characters even for a 500-character error', async () => {
    const error = `storage in VERIFY: smoke green: "answers": expected status 200, got 503: ${'upstream unavailable '.repeat(25)}`;
    expect(error.length).toBeGreaterThan(500);
    reporter.rolloutStarted({ revision: sha(2), plan: planReport(EXAMPLE, undefined) });
    await reporter.flush(30_000);
    reporter.rolloutFinished({ revision: sha(2), outcome: 'rolled-back', error, instances: results(error), ms: 2_000 });
    expect(await reporter.flush(30_000)).toBe(true);
    const statuses = statusesOf(sha(2));
    expect(statuses.map((s) => s.state)).toEqual(['pending', 'failure']);
    expect(statuses[1]!.description).toMatch(/^rolled back: storage in VERIFY: smoke green/);
    expect(statuses[1]!.description!.length).toBeLessThanOrEqual(140);
    expect(statuses[1]!.description!.endsWith('…')).toBe(true);
    const run = runsOf(sha(2))[0]!;
    expect(run.conclusion).toBe('failure');
    expect(run.output.title).toMatch(/^Rolled back: storage in VERIFY/);
    expect(run.output.summary).toContain('**Reason:** storage in VERIFY');
    expect(run.output.summary).toMatch(/`storage` \| create \| :leftwards_arrow_with_hook: rolled-back/);
  });

  it('a rejected revision: status failure ("invalid: N errors, first: file:line …"), 120 annotations in 3 requests of ≤ 50', async () => {
    const diags = diagnostics(120);
    reporter.revisionRejected({ revision: sha(3), diagnostics: diags });
    expect(await reporter.flush(30_000)).toBe(true);
    const status = statusesOf(sha(3));
    expect(status.map((s) => s.state)).toEqual(['failure']);
    expect(status[0]!.description).toMatch(/^invalid: 108 errors, first: flows\/flow-0\.json:1 node 0 wires to/);
    expect(status[0]!.description!.length).toBeLessThanOrEqual(140);

    const run = runsOf(sha(3))[0]!;
    const requests = server.requests.filter((r) => (r.operationId === 'checks/create' && (r.body as { head_sha?: string }).head_sha === sha(3)) || (r.operationId === 'checks/update' && r.path.endsWith(`/${run.id}`)));
    expect(requests.map((r) => r.operationId)).toEqual(['checks/create', 'checks/update', 'checks/update']);
    expect(requests.map((r) => ((r.body as { output: { annotations: unknown[] } }).output.annotations ?? []).length)).toEqual([50, 50, 20]);
    expect(run.history.map((h) => h.status)).toEqual(['in_progress', 'in_progress', 'completed']);
    expect(run).toMatchObject({ status: 'completed', conclusion: 'failure' });
    expect(run.annotations).toHaveLength(120);
    expect(run.annotations[0]).toMatchObject({ path: 'flows/flow-0.json', start_line: 1, end_line: 1, start_column: 3, end_column: 3, annotation_level: 'failure', title: 'DuplicateNodeId' });
    expect(run.annotations[0]!.message).toContain('node 0 wires to a node that does not exist — remove the wire');
    expect(run.annotations[9]!.annotation_level).toBe('warning');
    expect(run.output.title).toBe('Invalid: 108 errors');
  });

  it('the sticky comment: posted once, then updated in place (found by its marker among 250 other comments)', async () => {
    for (let i = 0; i < 250; i++) server.addComment(REPO, 11, `LGTM ${i}`);
    reporter.pullRequestPlan({ number: 11, headSha: sha(11), markdown: planMarkdown(planReport(EXAMPLE, undefined)) });
    expect(await reporter.flush(30_000)).toBe(true);
    const ours = () => server.comments.filter((c) => c.repo === REPO && c.issue === 11 && markerIndex(c.body, 'redforge') !== undefined);
    expect(ours()).toHaveLength(1);
    const first = ours()[0]!;
    expect(first.body.startsWith(planMarker('redforge'))).toBe(true);
    expect(first.body).toContain('<!-- tower:plan fleet=redforge -->');
    expect(first.body).toContain('Tower plan for fleet `redforge`');
    expect(first.body).toContain(`plan of ${sha(11).slice(0, 12)}`);
    // The status page's drawing of this head, first.
    expect(first.body.split('\n')[1]).toContain(`(${STATUS_PAGE}/revisions/${sha(11)})`);
    // The list was read page by page (250 others + ours = 3 pages of 100).
    expect(server.calls('issues/list-comments').filter((r) => r.path === `/repos/${REPO}/issues/11/comments`).map((r) => r.query.page ?? '1')).toEqual(['1', '2', '3']);

    reporter.pullRequestPlan({ number: 11, headSha: sha(12), markdown: planMarkdown(planReport(EXAMPLE, undefined)).replace('Tower plan', 'Tower plan (again)') });
    expect(await reporter.flush(30_000)).toBe(true);
    expect(ours()).toHaveLength(1);
    expect(ours()[0]!.id).toBe(first.id);
    expect(ours()[0]!.updates).toBe(1);
    expect(ours()[0]!.body).toContain('Tower plan (again)');
    expect(server.calls('issues/create-comment').filter((r) => r.path.includes('/issues/11/'))).toHaveLength(1);
  });

  it('a 200 KB plan is split over several comments, each balanced and marked; a shrinking plan updates part 1 and deletes the rest', async () => {
    const big = bigPlan(200);
    expect(big.length).toBeGreaterThan(200 * 1024);
    reporter.pullRequestPlan({ number: 12, headSha: sha(21), markdown: big });
    expect(await reporter.flush(60_000)).toBe(true);
    const ours = () => server.comments.filter((c) => c.issue === 12 && markerIndex(c.body, 'redforge') !== undefined).sort((a, b) => a.id - b.id);
    const parts = ours();
    expect(parts.length).toBeGreaterThanOrEqual(4);
    expect(parts.map((c) => markerIndex(c.body, 'redforge'))).toEqual(parts.map((_, i) => i + 1));
    for (const [i, c] of parts.entries()) {
      expect(c.body.length).toBeLessThanOrEqual(65_536);
      expect(c.body).toContain(`part ${i + 1}/${parts.length}`);
      if (i > 0) expect(c.body.startsWith(`<!-- tower:plan fleet=redforge part=${i + 1} -->`)).toBe(true);
    }
    expectBalanced(parts.map((c) => c.body));
    expectLinesKept(big, parts.map((c) => c.body));

    // Same plan again: nothing to write.
    const writes = server.requests.length;
    reporter.pullRequestPlan({ number: 12, headSha: sha(21), markdown: big });
    await reporter.flush(30_000);
    expect(server.requests.slice(writes).map((r) => r.method)).toEqual(['GET']);

    // Fewer parts' worth: the first parts updated in place, the rest deleted.
    const smaller = bigPlan(100, ' (v2)');
    reporter.pullRequestPlan({ number: 12, headSha: sha(22), markdown: smaller });
    expect(await reporter.flush(60_000)).toBe(true);
    const after = ours();
    expect(after.length).toBeLessThan(parts.length);
    expect(after.map((c) => c.id)).toEqual(parts.slice(0, after.length).map((c) => c.id));
    expect(after.map((c) => c.body.includes('(v2)'))).toEqual(after.map(() => true));
    expectBalanced(after.map((c) => c.body));

    const small = planMarkdown(planReport(EXAMPLE, undefined));
    reporter.pullRequestPlan({ number: 12, headSha: sha(23), markdown: small });
    expect(await reporter.flush(60_000)).toBe(true);
    expect(ours()).toHaveLength(1);
    expect(ours()[0]!.id).toBe(parts[0]!.id);
    expect(ours()[0]!.body).not.toContain('part 1/');
    expect(server.calls('issues/delete-comment').length).toBe(parts.length - 1);
  });

  it('a secondary rate limit (403 + retry-after: 1) is waited out and the report delivered', async () => {
    server.inject(1, { kind: 'secondary-rate-limit', retryAfterSeconds: 1 });
    const from = server.requests.length;
    reporter.rolloutStarted({ revision: sha(4), plan: planReport(EXAMPLE, undefined) });
    expect(await reporter.flush(30_000)).toBe(true);
    const statusCalls = server.requests.slice(from).filter((r) => r.operationId === 'repos/create-commit-status');
    expect(statusCalls.map((r) => r.status)).toEqual([403, 201]);
    expect(statusCalls[1]!.at - statusCalls[0]!.at).toBeGreaterThanOrEqual(950);
    expect(statusesOf(sha(4)).map((s) => s.state)).toEqual(['pending']);
    expect(appLog.lines.some((l) => /secondary rate limit: retrying after 1s/.test(l.msg))).toBe(true);

    // The primary limit (x-ratelimit-remaining: 0): waited out until the reset.
    server.inject(1, { kind: 'rate-limit', resetInSeconds: 1 });
    const from2 = server.requests.length;
    reporter.rolloutFinished({ revision: sha(4), outcome: 'succeeded', instances: results(), ms: 100 });
    expect(await reporter.flush(30_000)).toBe(true);
    expect(server.requests.slice(from2).filter((r) => r.operationId === 'repos/create-commit-status').map((r) => r.status)).toEqual([403, 201]);
    expect(statusesOf(sha(4)).map((s) => s.state)).toEqual(['pending', 'success']);
  });

  it('a retry-after longer than the client waits for: the queue pauses for that long, and the rollout never waits', async () => {
    const log = capture();
    const r = githubReporter({ client: appClient, repo: REPO, fleet: 'patient', log: log.log });
    server.inject(1, { kind: 'secondary-rate-limit', retryAfterSeconds: 120 });
    const t0 = performance.now();
    r.revisionRejected({ revision: sha(40), diagnostics: diagnostics(1) });
    expect(performance.now() - t0).toBeLessThan(100);
    for (let i = 0; i < 100 && !log.lines.some((l) => l.msg === 'GitHub unavailable; the report stays queued'); i++) await new Promise((res) => setTimeout(res, 50));
    const line = log.lines.find((l) => l.msg === 'GitHub unavailable; the report stays queued')!;
    expect(line.retryInMs).toBe(120_000);
    expect(String(line.err)).toMatch(/403 You have exceeded a secondary rate limit/);
    // The client's own log (the App client's): it did not wait two minutes inside the request.
    expect(appLog.lines.some((l) => /GitHub secondary rate limit: giving up on this request/.test(l.msg) && l.retryAfter === 120)).toBe(true);
    expect(r.pending).toBe(2);
    r.close();
  });

  it('a restarted daemon finishes the check run its predecessor started (found on the commit), not a second one', async () => {
    const log = capture();
    const before = githubReporter({ client: appClient, repo: REPO, fleet: 'redforge', log: log.log });
    before.rolloutStarted({ revision: sha(41), plan: planReport(EXAMPLE, undefined) });
    expect(await before.flush(30_000)).toBe(true);
    before.close();
    const after = githubReporter({ client: appClient, repo: REPO, fleet: 'redforge', log: log.log });
    after.rolloutFinished({ revision: sha(41), outcome: 'succeeded', instances: results(), ms: 100 });
    expect(await after.flush(30_000)).toBe(true);
    after.close();
    expect(runsOf(sha(41))).toHaveLength(1);
    expect(runsOf(sha(41))[0]).toMatchObject({ status: 'completed', conclusion: 'success' });
    expect(server.calls('checks/list-for-ref').some((q) => q.query.check_name === 'tower/redforge')).toBe(true);
  });

  it('GitHub down for a while: reports queue (the calls return at once) and are delivered when it is back', async () => {
    const plan = planReport(EXAMPLE, undefined);
    await server.down();
    let enqueueMs: number;
    try {
      const t0 = performance.now();
      reporter.rolloutStarted({ revision: sha(5), plan });
      reporter.rolloutFinished({ revision: sha(5), outcome: 'succeeded', instances: results(), ms: 1_000 });
      reporter.pullRequestPlan({ number: 13, headSha: sha(5), markdown: '### small plan\n' });
      enqueueMs = performance.now() - t0;
      await new Promise((r) => setTimeout(r, 1_500));
      expect(reporter.pending).toBeGreaterThan(0);
      expect(await reporter.flush(100)).toBe(false);
    } finally {
      await server.up();
    }
    expect(enqueueMs).toBeLessThan(250); // GitHub refuses connections; a blocking call would take seconds
    expect(appLog.lines.some((l) => l.msg === 'GitHub unavailable; the report stays queued')).toBe(true);
    expect(await reporter.flush(30_000)).toBe(true);
    // The pending status was superseded while GitHub was away: the commit gets the newest state.
    expect(statusesOf(sha(5)).map((s) => s.state)).toEqual(['success']);
    expect(runsOf(sha(5))).toHaveLength(1);
    expect(runsOf(sha(5))[0]!.conclusion).toBe('success');
    expect(server.comments.filter((c) => c.issue === 13)).toHaveLength(1);
  });

  it('GitHub slow (2 s per answer) and failing (500): the calls still return at once, delivery follows', async () => {
    server.inject(2, { kind: 'delay', ms: 2_000 });
    server.inject(2, { kind: 'status', status: 502 });
    const t0 = performance.now();
    const plan = planReport(EXAMPLE, undefined);
    for (let i = 0; i < 3; i++) reporter.rolloutStarted({ revision: sha(100 + i), plan });
    expect(performance.now() - t0).toBeLessThan(250); // 3 plans rendered, nothing sent yet; each answer takes 2 s
    expect(await reporter.flush(90_000)).toBe(true);
    for (let i = 0; i < 3; i++) expect(statusesOf(sha(100 + i)).map((s) => s.state)).toEqual(['pending']);
  }, 120_000);

  it('the queue is bounded: the oldest reports are dropped first, and said so', async () => {
    const log = capture();
    const r = githubReporter({ client: appClient, repo: REPO, fleet: 'bounded', log: log.log, queue: { maxItems: 3 } });
    for (let i = 0; i < 6; i++) r.revisionRejected({ revision: sha(200 + i), diagnostics: diagnostics(1) });
    // Nothing was sent yet (the worker starts on the next turn): 12 reports, 3 kept, the newest.
    expect(r.pending).toBe(3);
    const dropped = log.lines.filter((l) => l.msg === 'GitHub report queue full: dropped the oldest report').map((l) => l.dropped);
    expect(dropped).toHaveLength(9);
    expect(dropped.slice(0, 2)).toEqual([`status:${sha(200)}`, `check:${sha(200)}`]);
    r.close();
    expect(r.pending).toBe(0);
    expect(await r.flush(1_000)).toBe(true);
  });

  it('token-only: statuses and comments, no check-run request, and the log says why once', async () => {
    const log = capture();
    const client = await githubClient({ token: TOKEN, apiUrl: server.url, log: log.log });
    expect(client.checksEnabled).toBe(false);
    expect(log.lines.filter((l) => l.msg === TOKEN_ONLY_NOTICE)).toHaveLength(1);
    expect(TOKEN_ONLY_NOTICE).toBe('check runs need a GitHub App; only commit statuses and comments are reported');
    const r = githubReporter({ client, repo: 'o/token-only', fleet: 'redforge', statusPageUrl: STATUS_PAGE, log: log.log });
    const from = server.requests.length;
    r.rolloutStarted({ revision: sha(6), plan: planReport(EXAMPLE, undefined) });
    r.rolloutFinished({ revision: sha(6), outcome: 'succeeded', instances: results(), ms: 10 });
    r.revisionRejected({ revision: sha(7), diagnostics: diagnostics(3) });
    r.pullRequestPlan({ number: 3, headSha: sha(6), markdown: 'plan' });
    expect(await r.flush(30_000)).toBe(true);
    const mine = server.requests.slice(from).filter((q) => q.path.startsWith('/repos/o/token-only/'));
    expect(mine.filter((q) => q.path.includes('/check-runs'))).toHaveLength(0);
    expect(mine.filter((q) => q.operationId === 'repos/create-commit-status').length).toBeGreaterThanOrEqual(2);
    expect(server.comments.filter((c) => c.repo === 'o/token-only')).toHaveLength(1);
    expect(log.lines.filter((l) => l.msg === TOKEN_ONLY_NOTICE)).toHaveLength(1);
    r.close();
  });

  it('a directory source (no commit id) reports no statuses, and says so once', async () => {
    const log = capture();
    const r = githubReporter({ client: appClient, repo: REPO, fleet: 'redforge', log: log.log });
    const from = server.requests.length;
    r.rolloutStarted({ revision: 'dir:1a2b3c', plan: planReport(EXAMPLE, undefined) });
    r.rolloutFinished({ revision: 'dir:1a2b3c', outcome: 'succeeded', instances: [], ms: 1 });
    expect(await r.flush(1_000)).toBe(true);
    expect(server.requests.length).toBe(from);
    expect(log.lines.filter((l) => /not a Git commit/.test(l.msg))).toHaveLength(1);
    r.close();
  });

  it('the token and the private key never appear in an error or a log line', async () => {
    // A wrong token: 401.
    const log = capture();
    const wrong = `ghp_${randomBytes(18).toString('hex')}`;
    const bad = await githubClient({ token: wrong, apiUrl: server.url, log: log.log });
    const r = githubReporter({ client: bad, repo: REPO, fleet: 'redforge', log: log.log });
    r.rolloutStarted({ revision: sha(8), plan: planReport(EXAMPLE, undefined) });
    expect(await r.flush(10_000)).toBe(true);
    expect(log.lines.some((l) => l.msg === 'GitHub refused a report; dropped' && /401 Bad credentials/.test(String(l.err)))).toBe(true);
    r.close();

    // A server that echoes the credential in its error message (500), and one that resets the connection.
    const good = await githubClient({ token: TOKEN, apiUrl: server.url, log: log.log, retries: 0 });
    server.inject(1, { kind: 'status', status: 500, message: `internal error for token ${TOKEN} and ${wrong}` });
    let thrown: unknown;
    try {
      await good.octokit.rest.repos.createCommitStatus({ owner: 'o', repo: 'r', sha: sha(9), state: 'pending' });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(Error);
    const e = thrown as Error & { request?: { headers: Record<string, string> } };
    expect(e.message).toContain('[REDACTED]');
    expect(e.message).not.toContain(TOKEN);
    expect(JSON.stringify(e.request?.headers)).not.toContain(TOKEN);
    expect(e.stack ?? '').not.toContain(TOKEN);
    expect(good.describeError(thrown)).toMatch(/^POST \/repos\/o\/r\/statuses\/[0-9a-f]+: 500 internal error for token \[REDACTED\]/);

    server.inject(1, { kind: 'reset' });
    try {
      await good.octokit.rest.repos.createCommitStatus({ owner: 'o', repo: 'r', sha: sha(9), state: 'pending' });
      thrown = undefined;
    } catch (err) {
      thrown = err;
    }
    expect(good.describeError(thrown)).toMatch(/network error/);

    // A private key that does not parse: the message says so without quoting it.
    const broken = keys.privateKey.replace(/\n[A-Za-z0-9+/]{20}/, '\n!!!!');
    await expect(githubClient({ app: { appId: 1, privateKey: broken, installationId: 1 }, apiUrl: server.url, log: log.log })).rejects.toThrow(/the private key cannot be read/);
    try {
      await githubClient({ app: { appId: 1, privateKey: broken, installationId: 1 }, apiUrl: server.url, log: log.log });
    } catch (err) {
      const body = keys.privateKey.split('\n')[3]!;
      expect((err as Error).message).not.toContain(body);
    }
    const redact = makeRedactor([TOKEN, keys.privateKey]);
    expect(redact(`x ${keys.privateKey} y ${TOKEN} ghs_${'a'.repeat(36)}`)).toBe('x [REDACTED] y [REDACTED] [REDACTED]');

    for (const text of [log.text(), appLog.text()]) {
      expect(text).not.toContain(TOKEN);
      expect(text).not.toContain(wrong);
      expect(text).not.toContain(keys.privateKey.split('\n')[5]!);
      for (const t of server.issuedTokens) expect(text).not.toContain(t.token);
    }
  });

  it('pollPullRequests: open PRs with their head commit, newest first, paginated, since a time', async () => {
    const repo = 'o/polled';
    const old = new Date(Date.now() - 3_600_000).toISOString().replace(/\.\d+Z$/, 'Z');
    for (let n = 1; n <= 150; n++) server.addPull(repo, { number: n, headSha: sha(1000 + n), updatedAt: old });
    server.addPull(repo, { number: 151, headSha: sha(2000), state: 'closed' });
    const recent = new Date(Date.now() + 1_000).toISOString().replace(/\.\d+Z$/, 'Z');
    server.addPull(repo, { number: 152, headSha: sha(2001), updatedAt: recent, title: 'change embeddings' });

    const all = await pollPullRequests({ client: appClient, repo });
    expect(all).toHaveLength(151);
    expect(all[0]).toMatchObject({ number: 152, headSha: sha(2001), title: 'change embeddings', baseRef: 'main', draft: false });
    expect(all.map((p) => p.number)).not.toContain(151);
    expect(server.calls('pulls/list').filter((r) => r.path === `/repos/${repo}/pulls`).length).toBe(2);

    const since = await pollPullRequests({ client: appClient, repo, since: new Date(Date.now() - 60_000) });
    expect(since.map((p) => p.number)).toEqual([152]);
  });

  it('GitHub Enterprise Server: the API under /api/v3, requests valid against the GHES 3.19 description', async () => {
    const ghes = await startGithubContractServer({ description: 'ghes-3.19', prefix: '/api/v3', tokens: [TOKEN] });
    try {
      expect(ghes.url).toMatch(/\/api\/v3$/);
      const log = capture();
      const client = await githubClient({ token: TOKEN, apiUrl: ghes.url, log: log.log });
      const r = githubReporter({ client, repo: 'ops/fleet', fleet: 'redforge', statusPageUrl: STATUS_PAGE, log: log.log });
      r.rolloutStarted({ revision: sha(31), plan: planReport(EXAMPLE, undefined) });
      r.pullRequestPlan({ number: 2, headSha: sha(31), markdown: 'plan' });
      expect(await r.flush(30_000)).toBe(true);
      expect(ghes.statuses).toHaveLength(1);
      expect(ghes.comments).toHaveLength(1);
      expect(ghes.requests.every((q) => q.status < 300)).toBe(true);
      expect(ghes.describeFailures()).toBe('');
      r.close();
    } finally {
      await ghes.close();
    }
  });

  describe('tower plan --github-pr', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tower-gh-plan-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    async function tower(env: NodeJS.ProcessEnv, ...args: string[]) {
      const io = bufferIo(env);
      const code = await main(args, io);
      return { code, out: io.out, err: io.err };
    }

    it('posts the plan as one comment, then updates the same comment (exit codes unchanged: 2 changes, 0 none)', async () => {
      const args = ['plan', EXAMPLE, '--github-pr', '7', '--github-repo', 'o/r', '--github-api-url', server.url];
      const first = await tower({ GITHUB_TOKEN: TOKEN }, ...args);
      expect(first.err).toMatch(/^tower plan: plan comment posted on o\/r#7: https:\/\/github\.example\/o\/r\/pull\/7#issuecomment-\d+\n$/);
      expect(first.code).toBe(2);
      expect(first.out).toMatch(/Wave 1:/); // stdout: the plan as usual
      const ours = () => server.comments.filter((c) => c.repo === 'o/r' && c.issue === 7);
      expect(ours()).toHaveLength(1);
      const comment = ours()[0]!;
      expect(comment.body.startsWith('<!-- tower:plan fleet=redforge -->\n### Tower plan for fleet `redforge`')).toBe(true);
      expect(comment.body).toContain('| Wave | Instance | Action |');

      // The same plan: nothing to change.
      const again = await tower({ GITHUB_TOKEN: TOKEN }, ...args);
      expect(again.code).toBe(2);
      expect(again.err).toMatch(/plan comment unchanged on o\/r#7/);

      // Against a live fleet that already runs everything: the same comment now says "No changes".
      const repo = loadDirectory(EXAMPLE);
      const observed = join(dir, 'observed.json');
      writeFileSync(observed, JSON.stringify({ instances: repo.instances.map((i) => ({ name: i.name, flows: i.flowList, rev: i.rev, config: i.config })) }));
      const updated = await tower({ GITHUB_TOKEN: TOKEN }, ...args, '--observed', observed);
      expect(updated.err).toMatch(/plan comment updated on o\/r#7/);
      expect(updated.code).toBe(0);
      expect(ours()).toHaveLength(1);
      expect(ours()[0]!.id).toBe(comment.id);
      expect(ours()[0]!.updates).toBe(1);
      expect(ours()[0]!.body).toContain('**No changes.**');
    });

    it('an invalid fleet: the comment shows the errors with file:line, exit 1', async () => {
      const fleet = join(dir, 'broken');
      cpSync(EXAMPLE, fleet, { recursive: true });
      writeFileSync(join(fleet, 'flows', 'memory.json'), '[{"id": "a", "type": "tab"}, {"id": "a", "type": "tab"}]');
      const r = await tower({ GITHUB_TOKEN: TOKEN }, 'plan', fleet, '--github-pr', '8', '--github-repo', 'o/r', '--github-api-url', server.url);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/plan comment posted on o\/r#8/);
      const c = server.comments.find((x) => x.repo === 'o/r' && x.issue === 8)!;
      expect(c.body).toMatch(/validation errors?\*\*/);
      expect(c.body).toMatch(/`flows\/memory\.json:1:\d+`/);
    });

    it('when the comment cannot be posted: exit 1, the reason on stderr, the plan still on stdout, no token anywhere', async () => {
      const noToken = await tower({}, 'plan', EXAMPLE, '--github-pr', '7', '--github-repo', 'o/r', '--github-api-url', server.url);
      expect(noToken.code).toBe(1);
      expect(noToken.err).toBe('tower plan: the plan was not posted to o/r#7: GITHUB_TOKEN is not set\n');
      expect(noToken.out).toMatch(/Wave 1:/);

      const wrong = `ghp_${randomBytes(18).toString('hex')}`;
      const refused = await tower({ GITHUB_TOKEN: wrong }, 'plan', EXAMPLE, '--github-pr', '7', '--github-repo', 'o/r', '--github-api-url', server.url);
      expect(refused.code).toBe(1);
      expect(refused.err).toMatch(/^tower plan: the plan was not posted to o\/r#7: GET \/repos\/o\/r\/issues\/7\/comments\?per_page=100: 401 Bad credentials\n$/);
      expect(refused.err + refused.out).not.toContain(wrong);

      await server.down();
      try {
        const down = await tower({ GITHUB_TOKEN: TOKEN }, 'plan', EXAMPLE, '--github-pr', '7', '--github-repo', 'o/r', '--github-api-url', server.url);
        expect(down.code).toBe(1);
        expect(down.err).toMatch(/the plan was not posted to o\/r#7: GET \/repos\/o\/r\/issues\/7\/comments\?per_page=100: network error/);
        expect(down.err + down.out).not.toContain(TOKEN);
      } finally {
        await server.up();
      }

      const badPr = await tower({ GITHUB_TOKEN: TOKEN }, 'plan', EXAMPLE, '--github-pr', 'seven');
      expect(badPr.code).toBe(1);
      expect(badPr.err).toMatch(/expected a pull request number/);
    }, 90_000);

    it('says so in the help', async () => {
      const help = await tower({}, 'plan', '--help');
      expect(help.out).toMatch(/--github-pr <number>/);
      expect(help.out).toMatch(/GITHUB_TOKEN/);
      expect(help.out).toMatch(/1 if the comment\s+could not be posted/);
    });
  });

  it('every request Tower made passed the OpenAPI validation (and every answer matched its schema)', () => {
    expect(server.requests.length).toBeGreaterThan(50);
    expect(server.describeFailures()).toBe('');
    expect(server.contractFailures).toHaveLength(0);
    expect(server.responseFailures).toHaveLength(0);
    const operations = new Set(server.requests.map((r) => r.operationId));
    for (const op of ['repos/create-commit-status', 'checks/create', 'checks/update', 'checks/list-for-ref', 'issues/list-comments', 'issues/create-comment', 'issues/update-comment', 'issues/delete-comment', 'pulls/list', 'apps/create-installation-access-token']) expect(operations).toContain(op);
  });
});

describe('the contract server itself rejects what GitHub does not allow', () => {
  let server: GithubContractServer;
  beforeAll(async () => {
    server = await startGithubContractServer({ tokens: [TOKEN] });
  });
  afterAll(() => server.close());

  async function send(method: string, path: string, body?: unknown) {
    const res = await fetch(`${server.url}${path}`, { method, headers: { authorization: `token ${TOKEN}`, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    return { status: res.status, body: (await res.text()) || '{}' };
  }

  it('answers 422 and records a failure for each kind of violation', async () => {
    const cases: [string, string, unknown, RegExp][] = [
      ['POST', '/repos/o/r/statuses/abc', { state: 'pending', description: 'x'.repeat(141) }, /description is 141 characters/],
      ['POST', '/repos/o/r/statuses/abc', { state: 'done' }, /body\/state must be equal to one of the allowed values/],
      ['POST', '/repos/o/r/statuses/abc', { state: 'pending', descripton: 'typo' }, /additional properties \(descripton\)/],
      ['POST', '/repos/o/r/check-runs', { name: 'x', head_sha: 'abc', output: { title: 't', summary: 's', annotations: Array.from({ length: 51 }, () => ({ path: 'a', start_line: 1, end_line: 1, annotation_level: 'failure', message: 'm' })) } }, /must NOT have more than 50 items/],
      ['POST', '/repos/o/r/check-runs', { name: 'x', head_sha: 'abc', output: { title: 't', summary: 's'.repeat(65_536) } }, /must NOT have more than 65535 characters/],
      ['POST', '/repos/o/r/check-runs', { name: 'x', head_sha: 'abc', status: 'completed' }, /conclusion is required/],
      ['POST', '/repos/o/r/issues/1/comments', { body: 'x'.repeat(65_537) }, /65537 characters; GitHub allows 65536/],
      ['POST', '/repos/o/r/issues/1/comments', {}, /must have required property 'body'/],
      ['GET', '/repos/o/r/issues/one/comments', undefined, /path\/issue_number must be integer/],
      ['GET', '/repos/o/r/issues/1/comments?perpage=100', undefined, /additional properties \(perpage\)/],
      ['PUT', '/repos/o/r/statuses/abc', { state: 'pending' }, /PUT is not an operation/],
      ['GET', '/repos/o/r/no-such-thing', undefined, /no operation in the description matches/],
    ];
    for (const [method, path, body, expected] of cases) {
      const before = server.contractFailures.length;
      const r = await send(method, path, body);
      expect(r.status, `${method} ${path}`).toBeGreaterThanOrEqual(400);
      expect(server.contractFailures.length, `${method} ${path}`).toBe(before + 1);
      expect(server.contractFailures.at(-1)!.errors.join('; ')).toMatch(expected);
    }
    const ok = await send('POST', '/repos/o/r/statuses/abc', { state: 'pending', description: 'x'.repeat(140), context: 'tower/x', target_url: 'https://x' });
    expect(ok.status).toBe(201);
    expect(server.responseFailures).toHaveLength(0);
  });

  it('wants credentials (401), and answers an operation it does not model with GitHub\'s own example', async () => {
    const anonymous = await fetch(`${server.url}/repos/o/r/statuses/abc`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"state":"pending"}' });
    expect(anonymous.status).toBe(401);
    const branches = await send('GET', '/repos/o/r/branches');
    expect(branches.status).toBe(200);
    expect(JSON.parse(branches.body)).toEqual(expect.arrayContaining([expect.objectContaining({ name: expect.any(String) })]));
  });
});

describe('upsertPlanComment keeps one comment per part', () => {
  it('removes copies two racing writers left, keeping the oldest', async () => {
    const server = await startGithubContractServer({ tokens: [TOKEN] });
    try {
      const log = capture();
      const client = await githubClient({ token: TOKEN, apiUrl: server.url, log: log.log });
      server.addComment('o/r', 5, `${planMarker('redforge')}\nold plan`, 'tower-bot');
      server.addComment('o/r', 5, `${planMarker('redforge')}\nolder copy`, 'tower-bot');
      server.addComment('o/r', 5, `${planMarker('other-fleet')}\nanother fleet's plan`, 'tower-bot');
      const keep = server.comments[0]!.id;
      const r = await upsertPlanComment(client.octokit, { owner: 'o', repo: 'r', number: 5, fleet: 'redforge' }, 'new plan');
      expect(r).toMatchObject({ created: 0, updated: 1, deleted: 1 });
      expect(server.comments.map((c) => c.id)).toEqual([keep, server.comments[1]!.id]);
      expect(server.comments[0]!.body).toBe(`${planMarker('redforge')}\nnew plan`);
      expect(server.comments[1]!.body).toContain('another fleet');
      expect(server.describeFailures()).toBe('');
    } finally {
      await server.close();
    }
  });
});

// Last in the file: it moves the clock (Date only) an hour ahead and back, and octokit's
// rate limiter (process-wide) remembers the future time — any request after it would wait an hour.
describe('App authentication', () => {
  it('one installation token, refreshed by octokit 59 minutes after it was created (GitHub: 60)', async () => {
    const issued = server.issuedTokens.length;
    expect(issued).toBe(1); // everything so far ran on one token
    const list = () => appClient.octokit.rest.issues.listComments({ owner: 'o', repo: 'r', issue_number: 7 });
    const created = Date.parse(server.issuedTokens[0]!.expiresAt) - 3_600_000;
    vi.useFakeTimers({ toFake: ['Date'], now: created + 58 * 60_000 });
    try {
      await list();
      expect(server.issuedTokens).toHaveLength(1);
      vi.setSystemTime(created + 59 * 60_000 + 30_000);
      await list();
      expect(server.issuedTokens).toHaveLength(2);
      const last = server.requests.at(-1)!;
      expect(last.headers.authorization).toBe(`token ${server.issuedTokens[1]!.token}`);
      vi.setSystemTime(created + 61 * 60_000); // the first token has expired; the second is in use
      const r = await list();
      expect(r.status).toBe(200);
      expect(server.issuedTokens).toHaveLength(2);
      expect(server.describeFailures()).toBe('');
    } finally {
      vi.useRealTimers();
    }
  });
});
