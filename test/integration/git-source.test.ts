/**
 * The Git source against real remotes: bare repositories on disk (plain path and file://),
 * git http-backend behind a token-checking HTTP server on 127.0.0.1, and remotes that are not
 * there (a missing path, a closed port, a server that never answers). Fleets are
 * fleet-example, committed and pushed by real git.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { directoryReader } from '../../src/adapters/fs/repo-reader.js';
import { credentialsFromEnv, gitAuth, parseGitUrl, scrub } from '../../src/adapters/source/git-credentials.js';
import {
  classify,
  gitSource,
  GitAuthError,
  GitNotFoundError,
  GitSourceError,
  GitUnreachableError,
  type GitSourceOptions,
} from '../../src/adapters/source/git.js';
import { loadRepository, type RepoReader } from '../../src/core/load.js';
import { LIBRARY_DIR } from '../../src/paths.js';
import { EXAMPLE } from '../helpers/fleet-fixture.js';
import { closedPort, git, initBare, startHttpGitServer, WorkClone, type HttpGitServer } from '../helpers/git.js';

const root = mkdtempSync(join(tmpdir(), 'tower-git-source-'));
const library = directoryReader(LIBRARY_DIR);
const cleanups: (() => Promise<void> | void)[] = [];
let caches = 0;

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  rmSync(root, { recursive: true, force: true });
});

function load(reader: RepoReader) {
  return loadRepository(reader, { library });
}

/** A fresh cache dir for each source, with its log lines captured. */
function source(options: Omit<GitSourceOptions, 'workDir'>): { src: ReturnType<typeof gitSource>; lines: string[]; workDir: string } {
  const lines: string[] = [];
  const workDir = join(root, `cache-${++caches}`);
  return { src: gitSource({ ...options, workDir, log: (l) => lines.push(l) }), lines, workDir };
}

/** Every file under dir (relative path → sha256), for comparing trees. */
function treeHash(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

/** Every file under dir, concatenated: to prove a secret was written nowhere. */
function allBytes(dir: string): string {
  const parts: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) parts.push(readFileSync(p).toString('latin1'));
    }
  };
  walk(dir);
  return parts.join('\n');
}

function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t = performance.now();
  return fn().then((value) => ({ value, ms: performance.now() - t }));
}

async function rejection(p: Promise<unknown>): Promise<GitSourceError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof GitSourceError)) throw new Error(`expected a GitSourceError, got ${String(err)}`);
  return err;
}

/** The flow file with one node's name changed: a real, non-cosmetic change. */
function editFlow(clone: WorkClone, file: string, name: string, under = ''): void {
  const path = join(clone.dir, under, file);
  const flows = JSON.parse(readFileSync(path, 'utf8')) as { id: string; type: string; name?: string }[];
  const node = flows.find((n) => n.type === 'function') ?? flows.find((n) => n.type !== 'tab')!;
  node.name = name;
  writeFileSync(path, `${JSON.stringify(flows, null, 4)}\n`);
}

