/**
 * Durable file-system primitives for the store: temp files in the store's own tmp dir (same file
 * system, so rename is atomic), fsync of data and of the directory entry, and atomic JSON writes.
 */
import { promises as fs, constants as FS } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';

/** A unique temp path inside `tmpDir` (which must be on the same file system as the destination). */
export function tempPath(tmpDir: string, label = 'tmp'): string {
  return join(tmpDir, `${label}-${process.pid}-${randomBytes(6).toString('hex')}`);
}

/** fsyncs a directory so a rename inside it survives a crash. Errors (e.g. on odd file systems) are ignored. */
export async function fsyncDir(dir: string): Promise<void> {
  let fh: fs.FileHandle | undefined;
  try {
    fh = await fs.open(dir, FS.O_RDONLY);
    await fh.sync();
  } catch {
    /* some file systems refuse fsync on directories; the rename is still atomic */
  } finally {
    await fh?.close();
  }
}

/**
 * Writes `data` to `dest` atomically: temp file, fsync, rename, fsync of the parent.
 * Readers see either the old content or the new, never a partial file.
 */
export async function writeFileAtomic(dest: string, data: Buffer | string, tmpDir: string): Promise<void> {
  const tmp = tempPath(tmpDir, 'write');
  const fh = await fs.open(tmp, 'wx', 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fs.rename(tmp, dest);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
  await fsyncDir(dirname(dest));
}

/** Reads and parses a JSON file, or returns undefined when it does not exist. */
export async function readJsonFile<T>(path: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await fs.readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  return JSON.parse(text) as T;
}

/** True when `path` exists (any type, symlinks not followed). */
export async function exists(path: string): Promise<boolean> {
  try {
    await fs.lstat(path);
    return true;
  } catch {
    return false;
  }
}
