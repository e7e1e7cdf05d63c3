/**
 * Ordering a layer's tree into tar headers: the archive order and every attribute decision of the
 * reproducible tar writer live here (what goes where, with which mode, owner and clamped mtime).
 */
import { OPAQUE_MARKER, WHITEOUT_PREFIX, compareBytes } from './paths.js';
import type { EntrySource } from './tar-entry.js';
import type { TarHeader } from './tar-header.js';
import type { EntryAttrs, NodeEntry, TreeNode } from './walk.js';

/** The options of PackOptions that decide headers. */
export interface HeaderOptions {
  /**
   * Reproducible mode (default true): every mtime is clamped to `sourceDateEpoch` (default 0), so the
   * tar does not depend on when files were written. With false, real mtimes (whole seconds) are kept.
   */
  reproducible?: boolean;
  /** SOURCE_DATE_EPOCH in seconds: mtimes newer than this are set to it. */
  sourceDateEpoch?: number;
  /**
   * Attributes of parent directories that no source describes (e.g. `srv/` for prefix `srv/app`).
   * Default: mode 0755, uid/gid 0, mtime 0. A builder that knows the lower layers should pass theirs,
   * since the layer's entry replaces the attributes of the existing directory.
   */
  parentAttrs?: (archivePath: string) => EntryAttrs | undefined;
}

/** One header to write, in archive order; `source` or `data` give a regular file's content. */
export interface PlannedEntry {
  header: TarHeader;
  /** A regular file read from disk. */
  source?: EntrySource;
  /** A regular file given with its bytes. */
  data?: Buffer;
}

/**
 * The tree's entries in archive order: each directory's children in UTF-8 byte order, whiteouts
 * before their siblings, an opaque marker right after its directory, parents nobody described with
 * `opts.parentAttrs`, and a regular file met again through another hard link as a link to the first.
 */
export function planEntries(root: TreeNode, opts: HeaderOptions): PlannedEntry[] {
  const reproducible = opts.reproducible ?? true;
  const epoch = opts.sourceDateEpoch ?? 0;
  const clamp = (t: number): number => (reproducible ? Math.min(t, epoch) : t);
  const out: PlannedEntry[] = [];
  const firstOfInode = new Map<string, string>();
  const defaultParent: EntryAttrs = { mode: 0o755, uid: 0, gid: 0, mtime: 0 };

  const header = (name: string, type: TarHeader['type'], a: EntryAttrs, extra: Partial<TarHeader> = {}): TarHeader => ({
    name, type, mode: a.mode, uid: a.uid, gid: a.gid, size: 0, mtime: clamp(a.mtime), ...extra,
  });

  const visit = (node: TreeNode, path: string): void => {
    const children = node.children ? [...node.children.entries()] : [];
    const isWhiteout = ([, c]: [string, TreeNode]): boolean => c.entry?.kind === 'whiteout';
    const byName = (a: [string, TreeNode], b: [string, TreeNode]): number => compareBytes(a[0], b[0]);
    const whiteouts = children.filter(isWhiteout).sort(byName);
    const ordered = [...whiteouts, ...children.filter((c) => !isWhiteout(c)).sort(byName)];
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
        const whiteout = parent ? `${parent}/${WHITEOUT_PREFIX}${name}` : `${WHITEOUT_PREFIX}${name}`;
        out.push({ header: header(whiteout, 'file', e.attrs) });
        return;
      case 'file': {
        const first = e.fileId !== undefined ? firstOfInode.get(e.fileId) : undefined;
        if (first !== undefined) {
          out.push({ header: header(path, 'link', e.attrs, { linkname: first }) });
          return;
        }
        if (e.fileId !== undefined) firstOfInode.set(e.fileId, path);
        const source: EntrySource = { path: e.src, statKey: e.statKey, origin: `${e.src}\0${e.statKey}` };
        out.push({ header: header(path, 'file', e.attrs, { size: e.size, xattrs: e.xattrs }), source });
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
