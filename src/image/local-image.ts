/**
 * Reading images out of the local store: manifests (selecting a platform from an index), configs,
 * and the image ID (the config digest, as Docker shows it).
 */
import { DimgError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { isIndexType, isImageManifestType } from '../oci/media-types.js';
import { formatPlatform, hostPlatform, platformMatches } from '../oci/platform.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform } from '../oci/types.js';
import type { Store } from '../store/store.js';
import { chainIds } from '../store/overlay.js';

/** One single-platform image loaded from the store. */
export interface LocalImage {
  /** Descriptor of the image manifest (for an index entry: the selected platform's manifest). */
  descriptor: Descriptor;
  manifest: ImageManifest;
  config: ImageConfig;
  /** The image ID: the config digest. */
  id: Digest;
  /** When the store entry is an index, its descriptor. */
  index?: Descriptor;
}

/**
 * Loads the image behind a store descriptor. For an index, picks the manifest for `platform`
 * (default: the host's), failing with PLATFORM_NOT_FOUND listing what the index offers.
 */
export async function loadImage(store: Store, descriptor: Descriptor, platform: Platform = hostPlatform()): Promise<LocalImage> {
  if (isIndexType(descriptor.mediaType)) {
    const index = await store.blobs.readJson<ImageIndex>(descriptor.digest);
    const images = index.manifests.filter((m) => isImageManifestType(m.mediaType));
    const chosen = images.find((m) => platformMatches(platform, m.platform)) ?? (images.length === 1 && !images[0]!.platform ? images[0] : undefined);
    if (!chosen) {
      const offered = images.map((m) => (m.platform ? formatPlatform(m.platform) : 'unknown')).join(', ');
      throw new DimgError('PLATFORM_NOT_FOUND', `image index ${descriptor.digest} has no manifest for ${formatPlatform(platform)} (it has: ${offered || 'none'})`, 'pass --platform with one of the platforms it offers');
    }
    const img = await loadImage(store, chosen, platform);
    return { ...img, index: descriptor };
  }
  if (!isImageManifestType(descriptor.mediaType)) {
    throw new DimgError('MEDIA_TYPE_UNSUPPORTED', `${descriptor.digest} has media type ${descriptor.mediaType}, which is not an image`, 'only OCI and Docker schema2 images and indexes are supported');
  }
  const manifest = await store.blobs.readJson<ImageManifest>(descriptor.digest);
  const config = await store.blobs.readJson<ImageConfig>(manifest.config.digest);
  return { descriptor, manifest, config, id: manifest.config.digest };
}

/** Total stored size of an image: config plus layer blobs (what `ls` shows as SIZE). */
export function imageSize(img: LocalImage): number {
  return img.manifest.config.size + img.manifest.layers.reduce((n, l) => n + l.size, 0);
}

/**
 * Claims an image's content for this process's lease (index, manifest, config and layer blobs, and
 * the overlay dirs of its layer chain), then checks the blobs are all still there: an image found in
 * the index can lose its content to a concurrent prune until it is claimed, never after. Fails with
 * BLOB_NOT_FOUND naming `subject` and the missing blob.
 */
export async function claimImage(store: Store, img: LocalImage, subject: string): Promise<void> {
  const parts = [img.manifest.config, ...img.manifest.layers.filter((l) => !l.urls || l.urls.length === 0)];
  const blobs = [img.descriptor.digest, ...parts.map((d) => d.digest)];
  if (img.index) blobs.push(img.index.digest);
  await store.claim({ blobs, chains: chainIds(img.config.rootfs?.diff_ids ?? []) });
  for (const d of [img.descriptor, ...parts]) {
    if ((await store.blobs.stat(d.digest)) === d.size) continue;
    throw new DimgError(
      'BLOB_NOT_FOUND',
      `${subject}: blob ${d.digest} is no longer in the local store (removed by a prune while it was being used)`,
      'run the command again: it pulls or rebuilds what is missing',
    );
  }
}
