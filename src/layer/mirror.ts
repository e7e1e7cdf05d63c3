/**
 * Materialising a layer while it is packed: a LayerMirror is a TarObserver (tar-entry.ts) that sees
 * every entry (header and the very bytes the writer puts into the tar) and creates the same entry in a
 * directory in
 * overlay-lowerdir form, with exactly the attributes extractLayer would apply when unpacking that tar
 * (mode, uid/gid when root, clamped mtimes, directory times last). A builder that needs the new layer
 * as a lowerdir right away (a later RUN step) then renames the directory into the store instead of
 * unpacking a tar it has just written, and the content is read from the sources only once.
 *
 * The mirror is an optimisation, never a reason to fail a pack: an entry it cannot reproduce exactly
 * (device nodes, FIFOs, whiteouts, xattrs) or a file-system error marks it incomplete and it stops
 * writing; the caller then discards the directory and unpacks the tar later as before.
 * Every call is synchronous: thousands of small files cost far less inline than through the thread pool.
 */
import { closeSync, lstatSync, constants as C, fchmodSync, fchownSync, futimesSync, linkSync, lchownSync, lutimesSync, mkdirSync, chmodSync, openSync, symlinkSync, utimesSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { WHITEOUT_PREFIX } from './paths.js';
import type { TarEntry, TarObserver } from './tar-entry.js';
import type { TarHeader } from './tar-header.js';
import { sourceStatKey } from './walk.js';

/** Where a LayerMirror materialises a pack. */
export interface MirrorOptions {
  /** An existing, empty directory. */
  dir: string;
  /** Apply uid/gid (default: when running as root, as extractLayer does). */
  chown?: boolean;
  /**
   * An earlier layer dir of the same step to hard-link unchanged files from instead of writing them
   * again. `sources` maps its archive paths to the `SOURCE\0STATKEY` each file was packed from (the
   * `origin` in that pack's OffsetRecorder.files). A file is linked only when its archive path was
   * written there from the same source path with the same sourceStatKey (so the same content), the
   * donor file has exactly the attributes of the new entry, and the source is still unchanged after
   * it was read (or its content came from that pack's tar, which holds the donor's very bytes).
   */
  donor?: { dir: string; sources: ReadonlyMap<string, { origin: string }> };
}

const FILE_FLAGS = C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW;
/** The process umask (it applies to the mode given to open(2)); read on first use. */
let umask: number | undefined;

function currentUmask(): number {
  if (umask === undefined) {
    try {
      // Reading is the only thing process.umask() can do without changing anything.
      umask = process.umask();
    } catch {
      umask = 0o7777; // unknown: always chmod explicitly
    }
  }
  return umask;
}

/**
 * Writes the entries of one pack into `dir` (PackOptions.observers). Once the archive ended,
 * `complete` tells whether the directory equals the unpacked tar; until then, and when it is false,
 * the directory is partial and must be discarded.
 */
export class LayerMirror implements TarObserver {
  /** The directory the layer is written into. */
  readonly dir: string;
  private ok = true;
  private ended = false;
  private readonly chown: boolean;
  private readonly dirTimes: Array<[string, number]> = [];
  private fd: number | undefined;
  private pending: { abs: string; h: TarHeader; how: { chown: boolean; chmod: boolean }; linkedFrom?: { src: string; statKey: string; recorded: boolean } } | undefined;
  private linked = 0;
  /** Directories (relative) created with the setgid bit: their new files take the directory's group. */
  private readonly setgidDirs = new Set<string>();

  constructor(private readonly target: MirrorOptions) {
    this.dir = target.dir;
    this.chown = target.chown ?? process.getuid?.() === 0;
  }

  /** True once the archive ended and every entry was materialised exactly. */
  get complete(): boolean {
    return this.ended && this.ok;
  }

  /** How many files were hard-linked from the donor (once the archive ended). */
  get linkedFiles(): number {
    return this.linked;
  }

  private fail(): void {
    this.ok = false;
    if (this.fd !== undefined) {
      try {
        closeSync(this.fd);
      } catch {
        /* already failing */
      }
      this.fd = undefined;
    }
  }

  private guard(fn: () => void): void {
    if (!this.ok) return;
    try {
      fn();
    } catch {
      this.fail();
    }
  }

  /**
   * Creates `entry`. For a regular file, `content` is its whole content, or undefined when the content
   * follows through `chunk` calls and `endContent`. A `reused` entry's content was copied from the
   * previous tar its source state was recorded with, not read from the source: it then is the donor's
   * content by construction and the source need not be checked again.
   */
  entry(entry: TarEntry, content: Buffer | undefined): void {
    const h = entry.header;
    const src = entry.source?.path;
    const statKey = entry.source?.statKey;
    const recorded = entry.reused;
    this.guard(() => {
      // One mirror is one pack: a second pack into the same directory would collide with the first.
      if (this.ended) throw new Error('mirror already ended');
      const rel = h.name.replace(/\/+$/, '');
      const base = rel.slice(rel.lastIndexOf('/') + 1);
      if (h.xattrs?.size || base.startsWith(WHITEOUT_PREFIX) || rel === '' || rel.split('/').includes('..')) {
        this.fail();
        return;
      }
      const abs = join(this.target.dir, rel);
      const mode = h.mode & 0o7777;
      switch (h.type) {
        case 'directory':
          mkdirSync(abs, { mode: 0o700 });
          if (this.chown) lchownSync(abs, h.uid, h.gid);
          chmodSync(abs, mode);
          if (mode & 0o2000) this.setgidDirs.add(rel);
          this.dirTimes.push([abs, h.mtime]);
          return;
        case 'file': {
          if (src !== undefined && statKey !== undefined) {
            const origin = `${src}\0${statKey}`;
            if (this.linkFromDonor(rel, abs, h, origin)) {
              if (content === undefined) this.pending = { abs, h, how: { chown: false, chmod: false }, linkedFrom: { src, statKey, recorded } };
              else if (!recorded && !unchanged(src, statKey)) this.fail();
              return;
            }
          }
          // Every inode change is a journal transaction: set at creation what creation can set. A
          // new file is already root:root unless its directory is setgid, and gets `mode` as asked
          // when the umask takes nothing from it and it has no special bits.
          const parent = rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '';
          const chown = this.chown && (h.uid !== 0 || h.gid !== 0 || this.setgidDirs.has(parent));
          const chmod = (mode & 0o7000) !== 0 || (mode & currentUmask()) !== 0 || chown;
          const fd = openSync(abs, FILE_FLAGS, chmod ? 0o600 : mode);
          const how = { chown, chmod };
          if (content === undefined) {
            this.fd = fd;
            this.pending = { abs, h, how };
            return;
          }
          try {
            writeAll(fd, content);
            finishFile(fd, h, how);
          } finally {
            closeSync(fd);
          }
          return;
        }
        case 'symlink':
          symlinkSync(h.linkname ?? '', abs);
          if (this.chown) lchownSync(abs, h.uid, h.gid);
          lutimesSync(abs, h.mtime, h.mtime);
          return;
        case 'link':
          linkSync(join(this.target.dir, h.linkname ?? ''), abs);
          return;
        default:
          // Devices and FIFOs need mknod, which Node lacks: unpack the tar instead.
          this.fail();
      }
    });
  }

  /** Appends a chunk of the file opened by the last `entry` call without content. */
  chunk(chunk: Buffer): void {
    this.guard(() => {
      if (this.pending?.linkedFrom) return;
      if (this.fd === undefined) throw new Error('no file open');
      writeAll(this.fd, chunk);
    });
  }

  /** Finishes the file opened by the last `entry` call without content. */
  endContent(): void {
    this.guard(() => {
      const linked = this.pending?.linkedFrom;
      if (linked) {
        this.pending = undefined;
        // The tar got what was read just now: it must still be the content the donor holds.
        if (!linked.recorded && !unchanged(linked.src, linked.statKey)) this.fail();
        return;
      }
      const fd = this.fd!;
      this.fd = undefined;
      try {
        finishFile(fd, this.pending!.h, this.pending!.how);
      } finally {
        closeSync(fd);
      }
    });
  }

  /** Called after the last entry: directory times, then the verdict. */
  finish(): void {
    this.guard(() => {
      for (let i = this.dirTimes.length - 1; i >= 0; i--) {
        const [abs, t] = this.dirTimes[i]!;
        utimesSync(abs, t, t);
      }
    });
    this.ended = true;
  }

  /** Hard-links `rel` from the donor when it holds the same content with the same attributes. */
  private linkFromDonor(rel: string, abs: string, h: TarHeader, origin: string): boolean {
    const donor = this.target.donor;
    if (!donor || donor.sources.get(rel)?.origin !== origin) return false;
    const from = join(donor.dir, rel);
    let st;
    try {
      st = lstatSync(from);
    } catch {
      return false;
    }
    const same = st.isFile() && st.size === h.size && (st.mode & 0o7777) === (h.mode & 0o7777) && (!this.chown || (st.uid === h.uid && st.gid === h.gid)) && Math.floor(st.mtimeMs / 1000) === h.mtime;
    if (!same) return false;
    linkSync(from, abs);
    this.linked++;
    return true;
  }

  /** Stops mirroring (the pack failed): the mirror stays incomplete. */
  abort(): void {
    this.fail();
    this.ended = true;
  }
}

/** True when the source at `src` still has the sourceStatKey `statKey` (its content is unchanged). */
function unchanged(src: string, statKey: string): boolean {
  try {
    return sourceStatKey(lstatSync(src)) === statKey;
  } catch {
    return false;
  }
}

function writeAll(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
}

function finishFile(fd: number, h: TarHeader, how: { chown: boolean; chmod: boolean }): void {
  // chown before chmod: chown clears setuid/setgid bits.
  if (how.chown) fchownSync(fd, h.uid, h.gid);
  if (how.chmod) fchmodSync(fd, h.mode & 0o7777);
  futimesSync(fd, h.mtime, h.mtime);
}
