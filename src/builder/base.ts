/**
 * Resolving an image's base into the starting state of a build: scratch, another image of the spec
 * (already built in this run), a store image by reference (pulled when missing and a puller is
 * wired), a rootfs directory or tarball packed reproducibly as one layer, or an image archive.
 */
import { createReadStream, promises as fs } from 'node:fs';
import { basename } from 'node:path';
import { DimgError, isDimgError } from '../errors.js';
import { canonicalJson } from '../oci/canonical-json.js';
import { sha256, type Digest } from '../oci/digest.js';
import type { Descriptor, ImageConfig, Platform } from '../oci/types.js';
import { findImage } from '../image/find.js';
import { claimImage } from '../image/local-image.js';
import { storeRootfsLayer } from '../image/rootfs-layer.js';
import type { Store } from '../store/store.js';
import type { ImageSpec } from '../specfile/model.js';
import type { StoredLayer } from './layer-blobs.js';
import { rootfsKey } from './keys.js';
import { platformOf, scratchKey } from './dependencies.js';
import type { FileDigests } from './file-digests.js';

/** A base ready to build on. `key` seeds the step keys (a manifest digest, or a digest of what the base is). */
export interface BaseState {
  config: ImageConfig;
  layers: Descriptor[];
  key: Digest;
  /** What to show for the FROM line. */
  display: string;
}

/** An image of the same spec that this run already built (or found current). */
export interface BuiltRef {
  descriptor: Descriptor;
  config: ImageConfig;
  layers: Descriptor[];
}

/** A built image of the spec: its identity for dependants is its input digest, not its manifest digest. */
export interface BuiltSpecImage extends BuiltRef {
  inputDigest: Digest;
}

/** What base resolution may call on. */
export interface BaseContext {
  store: Store;
  /** Images of the spec built in this run, by key. */
  built: (key: string) => Promise<BuiltSpecImage>;
  /** File-digest memo (rootfs keys). */
  digests: FileDigests;
  /** Fetches a registry image into the store; undefined when no registry client is wired. */
  pull?: (ref: string, platform: Platform) => Promise<void>;
  sourceDateEpoch: number;
}

/** Resolves `spec.from`. */
export async function resolveBase(spec: ImageSpec, ctx: BaseContext): Promise<BaseState> {
  const platform = platformOf(spec);
  const from = spec.from;
  switch (from.kind) {
    case 'scratch':
      return { config: emptyConfig(platform), layers: [], key: scratchKey(platform), display: 'FROM scratch' };
    case 'image': {
      const b = await ctx.built(from.key);
      // Keyed by the parent's input digest, not its manifest digest: RUN output is not bit-for-bit
      // reproducible, and the planner must know the key without building the parent.
      return { config: b.config, layers: b.layers, key: b.inputDigest, display: `FROM ${from.key}` };
    }
    case 'ref': {
      const found = await findRef(ctx, from.ref, platform, spec.key);
      return { config: found.config, layers: found.layers, key: found.descriptor.digest, display: `FROM ${from.ref}` };
    }
    case 'rootfs': {
      const key = await rootfsKey(from.path, platform, ctx.digests, spec.key);
      const layer = await rootfsLayer(ctx, from.path, key, spec);
      const config = emptyConfig(platform);
      config.rootfs.diff_ids = [layer.diffId];
      config.history = [{ created: epochIso(ctx.sourceDateEpoch), created_by: `ROOTFS ${basename(from.path)}`, comment: 'Imported from rootfs' }];
      return { config, layers: [layer.descriptor], key, display: `FROM rootfs ${basename(from.path)}` };
    }
    case 'archive':
      throw new DimgError('ARCHIVE_BASE_UNSUPPORTED', `image ${spec.key}: building on an archive (${from.path}) needs it loaded first`, `run \`dimg image load -i ${from.path}\` and use the loaded image's name as \`from\``);
  }
}

