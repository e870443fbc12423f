/**
 * Observing the source: the newest revision, fetched, checked out and loaded (validated),
 * and any older revision the loop needs (the applied one, to repair from). A revision is
 * loaded once: the few most recent stay in memory.
 */
import { loadRepository, type LoadedRepository, type RepoReader } from '../core/load.js';
import type { CommitInfo, FleetSource } from './ports.js';

export interface LoadedRevision {
  revision: string;
  repo: LoadedRepository;
  valid: boolean;
  commit?: CommitInfo;
}

export interface SourceReading {
  newest?: LoadedRevision;
  /** Readings are numbered in the order they were asked for: a slow one must not overrule a newer one. */
  seq: number;
  /** Why the source could not be read; the loop keeps what runs. */
  error?: string;
  fetchedAt?: Date;
}

const KEEP = 4;

export class RevisionLoader {
  private readonly cache = new Map<string, LoadedRevision>();
  private last?: LoadedRevision;
  private lastFetchAt = 0;
  private seq = 0;

  constructor(
    readonly source: FleetSource,
    private readonly library: RepoReader | undefined,
    private readonly now: () => Date,
  ) {}

  /**
   * Fetches and loads the newest revision — or, when the last fetch is younger than maxAgeMs,
   * returns what it read (a pass that only looks at what runs need not ask the remote again).
   * On error: the last one read, with the error.
   */
  async newest(maxAgeMs = 0): Promise<SourceReading> {
    const seq = ++this.seq;
    if (this.last && this.now().getTime() - this.lastFetchAt < maxAgeMs) return { newest: this.last, seq };
    try {
      const fetched = await this.source.fetch();
      this.last = await this.load(fetched.revision);
      const fetchedAt = this.now();
      this.lastFetchAt = fetchedAt.getTime();
      return { newest: this.last, fetchedAt, seq };
    } catch (err) {
      return { ...(this.last ? { newest: this.last } : {}), error: (err as Error).message, seq };
    }
  }

  async load(revision: string): Promise<LoadedRevision> {
    const cached = this.cache.get(revision);
    if (cached) {
      this.cache.delete(revision);
      this.cache.set(revision, cached); // most recently used last
      return cached;
    }
    const { reader, commit } = await this.source.checkout(revision);
    const repo = loadRepository(reader, this.library ? { library: this.library } : {});
    const loaded: LoadedRevision = { revision, repo, valid: repo.valid && repo.fleet !== undefined, ...(commit ? { commit } : {}) };
    this.cache.set(revision, loaded);
    while (this.cache.size > KEEP) this.cache.delete(this.cache.keys().next().value!);
    return loaded;
  }
}