describe('gitSource on a bare repository on disk', () => {
  let bare: string;
  let clone: WorkClone;

  beforeAll(async () => {
    bare = await initBare(join(root, 'remote.git'));
    clone = await WorkClone.create(bare, join(root, 'work'));
    clone.copy(EXAMPLE);
    await clone.commit('the RedForge fleet');
    await clone.push();
  });

  it('fetches the pushed fleet, says changed only when the branch moved, checks out a tree that loads', async () => {
    const { src, lines } = source({ url: bare });
    const first = await timed(() => src.fetch());
    expect(first.value).toEqual({ revision: await clone.head(), changed: true, previous: undefined });

    const again = await timed(() => src.fetch());
    expect(again.value).toEqual({ revision: first.value.revision, changed: false, previous: first.value.revision });

    editFlow(clone, 'flows/text-chunker.json', 'chunk it smaller');
    const second = await clone.commit('smaller chunks');
    await clone.push();
    const moved = await timed(() => src.fetch());
    expect(moved.value).toEqual({ revision: second, changed: true, previous: first.value.revision });
    const unchanged: number[] = [];
    for (let i = 0; i < 5; i++) unchanged.push((await timed(() => src.fetch())).ms);
    unchanged.sort((a, b) => a - b);
    console.log(
      `[measure] git fetch (disk remote, blobless cache): first ${first.ms.toFixed(0)} ms, ` +
        `unchanged ${again.ms.toFixed(0)} ms (median of 5 more: ${unchanged[2]!.toFixed(0)} ms), one new commit ${moved.ms.toFixed(0)} ms`,
    );

    const co = await src.checkout(second);
    expect(co.commit).toMatchObject({ revision: second, author: 'Tower Test', email: 'tower-test@example.invalid', message: 'smaller chunks' });
    expect(co.commit.date).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(co.fleetDir).toBe(co.dir);
    const loaded = load(co.reader);
    expect(loaded.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
    expect(loaded.valid).toBe(true);
    expect(loaded.instances.map((i) => i.name)).toEqual(load(directoryReader(EXAMPLE)).instances.map((i) => i.name));
    expect(readFileSync(join(co.dir, 'flows/text-chunker.json'), 'utf8')).toContain('chunk it smaller');
    // A plain tree: no .git, so nothing in it can reach back into the cache.
    expect(readdirSync(co.dir)).not.toContain('.git');

    // The older revision is still there, as it was.
    const old = await src.checkout(first.value.revision);
    expect(readFileSync(join(old.dir, 'flows/text-chunker.json'), 'utf8')).not.toContain('chunk it smaller');
    expect(treeHash(old.dir)).toEqual(treeHash(EXAMPLE));

    // Checking out the same revision again reuses the tree.
    const reused = await src.checkout(second);
    expect(reused.dir).toBe(co.dir);

    expect(await src.revisionsBetween(first.value.revision, second)).toEqual([co.commit]);
    expect(lines.join('\n')).toMatch(/unchanged/);
  });

  it('takes a file:// URL and an abbreviated revision', async () => {
    const { src } = source({ url: `file://${bare}` });
    const { revision } = await src.fetch();
    const co = await src.checkout(revision.slice(0, 10));
    expect(co.commit.revision).toBe(revision);
    expect(load(co.reader).valid).toBe(true);
  });

  it('git revert makes a new revision whose checkout is the older content', async () => {
    const { src } = source({ url: bare, keepCheckouts: 2 });
    const before = (await src.fetch()).revision;
    editFlow(clone, 'flows/embeddings.json', 'a change that breaks nothing but is wrong');
    const bad = await clone.commit('a change to revert');
    await clone.push();
    expect((await src.fetch()).revision).toBe(bad);
    await clone.git('revert', '--no-edit', 'HEAD');
    const reverted = await clone.head();
    await clone.push();

    const r = await src.fetch();
    expect(r).toMatchObject({ revision: reverted, changed: true, previous: bad });
    expect(reverted).not.toBe(before);
    // Each tree is read right away: with keepCheckouts 2, the oldest goes when a third is made.
    const flowsOf = (reader: RepoReader) => load(reader).instances.map((i) => [i.name, i.rev]);
    const a = await src.checkout(before);
    const [aTree, aFlows] = [treeHash(a.dir), flowsOf(a.reader)];
    const b = await src.checkout(bad);
    const [bTree, bFlows] = [treeHash(b.dir), flowsOf(b.reader)];
    const c = await src.checkout(reverted);
    expect(treeHash(c.dir)).toEqual(aTree);
    expect(bTree).not.toEqual(aTree);
    expect(c.commit.message).toMatch(/^Revert "a change to revert"/);
    expect(flowsOf(c.reader)).toEqual(aFlows);
    expect(bFlows).not.toEqual(aFlows);
    // keepCheckouts: 2 — the oldest of the three trees went.
    expect(statSync(c.dir).isDirectory()).toBe(true);
    expect(() => statSync(a.dir)).toThrow();
    expect((await src.revisionsBetween(before, reverted)).map((x) => x.revision)).toEqual([reverted, bad]);
  });

  it('checks out a commit that is not on the branch (a pull request head) by its id', async () => {
    await clone.git('checkout', '--quiet', '-b', 'feature');
    editFlow(clone, 'flows/query.json', 'proposed');
    const proposed = await clone.commit('proposal');
    await clone.push('feature');
    await clone.git('checkout', '--quiet', 'main');
    const { src } = source({ url: bare });
    await src.fetch();
    const co = await src.checkout(proposed);
    expect(co.commit.message).toBe('proposal');
    expect(readFileSync(join(co.dir, 'flows/query.json'), 'utf8')).toContain('proposed');
    const missing = await rejection(src.checkout('0123456789abcdef0123456789abcdef01234567'));
    expect(missing).toBeInstanceOf(GitNotFoundError);
    expect(missing.reason).toBe('RevisionNotFound');
    expect((await rejection(src.checkout('HEAD; rm -rf /'))).reason).toBe('RevisionNotFound');
  });

  it('while the remote is away: fetch is GitUnreachableError, the last good revision still checks out', async () => {
    const { src } = source({ url: bare });
    const good = (await src.fetch()).revision;
    await src.checkout(good);
    const away = `${bare}.away`;
    renameSync(bare, away);
    try {
      const err = await rejection(src.fetch());
      expect(err).toBeInstanceOf(GitUnreachableError);
      const co = await src.checkout(good);
      expect(load(co.reader).valid).toBe(true);
    } finally {
      renameSync(away, bare);
    }
    expect(await src.fetch()).toEqual({ revision: good, changed: false, previous: good });
  });

  it('a branch that does not exist is a clear error', async () => {
    const { src } = source({ url: bare, branch: 'release' });
    const err = await rejection(src.fetch());
    expect(err).toBeInstanceOf(GitNotFoundError);
    expect(err.reason).toBe('BranchNotFound');
    expect(err.transient).toBe(false);
    expect(err.message).toBe(`git fetch: branch "release" does not exist on ${bare}`);
    expect(() => gitSource({ url: bare, branch: '--upload-pack=evil', workDir: join(root, 'x') })).toThrow(/not a valid branch name/);
    expect(() => gitSource({ url: bare, path: '../outside', workDir: join(root, 'x') })).toThrow(/relative path inside the repository/);
  });
});

describe('gitSource with the fleet in a sub-directory', () => {
  it('reads fleet.yaml from path, and a path that is not there is a clear error', async () => {
    const bare = await initBare(join(root, 'mono.git'));
    const clone = await WorkClone.create(bare, join(root, 'mono'));
    clone.write({ 'README.md': '# a monorepo\n', 'src/app.js': 'console.log(1)\n' });
    clone.copy(EXAMPLE, 'deploy/node-red');
    const rev = await clone.commit('monorepo with a fleet');
    await clone.push();

    const { src } = source({ url: bare, path: 'deploy/node-red/' });
    expect(src.describe()).toBe(`${bare}#main:deploy/node-red`);
    expect((await src.fetch()).revision).toBe(rev);
    const co = await src.checkout(rev);
    expect(co.fleetDir).toBe(join(co.dir, 'deploy', 'node-red'));
    expect(readFileSync(join(co.dir, 'README.md'), 'utf8')).toBe('# a monorepo\n');
    const loaded = load(co.reader);
    expect(loaded.valid).toBe(true);
    expect(loaded.instances.length).toBeGreaterThan(0);
    // Paths still cannot leave the fleet directory through the reader.
    expect(co.reader.read('../../README.md', 1024)).toEqual({ ok: false, reason: 'outside-repository' });

    const wrong = source({ url: bare, path: 'deploy/nodered' }).src;
    const err = await rejection(wrong.fetch());
    expect(err).toBeInstanceOf(GitNotFoundError);
    expect(err.reason).toBe('PathNotFound');
    expect(err.message).toBe(`path "deploy/nodered" is not a directory at ${rev.slice(0, 12)} on branch "main" of ${bare}`);
    const file = await rejection(source({ url: bare, path: 'README.md' }).src.fetch());
    expect(file.reason).toBe('PathNotFound');
  });
});

describe('gitSource and remotes that are not there', () => {
  it('a path that does not exist and a file:// to nowhere are GitUnreachableError', async () => {
    for (const url of [join(root, 'no-such-repo.git'), `file://${join(root, 'nowhere.git')}`]) {
      const err = await rejection(source({ url }).src.fetch());
      expect(err).toBeInstanceOf(GitUnreachableError);
      expect(err.reason).toBe('Unreachable');
      expect(err.transient).toBe(true);
      expect(err.message).toMatch(/^git fetch of branch "main" of .* failed \(Unreachable\): .*does not appear to be a git repository/s);
    }
  });

  it('an https URL with a token on a closed port: unreachable, and the token is nowhere in the error', async () => {
    const port = await closedPort();
    const token = 'ghp_SECRETtokenVALUE0123456789abcdef';
    const cases: Omit<GitSourceOptions, 'workDir'>[] = [
      { url: `https://x-access-token:${token}@127.0.0.1:${port}/org/fleet.git` },
      { url: `https://${token}@127.0.0.1:${port}/org/fleet.git` },
      { url: `https://127.0.0.1:${port}/org/fleet.git`, credentials: { token } },
      { url: `http://127.0.0.1:${port}/org/fleet.git`, credentials: { token, scheme: 'bearer' } },
    ];
    for (const c of cases) {
      const { src, lines, workDir } = source(c);
      const err = await rejection(src.fetch());
      expect(err).toBeInstanceOf(GitUnreachableError);
      expect(err.message).toContain(`127.0.0.1:${port}/org/fleet.git`);
      expect(err.message).toMatch(/Failed to connect|Connection refused|Could not connect/i);
      expect(err.url).toBe(`${c.url.startsWith('http:') ? 'http' : 'https'}://127.0.0.1:${port}/org/fleet.git`);
      const everything = [err.message, err.stack, JSON.stringify(err), err.stderr, String(err), lines.join('\n'), allBytes(workDir)].join('\n');
      expect(everything).not.toContain(token);
      expect(everything).not.toContain(Buffer.from(`x-access-token:${token}`).toString('base64'));
    }
  });

  it('an ssh remote on a closed port: unreachable; the key file goes through GIT_SSH_COMMAND', async () => {
    const port = await closedPort();
    const key = join(root, 'deploy key');
    writeFileSync(key, 'not a real key\n', { mode: 0o600 });
    const { src } = source({ url: `ssh://git@127.0.0.1:${port}/org/fleet.git`, credentials: { sshKeyFile: key } });
    const err = await rejection(src.fetch());
    expect(err).toBeInstanceOf(GitUnreachableError);
    expect(err.url).toBe(`ssh://127.0.0.1:${port}/org/fleet.git`);
    expect(err.message).toMatch(/Connection refused/);
  });

  it('a server that never answers is killed by the timeout', async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((s) => sockets.add(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    });
    const port = (silent.address() as AddressInfo).port;
    const { src } = source({ url: `http://127.0.0.1:${port}/fleet.git`, timeoutMs: 1000 });
    const t = performance.now();
    const err = await rejection(src.fetch());
    expect(err).toBeInstanceOf(GitUnreachableError);
    expect(err.reason).toBe('Timeout');
    expect(err.message).toBe(`git fetch of branch "main" of http://127.0.0.1:${port}/fleet.git timed out after 1000 ms without progress`);
    expect(performance.now() - t).toBeLessThan(10_000);
  });
});

