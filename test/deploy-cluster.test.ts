/**
 * deploy/kubernetes/cluster/ — Tower with two replicas managing a fleet on Kubernetes — checked
 * against the Kubernetes schemas and the code:
 * - every manifest (and what `kubectl kustomize` renders of them) validates against the schemas
 *   generated from Kubernetes' OpenAPI description (kubernetes-models, as the stand-in checks bodies);
 * - the pieces fit: the Deployment's ServiceAccount is the one the RoleBinding binds to the Role
 *   in the fleet's namespace, the Role's Lease is tower-<fleet> of the example fleet, the pods get
 *   every ConfigMap, Secret and volume they name;
 * - the settings are variables `tower run` reads and make a configuration that elects by Lease;
 * - the example fleet passes `tower validate`, runs every instance on Kubernetes, and keeps
 *   fleet-example's flows and plans unchanged.
 * The Role's lease verbs are proven sufficient (and exact) in test/integration/kube-lease.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { ConfigMap, Namespace, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { directoryReader } from '../src/adapters/fs/repo-reader.js';
import { main } from '../src/cli.js';
import { bufferIo } from '../src/commands/io.js';
import { fleetIdentity } from '../src/commands/leadership.js';
import { parseRunConfig, RUN_ENV } from '../src/commands/run-config.js';
import { loadRepository } from '../src/core/load.js';

const ROOT = join(import.meta.dirname, '..');
const CLUSTER = join(ROOT, 'deploy', 'kubernetes', 'cluster');
const FLEET = join(CLUSTER, 'fleet');
const LIBRARY = join(ROOT, 'flows');

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  Namespace: Namespace as never,
  ServiceAccount: ServiceAccount as never,
  Role: Role as never,
  RoleBinding: RoleBinding as never,
  ConfigMap: ConfigMap as never,
  Secret: Secret as never,
  Deployment: Deployment as never,
  Service: Service as never,
};

function manifests(): (Obj & { __file: string })[] {
  const docs: (Obj & { __file: string })[] = [];
  for (const f of readdirSync(CLUSTER).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')) {
    for (const d of parseAllDocuments(readFileSync(join(CLUSTER, f), 'utf8'))) {
      expect(d.errors.map((e) => `${f}: ${e.message}`)).toEqual([]);
      docs.push({ ...(d.toJS() as Obj), __file: f });
    }
  }
  return docs;
}
const one = (docs: Obj[], kind: string, name?: string): Obj => {
  const found = docs.filter((d) => d.kind === kind && (name === undefined || d.metadata?.name === name));
  expect(found, `${kind} ${name ?? ''}`).toHaveLength(1);
  return found[0]!;
};

function validate(doc: Obj): string | undefined {
  const Model = MODELS[String(doc.kind)];
  if (!Model) return `${String(doc.kind)}: no schema in this test; add it`;
  const { __file: _file, ...body } = doc;
  try {
    new Model(body as never).validate();
    return undefined;
  } catch (err) {
    return `${String(doc.kind)} ${String(doc.metadata?.name)}: ${(err as Error).message}`;
  }
}

function fleet() {
  const repo = loadRepository(directoryReader(FLEET), { library: directoryReader(LIBRARY) });
  expect(repo.fleet).toBeDefined();
  return { repo, fleet: repo.fleet! };
}

describe('deploy/kubernetes/cluster', () => {
  it('every manifest, and what kubectl kustomize renders of them, validates against the Kubernetes schemas', () => {
    const docs = manifests();
    expect(docs.map((d) => d.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'Namespace', 'Namespace', 'Role', 'RoleBinding', 'Secret', 'Secret', 'Service', 'ServiceAccount']);
    expect(docs.map(validate).filter(Boolean)).toEqual([]);
    const kustomization = parseYaml(readFileSync(join(CLUSTER, 'kustomization.yaml'), 'utf8')) as Obj;
    expect([...kustomization.resources].sort()).toEqual([...new Set(docs.map((d) => d.__file))].sort());
    expect(kustomization.namespace, 'the files name their namespaces: Tower\'s and the fleet\'s differ').toBeUndefined();
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    const parent = parseYaml(readFileSync(join(CLUSTER, '..', 'kustomization.yaml'), 'utf8')) as Obj;
    expect(kustomization.images).toEqual(parent.images);
    expect(kustomization.images[0].newTag, 'the image tag is the package version').toBe(version);

    const r = spawnSync('kubectl', ['kustomize', CLUSTER], { encoding: 'utf8', timeout: 60_000 });
    if (r.error) throw new Error(`kubectl is not installed (apt-get install kubernetes-client; scripts/system-deps.sh does): ${r.error.message}`);
    expect(r.status, r.stderr).toBe(0);
    const rendered = parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj);
    expect(rendered).toHaveLength(docs.length);
    expect(rendered.map(validate).filter(Boolean)).toEqual([]);
    const image = one(rendered, 'Deployment').spec.template.spec.containers[0].image;
    expect(image).toBe(`${String(kustomization.images[0].newName)}:${version}`);
  });

  it('fits together: two replicas as the ServiceAccount the RoleBinding gives the Role, in the fleet\'s namespace, for the fleet\'s Lease', () => {
    const docs = manifests();
    const { fleet: f } = fleet();
    const deployment = one(docs, 'Deployment');
    const pod = deployment.spec.template.spec;
    const towerNs = deployment.metadata.namespace;
    expect(deployment.spec.replicas).toBe(2);
    expect(deployment.spec.strategy.type, 'the state is not on a shared volume: pods may overlap').toBe('RollingUpdate');
    const sa = one(docs, 'ServiceAccount', pod.serviceAccountName);
    expect(sa.metadata.namespace).toBe(towerNs);
    expect(pod.automountServiceAccountToken ?? sa.automountServiceAccountToken ?? true, 'Tower needs its token').toBe(true);

    const role = one(docs, 'Role');
    const binding = one(docs, 'RoleBinding');
    expect(role.metadata.namespace, "the Role is in the fleet's namespace").toBe(f.kubernetes?.namespace);
    expect(binding.metadata.namespace).toBe(role.metadata.namespace);
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: towerNs }]);
    const leaseRules = (role.rules as Obj[]).filter((r) => r.apiGroups.includes('coordination.k8s.io'));
    expect(leaseRules.flatMap((r) => r.resourceNames ?? [])).toEqual([`tower-${f.name}`]);
    const namespaces = docs.filter((d) => d.kind === 'Namespace').map((d) => d.metadata.name).sort();
    expect(namespaces).toEqual([towerNs, role.metadata.namespace].sort());
    for (const d of docs.filter((x) => x.kind !== 'Namespace')) expect(d.metadata.namespace, `${d.kind} ${d.metadata.name} names its namespace`).toBeTruthy();

    // Everything the pod names exists, in its namespace.
    const c = pod.containers[0];
    for (const from of c.envFrom) {
      const ref = from.configMapRef ?? from.secretRef;
      expect(one(docs, from.configMapRef ? 'ConfigMap' : 'Secret', ref.name).metadata.namespace).toBe(towerNs);
    }
    const volumes = new Map((pod.volumes as Obj[]).map((v) => [v.name, v]));
    for (const m of c.volumeMounts) expect(volumes.has(m.name), m.name).toBe(true);
    const env = podEnv(docs);
    const state = (c.volumeMounts as Obj[]).find((m) => m.mountPath === env.TOWER_STATE_DIR)!;
    expect(volumes.get(state.name)?.emptyDir, 'each replica has its own state directory').toBeDefined();
    // The Node-RED admin login, the same for both replicas, where StateDir.adminCredentials reads it.
    const admin = (c.volumeMounts as Obj[]).find((m) => m.mountPath === `${env.TOWER_STATE_DIR}/admin.json`)!;
    const secretName = volumes.get(admin.name)?.secret?.secretName;
    const adminJson = JSON.parse(one(docs, 'Secret', secretName).stringData[admin.subPath]) as { username: string; password: string };
    expect(Object.keys(adminJson).sort()).toEqual(['password', 'username']);
    const service = one(docs, 'Service');
    expect(service.spec.selector).toEqual(deployment.spec.selector.matchLabels);
    // Every replica is scraped (tower_leader, TowerLeadership), on the container's port.
    expect(deployment.spec.template.metadata.annotations).toEqual({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(c.ports[0].containerPort), 'prometheus.io/path': '/metrics' });
    expect(service.metadata.annotations ?? {}).not.toHaveProperty('prometheus.io/scrape');
    expect(service.spec.ports[0].targetPort).toBe(c.ports[0].name);
  });

  it('sets only variables tower run reads, and they make a configuration that elects its leader by Lease', () => {
    const env = podEnv(manifests());
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const src = ['src/commands/run-config.ts', 'src/runtime.ts', 'src/adapters/source/git-credentials.ts'].map((f) => readFileSync(join(ROOT, f), 'utf8')).join('\n');
    for (const key of Object.keys(env)) {
      const known = (Object.values(RUN_ENV) as string[]).includes(key) || new RegExp(`\\benv\\.${key}\\b`).test(src);
      expect(known, `${key} is read by tower run`).toBe(true);
      expect(readme, `${key} is in the README`).toContain(`\`${key}\``);
    }
    expect(parseRunConfig({}, env, () => '').errors).toEqual(['TOWER_WEBHOOK_SECRET: use at least 16 characters']);
    const { config, errors } = parseRunConfig({}, { ...env, TOWER_WEBHOOK_SECRET: 'a-real-secret-of-32-characters!!' }, () => '');
    expect(errors).toEqual([]);
    expect(config).toMatchObject({ leader: 'kubernetes', leaderLeaseSeconds: 15, listen: { host: '0.0.0.0', port: 8080 } });
  });

  it('the example fleet is valid, runs every instance on Kubernetes, and keeps fleet-example\'s flows and plans', async () => {
    const io = bufferIo();
    const code = await main(['validate', FLEET], io);
    expect(code, io.out + io.err).toBe(0);
    expect(io.out).toContain('valid — fleet redforge, 5 instances');
    const { repo, fleet: f } = fleet();
    expect(repo.valid).toBe(true);
    expect(f.instances.map((i) => i.config.runtime)).toEqual(f.instances.map(() => 'kubernetes'));
    expect(fleetIdentity(f)).toMatchObject({ name: 'redforge', onKubernetes: true, kubernetes: { namespace: 'redforge', access: 'in-cluster' } });
    for (const dir of ['flows', 'plans']) {
      const example = join(ROOT, 'fleet-example', dir);
      expect(readdirSync(join(FLEET, dir)).sort()).toEqual(readdirSync(example).sort());
      for (const file of readdirSync(example)) expect(readFileSync(join(FLEET, dir, file), 'utf8'), `${dir}/${file}`).toBe(readFileSync(join(example, file), 'utf8'));
    }
    // The same instances as fleet-example, on the same ports.
    const original = loadRepository(directoryReader(join(ROOT, 'fleet-example')), { library: directoryReader(LIBRARY) });
    expect(f.instances.map((i) => [i.name, i.port, i.flows])).toEqual(original.fleet!.instances.map((i) => [i.name, i.port, i.flows]));
  });
});

/** What the Deployment's envFrom gives Tower. */
function podEnv(docs: Obj[]): Record<string, string> {
  const c = one(docs, 'Deployment').spec.template.spec.containers[0];
  const env: Record<string, string> = {};
  for (const from of c.envFrom) {
    const source = from.configMapRef ? one(docs, 'ConfigMap', from.configMapRef.name) : one(docs, 'Secret', from.secretRef.name);
    Object.assign(env, source.data ?? {}, source.stringData ?? {});
  }
  for (const e of c.env ?? []) env[e.name] = e.value;
  return env;
}
