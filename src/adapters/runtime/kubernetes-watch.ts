/**
 * Exit supervision for the kubernetes driver: one watch on the pods of the fleet (a label
 * selector; one request however many instances), reporting a colour whose pod stopped by itself:
 *  - its container restarted (Kubernetes restarts it: that is the cluster's business, but a
 *    crash is news) — "exited with code N" / "killed by SIGNAL", from lastState.terminated;
 *  - it got stuck for a reason waiting will not fix: CrashLoopBackOff, ImagePullBackOff,
 *    unschedulable, … (kubernetes-status.ts podProblem), with Kubernetes' message.
 * Pods being deleted (Tower scaling down or removing a colour, a drain of the node) are not
 * exits: the Deployment makes new ones, and observe sees the colour as it is.
 *
 * The watch starts from a list (its resourceVersion), resumes from the last version seen, lists
 * again when the server says the version is too old (410), and backs off (1 s doubling to 30 s)
 * while the API server cannot be reached or refuses (403: the Role lacks pods watch).
 */
import type { KubeApi, KubeEvent, KubeList, KubeObject } from '../kubernetes/api.js';
import { exitInfo, signalOfExitCode } from './exit.js';
import { fleetSelector } from './kubernetes-objects.js';
import { identityOf, podProblem } from './kubernetes-status.js';
import type { ColorExit } from './types.js';

interface Seen {
  restarts: number;
  problem?: string;
}

export function watchFleetPods(api: KubeApi, fleet: string, onExit: (exit: ColorExit) => void, log: (line: string) => void): () => void {
  const abort = new AbortController();
  const seen = new Map<string, Seen>();

  /** What the pod says now; reports what changed for the worse since it was last seen. */
  function look(pod: KubeObject, report: boolean): void {
    const uid = pod.metadata.uid ?? pod.metadata.name;
    const identity = identityOf(pod.metadata.labels);
    if (!identity || identity.fleet !== fleet || pod.metadata.deletionTimestamp) {
      seen.delete(uid);
      return;
    }
    const container = ((pod.status as { containerStatuses?: { restartCount?: number; lastState?: { terminated?: { exitCode?: number; reason?: string; finishedAt?: string } } }[] } | undefined)?.containerStatuses ?? [])[0];
    const restarts = container?.restartCount ?? 0;
    const problem = podProblem(pod);
    const before = seen.get(uid);
    seen.set(uid, { restarts, ...(problem ? { problem: problem.reason.split(':')[0] } : {}) });
    if (!report) return;
    if (problem && problem.reason.split(':')[0] !== before?.problem) {
      onExit({ ...identity, ...problem, reason: `pod ${pod.metadata.name}: ${problem.reason}` });
    } else if (before && restarts > before.restarts) {
      const last = container?.lastState?.terminated;
      const code = last?.exitCode ?? null;
      const info = exitInfo(last?.finishedAt ?? new Date().toISOString(), code, code === null ? null : signalOfExitCode(code), last?.reason === 'OOMKilled');
      onExit({ ...identity, ...info, reason: `pod ${pod.metadata.name}: ${info.reason} (Kubernetes restarts it)` });
    }
  }

  async function run(): Promise<void> {
    const path = api.core(`pods?labelSelector=${fleetSelector(fleet)}`);
    let version: string | undefined;
    let backoff = 1_000;
    while (!abort.signal.aborted) {
      const began = Date.now();
      try {
        if (!version) {
          const list = await api.request<KubeList>('GET', path);
          version = list?.metadata.resourceVersion;
          const now = new Set<string>();
          for (const p of list?.items ?? []) {
            now.add(p.metadata.uid ?? p.metadata.name);
            // After a gap (first list, or a 410): what went wrong meanwhile is reported once.
            look(p, seen.size > 0);
          }
          for (const uid of [...seen.keys()]) if (!now.has(uid)) seen.delete(uid);
        }
        const ended = await api.watch(`${path}&resourceVersion=${version ?? ''}`, (e: KubeEvent) => {
          if (e.object?.metadata?.resourceVersion) version = e.object.metadata.resourceVersion;
          if (e.type === 'ADDED' || e.type === 'MODIFIED') look(e.object, true);
          else if (e.type === 'DELETED') seen.delete(e.object.metadata.uid ?? e.object.metadata.name);
        }, abort.signal);
        if (ended === 'gone') version = undefined;
        // A watch the server ends at once (refused, or cut) must not spin.
        if (Date.now() - began > 5_000) backoff = 1_000;
        else {
          await pause(backoff, abort.signal);
          backoff = Math.min(backoff * 2, 30_000);
        }
      } catch (err) {
        log(`kubernetes: watching the pods of fleet ${fleet}: ${(err as Error).message}; again in ${Math.round(backoff / 1000)} s`);
        version = undefined;
        await pause(backoff, abort.signal);
        backoff = Math.min(backoff * 2, 30_000);
      }
    }
  }

  void run();
  return () => abort.abort();
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    t.unref();
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
