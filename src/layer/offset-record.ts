/**
 * Recording where a pack put each file's content, for the next pack of the same sources to copy
 * unchanged files from this tar (previous-pack.ts) instead of reading them again. It only watches the
 * entry stream (a TarObserver), so the tar is the same with or without it.
 *
 * Safe because it records only what a later pack can check: the offset (the later pack compares the
 * header block before it with its own) and the source's path and stat key as the walk saw them. Files
 * changed within RACY_MS of the pack are left out, as git treats "racily clean" index entries: a
 * same-size rewrite within the file system's timestamp granularity of the state recorded would keep
 * the stat key, and the old bytes would be reused.
 */
import type { PackedFile } from './previous-pack.js';
import type { TarEntry, TarObserver } from './tar-entry.js';
import { statKeyChangedMs } from './walk.js';

/** How long a file must have been left alone before a pack records it for reuse. */
export const RACY_MS = 2000;

/** Records every regular file read from disk (not hard links to one) with its content offset. */
export class OffsetRecorder implements TarObserver {
  /** Archive path (no trailing slash) → where its content is and which source state it came from. */
  readonly files = new Map<string, PackedFile>();
  private readonly changedBefore: number;

  /**
   * `changedBefore` (ms since the epoch): files whose ctime is not before it are left out; default
   * RACY_MS before the recorder was made, so make it right before the pack.
   */
  constructor(opts: { changedBefore?: number } = {}) {
    this.changedBefore = opts.changedBefore ?? Date.now() - RACY_MS;
  }

  /** Records `entry` when it is a file read from disk and left alone long enough (see the module comment). */
  entry(entry: TarEntry): void {
    const source = entry.source;
    if (source === undefined || statKeyChangedMs(source.statKey) >= this.changedBefore) return;
    this.files.set(entry.header.name, { origin: source.origin, offset: entry.offset });
  }
}