describe('gitSource over smart HTTP (git http-backend) with a token', () => {
  const token = 'tower-test-token-7f3a9c1e5b2d4806';
  let serverRoot: string;
  let basic: HttpGitServer;
  let bearer: HttpGitServer;
  let head: string;
  let servedClone: WorkClone;

  beforeAll(async () => {
    serverRoot = join(root, 'served');
    const bare = await initBare(join(serverRoot, 'fleet.git'));
    // Let clients fetch blobless, so checkouts fetch their blobs lazily — over HTTP, with the token.
    await git(bare, 'config', 'uploadpack.allowFilter', 'true');
    await git(bare, 'config', 'uploadpack.allowAnySHA1InWant', 'true');
    servedClone = await WorkClone.create(bare, join(root, 'served-work'));
    servedClone.copy(EXAMPLE);
    head = await servedClone.commit('fleet over http');
    await servedClone.push();
    basic = await startHttpGitServer(serverRoot, { scheme: 'basic', user: 'x-access-token', token });
    bearer = await startHttpGitServer(serverRoot, { scheme: 'bearer', token });
    cleanups.push(() => basic.close(), () => bearer.close());
  });

  it('fetches and checks out with a Basic token; the token is in no argv, file, log or trace', async () => {
    const trace = join(root, 'git-trace.log');
    const saved = process.env.GIT_TRACE;
    // GIT_TRACE records the argv of every git process, helpers included: if the token were on
    // a command line, it would be here.
    process.env.GIT_TRACE = trace;
    try {
      const { src, lines, workDir } = source({ url: basic.url('fleet.git'), credentials: { token } });
      const served = basic.stats.served;
      const fetched = await timed(() => src.fetch());
      expect(fetched.value).toMatchObject({ revision: head, changed: true });
      const unchanged = await timed(() => src.fetch());
      expect(unchanged.value.changed).toBe(false);
      const beforeCheckout = basic.stats.served;
      const co = await timed(() => src.checkout(head));
      // Blobless: the checkout fetched its blobs from the server, with the same credentials.
      expect(basic.stats.served).toBeGreaterThan(beforeCheckout);
      expect(load(co.value.reader).valid).toBe(true);

      // One more commit, fetched and checked out over HTTP; then back, so later tests see `head`.
      editFlow(servedClone, 'flows/storage.json', 'over http');
      const next = await servedClone.commit('one more over http');
      await servedClone.push();
      const moved = await timed(() => src.fetch());
      expect(moved.value).toEqual({ revision: next, changed: true, previous: head });
      const co2 = await timed(() => src.checkout(next));
      expect(readFileSync(join(co2.value.dir, 'flows/storage.json'), 'utf8')).toContain('over http');
      await servedClone.git('push', '--quiet', '--force', 'origin', `${head}:refs/heads/main`);
      console.log(
        `[measure] git over smart HTTP: first fetch ${fetched.ms.toFixed(0)} ms, unchanged ${unchanged.ms.toFixed(0)} ms, ` +
          `checkout (lazy blobs) ${co.ms.toFixed(0)} ms, one new commit: fetch ${moved.ms.toFixed(0)} ms + checkout ${co2.ms.toFixed(0)} ms`,
      );
      expect(basic.stats.served).toBeGreaterThan(served);

      const traced = readFileSync(trace, 'utf8');
      expect(traced).toMatch(/remote-http/);
      expect(traced).toMatch(/read-tree/);
      const everything = [traced, lines.join('\n'), allBytes(workDir)].join('\n');
      expect(everything).not.toContain(token);
      expect(everything).not.toContain(Buffer.from(`x-access-token:${token}`).toString('base64'));
      expect(readFileSync(join(workDir, 'mirror.git', 'config'), 'utf8')).toMatch(/partialclonefilter = blob:none/);
      expect(readFileSync(join(workDir, 'mirror.git', 'config'), 'utf8')).toContain(`url = "${basic.url('fleet.git')}"`);
    } finally {
      if (saved === undefined) delete process.env.GIT_TRACE;
      else process.env.GIT_TRACE = saved;
    }
  });

  it('works with a Bearer token, a token file and a token in the URL (moved out of it)', async () => {
    const viaBearer = source({ url: bearer.url('fleet.git'), credentials: { token, scheme: 'bearer' } });
    expect((await viaBearer.src.fetch()).revision).toBe(head);

    const tokenFile = join(root, 'token');
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const viaFile = source({ url: basic.url('fleet.git'), credentials: { tokenFile } });
    expect((await viaFile.src.fetch()).revision).toBe(head);

    const inUrl = basic.url('fleet.git').replace('http://', `http://x-access-token:${token}@`);
    const viaUrl = source({ url: inUrl });
    expect((await viaUrl.src.fetch()).revision).toBe(head);
    expect(viaUrl.src.describe()).toBe(`${basic.url('fleet.git')}#main`);
    expect(allBytes(viaUrl.workDir)).not.toContain(token);
  });

  it('a wrong or missing token is GitAuthError, and the wrong token is not in it', async () => {
    const wrongToken = 'tower-wrong-token-0badc0ffee123456';
    const wrong = await rejection(source({ url: basic.url('fleet.git'), credentials: { token: wrongToken } }).src.fetch());
    expect(wrong).toBeInstanceOf(GitAuthError);
    expect(wrong.reason).toBe('AuthFailed');
    expect([wrong.message, wrong.stack, JSON.stringify(wrong)].join('\n')).not.toContain(wrongToken);
    expect(wrong.message).toContain(basic.url('fleet.git'));

    const none = await rejection(source({ url: basic.url('fleet.git') }).src.fetch());
    expect(none).toBeInstanceOf(GitAuthError);
    expect(none.message).toMatch(/could not read Username|Authentication failed/);

    const missingFile = await rejection(source({ url: basic.url('fleet.git'), credentials: { tokenFile: join(root, 'no-token') } }).src.fetch());
    expect(missingFile.reason).toBe('InvalidConfig');
    expect(missingFile.message).toContain('cannot read the Git token file');
  });
});

