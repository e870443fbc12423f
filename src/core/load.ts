/**
 * Loading a fleet repository: fleet.yaml, the deploy plans and every instance's flows,
 * validated all the way through. Files come in through a RepoReader, so this stays pure:
 * the same code reads a directory, a Git worktree or a test's in-memory files.
 */
import { capPerFile, hasErrors, mergeDuplicates, sortDiagnostics, type Diagnostic, type DiagnosticCode } from './diagnostics.js';
import { defineLazyString, deployableFlows, flowsRev, mergeInstanceFlows, type FlowFile } from './flows.js';
import {
  API_VERSION,
  DEFAULT_SETTINGS,
  type ClusterSettings,
  type CredentialRefs,
  type DeployPlan,
  type DesiredInstance,
  type Fleet,
  type Instance,
  type InstanceSettings,
  type PlanSpec,
} from './model.js';
import { credentialRefDiagnostics } from './credentials.js';
import { abProblems, abSpec, canaryProblems, canarySpec, type CanaryProblem, type RawAb, type RawCanary } from './canary.js';
import { unsharedConsumerDiagnostics } from './replicas.js';
import { validatePlan } from './plan.js';
import { SCHEMA_IDS, validateAgainstSchema, type Kind } from './schema.js';
import { parseYamlFile, type PathSegment, type YamlDocument } from './yaml-source.js';
import { posix } from 'node:path';
import {
  DEFAULT_FLEET_LIMITS,
  FLEET_FILES,
  fleetLimits,
  LIBRARY_PREFIX,
  LIMITS,
  PLANS_DIR,
  readFailure,
  readFlowFile,
  readText,
  resolveFlowRef,
  type Location,
  type ReadBudget,
  type RepoReader,
} from './repo-files.js';

export { DEFAULT_FLEET_LIMITS, FLEET_FILES, LIBRARY_PREFIX, LIMITS, PLANS_DIR, type FleetLimits, type ReadResult, type RepoReader } from './repo-files.js';

export interface LoadOptions {
  /** Tower's bundled flow library (top-level flows/), for flows: [lib:<name>]. */
  library?: RepoReader;
}

export interface LoadedRepository {
  /** Undefined when fleet.yaml could not be read as a fleet at all. */
  fleet?: Fleet;
  /** Instances whose flows all loaded. */
  instances: DesiredInstance[];
  plans: DeployPlan[];
  diagnostics: Diagnostic[];
  valid: boolean;
}

