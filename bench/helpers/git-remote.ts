/**
 * A real Git remote for the benchmarks: a bare repository on disk and a working clone that
 * commits and pushes to it. Every git command runs with its own identity, without the user's
 * or the system's config, and with a timeout; the directories are removed by the cleanups.
 */
import { join } from 'node:path';
import { git } from '../../test/helpers/git.js';
import { tempDir } from './procs.js';

export { git };

/** A bare repository (`bare`, HEAD on `branch`) and a working clone of it (`dir`). */
export class GitRemote {
  private constructor(
    readonly bare: string,
    readonly dir: string,
    readonly branch: string,
  ) {}

  static async create(label: string, branch = 'main'): Promise<GitRemote> {
    const bare = join(tempDir(`tower-bench-${label}-bare-`), 'fleet.git');
    await git(join(bare, '..'), 'init', '--quiet', '--bare', `--initial-branch=${branch}`, bare);
    const dir = tempDir(`tower-bench-${label}-clone-`);
    await git(dir, 'init', '--quiet', `--initial-branch=${branch}`);
    await git(dir, 'remote', 'add', 'origin', bare);
    return new GitRemote(bare, dir, branch);
  }

  /** Commits everything in the clone; returns the new commit id. */
  async commit(message: string): Promise<string> {
    await git(this.dir, 'add', '--all');
    await git(this.dir, 'commit', '--quiet', '--allow-empty', '-m', message);
    return (await git(this.dir, 'rev-parse', 'HEAD')).trim();
  }

  /** git push to the bare repository; resolves when git push has returned. */
  async push(): Promise<void> {
    await git(this.dir, 'push', '--quiet', 'origin', `HEAD:refs/heads/${this.branch}`);
  }
}
