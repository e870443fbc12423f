/**
 * The operator's nginx as Tower's switch, from Tower's environment: TOWER_NGINX_CONF_DIR (a
 * directory nginx includes inside its http {} block; Tower writes one file per instance),
 * TOWER_NGINX_RELOAD (how nginx reloads; default `nginx -s reload`) and TOWER_NGINX_PID_FILE
 * (the master's pid file: lets a drain watch the old workers finish). Without the directory
 * there is no nginx switch.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { nginxSwitch } from './nginx.js';
import type { TrafficSwitch } from './types.js';

const run = promisify(execFile);

export function nginxFromEnv(env: NodeJS.ProcessEnv): TrafficSwitch | undefined {
  const confDir = env.TOWER_NGINX_CONF_DIR;
  if (!confDir) return undefined;
  const reload = (env.TOWER_NGINX_RELOAD ?? 'nginx -s reload').trim();
  return nginxSwitch({
    confDir,
    ...(env.TOWER_NGINX_PID_FILE ? { pidFile: env.TOWER_NGINX_PID_FILE } : {}),
    // A command line run without a shell: the program and its arguments, split on spaces.
    reload: async () => {
      const [program, ...args] = reload.split(/\s+/);
      await run(program!, args, { timeout: 10_000 });
    },
  });
}
