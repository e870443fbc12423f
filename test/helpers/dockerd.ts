/**
 * A private Docker engine for integration tests: its own dockerd (and the containerd it
 * supervises) in a temp dir, on its own unix socket, with no bridge and no iptables — so it
 * touches nothing of the host and several can run side by side. No registry is reachable,
 * so images are `docker import`s of a tiny busybox rootfs; the host's node and Node-RED are
 * bind-mounted read-only when a container runs (see hostNodeRedRun).
 *
 * socketProxy stands between a client and the engine, to cut its connections on demand.
 *
 * Needs root and the Debian packages docker.io (dockerd, containerd, runc) and busybox-static.
 */
import { execFile, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import tar from 'tar-stream';

const run = promisify(execFile);

export interface PrivateDockerd {
  socketPath: string;
  docker: Dockerode;
  /** The temp dir holding data-root, exec-root, pidfile, socket and dockerd.log. */
  dir: string;
  /** How long dockerd took to answer /_ping. */
  startMs: number;
  /** Removes every container, stops dockerd (and its containerd), deletes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

export async function startDockerd(options: { timeoutMs?: number } = {}): Promise<PrivateDockerd> {
  if (process.getuid?.() !== 0) throw new Error('startDockerd: dockerd needs root');
  const timeoutMs = options.timeoutMs ?? 20_000;
  const dir = await mkdtemp(join(tmpdir(), 'tower-dockerd-'));
  const socketPath = join(dir, 'docker.sock');
  const log = join(dir, 'dockerd.log');
  // An empty config file: whatever /etc/docker/daemon.json says does not leak in.
  await writeFile(join(dir, 'daemon.json'), '{}\n');
  const ns = `tower-test-${process.pid}-${Date.now().toString(36)}`;
  const args = [
    '--iptables=false',
    '--ip6tables=false',
    '--bridge=none',
    '--storage-driver=vfs',
    `--data-root=${join(dir, 'data')}`,
    `--exec-root=${join(dir, 'exec')}`,
    `--pidfile=${join(dir, 'dockerd.pid')}`,
    `--config-file=${join(dir, 'daemon.json')}`,
    // dockerd supervises a containerd of its own in exec-root; should a system containerd
    // exist, it would use that one instead, so keep our containers in our own namespace.
    `--containerd-namespace=${ns}`,
    `--containerd-plugins-namespace=${ns}-plugins`,
    `-H=unix://${socketPath}`,
  ];
  const fd = openSync(log, 'a');
  const started = Date.now();
  const child = spawn('dockerd', args, { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  let exited: string | undefined;
  const exit = new Promise<void>((done) => {
    child.once('exit', (code, signal) => {
      exited = `exited (${signal ?? code})`;
      done();
    });
    child.once('error', (err) => {
      exited = `failed to start (${err.message}; is the Debian package docker.io installed?)`;
      done();
    });
  });

  let stopping: Promise<void> | undefined;
  const docker = new Dockerode({ socketPath });
  const stop = (): Promise<void> => (stopping ??= shutdown());

  async function shutdown(): Promise<void> {
    if (!exited) {
      // Containers first: their shims would outlive dockerd otherwise.
      await withTimeout(removeAllContainers(docker), 15_000).catch(() => undefined);
      child.kill('SIGTERM');
      if (!(await withTimeout(exit, 10_000).then(() => true, () => false))) {
        child.kill('SIGKILL');
        await withTimeout(exit, 5_000).catch(() => undefined);
      }
    }
    await killProcessesOf(dir);
    await unmountUnder(dir);
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  }

  const deadline = started + timeoutMs;
  for (let attempt = 0; attempt < 1000 && Date.now() < deadline; attempt++) {
    if (exited) break;
    if (await ping(socketPath)) return { socketPath, docker, dir, startMs: Date.now() - started, stop };
    await sleep(50);
  }
  const tail = (await readFile(log, 'utf8').catch(() => '')).split('\n').slice(-15).join('\n');
  await stop();
  throw new Error(`startDockerd: dockerd ${exited ?? `did not answer /_ping within ${timeoutMs} ms`}\n${tail}`);
}

/** Where the host's node and Node-RED appear inside test containers. */
export const NODE_IN_CONTAINER = '/usr/local/bin/node';
export const RED_JS_IN_CONTAINER = '/opt/node-red/node_modules/node-red/red.js';

/**
 * The driver's `run` override that starts Node-RED from the host: node (and the library
 * directories ldd says it loads from) and node_modules bind-mounted read-only.
 */
export async function hostNodeRedRun(nodeModules = resolve('node_modules')): Promise<{ entrypoint: string[]; cmd: string[]; binds: string[] }> {
  const { stdout } = await run('ldd', [process.execPath]).catch(() => ({ stdout: '' })); // a static node needs none
  const libDirs = new Set<string>();
  for (const m of stdout.matchAll(/(?:=>\s*|^\s*)(\/\S+)\s+\(0x/gm)) if (m[1]) libDirs.add(dirname(m[1]));
  return {
    entrypoint: [NODE_IN_CONTAINER],
    cmd: [RED_JS_IN_CONTAINER, '--userDir', '/data', '--settings', '/data/settings.js'],
    binds: [
      ...[...libDirs].map((d) => `${d}:${d}:ro`),
      `${process.execPath}:${NODE_IN_CONTAINER}:ro`,
      `${nodeModules}:/opt/node-red/node_modules:ro`,
    ],
  };
}

/**
 * Imports a minimal rootfs — static busybox, /bin/sh, a node-red user (uid 1000, as in the
 * official image) — as `tag`. About 2 MB; node and Node-RED come from bind mounts.
 */
export async function buildTestImage(docker: Dockerode, tag = 'tower-test/node-red:4.1.8', busybox = '/bin/busybox'): Promise<string> {
  const pack = tar.pack();
  const dirEntry = (name: string, mode = 0o755, uid = 0): void => {
    pack.entry({ name, type: 'directory', mode, uid, gid: uid });
  };
  for (const d of ['bin', 'etc', 'usr', 'usr/local', 'usr/local/bin', 'opt', 'opt/node-red', 'root']) dirEntry(d);
  dirEntry('tmp', 0o1777);
  dirEntry('data', 0o755, 1000);
  dirEntry('usr/src', 0o755);
  dirEntry('usr/src/node-red', 0o755, 1000);
  pack.entry({ name: 'bin/busybox', mode: 0o755 }, await readFile(busybox));
  pack.entry({ name: 'bin/sh', type: 'symlink', linkname: 'busybox' });
  pack.entry({ name: 'etc/passwd', mode: 0o644 }, 'root:x:0:0:root:/root:/bin/sh\nnode-red:x:1000:1000::/usr/src/node-red:/bin/sh\n');
  pack.entry({ name: 'etc/group', mode: 0o644 }, 'root:x:0:\nnode-red:x:1000:\n');
  pack.finalize();

  const colon = tag.lastIndexOf(':');
  // Readable.from: dockerode's types want a Node stream; tar-stream's pack is a streamx one.
  const stream = await docker.importImage(Readable.from(pack), {
    repo: tag.slice(0, colon),
    tag: tag.slice(colon + 1),
    changes: ['ENV PATH=/usr/local/bin:/bin', 'USER node-red', 'WORKDIR /usr/src/node-red'],
  });
  // The import reports progress as JSON lines; an error arrives in-band, not as a status.
  let output = '';
  const drain = async (): Promise<void> => {
    for await (const chunk of stream) output += String(chunk);
  };
  await withTimeout(drain(), 30_000);
  const error = /"error(?:Detail)?"\s*:\s*("[^"]*"|\{[^}]*\})/.exec(output);
  if (error) throw new Error(`buildTestImage: docker import failed: ${error[1]}`);
  return tag;
}

async function removeAllContainers(docker: Dockerode): Promise<void> {
  const all = await docker.listContainers({ all: true });
  await Promise.all(all.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined)));
}

function ping(socketPath: string): Promise<boolean> {
  return new Promise((done) => {
    const req = http.get({ socketPath, path: '/_ping', timeout: 1000 }, (res) => {
      res.resume();
      done(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => done(false));
  });
}

/**
 * A dockerd that died (or was killed) leaves its containerd, the shims and the containers'
 * processes running. They are ours: their command lines name our temp dir (the shims and
 * containerd by socket and config path), and the container processes descend from them.
 */
async function killProcessesOf(dir: string): Promise<void> {
  const parent = new Map<number, number>();
  const roots: number[] = [];
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const [cmdline, stat] = await Promise.all([
      readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => ''),
      readFile(`/proc/${pid}/stat`, 'utf8').catch(() => ''),
    ]);
    // stat is "pid (comm) state ppid ...", and comm may hold spaces or parentheses.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (Number.isInteger(ppid)) parent.set(pid, ppid);
    if (cmdline.includes(`${dir}/`)) roots.push(pid);
  }
  const doomed = new Set(roots);
  for (let grew = true, rounds = 0; grew && rounds < 32; rounds++) {
    grew = false;
    for (const [pid, ppid] of parent) {
      if (doomed.has(ppid) && !doomed.has(pid)) {
        doomed.add(pid);
        grew = true;
      }
    }
  }
  for (const pid of doomed) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** dockerd leaves mounts in its roots (exec-root/netns/default, data-root): undo them before rm. */
async function unmountUnder(dir: string): Promise<void> {
  const mounts = (await readFile('/proc/mounts', 'utf8')).split('\n').map((l) => l.split(' ')[1] ?? '');
  const ours = mounts.filter((m) => m === dir || m.startsWith(`${dir}/`)).sort((a, b) => b.length - a.length);
  for (const m of ours) await run('umount', ['-l', m]).catch(() => undefined);
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

export interface SocketProxy {
  /** Where clients connect instead of the engine's socket. */
  socketPath: string;
  /** Cuts every open connection (an event stream ends) and refuses new ones until up(). */
  down(): void;
  up(): void;
  close(): Promise<void>;
}

/**
 * A unix-socket relay in front of a Docker engine's socket: what a Docker engine restart or a
 * dropped connection looks like to a client, without restarting the engine.
 */
export async function socketProxy(target: string): Promise<SocketProxy> {
  const dir = await mkdtemp(join(tmpdir(), 'tower-docker-proxy-'));
  const socketPath = join(dir, 'proxy.sock');
  const open = new Set<net.Socket>();
  let refusing = false;
  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(target);
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      open.add(a);
      a.pipe(b);
      a.on('error', () => b.destroy());
      a.on('close', () => {
        open.delete(a);
        b.destroy();
      });
    }
  });
  await new Promise<void>((done) => server.listen(socketPath, done));
  return {
    socketPath,
    down() {
      refusing = true;
      for (const s of open) s.destroy();
    },
    up() {
      refusing = false;
    },
    async close() {
      for (const s of open) s.destroy();
      await new Promise<void>((done) => server.close(() => done()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
