/**
 * The local store as an ImageSink (pull) and as an ImageSource (copy out of the store as it is).
 *
 * Sink: blobs are streamed into the store and verified against their descriptor before they become
 * visible (BlobStore.write); manifests are stored byte for byte (so digests are kept); for each image
 * manifest, every layer blob is recorded in `store.layers` under the diff_id at the same index of the
 * config's `rootfs.diff_ids`; a tag ref names the top manifest `<repository>:<tag>` in the store.
 * An image that is already complete in the store is reported by `hasManifest`, so a transfer skips it.
 */
import type { Readable } from 'node:stream';
import { DimgError } from '../errors.js';
import { isDigest, type Digest } from '../oci/digest.js';
import { isImageManifestType, isIndexType } from '../oci/media-types.js';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest } from '../oci/types.js';
import type { BlobLocation, BlobOutcome, ImageSink, ImageSource, ManifestBytes } from '../endpoint/types.js';
import type { Store } from '../store/store.js';
import { PushState } from './push-state.js';

/** Options of storeSink. */
export interface StoreSinkOptions {
  /** Repository name (`domain/path`) tags are stored under; without it tag refs are refused. */
  repository?: string;
  /** Where the blobs come from (recorded so later pushes to that registry can mount them). */
  origin?: BlobLocation;
}

/** A sink into `store`; see the module comment. `tagged` lists the full names it set. */
export function storeSink(store: Store, opts: StoreSinkOptions = {}): ImageSink & { tagged: string[]; last?: Descriptor } {
  const state = new PushState(store);
  const sink: ImageSink & { tagged: string[]; last?: Descriptor } = {
    name: 'local store',
    tagged: [],
    async putBlob(desc: Descriptor, open: () => Promise<Readable>, from?: BlobLocation): Promise<BlobOutcome> {
      // Claimed before the check: a present blob is kept for the image being stored.
      await store.claim({ blobs: [desc.digest] });
      const have = await store.blobs.stat(desc.digest);
      let outcome: BlobOutcome = 'exists';
      if (have !== desc.size) {
        await store.blobs.write(await open(), { digest: desc.digest, size: desc.size }, `blob ${desc.digest}`);
        outcome = 'uploaded';
      }
      const where = from ?? opts.origin;
      if (where) await state.addHolder(desc.digest, where.domain, where.path);
      return outcome;
    },
    async putManifest(ref: string, m: ManifestBytes): Promise<void> {
      await store.blobs.writeBytes(m.bytes, m.digest);
      const desc: Descriptor = { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length };
      if (isImageManifestType(m.mediaType)) {
        const manifest = JSON.parse(m.bytes.toString('utf8')) as ImageManifest;
        const config = await store.blobs.readJson<ImageConfig>(manifest.config.digest);
        await recordLayers(store, manifest, config);
        if (config.os && config.architecture) desc.platform = { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) };
      }
      sink.last = desc;
      if (isDigest(ref)) return;
      if (!opts.repository) throw new DimgError('INTERNAL', `cannot tag ${m.digest} as "${ref}": no repository name given`, 'this is a bug in dimg');
      const name = `${opts.repository}:${ref}`;
      await store.tag(name, desc);
      sink.tagged.push(name);
    },
    hasManifest: (digest: Digest) => isComplete(store, digest),
  };
  return sink;
}

/**
 * Records each layer blob of `manifest` in `store.layers` under its diff_id (by index in the config's
 * `rootfs.diff_ids`). Uncompressed layers also record their size as the tar size.
 */
export async function recordLayers(store: Store, manifest: ImageManifest, config: ImageConfig): Promise<void> {
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== manifest.layers.length) {
    throw new DimgError('IMAGE_INVALID', `image config ${manifest.config.digest} lists ${diffIds.length} diff_ids for ${manifest.layers.length} layers`, 'the image is malformed; it cannot be stored');
  }
  for (const [i, l] of manifest.layers.entries()) {
    const diffId = diffIds[i]!;
    await store.layers.add(diffId, { digest: l.digest, mediaType: l.mediaType, size: l.size }, l.digest === diffId ? l.size : undefined);
  }
}

/**
 * True when the manifest or index `digest` and everything it references (child manifests, configs,
 * layers without `urls`) are in the store with the right sizes.
 */
export async function isComplete(store: Store, digest: Digest, depth = 0): Promise<boolean> {
  if (depth > 4) return false;
  // What is found complete is not transferred again, so it is claimed before it is checked.
  await store.claim({ blobs: [digest] });
  if (!(await store.blobs.has(digest))) return false;
  let doc: { mediaType?: string; manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] };
  try {
    doc = await store.blobs.readJson(digest);
  } catch {
    return false;
  }
  if (Array.isArray(doc.manifests)) {
    for (const m of (doc as ImageIndex).manifests) if (!(await isComplete(store, m.digest, depth + 1))) return false;
    return true;
  }
  if (!doc.config || !Array.isArray(doc.layers)) return false;
  const parts = [doc.config, ...doc.layers.filter((l) => !l.urls || l.urls.length === 0)];
  await store.claim({ blobs: parts.map((d) => d.digest) });
  for (const d of parts) {
    if ((await store.blobs.stat(d.digest)) !== d.size) return false;
  }
  return true;
}

/**
 * The store as an ImageSource, content exactly as stored (no recompression): `manifest(ref)` takes a
 * digest, or the tag of `repository` when given. For pushes to registries use pushImage instead.
 */
export function storeSource(store: Store, repository?: string): ImageSource {
  return {
    name: 'local store',
    async manifest(ref: string): Promise<ManifestBytes> {
      let digest: Digest;
      let mediaType: string | undefined;
      if (isDigest(ref)) digest = ref;
      else {
        const name = `${repository ?? ''}:${ref}`;
        const e = (await store.entries()).find((x) => x.name === name);
        if (!e) throw new DimgError('IMAGE_NOT_FOUND', `no such image in the local store: ${name}`, '`dimg image ls` lists local images');
        digest = e.descriptor.digest;
        mediaType = e.descriptor.mediaType;
      }
      const bytes = await store.blobs.read(digest);
      if (!mediaType) {
        const doc = JSON.parse(bytes.toString('utf8')) as { mediaType?: string; manifests?: unknown };
        mediaType = doc.mediaType ?? (Array.isArray(doc.manifests) ? 'application/vnd.oci.image.index.v1+json' : 'application/vnd.oci.image.manifest.v1+json');
      }
      if (!isImageManifestType(mediaType) && !isIndexType(mediaType)) throw new DimgError('MEDIA_TYPE_UNSUPPORTED', `${digest} has media type ${mediaType}, which is not an image`, 'only OCI and Docker schema2 images and indexes can be copied');
      return { bytes, mediaType, digest };
    },
    blob: async (d: Descriptor): Promise<Readable> => store.blobs.open(d.digest, d.size),
  };
}
