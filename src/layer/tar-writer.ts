/**
 * The reproducible layer tar writer. A pack first builds the tree (walk.ts, metadata only), orders it,
 * then streams headers and file contents as plain Buffers through one Readable: small files are read
 * whole (synchronously), big files in 1 MiB reads, and output is coalesced into 64 KiB
 * chunks, because per-entry stream machinery, not the disk, is what costs time (docs/benchmarks.md).
 */
import { promises as fs, readFileSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import type { Digest } from '../oci/digest.js';
import { Readable } from 'node:stream';
import { DimgError, messageOf } from '../errors.js';
import { OPAQUE_MARKER, WHITEOUT_PREFIX, compareBytes } from './paths.js';
import { END_OF_ARCHIVE, contentPadding, encodeHeader, type TarHeader } from './tar-header.js';
import { MirrorWriter, type LayerMirror } from './mirror.js';
import { PreviousTarReader, type PackedFile, type PreviousPack } from './previous-pack.js';
import { addExplicit, addFromDisk, newTree, statKeyChangedMs, type EntryAttrs, type LayerSource, type NodeEntry, type TreeNode, type WalkOptions } from './walk.js';

/** Options of packDirectory / packSources. */
export interface PackOptions {
  /**
   * Reproducible mode (default true): every mtime is clamped to `sourceDateEpoch` (default 0), so the
   * tar does not depend on when files were written. With false, real mtimes (whole seconds) are kept.
   */
  reproducible?: boolean;
  /** SOURCE_DATE_EPOCH in seconds: mtimes newer than this are set to it. */
  sourceDateEpoch?: number;
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
   * Attributes of parent directories that no source describes (e.g. `srv/` for prefix `srv/app`).
   * Default: mode 0755, uid/gid 0, mtime 0. A builder that knows the lower layers should pass theirs,
   * since the layer's entry replaces the attributes of the existing directory.
   */
  parentAttrs?: (archivePath: string) => EntryAttrs | undefined;
  /**
   * Also materialise every entry into `mirror.dir` (an empty directory) in overlay-lowerdir form, from
   * the same bytes that go into the tar, exactly as extractLayer would unpack it. `mirror.complete` is
   * set to true once the archive ended and every entry could be written; otherwise the directory is
   * partial and must be discarded (see mirror.ts). Meant for layers without whiteouts or xattrs.
   */
  mirror?: LayerMirror;
  /**
   * An earlier pack of these sources: a regular file whose source is unchanged since it was recorded
   * there is copied from that tar instead of read again (see previous-pack.ts). Same bytes either way.
   */
  previous?: PreviousPack;
  /**
   * Filled while packing: every regular file read from disk, with its content offset (for a later
   * pack's `previous`). Files whose ctime is not before `recordChangedBefore` are left out, as git
   * treats "racily clean" index entries: a same-size rewrite within the file system's timestamp
   * granularity of the state recorded would keep the stat key, and the old bytes would be reused.
   */
  record?: Map<string, PackedFile>;
  /** See `record`: default 2 s before the pack starts (ms since the epoch). */
  recordChangedBefore?: number;
}

/** How long a file must have been left alone before a pack records it for reuse (see PackOptions.record). */
const RACY_MS = 2000;

const SMALL_FILE = 1 << 20;
const READ_CHUNK = 1 << 20;
const COALESCE = 64 * 1024;

/** One header to write, in archive order; `src`/`data` give a regular file's content. */
interface Planned {
  header: TarHeader;
  src?: string;
  data?: Buffer;
  /** sourceStatKey of `src` when the tree was walked. */
  statKey?: string;
}

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
  return Readable.from(generateTar(sources, opts, false), { objectMode: false, highWaterMark: 1 << 20 });
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
 * The tar as a sequence of Buffers. With `reuse` the pieces come one by one (headers, contents,
 * padding) and a big file's chunks share one buffer, so each piece is valid only until the next is
 * requested (packSourcesToFile copies or writes it at once); without, pieces are coalesced into
 * fresh buffers of at least 64 KiB that a stream may keep.
 */
async function* generateTar(sources: LayerSource[], opts: PackOptions, reuse: boolean): AsyncGenerator<Buffer> {
  const root = newTree();
  const walkOpts: WalkOptions = { owner: opts.owner, mode: opts.mode, dirMode: opts.dirMode, filter: opts.filter, overlay: opts.overlay, overlayXattrPrefix: opts.overlayXattrPrefix, hostIds: opts.hostIds };
  const mirror = opts.mirror ? new MirrorWriter(opts.mirror) : undefined;
  const previous = opts.previous ? new PreviousTarReader(opts.previous) : undefined;
  let finished = false;
  /** Bytes of the archive so far: where the next content starts once its header is out. */
  let offset = 0;
  const recordBefore = opts.recordChangedBefore ?? Date.now() - RACY_MS;
  try {
    for (const source of sources) {
      if ('entry' in source) addExplicit(root, source.entry);
      else await addFromDisk(root, source, walkOpts);
    }
    const plan = planEntries(root, opts);
    let pending: Buffer[] = [];
    let pendingLen = 0;
    const shared = reuse ? Buffer.allocUnsafe(READ_CHUNK) : undefined;
    for (const p of plan) {
      const header = encodeHeader(p.header);
      offset += header.length;
      const origin = p.src !== undefined && p.statKey !== undefined ? `${p.src}\0${p.statKey}` : undefined;
      if (origin !== undefined && opts.record && statKeyChangedMs(p.statKey!) < recordBefore) opts.record.set(p.header.name, { origin, offset });
      offset += p.header.size + contentPadding(p.header.size);
      if (reuse) yield header;
      else {
        pending.push(header);
        pendingLen += header.length;
      }
      let content: Buffer | undefined = p.data;
      /** True when the content comes from the previous tar: the source was not read, so not re-checked. */
      let recorded = false;
      if (p.src && p.header.size <= SMALL_FILE) {
        const kept = origin !== undefined ? previous?.small(p.header.name, origin, header, p.header.size) : undefined;
        // Synchronous on purpose: measured 10x faster than the thread pool for small files
        // (docs/benchmarks.md), and each read blocks for microseconds only.
        if (kept) {
          // A window slice is overwritten by the next read: copy it when the stream may keep it.
          content = reuse ? kept : Buffer.from(kept);
          recorded = true;
        } else content = readSmall(p.src, p.header.size);
      } else if (p.src) {
        if (pendingLen > 0) {
          yield pending.length === 1 ? pending[0]! : Buffer.concat(pending);
          pending = [];
          pendingLen = 0;
        }
        const at = origin !== undefined ? previous?.locate(p.header.name, origin, header, p.header.size) : undefined;
        mirror?.entry(p.header, undefined, p.src, p.statKey, at !== undefined);
        const chunks = at !== undefined ? readRecorded(previous!, at, p.header.size, shared) : readLarge(p.src, p.header.size, shared);
        for await (const chunk of chunks) {
          mirror?.write(chunk);
          yield chunk;
        }
        mirror?.endFile();
      }
      if (mirror && !(p.src && p.header.size > SMALL_FILE)) mirror.entry(p.header, content ?? (p.header.type === 'file' ? EMPTY : undefined), p.src, p.statKey, recorded);
      const pad = contentPadding(p.header.size);
      if (reuse) {
        if (content && content.length > 0) yield content;
        if (pad > 0) yield ZEROS.subarray(0, pad);
        continue;
      }
      if (content && content.length > 0) {
        pending.push(content);
        pendingLen += content.length;
      }
      if (pad > 0) {
        pending.push(Buffer.alloc(pad));
        pendingLen += pad;
      }
      if (pendingLen >= COALESCE) {
        yield Buffer.concat(pending);
        pending = [];
        pendingLen = 0;
      }
    }
    mirror?.finish();
    finished = true;
    if (reuse) yield END_OF_ARCHIVE;
    else {
      pending.push(END_OF_ARCHIVE);
      yield Buffer.concat(pending);
    }
  } finally {
    previous?.close();
    if (!finished) mirror?.abort();
  }
}

/** Zero bytes for padding (never written to). */
const ZEROS = Buffer.alloc(512);

const EMPTY = Buffer.alloc(0);

function changed(path: string, detail: string): DimgError {
  return new DimgError('LAYER_SOURCE_CHANGED', `layer source ${path}: ${detail}`, 'a file changed while the layer was being packed; retry once nothing writes to it');
}

function readSmall(path: string, size: number): Buffer {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (err) {
    throw new DimgError('LAYER_BAD_SOURCE', `layer source ${path}: ${messageOf(err)}`, 'check that the file exists and is readable');
  }
  if (data.length !== size) throw changed(path, `size changed from ${size} to ${data.length} bytes`);
  return data;
}

/**
 * Exactly `size` bytes of `path` in 1 MiB reads; fails if the file is shorter or longer. With
 * `shared`, every chunk is read into that one buffer (valid until the next chunk is requested).
 */
async function* readLarge(path: string, size: number, shared?: Buffer): AsyncGenerator<Buffer> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(path, 'r');
  } catch (err) {
    throw new DimgError('LAYER_BAD_SOURCE', `layer source ${path}: ${messageOf(err)}`, 'check that the file exists and is readable');
  }
  try {
    const read = async (buf: Buffer, position: number) => (await fh.read(buf, 0, buf.length, position)).bytesRead;
    yield* readChunks(read, 0, size, shared, (done) => changed(path, `shrank to ${done} bytes while being read (expected ${size})`));
    const probe = await fh.read(Buffer.alloc(1), 0, 1, size);
    if (probe.bytesRead !== 0) throw changed(path, `grew beyond ${size} bytes while being read`);
  } finally {
    await fh.close();
  }
}

