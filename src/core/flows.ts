/**
 * Node-RED flow exports: reading them as the editor writes them, merging an instance's
 * files into the one list Node-RED runs, checking the references between nodes, and
 * hashing the result the way Node-RED does.
 */
import { createHash } from 'node:crypto';
import { parseTree } from 'jsonc-parser';
import { LineIndex, type Diagnostic, type DiagnosticCode } from './diagnostics.js';
import { parseJsonText } from './json-source.js';
import type { FlowNode } from './model.js';

export interface FlowFile {
  file: string;
  nodes: FlowNode[];
  /** Whether the file holds a tab of its own (then every z must resolve; see checkInstanceFlows). */
  hasTab: boolean;
  /** The source text, kept so that positions are computed only when there is something to report. */
  text: string;
  /** Indexes of entries that were not nodes (reported as FlowFormat), so positions stay right. */
  skipped: number[];
}

export interface FlowFileResult {
  flowFile?: FlowFile;
  diagnostics: Diagnostic[];
}

/**
 * Reads a flow export: a plain array of nodes (what the editor exports and what Node-RED
 * stores), `{flows: [...]}` or `{rev, flows}` (the Admin API v2 shape).
 */
export function parseFlowFile(file: string, text: string): FlowFileResult {
  const parsed = parseJsonText(file, text, {
    code: 'FlowSyntax',
    hint: 'flow files are JSON as the Node-RED editor exports them; no comments or trailing commas',
    deepHint: 'no Node-RED editor export nests this deep; the file was generated or damaged — export the flow again',
  });
  if (!parsed.ok) return { diagnostics: [parsed.diagnostic] };
  const data = parsed.value;
  let nodes: unknown;
  if (Array.isArray(data)) nodes = data;
  else if (data && typeof data === 'object' && Array.isArray((data as { flows?: unknown }).flows)) nodes = (data as { flows: unknown[] }).flows;
  else {
    return {
      diagnostics: [
        {
          severity: 'error',
          code: 'FlowFormat',
          file,
          line: 1,
          col: 1,
          message: `not a Node-RED flow export: expected a list of nodes, or an object with a "flows" list, found ${describe(data)}`,
          hint: 'export the flow from the Node-RED editor (Menu > Export > JSON) and save it as is',
        },
      ],
    };
  }
  const list = nodes as unknown[];
  const diagnostics: Diagnostic[] = [];
  const positions = lazyPositions(text);
  const good: FlowNode[] = [];
  const skipped: number[] = [];
  let hasTab = false;
  list.forEach((n, index) => {
    const node = n as Partial<FlowNode> | null;
    if (!node || typeof node !== 'object' || Array.isArray(node) || typeof node.id !== 'string' || node.id === '' || typeof node.type !== 'string') {
      const p = positions(index);
      skipped.push(index);
      diagnostics.push({
        severity: 'error',
        code: 'FlowFormat',
        file,
        line: p.line,
        col: p.col,
        message: `entry ${index} is not a Node-RED node: every node needs a non-empty string "id" and a string "type"`,
      });
      return;
    }
    if (node.type === 'tab') hasTab = true;
    good.push(node as FlowNode);
  });
  return { flowFile: { file, nodes: good, hasTab, text, skipped }, diagnostics };
}

/** Position of the n-th node of a file, computed on first use (errors are rare; parsing for positions is not free). */
function lazyPositions(text: string): (index: number) => { line: number; col: number } {
  let offsets: number[] | undefined;
  let lines: LineIndex | undefined;
  return (index: number) => {
    if (!offsets) {
      const root = parseTree(text);
      let array = root;
      if (root?.type === 'object') array = root.children?.find((p) => p.children?.[0]?.value === 'flows')?.children?.[1];
      offsets = (array?.children ?? []).map((c) => c.offset);
      lines = new LineIndex(text);
    }
    return lines!.position(offsets[index] ?? 0);
  };
}

interface PositionIndex {
  byNode: Map<FlowNode, number>;
  positions: (index: number) => { line: number; col: number };
}
const positionIndexes = new WeakMap<FlowFile, PositionIndex>();

/** Where a node starts in its file. Built on the first error in that file, never on the happy path. */
export function nodePosition(flowFile: FlowFile, node: FlowNode): { line: number; col: number } {
  let index = positionIndexes.get(flowFile);
  if (!index) {
    const byNode = new Map<FlowNode, number>();
    const skipped = new Set(flowFile.skipped);
    let raw = 0;
    for (const n of flowFile.nodes) {
      while (skipped.has(raw)) raw++;
      byNode.set(n, raw++);
    }
    index = { byNode, positions: lazyPositions(flowFile.text) };
    positionIndexes.set(flowFile, index);
  }
  return index.positions(index.byNode.get(node) ?? 0);
}

export interface InstanceFlows {
  /** The merged flow list, in file order: exactly what is deployed. */
  nodes: FlowNode[];
  diagnostics: Diagnostic[];
}

const LINK_TYPES = new Set(['link in', 'link out', 'link call']);