export function loadRepository(reader: RepoReader, options: LoadOptions = {}): LoadedRepository {
  const diagnostics: Diagnostic[] = [];
  const finish = (fleet?: Fleet, instances: DesiredInstance[] = [], plans: DeployPlan[] = []): LoadedRepository => {
    const merged = sortDiagnostics(mergeDuplicates(diagnostics));
    return { fleet, instances, plans, diagnostics: capPerFile(merged), valid: !hasErrors(merged) };
  };

  // Every byte read counts against the fleet's limit; the default until fleet.yaml has set its own.
  const budget: ReadBudget = { used: 0, limit: DEFAULT_FLEET_LIMITS.bytes, exceeded: false };

  // fleet.yaml
  let fleetFile = FLEET_FILES[0]!;
  let fleetText: string | undefined;
  let fleetBytes = 0;
  for (const name of FLEET_FILES) {
    const at = { file: name, line: 1, col: 1 };
    const r = readText(reader, name, LIMITS.yamlBytes, { display: name, at, diagnostics, budget });
    if (r.ok) {
      fleetFile = name;
      fleetText = r.text;
      fleetBytes = r.bytes;
      break;
    }
    if (!r.failure) return finish(); // reported: not UTF-8
    if (r.failure.reason !== 'not-found') {
      diagnostics.push(readFailure(name, r.failure, at));
      return finish();
    }
  }
  if (fleetText === undefined) {
    diagnostics.push(error('FileNotFound', fleetFile, 1, 1, 'no fleet.yaml in this directory', 'a fleet repository has fleet.yaml at its top (see fleet-example/); or pass the right directory'));
    return finish();
  }
  const parsedFleet = parseYamlFile(fleetFile, fleetText);
  diagnostics.push(...parsedFleet.diagnostics);

  const fleetDocs: YamlDocument[] = [];
  const planDocs: YamlDocument[] = [];
  sortByKind(parsedFleet.documents, ['Fleet', 'DeployPlan'], fleetDocs, planDocs, diagnostics);
  // The fleet's own limits, before anything else is read.
  const limits = fleetLimits(get(fleetDocs[0]?.value, ['spec', 'limits']));
  budget.limit = limits.bytes;

  // plans/*.yaml, within what is left of the YAML all together may have
  let yamlLeft = LIMITS.yamlTotalBytes - fleetBytes;
  for (const name of reader.list(PLANS_DIR).filter((n) => /\.ya?ml$/.test(n)).sort()) {
    const file = `${PLANS_DIR}/${name}`;
    const at = { file, line: 1, col: 1 };
    const r = readText(reader, file, Math.min(LIMITS.yamlBytes, Math.max(0, yamlLeft)), { display: file, at, diagnostics, budget });
    if (!r.ok) {
      if (r.failure?.reason === 'too-large' && yamlLeft < LIMITS.yamlBytes && (r.failure.size === undefined || r.failure.size <= LIMITS.yamlBytes)) {
        diagnostics.push(error('LimitExceeded', file, 1, 1, `${fleetFile} and the plan files before this one come to ${LIMITS.yamlTotalBytes - yamlLeft} bytes; with this one they would pass the ${LIMITS.yamlTotalBytes / 1024 / 1024} MiB all YAML of a repository may have, so it and the plan files after it were not read`, 'keep plans short; move unused ones out of plans/'));
        break;
      }
      if (r.failure) diagnostics.push(readFailure(file, r.failure, at));
      continue;
    }
    yamlLeft -= r.bytes;
    const parsed = parseYamlFile(file, r.text);
    diagnostics.push(...parsed.diagnostics);
    sortByKind(parsed.documents, ['DeployPlan'], [], planDocs, diagnostics);
  }

  if (fleetDocs.length === 0) {
    if (!hasErrors(diagnostics)) {
      diagnostics.push(error('UnknownKind', fleetFile, 1, 1, `${fleetFile} holds no Fleet document`, `start it with "apiVersion: ${API_VERSION}" and "kind: Fleet"`));
    }
    return finish();
  }
  for (const extra of fleetDocs.slice(1)) {
    const p = extra.locate(['kind']);
    diagnostics.push(error('UnknownKind', extra.file, p.line, p.col, 'a second Fleet document; a repository describes exactly one fleet', 'move the other fleet to its own repository or directory'));
  }
  const fleetDoc = fleetDocs[0]!;
  diagnostics.push(...validateAgainstSchema('Fleet', fleetDoc));

  // Plans that are documents of their own, by name.
  const plans: DeployPlan[] = [];
  const planDocByName = new Map<string, YamlDocument>();
  for (const doc of planDocs) {
    diagnostics.push(...validateAgainstSchema('DeployPlan', doc));
    const name = str(get(doc.value, ['metadata', 'name']));
    const spec = get(doc.value, ['spec']);
    if (!name || !isObject(spec)) continue;
    const clash = planDocByName.get(name);
    if (clash) {
      const p = doc.locate(['metadata', 'name']);
      const q = clash.locate(['metadata', 'name']);
      diagnostics.push(error('DuplicatePlanName', doc.file, p.line, p.col, `a DeployPlan named "${name}" is already defined at ${clash.file}:${q.line}`, 'give each plan its own metadata.name'));
      continue;
    }
    planDocByName.set(name, doc);
    plans.push({ name, source: doc.file, spec: spec as unknown as PlanSpec });
  }

  const fleetValue = fleetDoc.value;
  const fleetName = str(get(fleetValue, ['metadata', 'name'])) ?? 'fleet';
  const defaults = (asObject(get(fleetValue, ['spec', 'defaults'])) ?? {}) as InstanceSettings;
  const rawInstances = Array.isArray(get(fleetValue, ['spec', 'instances'])) ? (get(fleetValue, ['spec', 'instances']) as unknown[]) : [];
  if (rawInstances.length > limits.instances) {
    const p = fleetDoc.locate(['spec', 'instances'], { key: true });
    diagnostics.push(
      error(
        'LimitExceeded',
        fleetDoc.file,
        p.line,
        p.col,
        `spec.instances lists ${rawInstances.length} instances, over this fleet's limit of ${limits.instances}; nothing was loaded`,
        `raise spec.limits.instances in ${fleetDoc.file} (e.g. instances: ${rawInstances.length}) if the fleet is meant to be this large`,
      ),
    );
    return finish();
  }

  const defaultsCanary = canaryOf(defaults.strategy);
  if (defaultsCanary) diagnostics.push(...canaryDiagnostics(canaryProblems(defaultsCanary), 'canary', (path) => located(fleetDoc, ['spec', 'defaults', 'strategy', 'canary', ...path])));
  const defaultsAb = abOf(defaults.strategy);
  if (defaultsAb) diagnostics.push(...canaryDiagnostics(abProblems(defaultsAb), 'ab', (path) => located(fleetDoc, ['spec', 'defaults', 'strategy', 'ab', ...path])));

  // Instances, with defaults applied. Malformed entries were reported by the schema; skip them.
  const instances: { instance: Instance; index: number }[] = [];
  const byName = new Map<string, number>();
  const byPort = new Map<number, { name: string; index: number }>();
  rawInstances.forEach((raw, index) => {
    if (!isObject(raw)) return;
    const name = str(raw.name);
    const port = typeof raw.port === 'number' && Number.isInteger(raw.port) ? raw.port : undefined;
    const flows = Array.isArray(raw.flows) ? raw.flows.filter((f): f is string => typeof f === 'string') : [];
    if (!name || port === undefined) return;
    const clash = byName.get(name);
    if (clash !== undefined) {
      const p = fleetDoc.locate(['spec', 'instances', index, 'name']);
      const q = fleetDoc.locate(['spec', 'instances', clash, 'name']);
      diagnostics.push(error('DuplicateInstanceName', fleetDoc.file, p.line, p.col, `instance name "${name}" is already used by spec.instances[${clash}] (line ${q.line})`, 'instance names must be unique; rename one'));
      return;
    }
    byName.set(name, index);
    const portClash = byPort.get(port);
    if (portClash) {
      const p = fleetDoc.locate(['spec', 'instances', index, 'port']);
      const q = fleetDoc.locate(['spec', 'instances', portClash.index, 'port']);
      diagnostics.push(error('DuplicatePort', fleetDoc.file, p.line, p.col, `port ${port} of instance "${name}" is already the port of instance "${portClash.name}" (line ${q.line})`, 'each instance needs a port of its own'));
    } else {
      byPort.set(port, { name, index });
    }
    const instance = buildInstance(name, port, flows, raw as InstanceSettings & { smoke?: unknown; credentials?: CredentialRefs }, defaults);
    const mismatch = switchMismatch(instance);
    if (mismatch) {
      const where = located(fleetDoc, isObject(raw) && raw.switch !== undefined ? ['spec', 'instances', index, 'switch'] : isObject(raw) && raw.runtime !== undefined ? ['spec', 'instances', index, 'runtime'] : ['spec', 'instances', index, 'name']);
      diagnostics.push(error('SwitchMismatch', where.file, where.line, where.col, `instance "${name}": ${mismatch}`, 'runtime: kubernetes goes with switch: service (the default for it); process and docker with builtin or nginx'));
    }
    const ownCanary = canaryOf(raw.strategy);
    if (ownCanary) diagnostics.push(...canaryDiagnostics(canaryProblems(ownCanary), 'canary', (path) => located(fleetDoc, ['spec', 'instances', index, 'strategy', 'canary', ...path])));
    const ownAb = abOf(raw.strategy);
    if (ownAb) diagnostics.push(...canaryDiagnostics(abProblems(ownAb), 'ab', (path) => located(fleetDoc, ['spec', 'instances', index, 'strategy', 'ab', ...path])));
    if ((instance.strategy === 'canary' || instance.strategy === 'ab') && (instance.switch ?? 'builtin') !== 'builtin') {
      const where = located(fleetDoc, ownCanary || ownAb ? ['spec', 'instances', index, 'strategy'] : ['spec', 'instances', index, 'name']);
      diagnostics.push(error('InvalidCanary', where.file, where.line, where.col, `instance "${name}": strategy: ${instance.strategy} needs switch: builtin (the ${instance.switch} switch cannot split traffic by weight or count it per colour)`, 'use switch: builtin for this instance, or strategy: blue-green'));
    }
    instances.push({ instance, index });
  });

  // The plan this fleet rolls out with.
  const plan = resolvePlan(fleetDoc, planDocByName, diagnostics);
  const names = instances.map((i) => i.instance.name);
  for (const p of plans) {
    const doc = planDocByName.get(p.name)!;
    diagnostics.push(...validatePlan(p.spec, names, (path, key) => located(doc, ['spec', ...path], key)));
  }
  if (plan.source === `${fleetDoc.file} (inline)`) {
    diagnostics.push(...validatePlan(plan.spec, names, (path, key) => located(fleetDoc, ['spec', 'plan', ...path], key)));
  }

  // Flows: each file read and parsed once, however many instances include it, and let go
  // once the last of them is merged — source text held to the end of a large fleet costs the
  // garbage collector more than parsing it did.
  const refs = instances.map(({ instance, index }) =>
    instance.flows.map((ref, j) => {
      const at = located(fleetDoc, ['spec', 'instances', index, 'flows', j]);
      const resolved = resolveFlowRef(ref, at, diagnostics);
      return { at, resolved, cacheKey: resolved ? (resolved.library ? `${LIBRARY_PREFIX}${resolved.path}` : resolved.path) : undefined };
    }),
  );
  const uses = new Map<string, number>();
  for (const r of refs.flat()) if (r.cacheKey !== undefined) uses.set(r.cacheKey, (uses.get(r.cacheKey) ?? 0) + 1);
  const flowFiles = new Map<string, FlowFile | null>();
  const desired: DesiredInstance[] = [];
  let nodeCount = 0;
  let overNodes = false;
  instances.forEach(({ instance, index }, k) => {
    if (overNodes || budget.exceeded) return; // said once; the rest is not loaded
    const files: FlowFile[] = [];
    let complete = true;
    for (const { at, resolved, cacheKey } of refs[k]!) {
      if (!resolved || cacheKey === undefined) {
        complete = false;
        continue;
      }
      if (!flowFiles.has(cacheKey)) {
        flowFiles.set(cacheKey, readFlowFile(reader, options.library, resolved, at, diagnostics, budget));
      }
      const f = flowFiles.get(cacheKey);
      if (f) files.push(f);
      else complete = false;
    }
    const count = files.reduce((n, f) => n + f.nodes.length, 0);
    if (nodeCount + count > limits.nodes) {
      overNodes = true;
      const at = located(fleetDoc, ['spec', 'instances', index, 'flows']);
      diagnostics.push(
        error(
          'LimitExceeded',
          at.file,
          at.line,
          at.col,
          `the ${count} nodes of instance "${instance.name}" take the fleet to ${nodeCount + count} nodes, over its limit of ${limits.nodes}; this instance and those after it were not loaded`,
          `raise spec.limits.nodes in ${fleetDoc.file} if the fleet is meant to be this large (every instance counts the nodes of each file it runs)`,
        ),
      );
      return;
    }
    nodeCount += count;
    const merged = mergeInstanceFlows(instance.name, files);
    diagnostics.push(...merged.diagnostics);
    diagnostics.push(...credentialRefDiagnostics(instance.name, instance.config.credentials, merged.nodes, (id) => located(fleetDoc, ['spec', 'instances', index, 'credentials', id], true)));
    const replicasAt = get(fleetValue, ['spec', 'instances', index, 'replicas']) !== undefined ? ['spec', 'instances', index, 'replicas'] : ['spec', 'defaults', 'replicas'];
    diagnostics.push(...unsharedConsumerDiagnostics(instance.name, instance.config.replicas ?? 1, merged.nodes, located(fleetDoc, replicasAt)));
    for (const { cacheKey } of refs[k]!) {
      if (cacheKey === undefined) continue;
      const left = uses.get(cacheKey)! - 1;
      uses.set(cacheKey, left);
      if (left === 0) flowFiles.delete(cacheKey);
    }
    if (!complete) return;
    const flowList = deployableFlows(merged.nodes);
    // rev is hashed when first read (see defineLazyString): a plan that never shows it skips the hashing.
    desired.push(defineLazyString({ ...instance, flowList }, 'rev', () => flowsRev(flowList)));
  });

  const cluster = asObject(get(fleetValue, ['spec', 'kubernetes'])) as ClusterSettings | undefined;
  const fleet: Fleet = {
    name: fleetName,
    labels: (asObject(get(fleetValue, ['metadata', 'labels'])) as Record<string, string>) ?? {},
    selfHeal: get(fleetValue, ['spec', 'selfHeal']) === true,
    ...(cluster ? { kubernetes: cluster } : {}),
    instances: instances.map((i) => i.instance),
    plan,
  };
  return finish(fleet, desired, plans);
}

