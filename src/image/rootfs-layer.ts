/**
 * The one way a root filesystem becomes a layer, shared by `dimg image import` and the builder's
 * `from: { rootfs }`, so a rootfs file given to either meets exactly the same checks.
 *
 * A directory is packed as it is by the reproducible tar writer (symlinks as links, never followed).
 * A tarball is never stored as it is: the safe extractor unpacks it into a temp dir in the store,
 * refusing entries that escape the root, writes through the archive's own symlinks, devices (unless
 * running as root), oversized or malformed entries and anything that is not a tar at all, and the
 * result is packed like a directory. So a tree, its tarball and the tarball on stdin give one layer.
 */
import type { Readable } from 'node:stream';
import { promises as fs } from 'node:fs';
import { DimgError, isDimgError } from '../errors.js';
import { MediaType } from '../oci/media-types.js';
import type { Descriptor } from '../oci/types.js';
import type { Digest } from '../oci/digest.js';
import { extractLayer, packDirectory } from '../layer/index.js';
import { tempPath } from '../store/fsutil.js';
import type { Store } from '../store/store.js';

/** What to do about a refused rootfs tarball (shown by import and by builds alike). */
const ROOTFS_HINT =
  'a root filesystem must be a directory, or a tar archive (plain, gzip, zstd, xz or bzip2) whose entries all stay inside it; recreate it from its directory with `tar -C DIR -cf FILE .`, or give the directory';

/** A root filesystem to store: a directory on disk, or a tar stream (a file opened by the caller, stdin). */
export type RootfsSource = { dir: string } | { tar: Readable };

/**
 * Stores `source` as one uncompressed layer (`…layer.v1.tar`, digest = diff_id) and records it in
 * the layer index; returns its descriptor and diff_id. File mtimes are clamped to `sourceDateEpoch` (0 when undefined); modes, numeric
 * owners, xattrs, links and (as root) devices are kept. A refused tarball fails with the extractor's
 * LAYER_* code, its message led by `subject` (which names the file, e.g. `tarball ./rootfs.tar`) and
 * a hint saying what a rootfs must be. The temp dir of a tarball is removed whatever happens.
 */
export async function storeRootfsLayer(store: Store, source: RootfsSource, subject: string, sourceDateEpoch?: number): Promise<{ descriptor: Descriptor; diffId: Digest }> {
  let workDir: string | undefined;
  try {
    let root: string;
    if ('dir' in source) root = source.dir;
    else {
      workDir = tempPath(store.tmpDir, 'import');
      await extractLayer(source.tar, workDir, { mode: 'flatten', allowDevices: process.getuid?.() === 0, subject }).catch((e: unknown) => {
        throw refused(e, subject);
      });
      root = workDir;
    }
    const layer = await store.blobs.write(packDirectory(root, { sourceDateEpoch }), undefined, `layer of ${subject}`);
    // Stored uncompressed: the blob's digest is the layer's diff_id.
    const descriptor: Descriptor = { mediaType: MediaType.ociLayer, digest: layer.digest, size: layer.size };
    await store.layers.add(layer.digest, descriptor, layer.size);
    return { descriptor, diffId: layer.digest };
  } finally {
    if (workDir) await fs.rm(workDir, { recursive: true, force: true });
  }
}

/**
 * The extractor's verdict on the archive, naming the file and saying what a rootfs must be. A failure
 * to write the temp dir (LAYER_EXTRACT_FAILED: space, permissions) is about this machine, not the
 * archive, and keeps its own hint.
 */
function refused(e: unknown, subject: string): unknown {
  if (!isDimgError(e) || !e.code.startsWith('LAYER_') || e.code === 'LAYER_EXTRACT_FAILED') return e;
  const message = e.message.startsWith(`${subject}:`) ? e.message : `${subject}: ${e.message}`;
  return new DimgError(e.code, message, ROOTFS_HINT, { cause: e });
}
