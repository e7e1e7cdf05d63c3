/**
 * The one symlink walk below a root, as a process chrooted to it would resolve a path: every component
 * is checked with lstat (never left to the kernel to follow), `..` stops at the root, and a symlink's
 * target is spliced into the rest of the path, an absolute target starting again at the root. So no
 * path can leave the root, whatever symlinks the tree holds.
 *
 * Two callers differ only in what they do at each step, given as hooks: the read-only lookup of
 * scoped-path.ts (build contexts, `copy --from` roots) and the extractor's SafeRoot (safe-root.ts),
 * which creates missing directories, remembers the ones it verified and refuses symlinks its own
 * archive planted. Synchronous: a few lstat calls cost far less inline than through the thread pool.
 */
import { lstatSync, readlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';

/** As the kernel's limit: a longer chain of symlinks is treated as a loop. */
export const MAX_SYMLINK_HOPS = 40;

/**
 * lstat that returns undefined for a missing path (ENOENT, or ENOTDIR: a component on the way is no
 * longer a directory, e.g. a later archive entry replaced it with a file, so nothing is there either).
 */
export function lstatOrUndefined(abs: string): Stats | undefined {
  try {
    return lstatSync(abs);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}

/** What a walk does at each step; only `loop` is required. */
export interface RootWalk {
  /** Every component must be a directory, as if the path ended in `/`: there is no last component. */
  directory?: boolean;
  /** Follow a symlink in the last component too (else it is returned as the symlink it is). */
  followLast?: boolean;
  /** Root-relative paths known to be real directories: passed without an lstat. */
  knownDirs?: ReadonlySet<string>;
  /** A component is missing: true once it was created as a directory (the walk goes on), false to give up. */
  missing?(rel: string, abs: string): boolean;
  /** A symlink is about to be followed: throw to refuse it. */
  symlink?(rel: string): void;
  /** A real directory was checked with lstat. */
  dir?(rel: string): void;
  /** A component that must be a directory is something else: throw, or return to give up. */
  notDirectory?(rel: string): void;
  /** The error to throw after MAX_SYMLINK_HOPS symlinks. */
  loop(): Error;
}

/** Where a walk ended: `rel` is root-relative with every followed symlink resolved ('' for the root). */
export interface WalkEnd {
  rel: string;
  /** The root joined with `rel`; no component below the root is a followed symlink. */
  abs: string;
  /**
   * lstat of the last component when the path named one (a symlink only when not followed); undefined
   * when the path named a directory (the root, or ending in `/` or `..`, or `directory`), in which case
   * every component on the way was checked as a directory but the end itself was not looked at again.
   */
  stats?: Stats;
}

/**
 * Walks the components `comps` (split on `/`; '' and '.' are skipped) below `root` with the hooks of
 * `w`. Returns undefined when a component is missing (and `missing` did not create it) or a component
 * that must be a directory is not one (and `notDirectory` did not throw).
 */
export function walkInRoot(root: string, comps: readonly string[], w: RootWalk): WalkEnd | undefined {
  const rootAbs = join(root);
  const prefix = rootAbs === '.' ? '' : rootAbs.endsWith('/') ? rootAbs : `${rootAbs}/`;
  // rels[k] is the root-relative path of the k+1 resolved components, kept instead of joined anew.
  const rels: string[] = [];
  let queue = comps;
  let at = 0;
  // Index of the last component in `queue` that names something (not '' or '.'): the component at
  // `at - 1` is the last one when nothing after it does. Recomputed only when a symlink refills the queue.
  let lastNamed = w.directory ? Infinity : lastNamedIndex(queue);
  let hops = 0;
  while (at < queue.length) {
    const comp = queue[at++]!;
    if (comp === '' || comp === '.') continue;
    if (comp === '..') {
      rels.pop(); // the root is its own parent
      continue;
    }
    const parent = rels.length > 0 ? rels[rels.length - 1]! : '';
    const rel = parent === '' ? comp : `${parent}/${comp}`;
    rels.push(rel);
    if (w.knownDirs?.has(rel)) continue;
    const abs = prefix + rel;
    const st = lstatOrUndefined(abs);
    if (!st) {
      if (w.missing?.(rel, abs)) continue;
      return undefined;
    }
    const last = lastNamed < at;
    if (st.isSymbolicLink() && (w.followLast || !last)) {
      w.symlink?.(rel);
      if (++hops > MAX_SYMLINK_HOPS) throw w.loop();
      const target = readlinkSync(abs);
      rels.pop();
      if (target.startsWith('/')) rels.length = 0;
      queue = [...target.split('/'), ...queue.slice(at)];
      at = 0;
      if (!w.directory) lastNamed = lastNamedIndex(queue);
      continue;
    }
    if (last) return { rel, abs, stats: st };
    if (!st.isDirectory()) {
      w.notDirectory?.(rel);
      return undefined;
    }
    w.dir?.(rel);
  }
  const rel = rels.length > 0 ? rels[rels.length - 1]! : '';
  return { rel, abs: rel === '' ? root : prefix + rel };
}

/** Index of the last element of `comps` other than '' and '.', or -1. */
function lastNamedIndex(comps: readonly string[]): number {
  for (let i = comps.length - 1; i >= 0; i--) if (comps[i] !== '' && comps[i] !== '.') return i;
  return -1;
}
