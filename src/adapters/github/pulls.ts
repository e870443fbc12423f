/**
 * Open pull requests, for a daemon without a webhook: it polls, and plans every PR whose
 * head moved since it last looked.
 */
import type { GithubClient } from './client.js';
import { parseRepo } from './client.js';

export interface OpenPullRequest {
  number: number;
  headSha: string;
  headRef: string;
  baseRef: string;
  title: string;
  draft: boolean;
  updatedAt: string;
  htmlUrl: string;
}

export interface PollOptions {
  client: GithubClient;
  /** owner/name */
  repo: string;
  /** Only PRs updated at or after this time (the previous poll); default: all open PRs. */
  since?: Date | string;
  /** Only PRs into this branch. */
  base?: string;
  /** At most this many pages of 100 PRs are read. Default 10. */
  maxPages?: number;
}

/** Open PRs, most recently updated first, with their head commit. */
export async function pollPullRequests(options: PollOptions): Promise<OpenPullRequest[]> {
  const { owner, repo } = parseRepo(options.repo);
  const since = options.since === undefined ? undefined : new Date(options.since).getTime();
  const maxPages = options.maxPages ?? 10;
  const octokit = options.client.octokit;
  const out: OpenPullRequest[] = [];
  let pages = 0;
  // Sorted by update time, newest first: the first PR older than `since` ends the walk.
  for await (const page of octokit.paginate.iterator(octokit.rest.pulls.list, { owner, repo, state: 'open', sort: 'updated', direction: 'desc', per_page: 100, ...(options.base ? { base: options.base } : {}) })) {
    for (const pr of page.data) {
      if (since !== undefined && new Date(pr.updated_at).getTime() < since) return out;
      out.push({ number: pr.number, headSha: pr.head.sha, headRef: pr.head.ref, baseRef: pr.base.ref, title: pr.title, draft: pr.draft ?? false, updatedAt: pr.updated_at, htmlUrl: pr.html_url });
    }
    if (++pages >= maxPages) break;
  }
  return out;
}
