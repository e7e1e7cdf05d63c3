/**
 * Finding local images by what users type: a name (`busybox`, `shop/web:1.4.2`, `host:5000/a/b:t`),
 * a name with digest, an image ID or its prefix (`3f57d9401f8d`, `sha256:3f57…`), or a manifest digest.
 */
import { DimgError } from '../errors.js';
import { parseReference, type ParsedReference } from '../oci/reference.js';
import type { Platform } from '../oci/types.js';
import type { ImageEntry } from '../store/refs.js';
import type { Store } from '../store/store.js';
import { loadImage, type LocalImage } from './local-image.js';

/** A store entry together with its loaded image. */
export interface FoundImage {
  entry: ImageEntry;
  image: LocalImage;
}

const ID_PREFIX = /^(?:sha256:)?([a-f0-9]{4,64})$/;

/**
 * Resolves `query` to one image. Names are normalised (`busybox` = `docker.io/library/busybox:latest`);
 * a ParsedReference is looked up by name only. An ID prefix matching several different images is
 * AMBIGUOUS; nothing matching is IMAGE_NOT_FOUND.
 */
export async function findImage(
  store: Store,
  query: string | ParsedReference,
  platform?: Platform,
): Promise<FoundImage> {
  const entries = await store.entries();
  const byName = await findByName(store, entries, query, platform);
  if (byName) return byName;
  const m = typeof query === 'string' ? ID_PREFIX.exec(query) : null;
  if (m) {
    const prefix = m[1]!;
    const hits = new Map<string, FoundImage>();
    for (const entry of entries) {
      const image = await loadImage(store, entry.descriptor, platform).catch(() => undefined);
      if (!image) continue;
      const matches = image.id.slice(7).startsWith(prefix) || entry.descriptor.digest.slice(7).startsWith(prefix);
      if (matches && !hits.has(image.id)) hits.set(image.id, { entry, image });
    }
    if (hits.size === 1) return [...hits.values()][0]!;
    if (hits.size > 1) {
      throw new DimgError('IMAGE_AMBIGUOUS', `image ID prefix "${prefix}" matches ${hits.size} images`, 'give more characters of the ID, or a name');
    }
  }
  throw new DimgError('IMAGE_NOT_FOUND', `no such image in the local store: ${query}`, '`dimg image ls` lists local images; `dimg image pull` fetches one from a registry');
}

async function findByName(
  store: Store,
  entries: ImageEntry[],
  query: string | ParsedReference,
  platform?: Platform,
): Promise<FoundImage | undefined> {
  let ref: ParsedReference;
  try {
    ref = parseReference(query);
  } catch (e) {
    if (typeof query === 'string' && ID_PREFIX.test(query)) return undefined; // a full 64-hex ID is not a name
    throw e;
  }
  let entry: ImageEntry | undefined;
  if (ref.digest) {
    // Store names are canonical strings, so a name of this repository starts with `host/path:`.
    const repo = `${ref.repository}:`;
    entry = entries.find((e) => e.descriptor.digest === ref.digest && (e.name === undefined || e.name.startsWith(repo)))
      ?? entries.find((e) => e.descriptor.digest === ref.digest);
  } else {
    const full = ref.toString();
    entry = entries.find((e) => e.name === full);
  }
  if (!entry) return undefined;
  return { entry, image: await loadImage(store, entry.descriptor, platform) };
}