function buildInstance(
  name: string,
  port: number,
  flows: string[],
  raw: InstanceSettings & { smoke?: unknown; credentials?: CredentialRefs },
  defaults: InstanceSettings,
): Instance {
  const pick = <K extends keyof InstanceSettings>(key: K): InstanceSettings[K] => raw[key] ?? defaults[key];
  const nodeRedVersion = String(pick('nodeRedVersion') ?? DEFAULT_SETTINGS.nodeRedVersion);
  return {
    name,
    port,
    flows,
    smoke: Array.isArray(raw.smoke) ? raw.smoke : [],
    ...strategyOf(pick('strategy')),
    labels: { ...(defaults.labels ?? {}), ...(raw.labels ?? {}) },
    keepWarm: pick('keepWarm') ?? DEFAULT_SETTINGS.keepWarm,
    // runtime: kubernetes is served by a Service (and only by one): see switchMismatch.
    ...(pick('switch') === 'nginx' || pick('switch') === 'service' ? { switch: pick('switch') } : (pick('runtime') ?? DEFAULT_SETTINGS.runtime) === 'kubernetes' ? { switch: 'service' as const } : {}),
    drainTimeout: pick('drainTimeout') ?? DEFAULT_SETTINGS.drainTimeout,
    config: {
      runtime: pick('runtime') ?? DEFAULT_SETTINGS.runtime,
      ...((pick('replicas') ?? 1) > 1 ? { replicas: pick('replicas') } : {}),
      nodeRedVersion,
      ...(pick('image') ? { image: pick('image') } : {}),
      env: { ...(defaults.env ?? {}), ...(raw.env ?? {}) },
      resources: { ...(defaults.resources ?? {}), ...(raw.resources ?? {}) },
      settings: { ...(defaults.settings ?? {}), ...(raw.settings ?? {}) },
      context: pick('context') ?? DEFAULT_SETTINGS.context,
      port,
      ...(raw.credentials && Object.keys(raw.credentials).length ? { credentials: raw.credentials } : {}),
    },
  };
}

