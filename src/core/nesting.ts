/**
 * How deep a repository file may nest. Everything that walks a parsed value — jsonc-parser's
 * parseTree, the yaml parser and composer, canonicalJson and contentHash, JSON.stringify,
 * structuredClone — recurses, and a 100,000-level array is enough to exhaust the stack (in
 * the yaml library, close to the stack's end V8 may even abort the whole process — "out of
 * memory" compiling a regular expression — instead of throwing). So the depth is checked
 * first, by loops that do not recurse, and a file nested deeper is a diagnostic, never a crash.
 *
 * Flow files (JSON): 512 levels, far beyond anything the Node-RED editor writes (its deepest
 * are a few dozen) and well within what each recursive walk over a flow handles.
 */
export const MAX_NESTING = 512;

/**
 * fleet.yaml and plans: 128 levels. They need a handful (settings values a few more); the
 * yaml library spends several stack frames per level, where an overflow is the one that can
 * abort the process, so the margin is kept wide.
 */
export const MAX_YAML_NESTING = 128;

/**
 * The offset of the first [ or { of JSON text that opens a level deeper than `limit`, or
 * undefined. Strings are skipped as JSON reads them (a string ends at a line break, as
 * jsonc-parser ends it). On invalid text a closing bracket that does not match is not
 * counted, so the depth found is never less than what a parser, recovering, would recurse to.
 */
export function jsonTooDeepAt(text: string, limit = MAX_NESTING): number | undefined {
  const open: number[] = []; // the closers expected, innermost last
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */ || c === 10 || c === 13) inString = false;
      continue;
    }
    if (c === 34) inString = true;
    else if (c === 91 /* [ */ || c === 123 /* { */) {
      if (open.length >= limit) return i;
      open.push(c + 2); // ] and } are [ and { plus 2
    } else if ((c === 93 || c === 125) && open[open.length - 1] === c) open.pop();
  }
  return undefined;
}

export type ValueShape = { ok: true } | { ok: false; reason: 'too-deep' | 'cycle' };

/**
 * Whether a value (from YAML, where aliases make a graph of it) nests deeper than `limit`
 * or contains itself. Walks without recursion; a node reached twice through aliases is
 * measured once.
 */
export function checkValueShape(value: unknown, limit = MAX_NESTING): ValueShape {
  if (!isContainer(value)) return { ok: true };
  interface Frame {
    node: object;
    children: unknown[];
    next: number;
    height: number;
  }
  const heights = new Map<object, number>(); // finished nodes: levels from it down, itself included
  const onPath = new Set<object>();
  const frame = (node: object): Frame => ({ node, children: childrenOf(node), next: 0, height: 1 });
  const stack: Frame[] = [frame(value)];
  onPath.add(value);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.next < top.children.length) {
      const child = top.children[top.next++];
      if (!isContainer(child)) continue;
      if (onPath.has(child)) return { ok: false, reason: 'cycle' };
      const known = heights.get(child);
      if (known !== undefined) {
        if (stack.length + known > limit) return { ok: false, reason: 'too-deep' };
        top.height = Math.max(top.height, known + 1);
        continue;
      }
      if (stack.length + 1 > limit) return { ok: false, reason: 'too-deep' };
      stack.push(frame(child));
      onPath.add(child);
      continue;
    }
    stack.pop();
    onPath.delete(top.node);
    heights.set(top.node, top.height);
    const parent = stack[stack.length - 1];
    if (parent) parent.height = Math.max(parent.height, top.height + 1);
  }
  return { ok: true };
}

function isContainer(v: unknown): v is object {
  return v !== null && typeof v === 'object';
}

function childrenOf(node: object): unknown[] {
  if (Array.isArray(node)) return node;
  if (node instanceof Map) return [...node.keys(), ...node.values()];
  if (node instanceof Set) return [...node];
  return Object.values(node);
}
