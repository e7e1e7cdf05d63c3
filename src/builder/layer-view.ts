/**
 * Read-only lookups in a stack of unpacked layer dirs (overlay lowerdir form, newest first) without
 * mounting anything: what a path is in the merged view, and small file reads (e.g. /etc/passwd).
 * Whiteouts (0/0 character devices) hide a path and everything below it. Opaque-directory xattrs are
 * not consulted (Node has no xattr API); a path hidden only by an opaque dir of a newer layer is
 * still reported, which for the uses here (mount-point attributes, user lookup) is harmless.
 */
import { promises as fs, type Stats } from 'node:fs';
import { join } from 'node:path';

/** What a lookup found: the file in the layer dir that provides the path, and its lstat. */
export interface ViewEntry {
  /** Absolute path of the providing file inside one layer dir. */
  file: string;
  stats: Stats;
}

/** True for an overlay whiteout: a character device with device number 0/0. */
export function isWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

/**
 * A merged view over `dirs` (newest first). `rel` is a root-relative path such as `etc/passwd`.
 */
export class LayerView {
  constructor(readonly dirs: readonly string[]) {}

  /** The entry providing `rel` in the merged view, or undefined when it does not exist. */
  async lookup(rel: string): Promise<ViewEntry | undefined> {
    const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
    for (const dir of this.dirs) {
      // A whiteout or non-directory at any ancestor in this layer hides the path from older layers.
      let hidden = false;
      for (let i = 1; i < parts.length; i++) {
        const st = await fs.lstat(join(dir, ...parts.slice(0, i))).catch(() => undefined);
        if (st && !st.isDirectory()) {
          hidden = true;
          break;
        }
      }
      if (hidden) return undefined;
      const file = join(dir, ...parts);
      const st = await fs.lstat(file).catch(() => undefined);
      if (!st) continue;
      if (isWhiteout(st)) return undefined;
      return { file, stats: st };
    }
    return undefined;
  }

  /** Reads a small regular file through the view (following no symlinks), or undefined. */
  async readFile(rel: string): Promise<string | undefined> {
    const e = await this.lookup(rel);
    if (!e || !e.stats.isFile() || e.stats.size > 4 << 20) return undefined;
    return fs.readFile(e.file, 'utf8').catch(() => undefined);
  }
}
