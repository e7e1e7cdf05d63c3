/**
 * Builds the in-memory tree of what a layer will contain (metadata only, never file contents) from
 * directories and files on disk and from explicit entries. Later sources override earlier ones at the
 * same path, the way copying several sources to one destination does, so the tar never holds a path twice.
 */
import { lstatSync, promises as fs, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { DimgError, messageOf } from '../errors.js';
import { WHITEOUT_PREFIX, compareBytes, normalizeArchivePath } from './paths.js';
import { readOverlayXattrs, type OverlayXattrs } from './xattr.js';

/** Ownership and permissions of an entry. `mtime` is in whole seconds. */
export interface EntryAttrs {
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
}

/** One node's content. `fileId` (dev:ino) is set for regular files with more than one link. */
export type NodeEntry =
  | {
      kind: 'file';
      attrs: EntryAttrs;
      src: string;
      size: number;
      fileId?: string;
      xattrs?: Map<string, Buffer>;
      /** sourceStatKey when the tree was walked. */
      statKey: string;
    }
  | { kind: 'data'; attrs: EntryAttrs; data: Buffer }
  | { kind: 'directory'; attrs: EntryAttrs; opaque?: boolean }
  | { kind: 'symlink'; attrs: EntryAttrs; target: string }
  | { kind: 'link'; target: string }
  | { kind: 'char' | 'block'; attrs: EntryAttrs; major: number; minor: number }
  | { kind: 'fifo'; attrs: EntryAttrs }
  | { kind: 'whiteout'; attrs: EntryAttrs };

/** A path in the tree. A node without `entry` is a parent directory nobody described. */
export interface TreeNode {
  entry?: NodeEntry;
  children?: Map<string, TreeNode>;
}

/**
 * An entry given explicitly rather than read from disk. `path` is an archive path (leading `/`
 * ignored). Regular files carry their bytes in `data`; `link` is a hard link to the archive path
 * `linkname`. Ownership defaults to 0:0, mtime to 0; attributes are written as given.
 */
export interface ExplicitEntry {
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'link';
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  data?: Buffer;
  linkname?: string;
}

/**
 * What goes into a layer: either something on disk (`from`, an absolute path; a directory brings
 * itself and its whole tree, a file or symlink just itself) placed at archive path `to`, or an
 * explicit entry. `to: ''` (or `/`) means the archive root: a directory's contents become top level.
 */
export type LayerSource = { from: string; to: string } | { entry: ExplicitEntry };

/** How disk sources are read into the tree (see PackOptions for the public meaning). */
export interface WalkOptions {
  owner?: { uid: number; gid: number };
  mode?: number;
  dirMode?: number;
  filter?: (relPath: string, isDir: boolean, source: { from: string; to: string }) => boolean;
  overlay?: boolean;
  overlayXattrPrefix?: 'trusted' | 'user';
  hostIds?: { uid(host: number): number; gid(host: number): number };
}

/**
 * What must stay the same for a file's content to be the same as when it was read: inode, size,
 * mtime and ctime (any write changes ctime). Used to reuse what an earlier pack wrote.
 */
export function sourceStatKey(st: Stats): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

/** The ctime (ms since the epoch) a sourceStatKey was taken with. */
export function statKeyChangedMs(key: string): number {
  return Number(key.slice(key.lastIndexOf(':') + 1));
}

/** UTF-8 byte order; plain comparison where it is the same thing (no surrogates, nothing from U+E000). */
function byteOrder(a: string, b: string): number {
  if (/^[\u0000-\ud7ff]*$/.test(a) && /^[\u0000-\ud7ff]*$/.test(b)) return a < b ? -1 : a > b ? 1 : 0;
  return compareBytes(a, b);
}

/** Splits a Linux dev_t into major/minor (glibc's encoding, as in <sys/sysmacros.h>). */
export function devNumbers(rdev: number): { major: number; minor: number } {
  const hi = Math.floor(rdev / 2 ** 32);
  const lo = rdev >>> 0;
  const major = ((lo >>> 8) & 0xfff) | ((hi & 0xfffff000) >>> 0);
  const minor = (lo & 0xff) | ((lo >>> 12) & 0xfff00);
  return { major, minor };
}

function childOf(node: TreeNode, name: string): TreeNode {
  if (node.entry && node.entry.kind !== 'directory') {
    // A later source places something below a path an earlier one made a non-directory: it wins.
    delete node.entry;
  }
  if (!node.children) node.children = new Map();
  let child = node.children.get(name);
  if (!child) {
    child = {};
    node.children.set(name, child);
  }
  return child;
}

/** Sets `entry` at `parts` below `root`, creating bare parents; a non-directory drops old children. */
export function placeEntry(root: TreeNode, parts: string[], entry: NodeEntry): TreeNode {
  let node = root;
  for (const part of parts) node = childOf(node, part);
  node.entry = entry;
  if (entry.kind !== 'directory') delete node.children;
  return node;
}

/** A new empty tree. */
export function newTree(): TreeNode {
  return { children: new Map() };
}

/** Adds an explicit entry to the tree. */
export function addExplicit(root: TreeNode, e: ExplicitEntry): void {
  const parts = normalizeArchivePath(e.path).split('/').filter(Boolean);
  if (parts.length === 0) throw new DimgError('LAYER_BAD_SOURCE', `layer entry "${e.path}": an explicit entry needs a path below the root`, 'give a path such as /etc/app.conf');
  const attrs: EntryAttrs = { mode: e.mode ?? (e.type === 'directory' ? 0o755 : 0o644), uid: e.uid ?? 0, gid: e.gid ?? 0, mtime: e.mtime ?? 0 };
  switch (e.type) {
    case 'file':
      placeEntry(root, parts, { kind: 'data', attrs, data: e.data ?? Buffer.alloc(0) });
      break;
    case 'directory':
      placeEntry(root, parts, { kind: 'directory', attrs });
      break;
    case 'symlink':
    case 'link':
      if (e.linkname === undefined) throw new DimgError('LAYER_BAD_SOURCE', `layer entry "${e.path}": a ${e.type} needs a linkname`, 'set linkname');
      placeEntry(root, parts, e.type === 'symlink' ? { kind: 'symlink', attrs, target: e.linkname } : { kind: 'link', target: normalizeArchivePath(e.linkname) });
      break;
  }
}

/**
 * Adds `source.from` (and, for a directory, everything below it, filtered) at `source.to`.
 * Fails with LAYER_BAD_SOURCE when `from` cannot be read and LAYER_NAME_ENCODING for a file name
 * that is not valid UTF-8 (it could not be written into the tar faithfully).
 */
export async function addFromDisk(root: TreeNode, source: { from: string; to: string }, opts: WalkOptions): Promise<void> {
  const toParts = normalizeArchivePath(source.to).split('/').filter(Boolean);
  let st: Stats;
  try {
    st = await fs.lstat(source.from);
  } catch (err) {
    throw new DimgError('LAYER_BAD_SOURCE', `layer source ${source.from}: ${messageOf(err)}`, 'check that the path exists and is readable');
  }
  const xattrs = opts.overlay && st.isDirectory() ? await readOverlayXattrs(source.from, opts.overlayXattrPrefix ?? 'trusted') : undefined;
  const walker = new Walker(opts, source, xattrs);
  if (st.isDirectory()) {
    // The source directory becomes `to` itself; at the archive root there is no entry for it.
    const node = toParts.length === 0 ? root : placeEntry(root, toParts, walker.entryFor(source.from, st)!);
    await walker.walkDir(source.from, '', node);
  } else {
    if (toParts.length === 0) throw new DimgError('LAYER_BAD_SOURCE', `layer source ${source.from}: a single file needs a destination path`, 'give the file a name in the archive');
    const entry = walker.entryFor(source.from, st);
    if (entry) placeEntry(root, toParts, entry);
  }
}

class Walker {
  constructor(
    private readonly opts: WalkOptions,
    private readonly source: { from: string; to: string },
    private readonly xattrs: OverlayXattrs | undefined,
  ) {}

  attrs(st: Stats, isDir: boolean): EntryAttrs {
    let mode = st.mode & 0o7777;
    if (isDir && this.opts.dirMode !== undefined) mode = this.opts.dirMode;
    else if (this.opts.mode !== undefined && (isDir || st.isFile())) mode = this.opts.mode;
    return {
      mode,
      uid: this.opts.owner?.uid ?? this.opts.hostIds?.uid(st.uid) ?? st.uid,
      gid: this.opts.owner?.gid ?? this.opts.hostIds?.gid(st.gid) ?? st.gid,
      mtime: Math.max(0, Math.floor(st.mtimeMs / 1000)),
    };
  }

  /**
   * The tree entry for one file system object; undefined for sockets, which tar cannot hold and which
   * are skipped as Docker skips them (a daemon started by a RUN may leave one behind).
   */
  entryFor(abs: string, st: Stats): NodeEntry | undefined {
    if (st.isDirectory()) {
      return { kind: 'directory', attrs: this.attrs(st, true), opaque: this.xattrs?.opaque.has(abs) === true };
    }
    if (st.isFile()) {
      if (this.xattrs?.whiteout.has(abs) && st.size === 0) return { kind: 'whiteout', attrs: { ...this.attrs(st, false), mode: 0o600 } };
      return { kind: 'file', attrs: this.attrs(st, false), src: abs, size: st.size, fileId: st.nlink > 1 ? `${st.dev}:${st.ino}` : undefined, xattrs: this.xattrs?.recorded.get(abs), statKey: sourceStatKey(st) };
    }
    // The link itself, with its target string; what it points at is never opened.
    if (st.isSymbolicLink()) return { kind: 'symlink', attrs: this.attrs(st, false), target: readlinkSync(abs) };
    if (st.isCharacterDevice() || st.isBlockDevice()) {
      const { major, minor } = devNumbers(st.rdev);
      if (this.opts.overlay && st.isCharacterDevice() && major === 0 && minor === 0) {
        // overlayfs records a deletion as a 0/0 character device: it becomes a `.wh.` file.
        return { kind: 'whiteout', attrs: { ...this.attrs(st, false), mode: 0o600 } };
      }
      return { kind: st.isCharacterDevice() ? 'char' : 'block', attrs: this.attrs(st, false), major, minor };
    }
    if (st.isFIFO()) return { kind: 'fifo', attrs: this.attrs(st, false) };
    return undefined;
  }

  async walkDir(dirAbs: string, dirRel: string, node: TreeNode): Promise<void> {
    // Synchronous per directory (one event-loop turn between directories): thousands of lstat calls
    // through the thread pool cost ten times more than doing them inline.
    await new Promise<void>((resolve) => setImmediate(resolve));
    let listed: string[];
    try {
      listed = readdirSync(dirAbs);
    } catch (err) {
      throw new DimgError('LAYER_BAD_SOURCE', `layer source ${dirAbs}: ${messageOf(err)}`, 'check that the directory is readable');
    }
    // Invalid UTF-8 decodes to U+FFFD: only a directory with such a name is read again as raw bytes
    // to tell a real U+FFFD from an undecodable name (checking every name costs a buffer round trip each).
    if (listed.some((n) => n.includes('\ufffd'))) {
      for (const raw of readdirSync(dirAbs, { encoding: 'buffer' })) {
        if (!Buffer.from(raw.toString('utf8'), 'utf8').equals(raw)) {
          throw new DimgError('LAYER_NAME_ENCODING', `layer source ${join(dirAbs, raw.toString('latin1'))}: file name is not valid UTF-8`, 'rename the file; tar entry names are stored as UTF-8');
        }
      }
    }
    const decoded = listed.sort(byteOrder);
    const stats = decoded.map((name) => {
      try {
        return lstatSync(join(dirAbs, name));
      } catch (err) {
        throw new DimgError('LAYER_BAD_SOURCE', `layer source ${join(dirAbs, name)}: ${messageOf(err)}`, 'the file changed or vanished while the layer was being made; retry');
      }
    });
    const subdirs: Array<Promise<void>> = [];
    for (let i = 0; i < decoded.length; i++) {
      const name = decoded[i]!;
      const st = stats[i]!;
      const rel = dirRel ? `${dirRel}/${name}` : name;
      const abs = join(dirAbs, name);
      if (this.opts.filter && !this.opts.filter(rel, st.isDirectory(), this.source)) continue;
      if (name.startsWith(WHITEOUT_PREFIX)) {
        throw new DimgError('LAYER_BAD_SOURCE', `layer source ${abs}: a file named ${name} would be read as a whiteout by every image consumer`, 'rename it or exclude it from the layer');
      }
      const entry = this.entryFor(abs, st);
      if (!entry) continue;
      const child = placeEntry(node, [name], entry);
      if (entry.kind === 'directory') subdirs.push(this.walkDir(abs, rel, child));
    }
    await Promise.all(subdirs);
  }
}
