/**
 * Path resolution confined to an extraction root, for a Node that has no openat2/os.Root: every
 * component is checked with lstat, symlinks created by the archive being extracted are never
 * traversed, and pre-existing symlinks (lower layers when flattening) are resolved lexically inside
 * the root, as a chroot would, so no path can leave it. The walk itself is root-walk.ts's, shared with
 * the read-only lookups of scoped-path.ts; this class adds what extraction needs around it.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DimgError } from '../errors.js';
import { unsafeEntry } from './paths.js';
import { lstatOrUndefined, walkInRoot } from './root-walk.js';

/** An extraction root and what this extraction has done below it. Paths are root-relative, `/`-joined. */
export class SafeRoot {
  /** Real directories verified (or created) during this extraction. */
  private readonly dirs = new Set<string>(['']);
  /** Symlinks this archive created: traversing them is refused. */
  readonly planted = new Set<string>();
  /** Parent directories this extraction created implicitly. */
  readonly made = new Set<string>();

  constructor(readonly root: string) {}

  abs(rel: string): string {
    return rel === '' ? this.root : join(this.root, rel);
  }

  /**
   * Resolves the directory `parts` to a real directory below the root and returns its relative path.
   * Missing components are created (mode 0755) when `create`, else undefined is returned. Refuses
   * (LAYER_UNSAFE, naming `entry`) to pass through a symlink planted by this archive; a non-directory
   * component is LAYER_INVALID.
   */
  resolveDir(parts: readonly string[], entry: string, create: boolean): string | undefined {
    const end = walkInRoot(this.root, parts, {
      directory: true,
      knownDirs: this.dirs,
      missing: (rel, abs) => {
        if (!create) return false;
        mkdirSync(abs, { mode: 0o755 });
        this.dirs.add(rel);
        this.made.add(rel);
        return true;
      },
      dir: (rel) => this.dirs.add(rel),
      symlink: (rel) => {
        if (this.planted.has(rel)) {
          const why = `its parent "${rel}" is a symlink created earlier in this archive; writing through it is refused`;
          throw unsafeEntry(entry, why);
        }
      },
      notDirectory: (rel) => {
        const message = `layer entry ${JSON.stringify(entry)}: its parent "${rel}" is not a directory`;
        throw new DimgError('LAYER_INVALID', message, 'the layer does not fit the layers below it');
      },
      loop: () => unsafeEntry(entry, 'too many levels of symbolic links in its parent path'),
    });
    return end?.rel;
  }

  /**
   * Checks, without creating or following anything, that every component of the directory `rel` is
   * a real directory right now. Used before batched operations run by other processes.
   */
  verifyDir(rel: string, entry: string): void {
    if (rel === '') return;
    const parts = rel.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const st = lstatOrUndefined(this.abs(parts.slice(0, i).join('/')));
      if (!st || !st.isDirectory()) throw unsafeEntry(entry, `its parent "${parts.slice(0, i).join('/')}" changed into a non-directory later in the archive`);
    }
  }

  /** Removes whatever is at `rel` (recursively, never following symlinks) and forgets cached state below it. */
  remove(rel: string): void {
    rmSync(this.abs(rel), { recursive: true, force: true });
    this.forget(rel);
  }

  /** Records that `rel` is now a real directory. */
  markDir(rel: string): void {
    this.dirs.add(rel);
  }

  /** Drops cached knowledge about `rel` and everything below it. */
  forget(rel: string): void {
    const prefix = `${rel}/`;
    for (const d of this.dirs) if (d === rel || d.startsWith(prefix)) this.dirs.delete(d);
    for (const s of this.planted) if (s === rel || s.startsWith(prefix)) this.planted.delete(s);
  }
}
