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
