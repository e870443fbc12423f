/**
 * A private nginx for tests (Debian package `nginx`): its own prefix, pid file and logs in a
 * temp dir, listening only where the files Tower writes into its conf.d say (127.0.0.1).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));

export interface PrivateNginx {
  prefix: string;
  confDir: string;
  pidFile: string;
  masterPid: number;
  /** The command that reloads it (as TOWER_NGINX_RELOAD takes it). */
  reloadCommand: string;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startNginx(): Promise<PrivateNginx> {
  if (!NGINX) throw new Error('nginx is not installed: bash scripts/system-deps.sh');
  const prefix = mkdtempSync(join(tmpdir(), 'tower-nginx-'));
  const confDir = join(prefix, 'conf.d');
  for (const dir of ['conf.d', 'tmp']) mkdirSync(join(prefix, dir));
  const pidFile = join(prefix, 'nginx.pid');
  const conf = join(prefix, 'nginx.conf');
  const errorLog = join(prefix, 'error.log');
  writeFileSync(conf, [
    'daemon off;',
    'worker_processes 1;',
    // As root, nginx would switch its workers to `nobody`, who cannot use the temp dir.
    ...(process.getuid?.() === 0 ? ['user root;'] : []),
    `pid ${pidFile};`,
    `error_log ${errorLog} info;`,
    'worker_shutdown_timeout 10s;',
    'events { worker_connections 512; }',
    'http {',
    '  access_log off;',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${join(prefix, 'tmp', t)};`),
    `  include ${confDir}/*.conf;`,
    '}',
    '',
  ].join('\n'));
  const child: ChildProcess = spawn(NGINX, ['-p', prefix, '-e', errorLog, '-c', conf], { detached: true, stdio: ['ignore', 'ignore', 'inherit'] });
  const masterPid = child.pid as number;
  for (let i = 0; i < 200 && !existsSync(pidFile); i++) await sleep(25);
  if (Number(readFileSync(pidFile, 'utf8')) !== masterPid) throw new Error('the private nginx did not start');
  return {
    prefix,
    confDir,
    pidFile,
    masterPid,
    reloadCommand: `${NGINX} -p ${prefix} -e ${errorLog} -c ${conf} -s reload`,
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(masterPid, 'SIGTERM');
        await Promise.race([exited, sleep(5_000)]);
      }
      try {
        process.kill(-masterPid, 'SIGKILL');
      } catch {
        // already gone
      }
      rmSync(prefix, { recursive: true, force: true });
    },
  };
}
