/**
 * The real ports for `loadSpec`: the filesystem, the process environment, `git rev-parse` and the
 * system clock. Kept apart from the pure loader so tests can pass fakes.
 */
import { readFile, stat } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import type { EntryKind, GitInfo, SpecFs, SpecPorts } from './ports.js';
import { isDimgError } from '../errors.js';
import { readDirScoped, readTextScoped, resolveScoped } from '../layer/scoped-path.js';

/** SpecFs over node:fs: `stat` and `readText` follow symlinks, the `…In` lookups stay inside their root. */
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
  async entryIn(root, rel) {
    return scoped(() => resolveScoped(root, rel))?.rel;
  },
  async readDirIn(root, rel) {
    return scoped(() => readDirScoped(root, rel));
  },
  async readTextIn(root, rel) {
    return scoped(() => readTextScoped(root, rel));
  },
};

/** A scoped lookup, with a symlink loop or an unusable path reported as missing (see isMissing). */
function scoped<T>(lookup: () => T | undefined): T | undefined {
  try {
    return lookup();
  } catch (e) {
    if (isDimgError(e, 'SYMLINK_LOOP') || isMissing(e)) return undefined;
    throw e;
  }
}

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
