/**
 * A private PostgreSQL server for one test file: initdb into a temporary directory, started
 * with pg_ctl on its own loopback port (never 5432, where a system server may run) and a
 * socket directory of its own, stopped and removed in afterAll — and, should the test process
 * die first, by an exit hook (postgres also shuts itself down once its data directory is gone).
 *
 * initdb refuses to run as root: as root, every server command runs as the `postgres` user
 * (runuser), and the temporary directory belongs to it. Authentication: trust for the
 * `postgres` superuser; every other role must give its password (scram-sha-256), so that
 * tests can see a wrong password refused.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './mosquitto.js';

export interface PostgresServer {
  port: number;
  /** The superuser URL of the default database (trust: no password). */
  url: string;
  /** A URL for `database` on this server, as `user` (with `password` when given). */
  urlFor(database: string, user?: string, password?: string): string;
  /** Creates a fresh, empty database and returns its superuser URL. */
  createDatabase(name?: string): Promise<string>;
  /** Runs SQL as the superuser on `database` (default: postgres). */
  sql(text: string, params?: unknown[], database?: string): Promise<pg.QueryResult>;
  log(): string;
  stop(): Promise<void>;
}

/** initdb, pg_ctl and postgres from Debian's versioned directory (newest first), else PATH. */
export function findPostgresBin(): string {
  const roots = existsSync('/usr/lib/postgresql')
    ? readdirSync('/usr/lib/postgresql')
        .filter((v) => /^\d+$/.test(v))
        .sort((a, b) => Number(b) - Number(a))
        .map((v) => join('/usr/lib/postgresql', v, 'bin'))
    : [];
  for (const dir of [...roots, '/usr/local/bin', '/usr/bin']) {
    if (existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))) return dir;
  }
  throw new Error('PostgreSQL server binaries (initdb, pg_ctl) not found: install them with `apt-get install postgresql`');
}

const asRoot = process.getuid?.() === 0;

/** Runs a server command, as `postgres` when we are root; throws with its output on failure. */
function run(bin: string, args: string[], cwd: string): string {
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  const res = spawnSync(cmd, argv, { cwd, encoding: 'utf8', timeout: 60_000 });
  if (res.status !== 0) throw new Error(`${bin} ${args.join(' ')} failed (${res.error?.message ?? `exit ${res.status}`}):\n${res.stdout}${res.stderr}`);
  return res.stdout;
}

let counter = 0;

export async function startPostgres(): Promise<PostgresServer> {
  const bin = findPostgresBin();
  const base = mkdtempSync(join(tmpdir(), 'tower-pg-'));
  const data = join(base, 'data');
  const sock = join(base, 'sock');
  const logFile = join(base, 'server.log');
  mkdirSync(sock, { mode: 0o700 });
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(base, uid, gid);
    chownSync(sock, uid, gid);
  }
  const pgCtl = join(bin, 'pg_ctl');
  let started = false;
  let port = 0;
  const stopNow = (mode: 'fast' | 'immediate') => {
    if (started) {
      try {
        run(pgCtl, ['-D', data, 'stop', '-m', mode, '-w', '-t', '30'], base);
      } catch {
        // already stopped
      }
      started = false;
    }
    rmSync(base, { recursive: true, force: true });
  };
  const onExit = () => stopNow('immediate');
  process.once('exit', onExit);
  const log = () => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  try {
    run(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync', '--auth=trust'], base);
    writeFileSync(
      join(data, 'pg_hba.conf'),
      ['local all all trust', 'host all postgres 127.0.0.1/32 trust', 'host all all 127.0.0.1/32 scram-sha-256', ''].join('\n'),
    );
    // A port free a moment ago may be taken by the time the server binds: try a few.
    for (let attempt = 0; attempt < 3 && !started; attempt++) {
      port = await freePort();
      if (port === 5432) continue;
      const opts = `-p ${port} -k ${sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`;
      try {
        run(pgCtl, ['-D', data, '-l', logFile, '-o', opts, '-w', '-t', '30', 'start'], base);
        started = true;
      } catch (err) {
        if (attempt === 2) throw err;
      }
    }
    if (!started) throw new Error('postgres did not start');
  } catch (err) {
    const text = log();
    stopNow('immediate');
    process.removeListener('exit', onExit);
    throw new Error(`${(err as Error).message}\n${text}`);
  }
  const urlFor = (database: string, user = 'postgres', password?: string) =>
    `postgres://${encodeURIComponent(user)}${password === undefined ? '' : `:${encodeURIComponent(password)}`}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
  const sql = async (text: string, params: unknown[] = [], database = 'postgres') => {
    const client = new pg.Client({ connectionString: urlFor(database), connectionTimeoutMillis: 5_000 });
    await client.connect();
    try {
      return await client.query(text, params);
    } finally {
      await client.end();
    }
  };
  return {
    port,
    url: urlFor('postgres'),
    urlFor,
    sql,
    async createDatabase(name = `tower_test_${process.pid}_${++counter}`) {
      await sql(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
      return urlFor(name);
    },
    log,
    async stop() {
      stopNow('fast');
      process.removeListener('exit', onExit);
    },
  };
}