describe('remote URLs and credentials', () => {
  it('parses every kind of remote and keeps credentials out of the URL', () => {
    expect(parseGitUrl('https://u:p%40ss@github.com/o/r.git')).toEqual({
      kind: 'http', url: 'https://github.com/o/r.git', display: 'https://github.com/o/r.git', origin: 'https://github.com/', urlUser: 'u', urlPassword: 'p@ss',
    });
    expect(parseGitUrl('git@github.com:o/r.git')).toMatchObject({ kind: 'ssh', url: 'git@github.com:o/r.git', display: 'github.com:o/r.git' });
    expect(parseGitUrl('ssh://git@host:2222/o/r.git')).toMatchObject({ kind: 'ssh', url: 'ssh://git@host:2222/o/r.git', display: 'ssh://host:2222/o/r.git' });
    expect(parseGitUrl('file:///srv/fleet.git')).toMatchObject({ kind: 'file', url: 'file:///srv/fleet.git' });
    expect(parseGitUrl('repos/fleet.git', '/srv')).toMatchObject({ kind: 'file', url: '/srv/repos/fleet.git' });
    expect(parseGitUrl('./fleet:1', '/srv')).toMatchObject({ kind: 'file', url: '/srv/fleet:1' });
    expect(() => parseGitUrl('ext::sh -c touch% /tmp/pwned')).toThrow(/transport helpers/);
    expect(() => parseGitUrl('--upload-pack=touch /tmp/x')).toThrow(/may not start with "-"/);
    expect(() => parseGitUrl('ftp://host/r.git')).toThrow(/unsupported/);
  });

  it('passes an http token as an origin-scoped header in the environment, and ssh keys through GIT_SSH_COMMAND', () => {
    const a = gitAuth(parseGitUrl('https://git.example.com/o/r.git'), { token: 't0ken-abc' }, { GIT_CONFIG_COUNT: '1' });
    expect(a.env).toEqual({
      GIT_CONFIG_COUNT: '2',
      GIT_CONFIG_KEY_1: 'http.https://git.example.com/.extraHeader',
      GIT_CONFIG_VALUE_1: `Authorization: Basic ${Buffer.from('x-access-token:t0ken-abc').toString('base64')}`,
    });
    expect(a.secrets).toContain('t0ken-abc');
    const s = gitAuth(parseGitUrl('git@github.com:o/r.git'), { sshKeyFile: "/keys/it's here", knownHostsFile: '/keys/known_hosts' });
    expect(s.env.GIT_SSH_COMMAND).toBe(
      `ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new -i '/keys/it'\\''s here' -o IdentitiesOnly=yes -o UserKnownHostsFile=/keys/known_hosts`,
    );
    expect(credentialsFromEnv({ GIT_TOKEN: 'x', GIT_SSH_KEY_FILE: '/k' })).toEqual({ token: 'x', sshKeyFile: '/k' });
    expect(credentialsFromEnv({})).toBeUndefined();
  });

  it('scrubs secrets, userinfo and Authorization headers from git output', () => {
    const text = "fatal: unable to access 'https://bob:hunter2@host/r.git/': 403\n> Authorization: Basic Ym9iOmh1bnRlcjI=\nsecret-token-1 leaked";
    const out = scrub(text, ['secret-token-1']);
    expect(out).not.toMatch(/hunter2|Ym9iOmh1bnRlcjI=|secret-token-1/);
    expect(out).toContain('https://***@host/r.git/');
    expect(classify("fatal: unable to access 'https://h/r.git/': The requested URL returned error: 403")).toBe('AuthFailed');
    expect(classify("fatal: unable to access 'https://h/r.git/': Could not resolve host: h")).toBe('Unreachable');
    expect(classify('fatal: couldn\'t find remote ref refs/heads/x')).toBe('BranchNotFound');
    expect(classify('git@github.com: Permission denied (publickey).\nfatal: Could not read from remote repository.')).toBe('AuthFailed');
  });
});
