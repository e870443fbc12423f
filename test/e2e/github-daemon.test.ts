/**
 * tower run reporting to GitHub — a contract test: GitHub is a local server that checks
 * every request against GitHub's published OpenAPI description, not GitHub itself.
 * A good revision gets pending → success; a rolled-back one pending → failure; a pull
 * request gets one sticky plan comment, updated when its head moves.
 */
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import axios from 'axios';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli.js';
import { bufferIo } from '../../src/commands/io.js';
import { startDaemon, type DaemonProcess } from '../helpers/daemon.js';
import { writeSmallFleet } from '../helpers/fleet-fixture.js';
import { initBare, WorkClone } from '../helpers/git.js';
import { startGithubContractServer, type GithubContractServer } from '../helpers/github-contract-server.js';

const TOKEN = 'ghp_tower_e2e_token_0123456789abcdefABCDEF';
const SECRET = 'e2e-webhook-secret-0123';
let github: GithubContractServer;
let daemon: DaemonProcess | undefined;
const dirs: string[] = [];
let state = '';

beforeAll(async () => {
  github = await startGithubContractServer({ tokens: [TOKEN] });
});

afterAll(async () => {
  await daemon?.kill('SIGKILL');
  if (state) await main(['destroy', '--state-dir', state], bufferIo(process.env)).catch(() => 1);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await github?.close();
});

function tmp(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

async function waitUntil(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('tower run with GitHub (contract test)', () => {
  it('reports statuses per revision and posts one sticky plan comment per pull request', async () => {
    const bare = await initBare(join(tmp('tower-bare-'), 'fleet.git'));
    const clone = await WorkClone.create(bare, tmp('tower-clone-'));
    const ports = await writeSmallFleet(clone.dir, [{ name: 'web', text: 'g1' }], '{ order: sequential }');
    const first = await clone.commit('g1');
    await clone.push();
    state = tmp('tower-state-');
    daemon = await startDaemon(['--repo', bare, '--state-dir', state, '--interval', '1s', '--github-repo', 'acme/fleet', '--github-api-url', github.url], {
      ...process.env,
      GITHUB_TOKEN: TOKEN,
      TOWER_WEBHOOK_SECRET: SECRET,
    });
    const statusesOf = (sha: string) => github.statuses.filter((s) => s.sha === sha).map((s) => s.state);
    await waitUntil(() => statusesOf(first).includes('success'), 30_000, 'success on the first commit');
    expect(statusesOf(first)).toEqual(['pending', 'success']);
    const success = github.statuses.find((s) => s.sha === first && s.state === 'success')!;
    expect(success.context).toBe('tower/small');
    expect(success.targetUrl).toBe(daemon.url);

    // A revision whose smoke check fails: rolled back, the commit gets failure with the reason.
    await writeSmallFleet(clone.dir, [{ name: 'web', text: 'broken', smokeExpect: 'g1' }], '{ order: sequential }', ports);
    const bad = await clone.commit('broken');
    await clone.push();
    await waitUntil(() => statusesOf(bad).includes('failure'), 30_000, 'failure on the bad commit');
    expect(statusesOf(bad)).toEqual(['pending', 'failure']);
    const failure = github.statuses.find((s) => s.sha === bad && s.state === 'failure')!;
    expect(failure.description!.length).toBeLessThanOrEqual(140);
    expect(failure.description).toMatch(/rolled back/);
    expect(String((await axios.get(`http://127.0.0.1:${ports.web}/hello`, { responseType: 'text' })).data)).toBe('g1 blue');

    // A pull request: its head is planned against the live fleet, as one sticky comment.
    await clone.git('checkout', '-q', '-b', 'feature');
    await writeSmallFleet(clone.dir, [{ name: 'web', text: 'g1' }, { name: 'api', text: 'new' }], '{ order: sequential }', ports);
    const head = await clone.commit('add api');
    await clone.push('feature');
    const pull = (sha: string) =>
      JSON.stringify({ action: 'synchronize', number: 7, repository: { full_name: 'acme/fleet' }, pull_request: { number: 7, title: 'add api', merged: false, head: { sha, ref: 'feature' }, base: { ref: 'main' } } });
    const send = (payload: string) =>
      axios.post(`${daemon!.url}hooks/github`, payload, {
        headers: { 'content-type': 'application/json', 'x-github-event': 'pull_request', 'x-github-delivery': `d-${Date.now()}`, 'x-hub-signature-256': 'sha256=' + createHmac('sha256', SECRET).update(payload).digest('hex') },
      });
    expect((await send(pull(head))).status).toBe(202);
    await waitUntil(() => github.comments.some((c) => c.issue === 7), 30_000, 'the plan comment');
    const comment = github.comments.find((c) => c.issue === 7)!;
    expect(comment.body).toContain('<!-- tower:plan fleet=small -->');
    expect(comment.body).toMatch(/`api`[^\n]*create/);
    // The new instance's tab, drawn: every node added (green).
    expect(comment.body).toMatch(/```mermaid\nflowchart LR\n[^`]*\n {2}class [n\d,]+ added\n```/);

    // The head moves: the same comment is updated, never duplicated.
    await writeSmallFleet(clone.dir, [{ name: 'web', text: 'g1' }, { name: 'api', text: 'newer' }, { name: 'extra', text: 'x' }], '{ order: sequential }', ports);
    const head2 = await clone.commit('add extra');
    await clone.push('feature');
    await send(pull(head2));
    await waitUntil(() => github.comments.filter((c) => c.issue === 7).some((c) => c.body.includes('extra')), 30_000, 'the updated comment');
    expect(github.comments.filter((c) => c.issue === 7)).toHaveLength(1);

    expect(github.contractFailures, github.describeFailures()).toEqual([]);
    expect(JSON.stringify(daemon.logs)).not.toContain(TOKEN);
  });
});
