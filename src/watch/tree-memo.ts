/**
 * Tree digests reused across watch cycles. Every cycle recomputes every image's input digest, which
 * walks (lstat of every path) each rootfs directory and each context copy's sources. A walk whose
 * roots saw no file event since it ran would give the same digest, so the memo returns the previous
 * one instead; any event at, under or above a root forgets every entry reading that root.
 *
 * Correctness rests on the file watcher reporting every relevant change, so the memo only remembers
 * what the watcher demonstrably covers:
 * - roots inside a tree of the current watch set (contexts and rootfs directories; events under a
 *   context's ignored paths are dropped by the watcher, but the copy walk skips the same paths);
 * - not touching a "blind" path, one the watcher deliberately does not watch although its tree would
 *   otherwise include it (a `.git` directory, the store inside a context): the walk reads those, no
 *   event would tell when they change;
 * - only once the watch set has been the same at two evaluations in a row (the loop announces it
 *   once more when its watcher is ready): after a spec reload changes the set, chokidar's scan of
 *   new anchors may still be going on;
 * - nothing across a watcher reset (a watcher becoming ready, an inotify → polling switch, a
 *   re-scan, a watcher error): events may have been lost there, so everything is forgotten and the
 *   two-evaluation rule starts over.
 * A walk during which an event touched its roots is returned but not remembered.
 */
import type { Digest } from '../oci/digest.js';
import type { TreeDigestMemo } from '../builder/keys.js';
import { isInside, type WatchSet } from './watch-set.js';

interface Entry {
  roots: readonly string[];
  digest: Digest;
}

interface Walk {
  roots: readonly string[];
  /** An event touched the roots while the walk ran (or the memo was reset): do not remember it. */
  stale: boolean;
}

/** True when a change at `path` can change what a walk of `root` reads. */
function touches(path: string, root: string): boolean {
  return path === root || isInside(path, root) || isInside(root, path);
}

/** The watch loop's memo of rootfs and context-copy walks (see the file comment). */
export class WatchTreeMemo implements TreeDigestMemo {
  private readonly entries = new Map<string, Entry>();
  private readonly walks = new Set<Walk>();
  private readonly inflight = new Map<string, Promise<Digest>>();
  private readonly blind = new Set<string>();
  /** Tree roots of the watch set in force (empty: nothing is covered, nothing is remembered). */
  private trees: string[] = [];
  private lastSetKey: string | undefined;
  /** Walks run and memo hits since creation (for tests and diagnostics). */
  readonly counts = { walks: 0, hits: 0 };

  async digest(key: string, roots: readonly string[], walk: () => Promise<Digest>): Promise<Digest> {
    const hit = this.entries.get(key);
    if (hit) {
      this.counts.hits++;
      return hit.digest;
    }
    // Images keyed concurrently that share a tree (two images on one rootfs) share its walk.
    const running = this.inflight.get(key);
    if (running) return running;
    const w: Walk = { roots, stale: !roots.every((r) => this.covered(r)) };
    this.walks.add(w);
    this.counts.walks++;
    const p = walk().then((d) => {
      if (!w.stale) this.entries.set(key, { roots, digest: d });
      return d;
    });
    this.inflight.set(key, p);
    try {
      return await p;
    } finally {
      this.walks.delete(w);
      this.inflight.delete(key);
    }
  }

  /** A file event at `path`: forgets entries (and spoils walks in progress) whose roots it touches. */
  changed(path: string): void {
    for (const [k, e] of this.entries) if (e.roots.some((r) => touches(path, r))) this.entries.delete(k);
    for (const w of this.walks) if (w.roots.some((r) => touches(path, r))) w.stale = true;
  }

  /**
   * The watcher skipped `path` although its tree would include it (`.git`, the store): walks that
   * read it are never remembered (no event will say when it changes). Also a change, conservatively.
   */
  unwatched(path: string): void {
    this.blind.add(path);
    this.changed(path);
  }

  /**
   * Events may have been lost (a watcher became ready, re-scans a tree, switched to polling or
   * failed): forget everything, and cover nothing until the watch set is seen at two evaluations.
   */
  reset(): void {
    this.entries.clear();
    for (const w of this.walks) w.stale = true;
    this.lastSetKey = undefined;
    this.trees = [];
  }

  /**
   * The watch set the coming evaluation runs under. A set different from the previous call's resets
   * the memo and covers nothing until it is seen again; the same set covers its trees.
   */
  watching(set: WatchSet | undefined): void {
    const key = set ? JSON.stringify(set.trees.map((t) => t.path).sort()) + JSON.stringify(set.anchors) : undefined;
    if (key === undefined || key !== this.lastSetKey) {
      this.reset();
      this.lastSetKey = key;
      return;
    }
    this.trees = set!.trees.map((t) => t.path);
  }

  /** Number of remembered digests. */
  get size(): number {
    return this.entries.size;
  }

  private covered(root: string): boolean {
    if (!this.trees.some((t) => root === t || isInside(root, t))) return false;
    for (const b of this.blind) if (touches(b, root)) return false;
    return true;
  }
}
