/**
 * Node credentials by reference (fleet.yaml `credentials: { <node id>: { <field>: { fromEnv |
 * fromFile } } }`): checked against the instance's flows here, resolved by the engine when a
 * colour starts and merged into the flows it deploys — Node-RED then keeps them in its
 * credential store, encrypted with the instance's credential secret. Never in Git.
 */
import type { Diagnostic } from './diagnostics.js';
import type { CredentialRefs, FlowNode } from './model.js';

/** Every referenced node must be in the instance's flows. */
export function credentialRefDiagnostics(
  instance: string,
  refs: CredentialRefs | undefined,
  nodes: readonly FlowNode[],
  locate: (nodeId: string) => { file: string; line: number; col: number },
): Diagnostic[] {
  if (!refs) return [];
  const ids = new Set(nodes.map((n) => n.id));
  const out: Diagnostic[] = [];
  for (const id of Object.keys(refs)) {
    if (ids.has(id)) continue;
    const at = locate(id);
    const configNodes = nodes.filter((n) => !n.z && n.type !== 'tab' && n.type !== 'subflow').map((n) => n.id).slice(0, 5);
    out.push({
      severity: 'error',
      code: 'UnknownCredentialNode',
      file: at.file,
      line: at.line,
      col: at.col,
      message: `credentials for node "${id}", which is not in the flows of instance ${instance}`,
      ...(configNodes.length ? { hint: `config nodes of ${instance}: ${configNodes.join(', ')}` } : {}),
    });
  }
  return out;
}

/** The flows with the resolved credential values merged into their nodes (fleet.yaml's win over an export's). */
export function withCredentials(flows: readonly FlowNode[], values: Record<string, Record<string, string>>): FlowNode[] {
  if (Object.keys(values).length === 0) return [...flows];
  return flows.map((n) => {
    const v = values[n.id];
    if (!v) return n;
    const own = n.credentials && typeof n.credentials === 'object' ? (n.credentials as Record<string, unknown>) : {};
    return { ...n, credentials: { ...own, ...v } };
  });
}
