/**
 * The seam between the tar writer and its speed-ups. The writer (tar-writer.ts) only turns sources
 * into entries and entries into tar bytes; what a caller wants on the side attaches here and can never
 * change those bytes:
 * - a TarObserver sees every entry as it is written (its header, where its content starts, the very
 *   content bytes): offset-record.ts records offsets for a later pack, mirror.ts writes the layer's
 *   directory while packing;
 * - a ContentSource may supply a regular file's content instead of the writer reading its source
 *   (previous-pack.ts copies unchanged files from the previous layer tar). The writer checks nothing
 *   about what it gets, so a ContentSource must hand out only the bytes the source would give.
 */
import type { TarHeader } from './tar-header.js';

/** Where a regular file read from disk comes from, as the walk saw it. */
export interface EntrySource {
  /** The source file's path. */
  readonly path: string;
  /** Its sourceStatKey (walk.ts) when the tree was walked. */
  readonly statKey: string;
  /** `PATH\0STATKEY`: names the source state its content was read in (see previous-pack.ts). */
  readonly origin: string;
}

/** One entry of the archive being written. */
export interface TarEntry {
  /** The header as planned: name, type, attributes, size. */
  readonly header: TarHeader;
  /** The header's bytes in the archive (a PAX header when needed, then the USTAR block). */
  readonly encoded: Buffer;
  /** Byte offset in the archive where the entry's content starts, right after `encoded`. */
  readonly offset: number;
  /** For a regular file read from disk: its source; undefined for every other entry. */
  readonly source?: EntrySource;
  /**
   * True when the content came from the pack's ContentSource rather than from `source`: the file was
   * not read now, so whatever was checked when that content was recorded still holds for it.
   */
  readonly reused: boolean;
}

/**
 * Sees the entries of one pack in archive order. Every call is synchronous and made while the pack
 * runs, before the writer moves on; buffers handed in are valid only during the call. An observer must
 * not throw: it is there to speed something up, and a failure of its own is its own state to report.
 */
export interface TarObserver {
  /**
   * An entry, once the origin of its content is settled. `content` is the whole content of a regular
   * file read in one piece (at most 1 MiB; empty for an empty file or marker); undefined for a larger
   * regular file, whose content then follows through `chunk` calls and one `endContent`, and for
   * entries that have no content (directories, links, devices).
   */
  entry(entry: TarEntry, content: Buffer | undefined): void;
  /** The next piece of the content of the larger file announced by the last `entry`. */
  chunk?(data: Buffer): void;
  /** The larger file announced by the last `entry` is complete. */
  endContent?(): void;
  /** The archive ended: every entry was written. */
  finish?(): void;
  /** The pack failed or was abandoned before the archive ended; no more calls follow. */
  abort?(): void;
}

/**
 * Supplies regular files' contents from somewhere cheaper than their sources, for one pack. It must
 * return exactly the bytes reading `entry.source` would give, or undefined (the writer then reads the
 * source). The writer closes it when the pack ends, however it ends. The entries it is asked about
 * have `reused` false: that is what its answer settles.
 */
export interface ContentSource {
  /**
   * The whole content of a file of at most 1 MiB, valid until the next call (the writer copies it
   * when it must keep it), or undefined.
   */
  small(entry: TarEntry): Buffer | undefined;
  /**
   * The content of a larger file as chunks, read into `into` when given (each chunk then valid until
   * the next is requested), or undefined. Errors while reading fail the pack: part of the file may
   * already be written.
   */
  large(entry: TarEntry, into: Buffer | undefined): AsyncIterable<Buffer> | undefined;
  /** Releases what it holds open. */
  close(): void;
}
