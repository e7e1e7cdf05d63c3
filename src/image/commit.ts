/**
 * Writing a new image into the store: config and manifest as canonical JSON blobs, in OCI media
 * types, with the given manifest annotations. The same inputs always give the same manifest digest.
 */
import { canonicalBytes } from '../oci/canonical-json.js';
import { MediaType } from '../oci/media-types.js';
import type { Descriptor, ImageConfig, ImageManifest } from '../oci/types.js';
import type { Store } from '../store/store.js';

/** What makes an image: its config, its layer descriptors (base first), and manifest annotations. */
export interface ImageParts {
  config: ImageConfig;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

/**
 * Stores config and manifest blobs and returns the manifest's descriptor (with the platform of the
 * config, as index entries carry it). Layer blobs must already be in the store. Does not tag.
 */
export async function commitImage(store: Store, parts: ImageParts): Promise<{ descriptor: Descriptor; manifest: ImageManifest }> {
  const configBytes = canonicalBytes(parts.config);
  const config = await store.blobs.writeBytes(configBytes);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: MediaType.ociConfig, digest: config.digest, size: config.size },
    layers: parts.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size, ...(l.annotations ? { annotations: l.annotations } : {}) })),
  };
  if (parts.annotations && Object.keys(parts.annotations).length > 0) manifest.annotations = { ...parts.annotations };
  const manifestBytes = canonicalBytes(manifest);
  const stored = await store.blobs.writeBytes(manifestBytes);
  const platform = { os: parts.config.os, architecture: parts.config.architecture, ...(parts.config.variant ? { variant: parts.config.variant } : {}) };
  return { descriptor: { mediaType: MediaType.ociManifest, digest: stored.digest, size: stored.size, platform }, manifest };
}
