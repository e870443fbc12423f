/**
 * The stand-in Kubernetes API server in a process of its own, for bench/kubernetes: Tower's CPU
 * is then Tower's alone. Its pods run no Node-RED (`run: false`: ready at once); each pod IP
 * answers the few Admin API calls a rollout and a pass make (GET /settings, GET and POST /flows,
 * /flows/state) from what the pod's ConfigMap holds, so that Tower rolls out and observes 1,000
 * instances for real through the API server's proxies without 1,000 Node-REDs.
 *
 * Prints one JSON line {url, token, caFile, kubeconfig} when ready; then reads commands on stdin:
 * `requests` prints the requests served since the last `requests` (by verb and resource) and
 * starts counting again; `stop` stops everything and exits.
 */
import http from 'node:http';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flowsRev } from '../../src/core/flows.js';
import type { FlowNode } from '../../src/core/model.js';
import { startStandin } from '../../test/helpers/kube-standin/server.js';

const namespace = process.argv[2] ?? 'bench';
const s = await startStandin({ run: false, node: { cpu: 10_000, memoryBytes: 2 ** 50 } });
s.namespace(namespace);
const dir = mkdtempSync(join(tmpdir(), 'tower-bench-kube-'));
const kubeconfig = s.kubeconfig(join(dir, 'config'), namespace);

/** What a pod's Node-RED would run: the ConfigMap's flows until a POST /flows replaces them. */
const deployed = new Map<string, FlowNode[]>();
const servers = new Map<string, http.Server>();
/** Pod IP → the name of its colour's objects, from the store's events (listing every pod on each poll cost more than Tower's own work at 1,000 instances). */
const colourAt = new Map<string, string>();

function flowsOf(ip: string): FlowNode[] {
  const known = deployed.get(ip);
  if (known) return known;
  const owner = colourAt.get(ip);
  const cm = owner ? s.store.get('configmaps', namespace, owner) : undefined;
  const text = (cm?.data as Record<string, string> | undefined)?.['flows.json'];
  return text ? (JSON.parse(text) as FlowNode[]) : [];
}

function answer(ip: string, req: http.IncomingMessage, res: http.ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (path === '/flows' && req.method === 'GET') {
      const flows = flowsOf(ip);
      return json(200, { rev: flowsRev(flows), flows });
    }
    if (path === '/flows' && req.method === 'POST') {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { flows?: FlowNode[] } | FlowNode[];
      const flows = Array.isArray(body) ? body : (body.flows ?? []);
      deployed.set(ip, flows);
      return json(200, { rev: flowsRev(flows) });
    }
    if (path === '/flows/state') return json(200, { state: 'start' });
    return json(200, {});
  });
}

/** Every pod IP gets its answering server as soon as the pod has one. */
s.store.events.on('event', (e: { resource: string; type: string; object: { metadata: { labels?: Record<string, string> }; status?: unknown } }) => {
  if (e.resource !== 'pods' || e.type === 'DELETED') return;
  const ip = (e.object.status as { podIP?: string } | undefined)?.podIP;
  const labels = e.object.metadata.labels;
  if (!ip || !labels) return;
  colourAt.set(ip, `${labels['tower.redforge.dev/fleet']}-${labels['tower.redforge.dev/instance']}-${labels['tower.redforge.dev/color']}`);
  if (servers.has(ip)) return;
  const server = http.createServer((req, res) => answer(ip, req, res));
  servers.set(ip, server);
  server.on('error', (err: Error) => process.stderr.write(`${ip}: ${err.message}\n`));
  server.listen(1880, ip);
});

process.stdout.write(`${JSON.stringify({ url: s.url, token: s.token, caFile: s.caFile, kubeconfig })}\n`);

for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'requests') {
    process.stdout.write(`${JSON.stringify(Object.fromEntries(s.requests))}\n`);
    s.requests.clear();
  } else if (line === 'stop') {
    break;
  }
}
await Promise.all([...servers.values()].map((srv) => new Promise<void>((done) => srv.close(() => done()))));
await s.stop();
rmSync(dir, { recursive: true, force: true });
process.exit(0);

