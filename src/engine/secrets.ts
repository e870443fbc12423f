/**
 * Resolving env references ({ fromEnv }, { fromFile }) into values, at the last moment,
 * for the process that needs them. Errors name the reference, never a value.
 */
import { readFileSync } from 'node:fs';
import { isSecretRef, type CredentialRefs, type EnvValue } from '../core/model.js';

export class SecretError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretError';
  }
}

/** Node credentials by reference, resolved: node id → field → value. Errors name references, never values. */
export function resolveCredentials(instance: string, refs: CredentialRefs | undefined, source: NodeJS.ProcessEnv): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const [node, fields] of Object.entries(refs ?? {})) {
    const values = resolveEnv(`${instance} credentials of node ${node}`, fields, source);
    if (Object.keys(values).length) out[node] = values;
  }
  return out;
}

export function resolveEnv(instance: string, env: Record<string, EnvValue>, source: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  const missing: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (!isSecretRef(value)) {
      out[name] = String(value);
    } else if ('fromEnv' in value) {
      const v = source[value.fromEnv];
      if (v !== undefined) out[name] = v;
      else if (!value.optional) missing.push(`${name} (fromEnv ${value.fromEnv}: not set in Tower's environment)`);
    } else {
      try {
        out[name] = readFileSync(value.fromFile, 'utf8').replace(/\r?\n$/, '');
      } catch (err) {
        if (value.optional) continue;
        missing.push(`${name} (fromFile ${value.fromFile}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`);
      }
    }
  }
  if (missing.length) throw new SecretError(`instance ${instance}: cannot resolve ${missing.join('; ')}`);
  return out;
}

/** Every resolved secret value, so that log and error text can be scrubbed of them. */
export function secretValues(env: Record<string, EnvValue>, resolved: Record<string, string>): string[] {
  return Object.entries(env)
    .filter(([, v]) => isSecretRef(v))
    .map(([k]) => resolved[k])
    .filter((v): v is string => typeof v === 'string' && v.length >= 4);
}
