/**
 * Node credentials, shared by the runtime drivers: taken out of the flow list (they never go
 * into flows.json or the rev) and written encrypted to flows_cred.json, the way Node-RED
 * itself stores them, with one credentialSecret per state directory.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FlowNode } from '../../core/model.js';
import { RuntimeError } from './types.js';

/** The state dir's credentialSecret, or undefined when none was made yet (nothing is created). */
export async function readCredentialSecret(stateDir: string): Promise<string | undefined> {
  const file = join(stateDir, 'secrets.json');
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (text === undefined) return undefined;
  const saved = JSON.parse(text) as { credentialSecret?: unknown };
  if (typeof saved.credentialSecret !== 'string') throw new RuntimeError(`${file} holds no credentialSecret`, 'StateCorrupt');
  return saved.credentialSecret;
}

/** The state dir's credentialSecret (secrets.json, 0600), created on first use; one per state dir whichever driver asks. */
export async function loadCredentialSecret(stateDir: string): Promise<string> {
  const file = join(stateDir, 'secrets.json');
  const read = () => readCredentialSecret(stateDir);
  const existing = await read();
  if (existing !== undefined) return existing;
  await mkdir(stateDir, { recursive: true });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, JSON.stringify({ credentialSecret: randomBytes(32).toString('hex') }), { mode: 0o600 });
  // link() fails when another Tower got there first; its secret wins and is read back.
  await link(tmp, file).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  await rm(tmp, { force: true });
  const saved = await read();
  if (saved === undefined) throw new RuntimeError(`${file} vanished while it was being created`, 'StateCorrupt');
  return saved;
}

/** Node credentials by node id, as Node-RED's credential store holds them; undefined when no node has any. */
export function extractCredentials(flows: readonly FlowNode[]): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {};
  for (const node of flows) {
    if (node.credentials && typeof node.credentials === 'object' && Object.keys(node.credentials).length > 0) out[node.id] = node.credentials;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** flows_cred.json as Node-RED writes it: aes-256-ctr, key sha256(credentialSecret), hex IV prefix. */
export function encryptCredentials(credentialSecret: string, credentials: Record<string, unknown>): { $: string } {
  const key = createHash('sha256').update(credentialSecret).digest();
  const iv = randomBytes(16);
  const cipher = createCipheriv('aes-256-ctr', key, iv);
  return { $: iv.toString('hex') + cipher.update(JSON.stringify(credentials), 'utf8', 'base64') + cipher.final('base64') };
}

/** flows_cred.json read back (as encryptCredentials or Node-RED wrote it; plain JSON without a secret); undefined when it cannot be read. */
export function decryptCredentials(credentialSecret: string | undefined, stored: unknown): Record<string, unknown> | undefined {
  if (typeof stored !== 'object' || stored === null) return undefined;
  const sealed = (stored as { $?: unknown }).$;
  if (typeof sealed !== 'string') return stored as Record<string, unknown>;
  if (credentialSecret === undefined || !/^[0-9a-f]{32}/i.test(sealed)) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-ctr', createHash('sha256').update(credentialSecret).digest(), Buffer.from(sealed.slice(0, 32), 'hex'));
    return JSON.parse(decipher.update(sealed.slice(32), 'base64', 'utf8') + decipher.final('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}
