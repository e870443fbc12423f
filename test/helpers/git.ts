/**
 * Real Git remotes for integration tests: bare repositories on disk, working clones that
 * commit and push, and a smart-HTTP server (git http-backend as CGI behind node:http on
 * 127.0.0.1) that wants a token. The global git config is never touched: every command here
 * runs with its own identity in the environment and without the user's or system's config.
 */
import { execFile, spawn } from 'node:child_process';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Identity and isolation for the test's own git commands. */
export const GIT_TEST_ENV: Record<string, string> = {
  GIT_AUTHOR_NAME: 'Tower Test',
  GIT_AUTHOR_EMAIL: 'tower-test@example.invalid',
  GIT_COMMITTER_NAME: 'Tower Test',
  GIT_COMMITTER_EMAIL: 'tower-test@example.invalid',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_TERMINAL_PROMPT: '0',
  LC_ALL: 'C',
};

export async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await run('git', args, {
    cwd,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...GIT_TEST_ENV },
    timeout: 30_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

/** An empty bare repository whose HEAD names `branch`. */
export async function initBare(dir: string, branch = 'main'): Promise<string> {
  mkdirSync(dirname(dir), { recursive: true });
  await git(dirname(dir), 'init', '--quiet', '--bare', `--initial-branch=${branch}`, dir);
  return dir;
}

/** A working clone of a bare repository that commits and pushes. */
export class WorkClone {
  private constructor(readonly dir: string) {}

  static async create(remote: string, dir: string, branch = 'main'): Promise<WorkClone> {
    mkdirSync(dir, { recursive: true });
    await git(dir, 'init', '--quiet', `--initial-branch=${branch}`);
    await git(dir, 'remote', 'add', 'origin', remote);
    return new WorkClone(dir);
  }

  git(...args: string[]): Promise<string> {
    return git(this.dir, ...args);
  }

  /** Writes files (path → content, relative to the clone; into `under` if given). */
  write(files: Record<string, string>, under = ''): void {
    for (const [p, content] of Object.entries(files)) {
      const target = join(this.dir, under, p);
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, content);
    }
  }

  /** Copies a directory's contents into the clone (into `under` if given). */
  copy(from: string, under = ''): void {
    cpSync(from, join(this.dir, under), { recursive: true });
  }

  /** Commits everything; returns the new commit id. */
  async commit(message: string): Promise<string> {
    await this.git('add', '--all');
    await this.git('commit', '--quiet', '--allow-empty', '-m', message);
    return this.head();
  }

  async head(): Promise<string> {
    return (await this.git('rev-parse', 'HEAD')).trim();
  }

  async push(branch = 'main'): Promise<void> {
    await this.git('push', '--quiet', 'origin', `HEAD:refs/heads/${branch}`);
  }
}

export interface HttpGitServer {
  port: number;
  /** http://127.0.0.1:port/<name> for a bare repository <root>/<name>. */
  url(name: string): string;
  /** Requests answered 401 / passed to git http-backend. */
  stats: { rejected: number; served: number };
  close(): Promise<void>;
}

export type HttpAuth = { scheme: 'basic'; user: string; token: string } | { scheme: 'bearer'; token: string };

/**
 * git http-backend (smart HTTP) for the bare repositories under root, on 127.0.0.1, that
 * answers 401 unless the request carries the token.
 */
export async function startHttpGitServer(root: string, auth: HttpAuth): Promise<HttpGitServer> {
  const expected = auth.scheme === 'basic' ? `Basic ${Buffer.from(`${auth.user}:${auth.token}`).toString('base64')}` : `Bearer ${auth.token}`;
  const stats = { rejected: 0, served: 0 };
  const children = new Set<ReturnType<typeof spawn>>();
  const server = http.createServer((req, res) => {
    if (req.headers.authorization !== expected) {
      stats.rejected += 1;
      res.writeHead(401, { 'www-authenticate': 'Basic realm="tower-test"', 'content-type': 'text/plain' });
      res.end('authentication required\n');
      return;
    }
    stats.served += 1;
    // The whole body first, so the CGI gets a CONTENT_LENGTH (bounded: test requests are small).
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 64 * 1024 * 1024) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const child = spawn('git', ['http-backend'], {
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          GIT_CONFIG_NOSYSTEM: '1',
          GIT_CONFIG_GLOBAL: '/dev/null',
          GIT_PROJECT_ROOT: root,
          GIT_HTTP_EXPORT_ALL: '1',
          REQUEST_METHOD: req.method ?? 'GET',
          PATH_INFO: decodeURIComponent(url.pathname),
          QUERY_STRING: url.search.replace(/^\?/, ''),
          CONTENT_TYPE: req.headers['content-type'] ?? '',
          CONTENT_LENGTH: String(body.length),
          HTTP_CONTENT_ENCODING: String(req.headers['content-encoding'] ?? ''),
          GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''),
          REMOTE_USER: 'tower',
          REMOTE_ADDR: '127.0.0.1',
        },
        stdio: ['pipe', 'pipe', 'ignore'],
      });
      children.add(child);
      child.on('close', () => children.delete(child));
      // git http-backend may answer (an auth refusal, say) and exit before it has read the body:
      // the pipe then breaks, and its answer on stdout is what counts.
      child.stdin.on('error', () => {});
      child.stdin.end(body);
      let head = Buffer.alloc(0);
      let headersDone = false;
      child.stdout.on('data', (c: Buffer) => {
        if (headersDone) {
          res.write(c);
          return;
        }
        head = Buffer.concat([head, c]);
        const crlf = head.indexOf('\r\n\r\n');
        const lf = head.indexOf('\n\n');
        const end = crlf >= 0 ? crlf : lf;
        if (end < 0) return;
        const sep = crlf >= 0 ? 4 : 2;
        const lines = head.subarray(0, end).toString('latin1').split(/\r?\n/);
        let status = 200;
        const headers: Record<string, string> = {};
        for (const line of lines) {
          const i = line.indexOf(':');
          if (i < 0) continue;
          const name = line.slice(0, i).trim();
          const value = line.slice(i + 1).trim();
          if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10) || 500;
          else headers[name] = value;
        }
        res.writeHead(status, headers);
        headersDone = true;
        const rest = head.subarray(end + sep);
        if (rest.length > 0) res.write(rest);
      });
      child.stdout.on('end', () => res.end());
      child.on('error', () => {
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    stats,
    url: (name) => `http://127.0.0.1:${port}/${name}`,
    close: async () => {
      for (const child of children) child.kill('SIGKILL');
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A loopback port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
