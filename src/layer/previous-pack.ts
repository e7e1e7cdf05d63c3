/**
 * Reusing an earlier pack's bytes, a ContentSource (tar-entry.ts) a caller attaches to a pack. A copy
 * step rebuilt after a one-file edit packs almost the same files as last time; rather than opening and
 * reading every unchanged source again (four system calls per small file, plus a re-check that it did
 * not change while read), the writer copies the content from the previous layer tar, which lies in the
 * store uncompressed and is read sequentially. The offsets come from that pack's OffsetRecorder.
 *
 * Content is taken from the previous tar only when both hold: the source path and its sourceStatKey
 * (inode, size, mtime, ctime) are the ones recorded when the previous tar was written, so the file
 * still has the content it had then; and the 512-byte header block in the previous tar right before
 * the recorded offset is byte-for-byte the header this pack writes, so the offset points at that
 * file's content (name, size, mode, owner and mtime all agree). Anything else is read from the source.
 * (Only files left alone for a while are recorded, see offset-record.ts, so a same-size rewrite too
 * quick for the file system's timestamps cannot keep a recorded stat key.)
 *
 * The previous tar's content bytes are not re-hashed: damage to that blob inside a file's content
 * (bit rot) would be carried into the new layer. `dimg store verify` finds such a blob.
 */
import { DimgError } from '../errors.js';
import { readChunks } from './source-read.js';
import type { ContentSource, TarEntry } from './tar-entry.js';
import { BLOCK } from './tar-header.js';

/** Where a regular file's content went in a pack, and from which source state it was read. */
export interface PackedFile {
  /** `SOURCE\0STATKEY`: the source path and its sourceStatKey when it was read. */
  origin: string;
  /** Byte offset of the content in the tar (its header block ends there). */
  offset: number;
}

/**
 * Positional, synchronous reads of one file whose bytes are not to be trusted to a path (a stored
 * blob: the store opens it; no path leaves the store).
 */
export interface RandomAccessFile {
  readonly size: number;
  /** Reads up to `length` bytes at `position` into `into` at `offset`; 0 at the end. */
  read(into: Buffer, offset: number, length: number, position: number): number;
  close(): void;
}

/** An earlier pack to copy unchanged contents from (see the module comment). */
export interface PreviousPack {
  /** Names the earlier, uncompressed layer tar in messages. */
  tar: string;
  /** Opens it (throws when it cannot be read). */
  open: () => RandomAccessFile;
  /** Its files by archive path (no trailing slash), as recorded while it was written. */
  files: ReadonlyMap<string, PackedFile>;
}

const WINDOW = 1 << 20;

/**
 * Reads content out of a previous tar through one sliding 1 MiB window: files come in the same
 * archive order as before, so almost every small file is already in the window. Synchronous like the
 * rest of the writer's small-file path. Any read failure before a file's content is handed out
 * disables reuse (the writer reads the source); for one pack (PackOptions.content), which closes it.
 */
export class PreviousTarReader implements ContentSource {
  private file: RandomAccessFile | undefined;
  private failed = false;
  private readonly window = Buffer.allocUnsafe(WINDOW);
  private start = 0;
  private length = 0;

  constructor(readonly previous: PreviousPack) {}

  /**
   * The content recorded for `entry` when its source state and header (the encoded USTAR block this
   * pack writes for it) match, as a slice of the window valid until the next call; undefined when it
   * cannot be reused. For contents of at most 1 MiB.
   */
  small(entry: TarEntry): Buffer | undefined {
    const size = entry.header.size;
    const offset = this.entryOffset(entry);
    if (offset === undefined || !this.ensure(offset, size)) return undefined;
    return this.window.subarray(offset - this.start, offset - this.start + size);
  }

  /**
   * The content recorded for `entry` (checked as for `small`) in 1 MiB reads of the previous tar, into
   * `into` when given; undefined when it cannot be reused. A read failure after this fails the pack.
   */
  large(entry: TarEntry, into: Buffer | undefined): AsyncIterable<Buffer> | undefined {
    const offset = this.entryOffset(entry);
    if (offset === undefined) return undefined;
    const damaged = () => {
      const message = `previous layer ${this.previous.tar} ended inside a recorded file`;
      return new DimgError('LAYER_BAD_SOURCE', message, 'run `dimg store verify`; the layer blob is damaged');
    };
    return readChunks((buf, position) => this.read(buf, position), offset, entry.header.size, into, damaged);
  }

  private entryOffset(entry: TarEntry): number | undefined {
    if (entry.source === undefined) return undefined;
    return this.locate(entry.header.name, entry.source.origin, entry.encoded, entry.header.size);
  }

  /**
   * The offset of `path`'s content in the previous tar when it matches `origin` and `header`, after
   * checking the header block there; undefined when it cannot be reused.
   */
  private locate(path: string, origin: string, header: Buffer, size: number): number | undefined {
    if (this.failed) return undefined;
    const known = this.previous.files.get(path);
    if (!known || known.origin !== origin || known.offset < BLOCK) return undefined;
    const file = this.open();
    if (file === undefined || known.offset + size > file.size) return undefined;
    const block = header.subarray(header.length - BLOCK);
    const at = known.offset - BLOCK;
    // The header block is checked through the window, which then usually holds the content too.
    if (!this.ensure(at, BLOCK + Math.min(size, WINDOW - BLOCK))) return undefined;
    if (!this.window.subarray(at - this.start, at - this.start + BLOCK).equals(block)) return undefined;
    return known.offset;
  }

  /**
   * Reads `into.length` bytes at `position` of the previous tar into `into` (for large contents, after
   * `locate`). A read error fails the pack: part of the file may already be written by then.
   */
  private read(into: Buffer, position: number): number {
    const file = this.open();
    if (file === undefined) {
      const message = `previous layer ${this.previous.tar} cannot be read any more`;
      throw new DimgError('LAYER_BAD_SOURCE', message, 'run `dimg store verify`; the layer blob is damaged');
    }
    return file.read(into, 0, into.length, position);
  }

  /** Closes the previous tar. */
  close(): void {
    this.file?.close();
    this.file = undefined;
  }

  private open(): RandomAccessFile | undefined {
    if (this.file === undefined && !this.failed) {
      try {
        this.file = this.previous.open();
      } catch {
        this.failed = true;
      }
    }
    return this.file;
  }

  /** Makes the window cover [position, position + length); false when the tar is shorter or unreadable. */
  private ensure(position: number, length: number): boolean {
    if (length > WINDOW) return false;
    if (position >= this.start && position + length <= this.start + this.length) return true;
    const file = this.open();
    if (file === undefined) return false;
    try {
      let got = 0;
      while (got < WINDOW) {
        const n = file.read(this.window, got, WINDOW - got, position + got);
        if (n === 0) break;
        got += n;
      }
      this.start = position;
      this.length = got;
    } catch {
      this.failed = true;
      this.close();
      return false;
    }
    return length <= this.length;
  }
}