function canaryOf(strategy: unknown): RawCanary | undefined {
  return isObject(strategy) && isObject(strategy.canary) ? (strategy.canary as RawCanary) : undefined;
}

function abOf(strategy: unknown): RawAb | undefined {
  return isObject(strategy) && isObject(strategy.ab) ? (strategy.ab as RawAb) : undefined;
}

function canaryDiagnostics(problems: CanaryProblem[], kind: 'canary' | 'ab', at: (path: PathSegment[]) => Location): Diagnostic[] {
  return problems.map((p) => {
    const where = at(p.path);
    return error('InvalidCanary', where.file, where.line, where.col, `strategy.${kind}: ${p.message}`, p.hint);
  });
}

/** The strategy and, for a canary that makes sense (canaryDiagnostics found nothing), its spec. */
function strategyOf(setting: InstanceSettings['strategy']): Pick<Instance, 'strategy' | 'canary' | 'ab'> {
  const ab = abOf(setting);
  if (ab) {
    try {
      return abProblems(ab).length ? { strategy: 'ab' } : { strategy: 'ab', ab: abSpec(ab) };
    } catch {
      return { strategy: 'ab' }; // a duration the schema reported
    }
  }
  const canary = canaryOf(setting);
  if (canary) {
    try {
      return canaryProblems(canary).length ? { strategy: 'canary' } : { strategy: 'canary', canary: canarySpec(canary) };
    } catch {
      return { strategy: 'canary' }; // a duration the schema reported
    }
  }
  return { strategy: setting === 'recreate' ? 'recreate' : DEFAULT_SETTINGS.strategy };
}

