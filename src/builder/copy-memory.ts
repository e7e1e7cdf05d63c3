/**
 * What a copy step remembers of its last pack, so that rebuilding it after a small edit costs little:
 * the layer tar it wrote (whose unchanged file contents the next pack copies instead of reading every
 * source again, see layer/previous-pack.ts) and the layer dir mirrored from it (whose unchanged files
 * the next mirror hard-links instead of writing them, see layer/mirror.ts), with every file's source
 * state and offset in that tar.
 *
 * One JSON file per image and step under `build/copy-layers/`. Everything in it is a hint: a missing,
 * stale or damaged memory, or a tar or dir that is gone (GC), only means files are read and written
 * again; every reuse is checked against the source's state and the tar's own header bytes.
 */
import { promises as fs } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { tempPath } from '../store/fsutil.js';
import { ensurePrivateDir } from '../store/private-dirs.js';
import { chainOf } from '../store/overlay.js';
import type { Digest } from '../oci/digest.js';
import type { Store } from '../store/store.js';
import type { PackedFile, PreviousPack } from '../layer/previous-pack.js';

/** What a copy step's next pack may reuse. */
export interface CopyMemory {
  /** The previous layer tar, when its blob is still in the store uncompressed. */
  previous?: PreviousPack;
  /** The previous layer dir and its files' origins, when the dir is still unpacked. */
  donor?: { dir: string; sources: ReadonlyMap<string, PackedFile> };
}

/** The file's format: `files` maps archive path → [origin, content offset]. */
interface Stored {
  version: 3;
  diffId: Digest;
  /** Chain ID of the layers below (null for a first layer): the layer dir is chainOf(parent, diffId). */
  parentChainId: Digest | null;
  files: Record<string, [string, number]>;
}

function memoryPath(store: Store, slot: string): string {
  return join(store.root, 'build', 'copy-layers', `${createHash('sha256').update(slot).digest('hex')}.json`);
}

/** The memory of the copy step `slot` (image and step), or an empty one. Never throws. */
export async function loadCopyMemory(store: Store, slot: string): Promise<CopyMemory> {
  let stored: Stored;
  try {
    stored = JSON.parse(await fs.readFile(memoryPath(store, slot), 'utf8')) as Stored;
  } catch {
    return {};
  }
  if (stored?.version !== 3 || typeof stored.diffId !== 'string' || stored.files === null || typeof stored.files !== 'object') return {};
  const files = new Map<string, PackedFile>();
  for (const [path, value] of Object.entries(stored.files)) {
    if (Array.isArray(value) && typeof value[0] === 'string' && Number.isSafeInteger(value[1])) files.set(path, { origin: value[0], offset: value[1] });
  }
  const memory: CopyMemory = {};
  // The step's tar is stored uncompressed under its diff_id (a layer dimg built). Claimed before the
  // check: the pack reads from it, and a concurrent prune must not take it meanwhile.
  await store.claim({ blobs: [stored.diffId as Digest] });
  if ((await store.blobs.stat(stored.diffId).catch(() => undefined)) !== undefined) memory.previous = { tar: `layer ${stored.diffId}`, open: () => store.blobs.openRandomAccess(stored.diffId), files };
  // The layer dir of that very tar: its chain ID is derived here, not taken from the file.
  const chainId = chainOf(typeof stored.parentChainId === 'string' ? stored.parentChainId : undefined, stored.diffId);
  const dir = await store.overlay.get(chainId).catch(() => undefined);
  if (dir) memory.donor = { dir: dir.diffDir, sources: files };
  return memory;
}

/**
 * Remembers the pack of `slot` that wrote the layer `diffId` on top of the chain `parentChainId`
 * (undefined for a first layer) with `files` recorded (PackOptions.record). Never throws.
 */
export async function saveCopyMemory(store: Store, slot: string, diffId: Digest, parentChainId: Digest | undefined, files: ReadonlyMap<string, PackedFile>): Promise<void> {
  const stored: Stored = { version: 3, diffId, parentChainId: parentChainId ?? null, files: {} };
  for (const [path, f] of files) stored.files[path] = [f.origin, f.offset];
  const tmp = tempPath(store.tmpDir, 'copy-memory');
  try {
    const path = memoryPath(store, slot);
    await ensurePrivateDir(join(path, '..'));
    // Temp file + rename without fsync: a memory lost in a crash costs only reading files again.
    await fs.writeFile(tmp, JSON.stringify(stored), { mode: 0o644 });
    await fs.rename(tmp, path);
  } catch {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
  }
}
