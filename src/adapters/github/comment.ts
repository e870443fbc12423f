/**
 * The sticky plan comment on a pull request: one per fleet, found again by a hidden marker
 * and updated in place, never duplicated. A plan longer than one comment is split
 * (split.ts); every part carries the marker with its index, so an update rewrites each part
 * where it is, and parts the shorter plan no longer needs are deleted.
 *
 * Level-triggered like the rest of Tower: each call reads the PR's comments and drives them
 * to the desired bodies; it does not remember what it posted last time.
 */
import type { Octokit } from 'octokit';
import { RequestError } from 'octokit';
import { COMMENT_LIMIT, splitComment } from './split.js';

export interface PlanCommentTarget {
  owner: string;
  repo: string;
  number: number;
  fleet: string;
}

export interface UpsertResult {
  created: number;
  updated: number;
  unchanged: number;
  deleted: number;
  /** html_url of every part, in order. */
  urls: string[];
}

/** Per-request options (e.g. `{ retries: 0 }` when a queue does the retrying). */
export type RequestOptions = Record<string, unknown>;

/** At most this many pages of 100 comments are read (a PR with 10,000 comments has bigger problems). */
const MAX_COMMENT_PAGES = 100;

export function planMarker(fleet: string, index = 1): string {
  return index === 1 ? `<!-- tower:plan fleet=${fleet} -->` : `<!-- tower:plan fleet=${fleet} part=${index} -->`;
}

/** The part index of a comment carrying this fleet's marker at its start, or undefined. */
export function markerIndex(body: string | undefined | null, fleet: string): number | undefined {
  const m = /^<!-- tower:plan fleet=(\S+?)(?: part=(\d+))? -->/.exec(body ?? '');
  if (!m || m[1] !== fleet) return undefined;
  return m[2] ? Number(m[2]) : 1;
}

function footer(headSha: string | undefined): string {
  return headSha ? `\n<sub>Tower · plan of ${headSha.slice(0, 12)}</sub>\n` : '';
}

/** The bodies of the comment(s) for this plan: marker line, part, footer on the last one. */
export function planCommentBodies(fleet: string, markdown: string, headSha?: string): string[] {
  const single = `${planMarker(fleet)}\n${markdown}${footer(headSha)}`;
  if (single.length <= COMMENT_LIMIT) return [single];
  const reserve = planMarker(fleet, 9999).length + 1 + footer(headSha).length;
  const parts = splitComment(markdown, COMMENT_LIMIT - reserve);
  return parts.map((p, i) => `${planMarker(fleet, i + 1)}\n${p}${i === parts.length - 1 ? footer(headSha) : ''}`);
}

export async function upsertPlanComment(octokit: Octokit, target: PlanCommentTarget, markdown: string, options: { headSha?: string; request?: RequestOptions } = {}): Promise<UpsertResult> {
  const { owner, repo, number, fleet } = target;
  const request = options.request ?? {};
  const bodies = planCommentBodies(fleet, markdown, options.headSha);

  const ours = new Map<number, { id: number; body: string; url: string }[]>();
  let pages = 0;
  for await (const page of octokit.paginate.iterator(octokit.rest.issues.listComments, { owner, repo, issue_number: number, per_page: 100, request })) {
    for (const c of page.data) {
      const index = markerIndex(c.body, fleet);
      if (index === undefined) continue;
      const list = ours.get(index) ?? [];
      list.push({ id: c.id, body: c.body ?? '', url: c.html_url });
      ours.set(index, list);
    }
    if (++pages >= MAX_COMMENT_PAGES) break;
  }

  const result: UpsertResult = { created: 0, updated: 0, unchanged: 0, deleted: 0, urls: [] };
  const remove = async (id: number) => {
    try {
      await octokit.rest.issues.deleteComment({ owner, repo, comment_id: id, request });
      result.deleted++;
    } catch (err) {
      if (err instanceof RequestError && err.status === 404) return; // already gone
      throw err;
    }
  };
  for (const [i, body] of bodies.entries()) {
    // The oldest comment of an index is the one; copies (two writers raced) are removed.
    const [keep, ...copies] = (ours.get(i + 1) ?? []).sort((a, b) => a.id - b.id);
    for (const c of copies) await remove(c.id);
    if (!keep) {
      const { data } = await octokit.rest.issues.createComment({ owner, repo, issue_number: number, body, request });
      result.created++;
      result.urls.push(data.html_url);
    } else if (keep.body !== body) {
      const { data } = await octokit.rest.issues.updateComment({ owner, repo, comment_id: keep.id, body, request });
      result.updated++;
      result.urls.push(data.html_url);
    } else {
      result.unchanged++;
      result.urls.push(keep.url);
    }
  }
  for (const [index, list] of ours) {
    if (index <= bodies.length) continue;
    for (const c of list) await remove(c.id);
  }
  return result;
}
