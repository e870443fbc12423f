/**
 * The stand-in API server's object store: namespaced objects by resource, one resourceVersion
 * counter for all of them (as etcd's revision), label and field selectors, and the event log a
 * watch replays from. Objects are kept as plain JSON, the way the API server returns them.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean; blockOwnerDeletion?: boolean }[];
  generateName?: string;
  [key: string]: unknown;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [key: string]: unknown;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  rv: number;
  resource: string;
  type: WatchEventType;
  object: KubeObject;
}

/** Thrown by the store and the server: becomes a metav1.Status answer. */
export class StatusError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }

  status(): Record<string, unknown> {
    return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: this.message, reason: this.reason, ...(this.details ? { details: this.details } : {}), code: this.code };
  }
}

/** How many events a watch can replay from; an older resourceVersion gets 410 Gone, as from etcd after compaction. */
const EVENT_LOG = 10_000;

export class ObjectStore {
  private rv = 1;
  private readonly byResource = new Map<string, Map<string, KubeObject>>();
  private readonly log: StoreEvent[] = [];
  readonly events = new EventEmitter();

  constructor() {
    this.events.setMaxListeners(0);
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  private table(resource: string): Map<string, KubeObject> {
    let t = this.byResource.get(resource);
    if (!t) this.byResource.set(resource, (t = new Map()));
    return t;
  }

  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const found = this.table(resource).get(key(namespace, name));
    return found ? clone(found) : undefined;
  }

  list(resource: string, namespace: string | undefined, filter: (o: KubeObject) => boolean = () => true): KubeObject[] {
    const out: KubeObject[] = [];
    for (const o of this.table(resource).values()) if ((namespace === undefined || o.metadata.namespace === namespace) && filter(o)) out.push(clone(o));
    return out.sort((a, b) => key(a.metadata.namespace, a.metadata.name).localeCompare(key(b.metadata.namespace, b.metadata.name)));
  }

  create(resource: string, kindName: string, obj: KubeObject, now = new Date()): KubeObject {
    const meta = obj.metadata;
    if (!meta.name && meta.generateName) meta.name = `${meta.generateName}${randomSuffix()}`;
    const k = key(meta.namespace, meta.name);
    if (this.table(resource).has(k)) throw new StatusError(409, 'AlreadyExists', `${kindName} "${meta.name}" already exists`, { name: meta.name, kind: resource });
    const stored: KubeObject = clone({
      ...obj,
      metadata: { ...meta, uid: randomUUID(), resourceVersion: String(++this.rv), creationTimestamp: iso(now), ...(hasSpec(obj) ? { generation: 1 } : {}) },
    });
    delete stored.metadata.deletionTimestamp;
    this.table(resource).set(k, stored);
    this.record(resource, 'ADDED', stored);
    return clone(stored);
  }

  /**
   * Replaces an object. With a resourceVersion in the new object that is not the stored one, 409
   * Conflict (optimistic concurrency); uid, creationTimestamp are kept; generation moves when the
   * spec changes. `status` keeps the stored status unless the caller writes the status subresource.
   */
  replace(resource: string, kindName: string, obj: KubeObject, opts: { subresource?: 'status'; ignoreVersion?: boolean } = {}): KubeObject {
    const k = key(obj.metadata.namespace, obj.metadata.name);
    const old = this.table(resource).get(k);
    if (!old) throw new StatusError(404, 'NotFound', `${resource} "${obj.metadata.name}" not found`, { name: obj.metadata.name, kind: resource });
    const wanted = obj.metadata.resourceVersion;
    if (!opts.ignoreVersion && wanted !== undefined && wanted !== '' && wanted !== old.metadata.resourceVersion) {
      throw new StatusError(409, 'Conflict', `Operation cannot be fulfilled on ${resource} "${obj.metadata.name}": the object has been modified; please apply your changes to the latest version and try again`, { name: obj.metadata.name, kind: resource });
    }
    const next: KubeObject = clone(obj);
    if (opts.subresource === 'status') {
      // Only the status changes through /status.
      const kept = clone(old);
      kept.status = next.status;
      return this.put(resource, k, old, kept, false);
    }
    if (hasSpec(old) && 'status' in old) next.status = old.status;
    next.metadata = { ...next.metadata, uid: old.metadata.uid!, creationTimestamp: old.metadata.creationTimestamp! };
    if (old.metadata.deletionTimestamp) next.metadata.deletionTimestamp = old.metadata.deletionTimestamp;
    if (old.metadata.deletionGracePeriodSeconds !== undefined) next.metadata.deletionGracePeriodSeconds = old.metadata.deletionGracePeriodSeconds;
    void kindName;
    return this.put(resource, k, old, next, JSON.stringify(specOf(old)) !== JSON.stringify(specOf(next)));
  }

  private put(resource: string, k: string, old: KubeObject, next: KubeObject, specChanged: boolean): KubeObject {
    if (old.metadata.generation !== undefined) next.metadata.generation = old.metadata.generation + (specChanged ? 1 : 0);
    // Nothing changed: no new resourceVersion, no event (as the API server does for a no-op update).
    next.metadata.resourceVersion = old.metadata.resourceVersion!;
    if (JSON.stringify(next) === JSON.stringify(old)) return clone(old);
    next.metadata.resourceVersion = String(++this.rv);
    this.table(resource).set(k, next);
    this.record(resource, 'MODIFIED', next);
    return clone(next);
  }

