/**
 * The real ports for `loadSpec`: the filesystem, the process environment, `git rev-parse` and the
 * system clock. Kept apart from the pure loader so tests can pass fakes.
 */
import { readFile, stat, readdir } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import type { EntryKind, GitInfo, SpecFs, SpecPorts } from './ports.js';

/** SpecFs over node:fs (symlinks followed). */
export const nodeSpecFs: SpecFs = {
  async readText(path) {
    try {
      return await readFile(path, 'utf8');
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  },
  async stat(path): Promise<EntryKind | undefined> {
    try {
      const s = await stat(path);
      return s.isFile() ? 'file' : s.isDirectory() ? 'dir' : 'other';
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  },
  async readDir(path) {
    try {
      return await readdir(path);
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  },
};

/**
 * Errors meaning "there is no such file": also paths that cannot name a file at all (a NUL byte from
 * a hostile spec, too long, a symlink loop), so the loader reports them as missing, with their place.
 */
function isMissing(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR' || code === 'ERR_INVALID_ARG_VALUE' || code === 'ENAMETOOLONG' || code === 'ELOOP';
}

function git(dir: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile('git', ['-C', dir, ...args], { timeout: 10_000 }, (err, stdout) => resolve(err ? undefined : stdout.trim()));
  });
}

/** Git facts of the checkout holding `dir`, or undefined when there is none (or no git). */
export async function gitInfoOf(dir: string): Promise<GitInfo | undefined> {
  const sha = await git(dir, ['rev-parse', 'HEAD']);
  if (!sha) return undefined;
  const short = (await git(dir, ['rev-parse', '--short', 'HEAD'])) ?? sha.slice(0, 7);
  const branch = await git(dir, ['symbolic-ref', '--quiet', '--short', 'HEAD']);
  return { sha, short, branch: branch || undefined };
}

/** Ports backed by this process: its cwd and environment, real files, git and the clock. */
export function nodeSpecPorts(overrides: Partial<SpecPorts> = {}): SpecPorts {
  return {
    fs: nodeSpecFs,
    env: process.env,
    git: gitInfoOf,
    now: () => new Date(),
    cwd: process.cwd(),
    ...overrides,
  };
}
