/**
 * The state directory: what Tower keeps between runs on this machine — the admin
 * credentials of the instances it manages, the registry of what it applied, and a lock so
 * that two reconcilers never act on the same fleet at once. Everything else (what runs,
 * which colour serves) is read from the drivers and switches, not from here.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { AdminCredentials, Registry, RegistryStore } from '../../engine/ports.js';
import { writeAtomic } from './atomic.js';

export type { ColorRecord, InstanceRecord, Registry } from '../../engine/ports.js';

export class StateDir implements RegistryStore {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
    mkdirSync(root, { recursive: true, mode: 0o700 });
  }

  path(...parts: string[]): string {
    return join(this.root, ...parts);
  }

  /** The admin credentials every managed Node-RED is configured with; created once, kept 0600. */
  adminCredentials(): AdminCredentials {
    const file = this.path('admin.json');
    if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as AdminCredentials;
    const creds: AdminCredentials = { username: 'tower', password: randomBytes(24).toString('base64url') };
    writeAtomic(file, JSON.stringify(creds), 0o600);
    return creds;
  }

  read(): Registry {
    const file = this.path('registry.json');
    if (!existsSync(file)) return { instances: {} };
    return JSON.parse(readFileSync(file, 'utf8')) as Registry;
  }

  write(registry: Registry): void {
    writeAtomic(this.path('registry.json'), JSON.stringify(registry, null, 2), 0o600);
  }

  update(change: (r: Registry) => void): Registry {
    const r = this.read();
    change(r);
    this.write(r);
    return r;
  }

  /**
   * Takes the state directory's lock, or throws naming the process that holds it. A lock
   * left by a process that died is taken over.
   */
  lock(holder: string): () => void {
    const file = this.path('lock');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(file, 'wx', 0o600);
        writeSync(fd, JSON.stringify({ pid: process.pid, holder, since: new Date().toISOString() }));
        closeSync(fd);
        return () => rmSync(file, { force: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        let owner: { pid?: number; holder?: string; since?: string } = {};
        try {
          owner = JSON.parse(readFileSync(file, 'utf8')) as typeof owner;
        } catch {
          // half-written lock: treat as stale
        }
        if (owner.pid && owner.pid !== process.pid && isAlive(owner.pid)) {
          throw new Error(`the state directory ${this.root} is in use by ${owner.holder ?? 'another tower'} (pid ${owner.pid}, since ${owner.since}); wait for it to finish`);
        }
        rmSync(file, { force: true });
      }
    }
    throw new Error(`cannot lock the state directory ${this.root}`);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
