/**
 * The file watcher behind `dimg watch`: one chokidar watcher over the watch set's anchors, filtered
 * by `isRelevant` (ignore files, the store, `.git`). When the kernel refuses more inotify watches
 * (ENOSPC) or instances (EMFILE), it says so once and switches to polling; `poll` forces polling.
 */
import { watch as chokidar, type FSWatcher } from 'chokidar';
import type { Stats } from 'node:fs';
import { relevance, type WatchSet } from './watch-set.js';

/** How the watcher reports. */
export interface FileWatcherOptions {
  /** Start with polling instead of inotify. */
  poll?: boolean;
  /** Poll interval in ms when polling (default 250). */
  pollIntervalMs?: number;
  /** A relevant path was added, changed or removed. */
  onChange: (path: string) => void;
  /** Messages for the user (the switch to polling). */
  onNotice: (message: string) => void;
  /** Other watcher errors (reported, not fatal). */
  onError?: (error: Error) => void;
  /** A path a tree's walk reads but that is never watched (`.git`, the store): see `relevance`. */
  onUnwatched?: (path: string) => void;
  /**
   * Events may have been missed: a watcher became ready (after the initial scan or a switch to
   * polling), is re-scanning a tree, or failed. Whatever was derived from the absence of events is
   * to be dropped.
   */
  onReset?: () => void;
}

/** A running watcher. `close()` releases every inotify watch and poll timer. */
export class FileWatcher {
  private watcher: FSWatcher | undefined;
  private polling: boolean;
  private closed = false;
  private switching: Promise<void> | undefined;
  private releaseReady: (() => void) | undefined;

  private constructor(
    private set: WatchSet,
    private readonly opts: FileWatcherOptions,
  ) {
    this.polling = Boolean(opts.poll);
  }

  /** Starts watching `set` and resolves once the initial scan is done (changes after that are seen). */
  static async start(set: WatchSet, opts: FileWatcherOptions): Promise<FileWatcher> {
    const w = new FileWatcher(set, opts);
    await w.open();
    // Hit an inotify limit during the initial scan: ready once the polling watcher is.
    await w.switching;
    return w;
  }

  /** True when polling (forced, or after an inotify limit was hit). */
  get isPolling(): boolean {
    return this.polling;
  }

  /** Number of anchors watched. */
  get anchorCount(): number {
    return this.set.anchors.length;
  }

  /** Switches to a new watch set (a reloaded spec): watches new anchors, drops old ones. */
  async update(set: WatchSet): Promise<void> {
    const before = new Set(this.set.anchors);
    this.set = set;
    const w = this.watcher;
    if (!w || this.closed) return;
    const gone = [...before].filter((a) => !set.anchors.includes(a));
    const added = set.anchors.filter((a) => !before.has(a));
    if (gone.length > 0) w.unwatch(gone);
    if (added.length > 0) await this.addAndWait(w, added);
  }

  /** Re-scans `dir` (its ignore rules changed, so directories skipped before may now count). */
  async rescan(dir: string): Promise<void> {
    const w = this.watcher;
    if (!w || this.closed) return;
    const anchor = this.set.anchors.find((a) => a === dir || dir.startsWith(`${a}/`)) ?? dir;
    this.opts.onReset?.();
    w.unwatch(anchor);
    await this.addAndWait(w, [anchor]);
  }

  /** Stops watching. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await this.switching?.catch(() => undefined);
    const w = this.watcher;
    this.watcher = undefined;
    await w?.close();
  }

  private async open(): Promise<void> {
    const w = chokidar(this.set.anchors, {
      ignoreInitial: true,
      followSymlinks: false,
      usePolling: this.polling,
      interval: this.opts.pollIntervalMs ?? 250,
      binaryInterval: this.opts.pollIntervalMs ?? 250,
      ignorePermissionErrors: true,
      // The predicate reads `this.set` at call time, so a reloaded spec applies at once.
      ignored: (path: string, stats?: Stats) => {
        const r = relevance(this.set, path, stats);
        if (r === 'unwatched') this.opts.onUnwatched?.(path);
        return r !== 'watched';
      },
    });
    this.watcher = w;
    // chokidar reports symlinks found by the initial scan as `add` despite ignoreInitial; nothing
    // before `ready` is a change.
    let ready = false;
    w.on('all', (_event, path) => {
      if (ready && !this.closed && this.watcher === w) this.opts.onChange(path);
    });
    w.on('error', (err) => this.onError(w, err as NodeJS.ErrnoException));
    await new Promise<void>((resolve) => {
      this.releaseReady = resolve;
      w.once('ready', () => resolve());
    });
    ready = true;
    this.opts.onReset?.();
  }

  private addAndWait(w: FSWatcher, paths: string[]): Promise<void> {
    // chokidar emits `ready` only once; wait for its scan of new paths through the event queue instead.
    w.add(paths);
    return new Promise((resolve) => setTimeout(resolve, 50));
  }

  private onError(w: FSWatcher, err: NodeJS.ErrnoException): void {
    if (this.closed || this.watcher !== w) return;
    this.opts.onReset?.();
    if (!this.polling && (err.code === 'ENOSPC' || err.code === 'EMFILE')) {
      this.polling = true;
      this.opts.onNotice(
        err.code === 'ENOSPC'
          ? 'the inotify watch limit is reached (fs.inotify.max_user_watches); falling back to polling. Raise it with `sysctl fs.inotify.max_user_watches=524288`, or pass --poll'
          : 'too many inotify instances (fs.inotify.max_user_instances); falling back to polling. Raise the limit, or pass --poll',
      );
      // The abandoned watcher will never be ready; whoever waits for it waits for the new one.
      this.releaseReady?.();
      this.switching = (async () => {
        this.watcher = undefined;
        await w.close().catch(() => undefined);
        if (!this.closed) await this.open();
      })();
      return;
    }
    this.opts.onError?.(err);
  }
}