/** `size` bytes at `at` of the previous tar, in 1 MiB reads (into `shared` when given). */
function readRecorded(previous: PreviousTarReader, at: number, size: number, shared?: Buffer): AsyncGenerator<Buffer> {
  const damaged = () => new DimgError('LAYER_BAD_SOURCE', `previous layer ${previous.previous.tar} ended inside a recorded file`, 'run `dimg store verify`; the layer blob is damaged');
  return readChunks((buf, position) => previous.read(buf, position), at, size, shared, damaged);
}

/**
 * `size` bytes from `start` through `read` in READ_CHUNK pieces, each into `shared` when given (valid
 * until the next piece is requested) or a fresh buffer; a read of 0 bytes fails with `short(done)`.
 */
async function* readChunks(read: (buf: Buffer, position: number) => number | Promise<number>, start: number, size: number, shared: Buffer | undefined, short: (done: number) => Error): AsyncGenerator<Buffer> {
  let done = 0;
  while (done < size) {
    const want = Math.min(READ_CHUNK, size - done);
    const buf = shared ? shared.subarray(0, want) : Buffer.allocUnsafe(want);
    const n = await read(buf, start + done);
    if (n === 0) throw short(done);
    done += n;
    yield n === buf.length ? buf : buf.subarray(0, n);
  }
}

