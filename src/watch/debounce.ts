/**
 * Coalescing bursts of file events into one batch: a batch fires after `quietMs` without a new
 * event, or `maxMs` after its first event even if events keep coming (so a steady trickle, such as a
 * log file being written, cannot starve the loop). A `git checkout` touching 500 files is one batch.
 */

/** One coalesced burst: the distinct paths, in first-seen order, and when the first event arrived. */
export interface ChangeBatch {
  paths: string[];
  /** `performance.now()`-style milliseconds (see `now` option) of the first event of the burst. */
  firstAt: number;
}

/** Timing of a Debouncer. */
export interface DebounceOptions {
  /** Quiet window after the last event (default 100 ms). */
  quietMs?: number;
  /** Longest a batch waits after its first event (default 2000 ms: a checkout of a few hundred files
   * on a busy machine takes chokidar over a second to report, and must still be one batch). */
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
    this.quietMs = opts.quietMs ?? 100;
    this.maxMs = Math.max(opts.maxMs ?? 2000, this.quietMs);
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
    this.quietTimer = setTimeout(() => this.flush(), this.quietMs);
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
