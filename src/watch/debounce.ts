/**
 * Coalescing bursts of file events into one batch: a batch fires after `quietMs` without a new
 * event (1.1 s once the burst has 20 paths or more), or `maxMs` after its first event even if events keep coming (so a steady trickle, such as a
 * log file being written, cannot starve the loop). A `git checkout` touching 500 files is one batch.
 */

/** A burst with this many distinct paths is a storm, with a longer quiet window. */
const STORM = 20;
/** Quiet window of a storm: above chokidar's 1 s throttle between reads of one directory. */
const STORM_QUIET_MS = 1100;

/** One coalesced burst: the distinct paths, in first-seen order, and when the first event arrived. */
export interface ChangeBatch {
  paths: string[];
  /** `performance.now()`-style milliseconds (see `now` option) of the first event of the burst. */
  firstAt: number;
}

/** Timing of a Debouncer. */
export interface DebounceOptions {
  /**
   * Quiet window after the last event (default 50 ms, as watchexec's: an editor's save, even as
   * write-temp-then-rename, is one burst of events a few milliseconds apart).
   */
  quietMs?: number;
  /** Longest a batch waits after its first event (default 3000 ms: chokidar may take over two
   * seconds to report a checkout creating a few hundred files, which must still be one batch). */
  maxMs?: number;
  /** Clock in milliseconds (default `performance.now()`). */
  now?: () => number;
}

/** Collects paths with `push` and calls `fire` once per burst. `stop()` drops anything pending. */
export class Debouncer {
  private paths = new Set<string>();
  private firstAt = 0;
  private quietTimer: NodeJS.Timeout | undefined;
  private maxTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly quietMs: number;
  private readonly maxMs: number;
  private readonly now: () => number;

  constructor(
    private readonly fire: (batch: ChangeBatch) => void,
    opts: DebounceOptions = {},
  ) {
    this.quietMs = opts.quietMs ?? 50;
    this.maxMs = Math.max(opts.maxMs ?? 3000, this.quietMs);
    this.now = opts.now ?? (() => performance.now());
  }

  /** Records an event for `path` (re-arming the quiet window). */
  push(path: string): void {
    if (this.stopped) return;
    if (this.paths.size === 0) {
      this.firstAt = this.now();
      this.maxTimer = setTimeout(() => this.flush(), this.maxMs);
    }
    this.paths.add(path);
    clearTimeout(this.quietTimer);
    // A storm of events (a checkout, an `npm install`) arrives in chunks: chokidar re-reads a
    // directory with new entries at most once a second, and a busy machine adds pauses. Waiting a
    // little over that once a burst is big keeps it one batch; a single save still fires after
    // the short window.
    const quiet = this.paths.size >= STORM ? Math.max(this.quietMs, STORM_QUIET_MS) : this.quietMs;
    this.quietTimer = setTimeout(() => this.flush(), quiet);
  }

  /** Fires the pending batch now, if any. */
  flush(): void {
    clearTimeout(this.quietTimer);
    clearTimeout(this.maxTimer);
    this.quietTimer = this.maxTimer = undefined;
    if (this.paths.size === 0 || this.stopped) return;
    const batch = { paths: [...this.paths], firstAt: this.firstAt };
    this.paths = new Set();
    this.fire(batch);
  }

  /** Cancels timers and ignores later events. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.quietTimer);
    clearTimeout(this.maxTimer);
    this.paths.clear();
  }
}