/** Orders the tree into headers: the archive order and every attribute decision live here. */
function planEntries(root: TreeNode, opts: PackOptions): Planned[] {
  const reproducible = opts.reproducible ?? true;
  const epoch = opts.sourceDateEpoch ?? 0;
  const clamp = (t: number): number => (reproducible ? Math.min(t, epoch) : t);
  const out: Planned[] = [];
  const firstOfInode = new Map<string, string>();
  const defaultParent: EntryAttrs = { mode: 0o755, uid: 0, gid: 0, mtime: 0 };

  const header = (name: string, type: TarHeader['type'], a: EntryAttrs, extra: Partial<TarHeader> = {}): TarHeader => ({
    name, type, mode: a.mode, uid: a.uid, gid: a.gid, size: 0, mtime: clamp(a.mtime), ...extra,
  });

  const visit = (node: TreeNode, path: string): void => {
    const children = node.children ? [...node.children.entries()] : [];
    const isWhiteout = ([, c]: [string, TreeNode]): boolean => c.entry?.kind === 'whiteout';
    const byName = (a: [string, TreeNode], b: [string, TreeNode]): number => compareBytes(a[0], b[0]);
    const ordered = [...children.filter(isWhiteout).sort(byName), ...children.filter((c) => !isWhiteout(c)).sort(byName)];
    for (const [name, child] of ordered) {
      const childPath = path ? `${path}/${name}` : name;
      emit(child, childPath, name, path);
    }
  };

  const emit = (node: TreeNode, path: string, name: string, parent: string): void => {
    const e: NodeEntry | undefined = node.entry;
    if (!e) {
      const a = opts.parentAttrs?.(path) ?? defaultParent;
      out.push({ header: header(`${path}/`, 'directory', a) });
      visit(node, path);
      return;
    }
    switch (e.kind) {
      case 'directory':
        out.push({ header: header(`${path}/`, 'directory', e.attrs) });
        if (e.opaque) out.push({ header: header(`${path}/${OPAQUE_MARKER}`, 'file', e.attrs) });
        visit(node, path);
        return;
      case 'whiteout':
        out.push({ header: header(parent ? `${parent}/${WHITEOUT_PREFIX}${name}` : `${WHITEOUT_PREFIX}${name}`, 'file', e.attrs) });
        return;
      case 'file': {
        const first = e.fileId !== undefined ? firstOfInode.get(e.fileId) : undefined;
        if (first !== undefined) {
          out.push({ header: header(path, 'link', e.attrs, { linkname: first }) });
          return;
        }
        if (e.fileId !== undefined) firstOfInode.set(e.fileId, path);
        out.push({ header: header(path, 'file', e.attrs, { size: e.size, xattrs: e.xattrs }), src: e.src, statKey: e.statKey });
        return;
      }
      case 'data':
        out.push({ header: header(path, 'file', e.attrs, { size: e.data.length }), data: e.data });
        return;
      case 'symlink':
        out.push({ header: header(path, 'symlink', e.attrs, { linkname: e.target }) });
        return;
      case 'link':
        out.push({ header: header(path, 'link', { mode: 0o644, uid: 0, gid: 0, mtime: 0 }, { linkname: e.target }) });
        return;
      case 'char':
      case 'block':
        out.push({ header: header(path, e.kind, e.attrs, { devmajor: e.major, devminor: e.minor }) });
        return;
      case 'fifo':
        out.push({ header: header(path, 'fifo', e.attrs) });
        return;
    }
  };

  visit(root, '');
  return out;
}
