import type { ReadResult, RepoReader } from '../../src/core/load.js';

/**
 * A repository held in memory: path -> content, as text (stored as its UTF-8 bytes) or as
 * raw bytes (for files that are no UTF-8). For loader tests that need no disk.
 */
export function memoryReader(files: Record<string, string | Uint8Array>): RepoReader {
  return {
    read(path: string, maxBytes: number): ReadResult {
      const content = Object.prototype.hasOwnProperty.call(files, path) ? files[path] : undefined;
      if (content === undefined) return { ok: false, reason: 'not-found' };
      const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
      if (bytes.length > maxBytes) return { ok: false, reason: 'too-large', size: bytes.length };
      return { ok: true, bytes };
    },
    list(dir: string): string[] {
      const prefix = dir === '' ? '' : `${dir}/`;
      return Object.keys(files)
        .filter((p) => p.startsWith(prefix) && !p.slice(prefix.length).includes('/'))
        .map((p) => p.slice(prefix.length))
        .sort();
    },
  };
}

/** A one-instance fleet whose instance runs the given flow files. */
export function oneInstanceFleet(flowFiles: Record<string, string>, name = 'corpus'): Record<string, string> {
  const paths = Object.keys(flowFiles);
  const fleet = [
    'apiVersion: tower.redforge.dev/v1',
    'kind: Fleet',
    'metadata: { name: test }',
    'spec:',
    '  instances:',
    `    - name: ${name}`,
    `      port: 2001`,
    `      flows: [${paths.map((p) => JSON.stringify(p)).join(', ')}]`,
    '',
  ].join('\n');
  return { 'fleet.yaml': fleet, ...flowFiles };
}
