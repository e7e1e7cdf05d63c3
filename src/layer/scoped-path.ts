/**
 * Reading a path inside a directory tree that someone else controls (a build context, the unpacked
 * root of a `copy --from` image) the way a process chrooted to that directory would see it, so a
 * symlink in the tree can never lead a read out of it: `..` stops at the root, an absolute symlink
 * target starts again at the root, and every component is checked with lstat, never left to the
 * kernel to follow. This is BuildKit's scoping of COPY sources to the context.
 *
 * The extractor's SafeRoot resolves lower-layer symlinks the same way but also creates directories and
 * refuses links its own archive planted; this module is the read-only lookup for everything else.
 */
import { closeSync, constants as C, openSync, readdirSync, readFileSync, readlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { DimgError } from '../errors.js';
import { lstatOrUndefined } from './safe-root.js';

/** As the kernel's limit: a longer chain is treated as a loop. */
const MAX_SYMLINK_HOPS = 40;

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
 * choice). Synchronous: a few lstat calls, cheaper inline than through the thread pool.
 */
export function resolveScoped(root: string, path: string, followLast = false): ScopedEntry | undefined {
  const out: string[] = [];
  // outAbs[k] is join(root, ...out.slice(0, k + 1)), kept alongside `out` instead of joined anew.
  const outAbs: string[] = [];
  const rootAbs = join(root);
  let queue = path.split('/');
  let at = 0;
  // Index of the last component in `queue` that names something (not '' or '.'); the component at
  // `at - 1` is the last one when nothing after it does. Recomputed only when a symlink refills the queue.
  let lastNamed = lastNamedIndex(queue, 0);
  // `a/..` and `a/` name `a` as a directory: it is resolved like a parent.
  const trailingSlash = path.endsWith('/');
  let hops = 0;
  while (at < queue.length) {
    const comp = queue[at++]!;
    if (comp === '' || comp === '.') continue;
    if (comp === '..') {
      out.pop(); // the root is its own parent
      outAbs.pop();
      continue;
    }
    const parent = outAbs.length > 0 ? outAbs[outAbs.length - 1]! : rootAbs;
    const abs = parent === '.' ? comp : parent.endsWith('/') ? parent + comp : `${parent}/${comp}`;
    out.push(comp);
    outAbs.push(abs);
    const st = lstatOrUndefined(abs);
    if (!st) return undefined;
    const last = lastNamed < at && !trailingSlash;
    if (st.isSymbolicLink() && (followLast || !last)) {
      if (++hops > MAX_SYMLINK_HOPS) throw new DimgError('SYMLINK_LOOP', `${join(root, path)}: too many levels of symbolic links`, 'fix the symlink loop in the directory');
      const target = readlinkSync(abs);
      out.pop();
      outAbs.pop();
      if (target.startsWith('/')) {
        out.length = 0;
        outAbs.length = 0;
      }
      queue = [...target.split('/'), ...queue.slice(at)];
      at = 0;
      lastNamed = lastNamedIndex(queue, 0);
      continue;
    }
    if (last) return { rel: out.join('/'), abs, stats: st };
    if (!st.isDirectory()) return undefined;
  }
  // The path named a directory (the root, or something ending in `..` or `/`): every step was checked.
  const rel = out.join('/');
  const abs = rel === '' ? root : join(root, rel);
  const st = lstatOrUndefined(abs);
  return st?.isDirectory() ? { rel, abs, stats: st } : undefined;
}

/** Index of the last element of `comps` (from `from` on) other than '' and '.', or -1. */
function lastNamedIndex(comps: readonly string[], from: number): number {
  for (let i = comps.length - 1; i >= from; i--) if (comps[i] !== '' && comps[i] !== '.') return i;
  return -1;
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
