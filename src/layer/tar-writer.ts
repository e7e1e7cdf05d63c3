/**
 * The reproducible layer tar writer: it walks the sources into a tree (walk.ts, metadata only), orders
 * it into headers (tar-plan.ts), and turns those entries into tar bytes, nothing else. Contents are
 * plain Buffers, small files read whole (synchronously) and big files in 1 MiB reads, because
 * per-entry stream machinery, not the disk, is what costs time (docs/benchmarks.md).
 *
 * Speed-ups attach through the seam of tar-entry.ts and cannot change the bytes: observers see the
 * entries as they are written (offset-record.ts, mirror.ts), and a ContentSource may supply unchanged
 * contents (previous-pack.ts). The caller composes them in PackOptions.
 */
import { createHash } from 'node:crypto';
import { writeSync } from 'node:fs';
import { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import { READ_CHUNK, SMALL_FILE, readLarge, readSmall } from './source-read.js';
import type { ContentSource, TarEntry, TarObserver } from './tar-entry.js';
import { END_OF_ARCHIVE, contentPadding, encodeHeader } from './tar-header.js';
import { planEntries, type HeaderOptions } from './tar-plan.js';
import { addExplicit, addFromDisk, newTree, type LayerSource, type WalkOptions } from './walk.js';

/** Options of packDirectory / packSources. */
export interface PackOptions extends HeaderOptions {
  /** chown: every entry read from disk gets this uid/gid (default: the numeric ids on disk). */
  owner?: { uid: number; gid: number };
  /** chmod: permission bits for every regular file and directory read from disk (not symlinks). */
  mode?: number;
  /** Permission bits for directories only; wins over `mode` for directories. */
  dirMode?: number;
  /** Archive path under which a `packDirectory` tree is placed, e.g. `srv/app`; parents are written too. */
  prefix?: string;
  /**
   * Ignore rules: called for every path below a directory source with its path relative to that
   * source's `from`; false drops the path (and, for a directory, its whole subtree).
   */
  filter?: (relPath: string, isDir: boolean, source: { from: string; to: string }) => boolean;
  /**
   * Overlay upper-dir mode: 0/0 character devices (and zero-size files carrying the overlay
   * `whiteout` xattr) become empty `.wh.NAME` files with mode 0600; directories whose overlay `opaque`
   * xattr is `y` are followed by `DIR/.wh..wh..opq`; files' `security.capability` is recorded as PAX
   * `SCHILY.xattr.security.capability`. Xattrs are read with one getfattr per source.
   */
  overlay?: boolean;
  /** Which xattr namespace overlayfs used: `trusted` (default) or `user` (mounted with userxattr). */
  overlayXattrPrefix?: 'trusted' | 'user';
  /**
   * Ids on disk → ids recorded, for trees written in a user namespace (rootless RUN): the host sees
   * subordinate ids where the step saw 0, 1000…. Default: the numeric ids on disk.
   */
  hostIds?: { uid(host: number): number; gid(host: number): number };
  /**
   * See every entry as it is written (tar-entry.ts), in this order: e.g. an OffsetRecorder
   * (offset-record.ts) or a LayerMirror (mirror.ts). They cannot change the tar.
   */
  observers?: readonly (TarObserver | undefined)[];
  /**
   * Where unchanged regular files' contents may come from instead of their sources, e.g. a
   * PreviousTarReader (previous-pack.ts) over the earlier pack of the same sources. Same bytes either
   * way; the writer closes it when the pack ends.
   */
  content?: ContentSource;
}

/** Coalesced stream pieces are at least this big: fewer, larger chunks through the stream. */
const COALESCE = 64 * 1024;

/**
 * Packs the tree of directory `dir` (its contents at the archive root, or under `opts.prefix`).
 * Same guarantees as packSources, which it calls with `[{ from: dir, to: opts.prefix ?? '' }]`.
 */
export function packDirectory(dir: string, opts: PackOptions = {}): Readable {
  return packSources([{ from: dir, to: opts.prefix ?? '' }], opts);
}

/**
 * Streams an uncompressed layer tar built from `sources` (later sources override earlier ones at the
 * same path). Guarantees:
 * - Every path appears once, parents before children, each directory's children in UTF-8 byte order,
 *   whiteouts before their siblings and an opaque marker right after its directory; parent
 *   directories of every destination are written (attributes from `opts.parentAttrs`).
 * - Headers are USTAR, with a PAX `x` header only where needed (long or non-ASCII names/link names,
 *   sizes >= 8 GiB, uid/gid >= 2^21); directory names end in `/`; uname/gname, atime, ctime and
 *   global headers are never written; uid/gid are numeric. The same tree and options give the same
 *   bytes on any machine.
 * - Hard links among files read from disk (same dev and inode) are written once, later occurrences as
 *   typeflag 1 pointing at the first in archive order. Symlink targets are verbatim. Character and block
 *   devices and FIFOs are kept; sockets are skipped (tar cannot hold them).
 * - Errors (unreadable source, non-UTF-8 names, a file that changed size while being read) make the
 *   stream fail with a DimgError; no partial archive ever ends cleanly.
 */
export function packSources(sources: LayerSource[], opts: PackOptions = {}): Readable {
  return Readable.from(coalesce(generateTar(sources, opts, false)), { objectMode: false, highWaterMark: 1 << 20 });
}

/**
 * Packs exactly like packSources (the same bytes) straight into the file descriptor `fd` (open for
 * writing at offset 0), hashing on the way, and resolves with the tar's diff_id and size. Writes are
 * synchronous through one reused 1 MiB buffer and big files are read into one reused buffer: no
 * stream machinery, no thread-pool round trip per chunk and next to no garbage, where a 50 MiB file
 * through streams allocates a fresh buffer per chunk and keeps the garbage collector busy.
 * The caller owns `fd` (closing, fsync). Fails like packSources.
 */
export async function packSourcesToFile(sources: LayerSource[], opts: PackOptions, fd: number): Promise<{ diffId: Digest; size: number }> {
  const hash = createHash('sha256');
  const out = Buffer.allocUnsafe(OUT_BUFFER);
  let used = 0;
  let size = 0;
  const flush = (): void => {
    if (used === 0) return;
    hash.update(out.subarray(0, used));
    writeFully(fd, out, used);
    used = 0;
  };
  for await (const piece of generateTar(sources, opts, true)) {
    size += piece.length;
    if (piece.length >= OUT_BUFFER / 2) {
      // Big file chunks go straight through; the buffer keeps the order of what came before.
      flush();
      hash.update(piece);
      writeFully(fd, piece, piece.length);
      continue;
    }
    if (used + piece.length > OUT_BUFFER) flush();
    piece.copy(out, used);
    used += piece.length;
  }
  flush();
  return { diffId: `sha256:${hash.digest('hex')}` as Digest, size };
}

const OUT_BUFFER = 1 << 20;

function writeFully(fd: number, buf: Buffer, len: number): void {
  let off = 0;
  while (off < len) off += writeSync(fd, buf, off, len - off);
}

/**
 * The tar as a sequence of pieces: headers, contents (a big file's in 1 MiB chunks), padding, end of
 * archive. With `shared` a big file's chunks are read into one buffer and a ContentSource's small
 * contents are passed on as it lent them, so each piece is valid only until the next is requested
 * (packSourcesToFile writes it at once); without, every piece is a buffer nobody writes to again.
 * Observers hear of each entry before its content is yielded, and of the end before the archive's
 * end is yielded; a pack that fails or is dropped before then aborts them.
 */
async function* generateTar(sources: LayerSource[], opts: PackOptions, shared: boolean): AsyncGenerator<Buffer> {
  const observers = (opts.observers ?? []).filter((o): o is TarObserver => o !== undefined);
  const provider = opts.content;
  let finished = false;
  try {
    const root = newTree();
    const walkOpts: WalkOptions = {
      owner: opts.owner,
      mode: opts.mode,
      dirMode: opts.dirMode,
      filter: opts.filter,
      overlay: opts.overlay,
      overlayXattrPrefix: opts.overlayXattrPrefix,
      hostIds: opts.hostIds,
    };
    for (const source of sources) {
      if ('entry' in source) addExplicit(root, source.entry);
      else await addFromDisk(root, source, walkOpts);
    }
    const into = shared ? Buffer.allocUnsafe(READ_CHUNK) : undefined;
    /** Bytes of the archive so far. */
    let offset = 0;
    for (const p of planEntries(root, opts)) {
      const { header, source } = p;
      const encoded = encodeHeader(header);
      const entry: { -readonly [K in keyof TarEntry]: TarEntry[K] } = {
        header,
        encoded,
        offset: offset + encoded.length,
        source,
        reused: false,
      };
      offset = entry.offset + header.size + contentPadding(header.size);
      yield encoded;
      if (source && header.size > SMALL_FILE) {
        const kept = provider?.large(entry, into);
        entry.reused = kept !== undefined;
        for (const o of observers) o.entry(entry, undefined);
        for await (const chunk of kept ?? readLarge(source.path, header.size, into)) {
          for (const o of observers) o.chunk?.(chunk);
          yield chunk;
        }
        for (const o of observers) o.endContent?.();
      } else {
        let content = p.data;
        if (source) {
          const kept = provider?.small(entry);
          entry.reused = kept !== undefined;
          // The provider lends its buffer until its next call: copy it when the stream may keep it.
          content = kept === undefined ? readSmall(source.path, header.size) : shared ? kept : Buffer.from(kept);
        } else if (header.type === 'file') content ??= EMPTY;
        for (const o of observers) o.entry(entry, content);
        if (content && content.length > 0) yield content;
      }
      const pad = contentPadding(header.size);
      if (pad > 0) yield ZEROS.subarray(0, pad);
    }
    for (const o of observers) o.finish?.();
    finished = true;
    yield END_OF_ARCHIVE;
  } finally {
    provider?.close();
    if (!finished) for (const o of observers) o.abort?.();
  }
}

/**
 * Joins small pieces into fresh buffers of at least 64 KiB for a stream (which may keep what it is
 * given); pieces of 64 KiB and more, a big file's chunks, pass as they are after what came before.
 */
async function* coalesce(pieces: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingLen = 0;
  for await (const piece of pieces) {
    if (piece.length >= COALESCE) {
      if (pendingLen > 0) yield Buffer.concat(pending, pendingLen);
      pending = [];
      pendingLen = 0;
      yield piece;
      continue;
    }
    pending.push(piece);
    pendingLen += piece.length;
    if (pendingLen >= COALESCE) {
      yield Buffer.concat(pending, pendingLen);
      pending = [];
      pendingLen = 0;
    }
  }
  if (pendingLen > 0) yield Buffer.concat(pending, pendingLen);
}

/** Zero bytes for padding (never written to). */
const ZEROS = Buffer.alloc(512);

const EMPTY = Buffer.alloc(0);
