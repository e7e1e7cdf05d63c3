/**
 * What a spec makes dimg watch: the spec file and its lock, every image's context (minus what the
 * context's ignore file excludes), rootfs directories and tarballs, archives and Dockerfiles. Never
 * the store, nor any `.git` directory. Pure data plus a predicate chokidar consults for each path.
 */
import { dirname, relative, sep, basename } from 'node:path';
import type { Stats } from 'node:fs';
import type { Spec } from '../specfile/model.js';
import { IGNORE_FILES, IgnoreMatcher } from '../specfile/ignore.js';
import { contextIgnore } from '../specfile/sources.js';
import { nodeSpecFs } from '../specfile/node-ports.js';
import { lockPathFor } from '../resolve/lock.js';

/** A directory watched recursively, with the ignore matcher of the context it is (if any). */
export interface TreeRoot {
  path: string;
  /** The context's ignore rules; undefined for a rootfs directory (everything in it counts). */
  matcher?: IgnoreMatcher;
  /** Spec image keys reading this tree. */
  images: string[];
}

/** Everything to watch for one loaded spec. */
export interface WatchSet {
  /** Single files whose changes count (spec, lock, Dockerfiles, rootfs tarballs, archives). */
  files: Map<string, string[]>;
  /** Recursive roots (contexts, rootfs directories). */
  trees: TreeRoot[];
  /** The directories to hand to the watcher: no anchor lies inside another. */
  anchors: string[];
  /** The store root: never watched, even when a context contains it. */
  storeRoot: string;
}

/** Computes the watch set of `spec`; `storeRoot` is excluded everywhere. */
export async function watchSetOf(spec: Spec, storeRoot: string): Promise<WatchSet> {
  const files = new Map<string, string[]>();
  const trees = new Map<string, TreeRoot>();
  const addFile = (p: string, image?: string) => files.set(p, [...(files.get(p) ?? []), ...(image ? [image] : [])]);
  addFile(spec.file);
  addFile(lockPathFor(spec.file));
  for (const img of spec.images) {
    if (img.dockerfile) addFile(img.dockerfile, img.key);
    if (img.context) {
      let t = trees.get(img.context);
      if (!t) {
        const ignore = await contextIgnore(nodeSpecFs, img.context);
        trees.set(img.context, (t = { path: img.context, matcher: ignore.matcher.empty ? undefined : ignore.matcher, images: [] }));
      }
      t.images.push(img.key);
    }
    if (img.from.kind === 'rootfs' || img.from.kind === 'archive') {
      const kind = img.from.kind === 'rootfs' ? await nodeSpecFs.stat(img.from.path) : 'file';
      if (kind === 'dir') {
        const t = trees.get(img.from.path) ?? { path: img.from.path, images: [] };
        // Also a context: everything in it counts for the rootfs, whatever the ignore file says.
        t.matcher = undefined;
        t.images.push(img.key);
        trees.set(img.from.path, t);
      } else {
        addFile(img.from.path, img.key);
      }
    }
  }
  const candidates = [...trees.keys(), ...[...files.keys()].map((f) => dirname(f))];
  const anchors = [...new Set(candidates)].filter((a, _i, all) => !all.some((b) => b !== a && isInside(a, b)) && !isInside(a, storeRoot) && a !== storeRoot).sort();
  return { files, trees: [...trees.values()], anchors, storeRoot };
}

/** True when `p` is strictly inside directory `dir`. */
export function isInside(p: string, dir: string): boolean {
  const rel = relative(dir, p);
  return rel !== '' && !rel.startsWith('..') && !rel.startsWith(sep);
}

/**
 * Whether a change at `path` can matter (true) or the watcher may ignore it (false). Directories
 * on the way down to a root or a file of interest are relevant so the watcher descends into them.
 * `stats` is absent when the watcher has not stat'ed the path yet: then a directory is assumed.
 */
export function isRelevant(set: WatchSet, path: string, stats?: Stats): boolean {
  return relevance(set, path, stats) === 'watched';
}

/**
 * How the watcher treats `path`: `watched`; `ignored` (nothing reads it, or its context's ignore file
 * excludes it); or `unwatched`: never watched (the store, a `.git` directory) although a tree's walk
 * reads it, so no event will tell when it changes (what is derived from that tree must not be reused).
 */
export function relevance(set: WatchSet, path: string, stats?: Stats): 'watched' | 'ignored' | 'unwatched' {
  const isFile = stats ? !stats.isDirectory() : false;
  const skipped = () => (set.trees.some((t) => isInside(path, t.path) && wouldRead(t, path, isFile)) ? 'unwatched' : 'ignored');
  if (path === set.storeRoot || isInside(path, set.storeRoot)) return skipped();
  if (set.files.has(path)) return 'watched';
  if (basename(path) === '.git') return skipped();
  let git = false;
  for (const t of set.trees) {
    if (path === t.path) return 'watched';
    if (!isInside(path, t.path)) continue;
    const rel = relative(t.path, path).split(sep).join('/');
    if ((IGNORE_FILES as readonly string[]).includes(rel)) return 'watched';
    if (rel.split('/').includes('.git')) {
      git ||= wouldRead(t, path, isFile);
      continue;
    }
    if (wouldRead(t, path, isFile)) return 'watched';
  }
  if (git) return 'unwatched';
  if (isFile) return 'ignored';
  // A directory between an anchor and something of interest.
  for (const t of set.trees) if (isInside(t.path, path)) return 'watched';
  for (const f of set.files.keys()) if (isInside(f, path)) return 'watched';
  return 'ignored';
}

/** Whether a walk of tree `t` reads `path` (inside it): everything in a rootfs; in a context, what the ignore rules keep. */
function wouldRead(t: TreeRoot, path: string, isFile: boolean): boolean {
  if (!t.matcher) return true;
  const rel = relative(t.path, path).split(sep).join('/');
  return isFile ? !t.matcher.ignores(rel) : !t.matcher.canSkipDir(rel);
}

/** The spec images a changed path feeds (empty for the spec or lock file themselves). */
export function imagesAffectedBy(set: WatchSet, path: string): string[] {
  const out = new Set<string>(set.files.get(path) ?? []);
  for (const t of set.trees) if (path === t.path || isInside(path, t.path)) t.images.forEach((i) => out.add(i));
  return [...out];
}

/** The watched tree whose root ignore file is `path` (its rules changed), if any. */
export function isIgnoreFileOf(set: WatchSet, path: string): TreeRoot | undefined {
  return set.trees.find((t) => (IGNORE_FILES as readonly string[]).some((n) => path === `${t.path}${sep}${n}`));
}

/** True when two watch sets would watch the same things the same way. */
export function sameWatchSet(a: WatchSet, b: WatchSet): boolean {
  const key = (s: WatchSet) => JSON.stringify({ f: [...s.files.keys()].sort(), t: s.trees.map((t) => t.path).sort(), a: s.anchors });
  return key(a) === key(b);
}
