/**
 * Mermaid itself (npm `mermaid`, its browser bundle) in Debian's Chromium: the parser and
 * renderer GitHub runs on a ```mermaid block, with GitHub's strict security level and
 * Mermaid's default limits. `@mermaid-js/parser` does not know flowcharts, and Mermaid needs
 * a DOM, hence the browser.
 */
import { createRequire } from 'node:module';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './browser.js';

const require = createRequire(import.meta.url);
const BUNDLE = require.resolve('mermaid/dist/mermaid.min.js');

export interface ParsedDiagram {
  /** Mermaid's parse error, when it refused the text. */
  error?: string;
  /** Vertices with their classes (a subgraph's classes are on its own entry). */
  vertices: { id: string; classes: string[] }[];
  subgraphs: { id: string; classes: string[]; nodes: string[] }[];
  edges: { start: string; end: string }[];
}

export interface RenderedDiagram {
  error?: string;
  svg: string;
  /** The text of each node's label, by Mermaid id. */
  labels: Record<string, string>;
  /** Titles of the subgraphs, by Mermaid id. */
  titles: Record<string, string>;
}

export interface MermaidHarness {
  version: string;
  parse(texts: readonly string[]): Promise<ParsedDiagram[]>;
  render(text: string): Promise<RenderedDiagram>;
  page: Page;
  close(): Promise<void>;
}

export async function startMermaid(): Promise<MermaidHarness> {
  const browser: Browser = await launchChromium();
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  await page.setContent('<!doctype html><html><head><meta charset="utf-8"></head><body><div id="out"></div></body></html>');
  await page.addScriptTag({ path: BUNDLE });
  const version = await page.evaluate(() => {
    const m = (globalThis as unknown as { mermaid: { initialize(c: object): void; version?: string } }).mermaid;
    m.initialize({ startOnLoad: false, securityLevel: 'strict' });
    return m.version ?? 'unknown';
  });
  let seq = 0;
  return {
    version,
    page,
    async parse(texts) {
      return page.evaluate(async (list) => {
        type Db = {
          getVertices(): Map<string, { id: string; classes: string[] }> | Record<string, { id: string; classes: string[] }>;
          getSubGraphs(): { id: string; classes: string[]; nodes: string[] }[];
          getEdges(): { start: string; end: string }[];
        };
        const m = (globalThis as unknown as { mermaid: { parse(t: string): Promise<unknown>; mermaidAPI: { getDiagramFromText(t: string): Promise<{ db: Db }> } } }).mermaid;
        const out = [];
        for (const text of list) {
          try {
            await m.parse(text);
            const { db } = await m.mermaidAPI.getDiagramFromText(text);
            const v = db.getVertices();
            const vertices = [...(v instanceof Map ? v.values() : Object.values(v))].map((x) => ({ id: x.id, classes: [...x.classes] }));
            const subgraphs = db.getSubGraphs().map((s) => ({ id: s.id, classes: [...s.classes], nodes: [...s.nodes] }));
            const edges = db.getEdges().map((e) => ({ start: e.start, end: e.end }));
            out.push({ vertices, subgraphs, edges });
          } catch (err) {
            out.push({ error: String((err as Error).message ?? err), vertices: [], subgraphs: [], edges: [] });
          }
        }
        return out;
      }, [...texts]);
    },
    async render(text) {
      const id = `d${seq++}`;
      return page.evaluate(
        async ([id, text]) => {
          // The few DOM calls used here (the test program is compiled without the DOM's types).
          interface El {
            id: string;
            innerHTML: string;
            textContent: string | null;
            querySelector(selector: string): El | null;
            querySelectorAll(selector: string): Iterable<El>;
            cloneNode(deep: boolean): El;
            replaceWith(text: string): void;
          }
          const g = globalThis as unknown as { mermaid: { render(id: string, t: string): Promise<{ svg: string }> }; document: { getElementById(id: string): El | null } };
          const m = g.mermaid;
          const host = g.document.getElementById('out')!;
          try {
            const { svg } = await m.render(id, text);
            host.innerHTML = svg;
            // A label's text, its <br>s as line breaks.
            const textOf = (el: El | null) => {
              if (!el) return '';
              const copy = el.cloneNode(true);
              for (const br of copy.querySelectorAll('br')) br.replaceWith('\n');
              return copy.textContent ?? '';
            };
            const labels: Record<string, string> = {};
            // Node ids in the SVG look like "<render id>-flowchart-n3-0".
            for (const g of host.querySelectorAll('g.node')) {
              const mid = /flowchart-([ng]\d+)-/.exec(g.id)?.[1];
              if (mid) labels[mid] = textOf(g.querySelector('.nodeLabel') ?? g);
            }
            const titles: Record<string, string> = {};
            for (const g of host.querySelectorAll('g.cluster')) {
              const mid = /(g\d+)$/.exec(g.id)?.[1] ?? g.id;
              titles[mid] = textOf(g.querySelector('.nodeLabel') ?? g);
            }
            return { svg, labels, titles };
          } catch (err) {
            return { error: String((err as Error).message ?? err), svg: '', labels: {}, titles: {} };
          }
        },
        [id, text] as const,
      );
    },
    async close() {
      await browser.close();
    },
  };
}
