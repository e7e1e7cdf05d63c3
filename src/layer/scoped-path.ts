/**
 * Reading a path inside a directory tree that someone else controls (a build context, the unpacked
 * root of a `copy --from` image) the way a process chrooted to that directory would see it, so a
 * symlink in the tree can never lead a read out of it: `..` stops at the root, an absolute symlink
 * target starts again at the root, and every component is checked with lstat, never left to the
 * kernel to follow. This is BuildKit's scoping of COPY sources to the context.
 *
 * The extractor's SafeRoot resolves lower-layer symlinks with the same walk (root-walk.ts) but also creates
 * directories and refuses links its own archive planted; this module is the read-only lookup for everything else.
 */
import { closeSync, constants as C, openSync, readdirSync, readFileSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { DimgError } from '../errors.js';
import { lstatOrUndefined, walkInRoot } from './root-walk.js';

/** What is at a path inside a root (see resolveScoped). */
export interface ScopedEntry {
  /** Root-relative path with every symlink resolved ('' for the root), '/'-separated. */
  rel: string;
  /** The absolute path: the root joined with `rel`; no component below the root is a symlink. */
  abs: string;
  /** lstat of `abs` (a symlink only when the last component is one and was not followed). */
  stats: Stats;
}

/**
 * Resolves `path` (relative to `root`; a leading `/` means the root) inside `root`. Symlinks met in
 * the parent components are followed inside the root; the last component is followed only with
 * `followLast` (a source that is a symlink is copied as one). Returns undefined when a component is
 * missing or a parent is not a directory (ENOENT/ENOTDIR), and throws SYMLINK_LOOP (naming `path`)
 * after 40 symlinks. The root itself is taken as given (a symlinked context directory is the user's
 * choice). The walk is root-walk.ts's, shared with the extractor.
 */
export function resolveScoped(root: string, path: string, followLast = false): ScopedEntry | undefined {
  const end = walkInRoot(root, path.split('/'), {
    // `a/..` and `a/` name `a` as a directory: it is resolved like a parent.
    directory: path.endsWith('/'),
    followLast,
    loop: () => {
      const message = `${join(root, path)}: too many levels of symbolic links`;
      return new DimgError('SYMLINK_LOOP', message, 'fix the symlink loop in the directory');
    },
  });
  if (!end) return undefined;
  if (end.stats) return { rel: end.rel, abs: end.abs, stats: end.stats };
  // The path named a directory (the root, or something ending in `..` or `/`): every step was checked.
  const st = lstatOrUndefined(end.abs);
  return st?.isDirectory() ? { rel: end.rel, abs: end.abs, stats: st } : undefined;
}

/**
 * Names in the directory `path` inside `root` (resolved with every symlink followed inside the root),
 * or undefined when there is no directory there.
 */
export function readDirScoped(root: string, path: string): string[] | undefined {
  const dir = resolveScoped(root, path, true);
  return dir?.stats.isDirectory() ? readdirSync(dir.abs) : undefined;
}

/**
 * The UTF-8 text of the regular file `path` inside `root` (symlinks followed inside the root), or
 * undefined when there is none. O_NOFOLLOW: a symlink swapped in after the lookup is not opened.
 */
export function readTextScoped(root: string, path: string): string | undefined {
  const file = resolveScoped(root, path, true);
  if (!file?.stats.isFile()) return undefined;
  const fd = openSync(file.abs, C.O_RDONLY | C.O_NOFOLLOW);
  try {
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}
