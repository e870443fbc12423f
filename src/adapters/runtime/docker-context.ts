/**
 * Shared context in a container. The Redis context store settings.js requires is Tower's own
 * (built to dist/src/nodered-plugins/context-store/redis.cjs) and requires ioredis; an image
 * holds neither. So the docker driver stages them in the state directory — the store's files and
 * ioredis with the packages it depends on, copied as npm laid them out, under
 * <stateDir>/docker/context-store/<content hash>/ — and bind-mounts that directory read-only at
 * /opt/tower/context-store, where settings.js requires the store and Node's lookup finds
 * node_modules/ioredis beside it. @node-red/util, which the store also uses, comes from the
 * Node-RED that runs in the container (see redis.cts).
 *
 * Staged in the state directory rather than mounted from where Tower is installed: the Docker
 * daemon resolves bind sources on its own host, and when Tower itself runs in a container the
 * state directory is the one path both share (deploy/README.md). A content-hash name means a
 * new Tower build stages beside the old one, never under a running container's feet.
 */
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join, relative, sep } from 'node:path';
import { redisContextStorePath } from '../../nodered-plugins/context-store/index.js';
import { RuntimeError } from './types.js';

export const CONTEXT_STORE_IN_CONTAINER = '/opt/tower/context-store';

export interface ContextStoreMounts {
  /** The store as settings.js requires it inside the container. */
  modulePath: string;
  /** Docker binds, read-only. */
  binds: string[];
  /** The staged directory on the host. */
  staged: string;
}

/** Stages the Redis context store with its packages in stateDir (once per content) and says how to mount it. */
export function stageContextStore(stateDir: string, storePath?: string): ContextStoreMounts {
  try {
    return stage(stateDir, storePath ?? redisContextStorePath());
  } catch (err) {
    throw new RuntimeError(`docker: cannot stage the Redis context store for containers: ${(err as Error).message}`, 'ContextStoreMissing', { cause: err });
  }
}

function stage(stateDir: string, storePath: string): ContextStoreMounts {
  const storeDir = dirname(storePath);
  const files = readdirSync(storeDir).filter((f) => f.endsWith('.cjs'));
  const packages = dependencyClosure('ioredis', storeDir);
  const hash = createHash('sha256');
  for (const f of files) hash.update(`${f}\0`).update(readFileSync(join(storeDir, f)));
  for (const p of packages) hash.update(`${p.rel}@${p.version}\0`);
  const staged = join(stateDir, 'docker', 'context-store', hash.digest('hex').slice(0, 16));
  if (!existsSync(staged)) {
    // Built beside, renamed into place: a directory that exists is complete.
    const tmp = `${staged}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    mkdirSync(tmp, { recursive: true, mode: 0o755 });
    try {
      for (const f of files) cpSync(join(storeDir, f), join(tmp, f));
      for (const p of packages) {
        // Each package without its nested node_modules: the ones it needs are in the list too.
        const nested = join(p.dir, 'node_modules');
        cpSync(p.dir, join(tmp, 'node_modules', p.rel), { recursive: true, dereference: true, filter: (src) => src !== nested && !src.startsWith(nested + sep) });
      }
      renameSync(tmp, staged);
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      if (!existsSync(staged)) throw err; // else another create staged it first
    }
  }
  return { modulePath: `${CONTEXT_STORE_IN_CONTAINER}/${basename(storePath)}`, binds: [`${staged}:${CONTEXT_STORE_IN_CONTAINER}:ro`], staged };
}

interface PackageCopy {
  /** Where it is installed. */
  dir: string;
  /** Its path below the node_modules the root package sits in, e.g. "ioredis" or "debug/node_modules/ms". */
  rel: string;
  version: string;
}

/** The package `name` as required from `fromDir`, and every package it depends on, as Node would resolve them. */
function dependencyClosure(name: string, fromDir: string): PackageCopy[] {
  const rootDir = findPackage(name, fromDir);
  if (!rootDir) throw new Error(`${name} is not installed where ${fromDir} can require it; run npm ci`);
  const base = dirname(name.startsWith('@') ? dirname(rootDir) : rootDir);
  const found = new Map<string, PackageCopy>();
  const visit = (dir: string): void => {
    if (found.has(dir)) return;
    const rel = relative(base, dir);
    if (rel.startsWith('..')) throw new Error(`${dir} lies outside ${base}: cannot copy ${name}'s dependencies as they are laid out`);
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: string; dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> };
    found.set(dir, { dir, rel, version: pkg.version ?? '' });
    for (const dep of Object.keys(pkg.dependencies ?? {})) {
      const depDir = findPackage(dep, dir);
      if (!depDir) throw new Error(`${dep}, a dependency of ${rel}, is not installed`);
      visit(depDir);
    }
    for (const dep of Object.keys(pkg.optionalDependencies ?? {})) {
      const depDir = findPackage(dep, dir);
      if (depDir) visit(depDir);
    }
  };
  visit(rootDir);
  return [...found.values()];
}

/** Node's lookup: <dir>/node_modules/<name>, then the same in every parent directory. */
function findPackage(name: string, fromDir: string): string | undefined {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    if (basename(dir) !== 'node_modules') {
      const candidate = join(dir, 'node_modules', name);
      if (existsSync(join(candidate, 'package.json'))) return candidate;
    }
    if (dirname(dir) === dir) return undefined;
  }
}