/**
 * Merges an instance's flow files, in the order fleet.yaml lists them, into the one list
 * Node-RED will run, and reports every reference that does not resolve within it.
 *
 * A file without any tab is a selection export: its nodes point (z) at a tab that was not
 * exported, and Node-RED's runtime creates that tab implicitly — not an error, but a warning
 * naming the tab (it shows up unnamed in the editor). A file that has tabs of its own must
 * not have nodes on a tab that exists nowhere.
 */
export function mergeInstanceFlows(instance: string, files: readonly FlowFile[]): InstanceFlows {
  const diagnostics: Diagnostic[] = [];
  const firstSeen = new Map<string, { file: FlowFile; node: FlowNode }>();
  const nodes: FlowNode[] = [];
  const containers = new Set<string>();
  const subflows = new Set<string>();
  const groups = new Set<string>();
  const implicitTabs = new Map<string, { file: FlowFile; node: FlowNode; tab: string; count: number }>();

  const report = (file: FlowFile, node: FlowNode, code: DiagnosticCode, message: string, hint?: string) => {
    const p = nodePosition(file, node);
    diagnostics.push({ severity: code === 'CredentialsInFlow' || code === 'ImplicitTab' ? 'warning' : 'error', code, file: file.file, line: p.line, col: p.col, message, hint, instances: [instance], nodeId: node.id });
  };

  for (const file of files) {
    for (const node of file.nodes) {
      const first = firstSeen.get(node.id);
      if (first) {
        const p = nodePosition(first.file, first.node);
        report(
          file,
          node,
          'DuplicateNodeId',
          `duplicate node id "${node.id}" (${label(node)}); first defined at ${first.file.file}:${p.line}:${p.col} (${label(first.node)})`,
          first.file === file
            ? 'node ids must be unique; remove one of the two nodes or give it a new id'
            : 'node ids must be unique across all flow files of an instance; re-import one file with new ids (Import > "copy") or drop one file from the instance',
        );
        continue;
      }
      firstSeen.set(node.id, { file, node });
      nodes.push(node);
      if (node.type === 'tab') containers.add(node.id);
      else if (node.type === 'subflow') {
        containers.add(node.id);
        subflows.add(node.id);
      } else if (node.type === 'group') groups.add(node.id);
    }
  }

  const ids = new Set(firstSeen.keys());
  for (const file of files) {
    for (const node of file.nodes) {
      if (firstSeen.get(node.id)?.node !== node) continue; // duplicates were reported above
      const { type } = node;
      if (Array.isArray(node.wires)) {
        node.wires.forEach((output, port) => {
          if (!Array.isArray(output)) return;
          for (const target of output) {
            if (typeof target === 'string' && !ids.has(target)) {
              report(file, node, 'DanglingWire', `${label(node)} "${node.id}" output ${port + 1} is wired to node "${target}", which does not exist`, 'remove the wire in the editor, or add the missing node to one of the instance\'s flow files');
            }
          }
        });
      }
      if (LINK_TYPES.has(type) && Array.isArray(node.links)) {
        for (const target of node.links) {
          if (typeof target === 'string' && !ids.has(target)) {
            report(file, node, 'DanglingLink', `${label(node)} "${node.id}" links to node "${target}", which does not exist`, 'the link target may live in a flow file this instance does not include; add that file to the instance or remove the link');
          }
        }
      }
      if (type === 'subflow') {
        for (const port of [...arrayOf(node.in), ...arrayOf(node.out)]) {
          for (const wire of arrayOf((port as { wires?: unknown })?.wires)) {
            const target = (wire as { id?: unknown })?.id;
            if (typeof target === 'string' && !ids.has(target)) {
              report(file, node, 'DanglingWire', `subflow "${node.id}" (${label(node)}) has a port wired to node "${target}", which does not exist`, 'open the subflow in the editor and re-wire its ports');
            }
          }
        }
      }
      if (type !== 'tab' && type !== 'subflow' && typeof node.z === 'string' && node.z !== '' && !containers.has(node.z)) {
        if (file.hasTab) {
          report(file, node, 'MissingTab', `${label(node)} "${node.id}" sits on tab or subflow "${node.z}", which does not exist`, 'this file has tabs of its own, so every node must be on one of them; move the node to a tab in the editor or delete it');
        } else {
          const key = `${file.file}\0${node.z}`;
          const seen = implicitTabs.get(key);
          if (seen) seen.count++;
          else implicitTabs.set(key, { file, node, tab: node.z, count: 1 });
        }
      }
      if (type.startsWith('subflow:')) {
        const subflow = type.slice('subflow:'.length);
        if (!subflows.has(subflow)) {
          report(file, node, 'MissingSubflow', `node "${node.id}" is an instance of subflow "${subflow}", which is not defined`, 'export the subflow definition together with the flow (Export > "all flows" or include the subflow), or add the file that defines it');
        }
      }
      if (typeof node.g === 'string' && node.g !== '' && !groups.has(node.g)) {
        report(file, node, 'MissingGroup', `${label(node)} "${node.id}" belongs to group "${node.g}", which does not exist`, 'remove the node from the group in the editor, or add the group');
      }
      if (hasCredentialValues(node.credentials)) {
        const fields = credentialFields(node.credentials);
        report(
          file,
          node,
          'CredentialsInFlow',
          `${label(node)} "${node.id}" carries credentials in the flow file (${fields.join(', ')}): they are in Git, and Tower does not deploy them from there`,
          `remove them from the export and give them by reference in fleet.yaml, under the instance: credentials: { ${node.id}: { ${fields.map((f) => `${f}: { fromEnv: NAME }`).join(', ')} } }`,
        );
      }
    }
  }
  // A selection export: Node-RED creates the tab its nodes sit on when it deploys them — a tab
  // with no name, which is how the editor then shows it. Legal, but rarely what was meant.
  for (const { file, node, tab, count } of implicitTabs.values()) {
    report(
      file,
      node,
      'ImplicitTab',
      `${count === 1 ? `${label(node)} "${node.id}" sits` : `${count} nodes of this file sit`} on tab "${tab}", which no flow file of the instance defines: Node-RED creates it when it deploys, and the editor shows it as a tab without a name`,
      `export the tab with its nodes (Export > "current flow"), or add {"id": "${tab}", "type": "tab", "label": "…"} to one of the instance's flow files`,
    );
  }
  return { nodes, diagnostics };
}

