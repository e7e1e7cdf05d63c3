/**
 * Content digests of context files, memoised in the store (`build/file-digests.json`) by path and
 * stat identity (inode, size, mtime, ctime): an unchanged 50 MiB file is not re-read on the next
 * build, yet the cache keys built from these digests depend on content only, never on mtimes.
 */
import { closeSync, openSync, promises as fs, readFileSync, readSync, type Stats } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Digest } from '../oci/digest.js';
import { tempPath } from '../store/fsutil.js';
import { ensurePrivateDir } from '../store/private-dirs.js';

const SMALL = 1 << 20;

/** A memo of file digests, loaded once per build and saved at the end. */
export class FileDigests {
  private dirty = false;

  private constructor(
    private readonly path: string | undefined,
    private readonly tmpDir: string | undefined,
    private readonly memo: Map<string, { k: string; d: Digest }>,
  ) {}

  /** Loads the memo of the store rooted at `storeRoot` (an empty memo when absent or unreadable). */
  static async load(storeRoot: string, tmpDir: string): Promise<FileDigests> {
    const path = join(storeRoot, 'build', 'file-digests.json');
    let memo = new Map<string, { k: string; d: Digest }>();
    try {
      memo = new Map(Object.entries(JSON.parse(await fs.readFile(path, 'utf8')) as Record<string, { k: string; d: Digest }>));
    } catch {
      /* first build, or a damaged memo: start empty */
    }
    return new FileDigests(path, tmpDir, memo);
  }

  /** A memo that is never saved (tests, one-off hashing). */
  static inMemory(): FileDigests {
    return new FileDigests(undefined, undefined, new Map());
  }

  /** The memoised sha256 of `path` when its lstat `st` is unchanged since it was hashed, else undefined (no I/O). */
  known(path: string, st: Stats): Digest | undefined {
    const hit = this.memo.get(path);
    return hit && hit.k === statKey(st) ? hit.d : undefined;
  }

  /** The sha256 of the regular file at `path` whose lstat is `st`. */
  async digest(path: string, st: Stats): Promise<Digest> {
    const k = statKey(st);
    const hit = this.memo.get(path);
    if (hit && hit.k === k) return hit.d;
    const d = await hashFile(path, st.size);
    this.memo.set(path, { k, d });
    this.dirty = true;
    return d;
  }

  /**
   * Writes the memo back when it changed (best effort: a lost memo only costs re-hashing). Temp file
   * and rename, so readers see the old or the new memo, but no fsync: after a crash the file is at
   * worst empty or the previous version (both safe: entries are checked against the file's stat), and
   * two fsyncs per build are not worth protecting a cache.
   */
  async save(): Promise<void> {
    if (!this.dirty || !this.path || !this.tmpDir) return;
    const tmp = tempPath(this.tmpDir, 'digests');
    try {
      await ensurePrivateDir(join(this.path, '..'));
      await fs.writeFile(tmp, JSON.stringify(Object.fromEntries(this.memo)), { mode: 0o644 });
      await fs.rename(tmp, this.path);
      this.dirty = false;
    } catch {
      await fs.rm(tmp, { force: true }).catch(() => undefined);
    }
  }
}

/** What must be unchanged for a memoised digest to hold: inode, size, mtime and ctime. */
function statKey(st: Stats): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

let chunk: Buffer | undefined;

/**
 * sha256 of a file, read synchronously: small files whole, big ones in 1 MiB reads into one reused
 * buffer. Through the thread pool a small file costs four round trips (open, fstat, read, close) and a
 * big one a fresh buffer per chunk for the garbage collector; a cold build hashes thousands of files.
 */
async function hashFile(path: string, size: number): Promise<Digest> {
  const h = createHash('sha256');
  if (size <= SMALL) {
    h.update(readFileSync(path));
  } else {
    chunk ??= Buffer.allocUnsafe(SMALL);
    const fd = openSync(path, 'r');
    try {
      for (;;) {
        const n = readSync(fd, chunk, 0, chunk.length, null);
        if (n === 0) break;
        h.update(n === chunk.length ? chunk : chunk.subarray(0, n));
        // One event-loop turn per 64 MiB keeps signals and output flowing on huge files.
        if (++turns % 64 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      closeSync(fd);
    }
  }
  return `sha256:${h.digest('hex')}`;
}

let turns = 0;