/** Why the instance's switch cannot serve its runtime, or undefined. */
function switchMismatch(instance: Instance): string | undefined {
  const kubernetes = instance.config.runtime === 'kubernetes';
  const service = instance.switch === 'service';
  if (kubernetes && !service) return `runtime: kubernetes is served by a Kubernetes Service (switch: service), not switch: ${instance.switch ?? 'builtin'}`;
  if (!kubernetes && service) return `switch: service is a Kubernetes Service and serves runtime: kubernetes only, not runtime: ${instance.config.runtime}`;
  return undefined;
}

function resolvePlan(fleetDoc: YamlDocument, byName: Map<string, YamlDocument>, diagnostics: Diagnostic[]): DeployPlan {
  const ref = get(fleetDoc.value, ['spec', 'plan']);
  const fallback: DeployPlan = { name: 'default', source: '(default)', spec: { order: 'sequential' } };
  if (ref === undefined) return fallback;
  if (isObject(ref)) {
    return { name: 'inline', source: `${fleetDoc.file} (inline)`, spec: ref as unknown as PlanSpec };
  }
  if (typeof ref !== 'string') return fallback;
  const looksLikePath = ref.includes('/') || /\.ya?ml$/.test(ref);
  let doc: YamlDocument | undefined;
  if (looksLikePath) {
    const normalized = posix.normalize(ref);
    doc = [...byName.values()].find((d) => d.file === normalized);
  } else {
    doc = byName.get(ref);
  }
  if (!doc) {
    const p = fleetDoc.locate(['spec', 'plan']);
    const known = [...byName.values()].map((d) => `${str(get(d.value, ['metadata', 'name']))} (${d.file})`);
    diagnostics.push(
      error(
        'PlanNotFound',
        fleetDoc.file,
        p.line,
        p.col,
        looksLikePath ? `spec.plan: no DeployPlan in "${ref}"` : `spec.plan: no DeployPlan named "${ref}"`,
        known.length ? `plans in this repository: ${known.join(', ')}` : `put a DeployPlan in ${PLANS_DIR}/ or remove spec.plan to roll out sequentially`,
      ),
    );
    return fallback;
  }
  const name = str(get(doc.value, ['metadata', 'name'])) ?? 'plan';
  return { name, source: doc.file, spec: get(doc.value, ['spec']) as PlanSpec };
}

