/**
 * Storing a freshly packed layer tar and opening parent layers for unpacking. Layers dimg builds are
 * stored uncompressed (media type `…layer.v1.tar`, digest = diff_id); compression happens at push.
 */
import { promises as fs } from 'node:fs';
import type { Readable } from 'node:stream';
import { MediaType } from '../oci/media-types.js';
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/types.js';
import type { Store } from '../store/store.js';
import type { LayerSource } from '../layer/walk.js';
import { packSourcesToFile, type PackOptions } from '../layer/tar-writer.js';
import { decompress } from '../layer/compression.js';
import { tempPath } from '../store/fsutil.js';

/** A stored layer: its manifest descriptor and diff_id. */
export interface StoredLayer {
  descriptor: Descriptor;
  diffId: Digest;
}

/** A packed layer whose blob is still being made durable: `durable` settles once it is in the store. */
export interface PendingLayer extends StoredLayer {
  durable: Promise<void>;
}

/**
 * Packs the layer made from `sources` (see packSources) straight into a temp file with synchronous
 * writes through reused buffers (packSourcesToFile), hashing it, and resolves as soon as the digest is
 * known; the returned `durable` promise then adopts the file into the blob store (fsync + rename) and
 * records it in the layer index. Nothing is visible under the final name unless complete, and the
 * temp file is removed either way. A builder can run the next step while the kernel writes the blob
 * out, and must wait for `durable` before recording a cache entry or a manifest that names the blob.
 */
export async function packLayerSources(store: Store, sources: LayerSource[], opts: PackOptions): Promise<PendingLayer> {
  const tmp = tempPath(store.tmpDir, 'layer');
  let digest: { diffId: Digest; size: number };
  const fh = await fs.open(tmp, 'wx', 0o644);
  try {
    digest = await packSourcesToFile(sources, opts, fh.fd);
  } catch (e) {
    await fh.close();
    await fs.rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  return settle(store, tmp, digest.diffId, digest.size);
}

/** Starts making the hashed temp file `tmp` durable as the layer blob `diffId` (see PendingLayer). */
function settle(store: Store, tmp: string, diffId: Digest, size: number): PendingLayer {
  const durable = (async () => {
    try {
      await store.blobs.adopt(tmp, diffId);
      await store.layers.add(diffId, { digest: diffId, mediaType: MediaType.ociLayer, size }, size);
    } finally {
      await fs.rm(tmp, { force: true });
    }
  })();
  // Observed by whoever awaits it; never an unhandled rejection in between.
  durable.catch(() => undefined);
  return { descriptor: { mediaType: MediaType.ociLayer, digest: diffId, size }, diffId, durable };
}

/**
 * Opens a layer's content as stored (possibly compressed): the uncompressed blob when the store has
 * one for `diffId` (no decompression), else the manifest's blob. Readers decompress by magic bytes.
 */
export async function openLayer(store: Store, layer: Descriptor, diffId: Digest): Promise<Readable> {
  const rec = await store.layers.get(diffId).catch(() => undefined);
  const plain = rec?.blobs.find((b) => b.mediaType === MediaType.ociLayer && b.digest === diffId);
  // The uncompressed alternative is not part of the image: claim it before relying on it.
  if (plain) await store.claim({ blobs: [plain.digest] });
  if (plain && (await store.blobs.has(plain.digest))) return store.blobs.open(plain.digest, plain.size);
  return decompress(store.blobs.open(layer.digest, layer.size), `layer ${layer.digest}`);
}