  /** Removes the object for good (graceful deletion is the kubelet's, see kubelet.ts). */
  remove(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const k = key(namespace, name);
    const old = this.table(resource).get(k);
    if (!old) return undefined;
    this.table(resource).delete(k);
    const gone = clone(old);
    gone.metadata.resourceVersion = String(++this.rv);
    this.record(resource, 'DELETED', gone);
    return gone;
  }

  /** The events of a resource after resourceVersion `since`; undefined when the log no longer reaches back that far. */
  since(resource: string, since: number): StoreEvent[] | undefined {
    const first = this.log[0];
    if (first && since < first.rv - 1 && this.log.length >= EVENT_LOG) return undefined;
    return this.log.filter((e) => e.resource === resource && e.rv > since);
  }

  private record(resource: string, type: WatchEventType, object: KubeObject): void {
    const event: StoreEvent = { rv: Number(object.metadata.resourceVersion), resource, type, object: clone(object) };
    this.log.push(event);
    if (this.log.length > EVENT_LOG) this.log.shift();
    this.events.emit('event', event);
  }
}

/** A parsed label selector: a=b, a==b, a!=b, a in (x,y), a notin (x), a, !a. */
export type Requirement = { key: string; op: 'in' | 'notin' | 'exists' | '!exists'; values: string[] };

export function parseLabelSelector(text: string | null | undefined): Requirement[] {
  const out: Requirement[] = [];
  if (!text) return out;
  // Split on commas that are not inside parentheses.
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
  for (const raw of parts) {
    const p = raw.trim();
    if (!p) continue;
    let m: RegExpExecArray | null;
    if ((m = /^([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(p))) out.push({ key: m[1]!, op: m[2] as 'in' | 'notin', values: m[3]!.split(',').map((v) => v.trim()).filter(Boolean) });
    else if ((m = /^([^\s!=]+)\s*!=\s*(\S*)$/.exec(p))) out.push({ key: m[1]!, op: 'notin', values: [m[2]!] });
    else if ((m = /^([^\s!=]+)\s*==?\s*(\S*)$/.exec(p))) out.push({ key: m[1]!, op: 'in', values: [m[2]!] });
    else if ((m = /^!\s*([^\s!=]+)$/.exec(p))) out.push({ key: m[1]!, op: '!exists', values: [] });
    else if ((m = /^([^\s!=()]+)$/.exec(p))) out.push({ key: m[1]!, op: 'exists', values: [] });
    else throw new StatusError(400, 'BadRequest', `unable to parse requirement: ${p}`);
  }
  return out;
}

export function matchesLabels(labels: Record<string, string> | undefined, reqs: readonly Requirement[]): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(l, r.key);
    switch (r.op) {
      case 'in':
        return has && r.values.includes(l[r.key]!);
      case 'notin':
        return !has || !r.values.includes(l[r.key]!);
      case 'exists':
        return has;
      case '!exists':
        return !has;
    }
  });
}

/** A map selector (a Service's spec.selector, matchLabels) as requirements. */
export function mapSelector(selector: Record<string, string> | undefined): Requirement[] {
  return Object.entries(selector ?? {}).map(([k, v]) => ({ key: k, op: 'in' as const, values: [v] }));
}

/** A LabelSelector object (matchLabels + matchExpressions). */
export function labelSelectorOf(sel: { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] } | undefined): Requirement[] {
  const reqs = mapSelector(sel?.matchLabels);
  for (const e of sel?.matchExpressions ?? []) {
    const op = e.operator === 'In' ? 'in' : e.operator === 'NotIn' ? 'notin' : e.operator === 'Exists' ? 'exists' : '!exists';
    reqs.push({ key: e.key, op, values: e.values ?? [] });
  }
  return reqs;
}

/** Field selectors: path=value and path!=value on dotted paths (metadata.name, status.phase, spec.nodeName…). */
export function parseFieldSelector(text: string | null | undefined): (o: KubeObject) => boolean {
  if (!text) return () => true;
  const terms = text.split(',').filter(Boolean).map((t) => {
    const m = /^([^!=]+)(==|=|!=)(.*)$/.exec(t.trim());
    if (!m) throw new StatusError(400, 'BadRequest', `invalid field selector: ${t}`);
    return { path: m[1]!.split('.'), not: m[2] === '!=', value: m[3]! };
  });
  return (o) =>
    terms.every((t) => {
      let cur: unknown = o;
      for (const seg of t.path) cur = cur !== null && typeof cur === 'object' ? (cur as Record<string, unknown>)[seg] : undefined;
      const value = cur === undefined || cur === null ? '' : String(cur);
      return t.not ? value !== t.value : value === t.value;
    });
}

export function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

export function iso(d: Date): string {
  // metav1.Time: RFC 3339 to the second.
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function key(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`;
}

function hasSpec(o: KubeObject): boolean {
  return 'spec' in o;
}

function specOf(o: KubeObject): unknown {
  return o.spec;
}

function randomSuffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  let s = '';
  for (let i = 0; i < 5; i++) s += alphabet[Math.floor(Math.random() * alphabet.length)];
  return s;
}