function located(doc: YamlDocument, path: readonly PathSegment[], key = false): Location {
  const p = doc.locate(path, { key });
  return { file: doc.file, line: p.line, col: p.col };
}

function sortByKind(docs: YamlDocument[], allowed: Kind[], fleets: YamlDocument[], plans: YamlDocument[], diagnostics: Diagnostic[]): void {
  for (const doc of docs) {
    const kind = get(doc.value, ['kind']);
    if (kind === 'Fleet' && allowed.includes('Fleet')) fleets.push(doc);
    else if (kind === 'DeployPlan' && allowed.includes('DeployPlan')) plans.push(doc);
    else {
      const p = doc.locate(['kind']);
      const expected = allowed.map((k) => `"${k}"`).join(' or ');
      const what = typeof kind === 'string' ? `kind "${kind}" does not belong here` : isObject(doc.value) ? 'missing "kind"' : 'not a mapping with apiVersion, kind, metadata and spec';
      diagnostics.push(error('UnknownKind', doc.file, p.line, p.col, `${what}; expected kind ${expected}`, `schemas: ${allowed.map((k) => SCHEMA_IDS[k]).join(', ')}`));
    }
  }
}

function error(code: DiagnosticCode, file: string, line: number, col: number, message: string, hint?: string): Diagnostic {
  return { severity: 'error', code, file, line, col, message, hint };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function asObject(v: unknown): Record<string, unknown> | undefined {
  return isObject(v) ? v : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function get(v: unknown, path: readonly PathSegment[]): unknown {
  let cursor = v;
  for (const seg of path) {
    if (cursor === null || typeof cursor !== 'object') return undefined;
    cursor = (cursor as Record<string | number, unknown>)[seg];
  }
  return cursor;
}