function credentialFields(credentials: unknown): string[] {
  return Object.entries(credentials as Record<string, unknown>)
    .filter(([, v]) => v !== '' && v !== null && v !== undefined && v !== false)
    .map(([k]) => k);
}

function hasCredentialValues(credentials: unknown): boolean {
  if (!credentials || typeof credentials !== 'object') return false;
  return Object.values(credentials).some((v) => v !== '' && v !== null && v !== undefined && v !== false);
}

function arrayOf(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

/** "function node 'store'" — how a node is named in messages. */
export function label(node: FlowNode): string {
  const name = typeof node.name === 'string' && node.name ? node.name : typeof node.label === 'string' && node.label ? node.label : '';
  return name ? `${node.type} "${name}"` : node.type;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return `an object with keys ${Object.keys(value).slice(0, 5).join(', ') || '(none)'}`;
  return typeof value;
}

/**
 * The exact list Node-RED stores when these flows are deployed: credentials are taken out
 * of the nodes (they go to the credential store), everything else is kept in order.
 */
export function deployableFlows(nodes: readonly FlowNode[]): FlowNode[] {
  return nodes.map((n) => {
    if (!Object.prototype.hasOwnProperty.call(n, 'credentials')) return n;
    const { credentials: _credentials, ...rest } = n;
    return rest as FlowNode;
  });
}

/** Node-RED's rev: sha256 of JSON.stringify(flows), as @node-red/runtime computes it. */
export function flowsRev(deployable: readonly FlowNode[]): string {
  return createHash('sha256').update(JSON.stringify(deployable)).digest('hex');
}

/**
 * Defines `key` on target as a string computed on first read and then kept: an ordinary
 * enumerable property to everyone who reads it (JSON.stringify, spread, structuredClone and
 * equality see the string); assigning it replaces it with a plain value. For Node-RED's rev:
 * stringifying and hashing every node is a quarter of planning a large fleet, and text and
 * Markdown plans against a fleet that reports no revs, and validate's summary, never show it.
 */
export function defineLazyString<T extends object, K extends string>(target: T, key: K, compute: () => string): T & Record<K, string> {
  let value: string | undefined;
  Object.defineProperty(target, key, {
    enumerable: true,
    configurable: true,
    get: () => (value ??= compute()),
    set(this: T, v: string) {
      Object.defineProperty(this, key, { value: v, enumerable: true, configurable: true, writable: true });
    },
  });
  return target as T & Record<K, string>;
}

/**
 * Canonical JSON: object keys sorted, credentials dropped, nodes sorted by id. Two flow
 * lists with the same canonical form run the same, whatever order the editor wrote them in.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value).sort();
  const parts: string[] = [];
  for (const k of keys) {
    const v = (value as Record<string, unknown>)[k];
    if (v === undefined) continue;
    parts.push(`${JSON.stringify(k)}:${canonicalJson(v)}`);
  }
  return `{${parts.join(',')}}`;
}

export function canonicalFlows(nodes: readonly FlowNode[]): string {
  const sorted = deployableFlows(nodes).slice().sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return canonicalJson(sorted);
}

/** A hash of the canonical form: equal for flows that differ only in node or key order. */
export function contentHash(nodes: readonly FlowNode[]): string {
  return createHash('sha256').update(canonicalFlows(nodes)).digest('hex');
}

/** A hash of a runtime config (env as references, never values): equal configs run the same process. */
export function configHash(config: unknown): string {
  return createHash('sha256').update(canonicalJson(config)).digest('hex');
}