/**
 * Finds a store image by reference, pulling it when missing (if a puller is wired). The image's
 * content is claimed for this build (a concurrent prune keeps it); content a prune took before the
 * claim counts as missing, so it is pulled again.
 */
export async function findRef(ctx: BaseContext, ref: string, platform: Platform, imageKey: string): Promise<BuiltRef> {
  const load = async () => {
    const f = await findImage(ctx.store, ref, platform);
    await claimImage(ctx.store, f.image, `image ${imageKey}: base image ${ref}`);
    return { descriptor: f.image.descriptor, config: f.image.config, layers: f.image.manifest.layers };
  };
  try {
    return await load();
  } catch (e) {
    if (!isDimgError(e, 'IMAGE_NOT_FOUND') && !isDimgError(e, 'BLOB_NOT_FOUND')) throw e;
    if (!ctx.pull) {
      if (isDimgError(e, 'BLOB_NOT_FOUND')) throw e;
      throw new DimgError('IMAGE_NOT_FOUND', `image ${imageKey}: base image ${ref} is not in the local store`, `pull it first: dimg image pull ${ref}`);
    }
    await ctx.pull(ref, platform);
    return load();
  }
}

/** A config with no layers for `platform`. */
export function emptyConfig(platform: Platform): ImageConfig {
  const c: ImageConfig = { architecture: platform.architecture, os: platform.os, config: {}, rootfs: { type: 'layers', diff_ids: [] }, history: [] };
  if (platform.variant) c.variant = platform.variant;
  return c;
}

/** SOURCE_DATE_EPOCH as the RFC 3339 time configs carry (`1970-01-01T00:00:00Z`). */
export function epochIso(seconds: number): string {
  return new Date(seconds * 1000).toISOString().replace(/\.000Z$/, 'Z');
}

/**
 * The rootfs packed as one layer, cached under its key (the tree's content digest with the
 * epoch), so an unchanged rootfs is not packed again on the next build.
 */
async function rootfsLayer(ctx: BaseContext, path: string, key: Digest, spec: ImageSpec): Promise<StoredLayer> {
  const cacheKey = sha256(canonicalJson({ rootfsLayer: key, epoch: ctx.sourceDateEpoch }));
  const hit = await ctx.store.cache.get(cacheKey);
  const layer = hit?.layer;
  const diffId = hit?.diffId;
  // cache.get claimed the entry's blobs: the layer checked here stays until it is used.
  if (layer && diffId && (await ctx.store.blobs.stat(layer.digest)) === layer.size) return { descriptor: layer, diffId };
  const packed = await packRootfs(ctx, path, spec);
  await ctx.store.cache.put({ key: cacheKey, blobs: [packed.descriptor.digest], diffIds: [packed.diffId], created: new Date().toISOString(), layer: packed.descriptor, diffId: packed.diffId });
  return packed;
}

/**
 * Packs the rootfs through the very code `dimg image import` uses (image/rootfs-layer.ts): a tarball
 * is unpacked by the safe extractor and repacked, never stored as it is, so one that escapes its root
 * or is not a tar at all fails here, naming the image, its place in the spec and the file.
 */
async function packRootfs(ctx: BaseContext, path: string, spec: ImageSpec): Promise<StoredLayer> {
  const st = await fs.stat(path).catch(() => undefined);
  if (!st) throw new DimgError('ROOTFS_NOT_FOUND', `image ${spec.key}: rootfs ${path} does not exist`, 'give a directory or a tarball');
  const at = spec.location;
  const subject = `image ${spec.key} (${at.file}:${at.line}:${at.col}): rootfs ${path}`;
  // Ownership is kept as on disk (a rootfs says who owns what), mtimes are clamped, like `import`.
  return storeRootfsLayer(ctx.store, st.isDirectory() ? { dir: path } : { tar: createReadStream(path) }, subject, ctx.sourceDateEpoch);
}
