/**
 * Listing the local store the way `docker images` sees it: one row per name (and one per dangling
 * image), each with the loaded image, its ID, creation time and size, newest first.
 */
import { parseReference, type ParsedReference } from '../oci/reference.js';
import type { Platform } from '../oci/types.js';
import type { ImageEntry } from '../store/refs.js';
import type { Store } from '../store/store.js';
import { imageSize, loadImage, type LocalImage } from './local-image.js';

/** One row of the image list. */
export interface ImageRow {
  entry: ImageEntry;
  /** The parsed full name, absent for dangling images. */
  ref?: ParsedReference;
  image: LocalImage;
  /** Stored size of config and layers in bytes. */
  size: number;
  /** Creation time from the config (ms since the epoch), 0 when absent or unparsable. */
  createdMs: number;
}

/** An index entry whose image cannot be read (missing or corrupt blobs). */
export interface BrokenEntry {
  entry: ImageEntry;
  error: Error;
}

/**
 * Every store entry loaded as an image, sorted newest first (ties: by familiar name, so the
 * output is stable). Entries that cannot be loaded are returned apart, never silently dropped.
 */
export async function listImages(store: Store, platform?: Platform): Promise<{ rows: ImageRow[]; broken: BrokenEntry[] }> {
  const rows: ImageRow[] = [];
  const broken: BrokenEntry[] = [];
  for (const entry of await store.entries()) {
    let image: LocalImage;
    try {
      image = await loadImage(store, entry.descriptor, platform);
    } catch (e) {
      broken.push({ entry, error: e as Error });
      continue;
    }
    const created = image.config.created ? Date.parse(image.config.created) : NaN;
    rows.push({
      entry,
      ref: entry.name ? parseReference(entry.name) : undefined,
      image,
      size: imageSize(image),
      createdMs: Number.isNaN(created) ? 0 : created,
    });
  }
  rows.sort((a, b) => b.createdMs - a.createdMs || displayName(a).localeCompare(displayName(b)));
  return { rows, broken };
}

/** `familiar:tag` of a row, or `<none>:<none>` for a dangling image. */
export function displayName(row: { ref?: ParsedReference }): string {
  return row.ref ? `${row.ref.familiarName()}:${row.ref.tag ?? '<none>'}` : '<none>:<none>';
}

/** The 12-hex short form of an image ID or digest, as Docker prints it. */
export function shortId(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}
