/**
 * `images.lock`: base images pinned to digests, written by `dimg lock` beside the spec and read by
 * plan/apply when present, so a moving base tag cannot change what gets built until the lock is
 * updated on purpose. JSON, keys sorted, one entry per base reference and platform.
 */
import { dirname, join } from 'node:path';
import { DimgError } from '../errors.js';
import { isDigest, type Digest } from '../oci/digest.js';
import type { ParsedReference } from '../oci/reference.js';
import { readJsonFile } from '../store/fsutil.js';

/** One pinned base. */
export interface LockEntry {
  digest: Digest;
}

/** The lock file's content. */
export interface LockFile {
  version: 1;
  /** `REF|PLATFORM` → pin. */
  bases: Record<string, LockEntry>;
}

/** The lock file path for a spec file. */
export function lockPathFor(specFile: string): string {
  return join(dirname(specFile), 'images.lock');
}

/** The key of a base in the lock: the reference's canonical string and the platform. */
export function lockKey(ref: string | ParsedReference, platform: string): string {
  return `${ref}|${platform}`;
}

/** Reads the lock, or undefined when there is none; malformed files are LOCK_INVALID. */
export async function readLock(path: string): Promise<LockFile | undefined> {
  let data: LockFile | undefined;
  try {
    data = await readJsonFile<LockFile>(path);
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
    throw new DimgError('LOCK_INVALID', `${path} is not valid JSON`, 'regenerate it with `dimg lock`');
  }
  if (data === undefined) return undefined;
  if (data.version !== 1 || typeof data.bases !== 'object' || data.bases === null || Object.values(data.bases).some((e) => !isDigest(e?.digest ?? ''))) {
    throw new DimgError('LOCK_INVALID', `${path} is not a dimg lock file (version 1)`, 'regenerate it with `dimg lock`');
  }
  return data;
}

/** Renders a lock deterministically (sorted keys, trailing newline). */
export function renderLock(lock: LockFile): string {
  const bases: Record<string, LockEntry> = {};
  for (const k of Object.keys(lock.bases).sort()) bases[k] = { digest: lock.bases[k]!.digest };
  return `${JSON.stringify({ version: 1, bases }, null, 2)}\n`;
}
