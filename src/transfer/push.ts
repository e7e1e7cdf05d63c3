/**
 * `dimg image push` and the planner's push step: a local single-platform image into a registry.
 *
 * The image is presented as an ImageSource whose manifest is the PUSH MANIFEST: the local manifest
 * with each uncompressed tar layer replaced by its registry form (chosen once per layer and remembered
 * in the store, see layer-form.ts), every other layer, the config and all annotations as they are.
 * When nothing needs replacing the local manifest bytes are pushed unchanged (a pulled image keeps its
 * digest). The push manifest is a pure function of the local image, so the same image always gets the
 * same pushed digest, in any store.
 *
 * Cost of pushing what the registry already has: a HEAD of the tag; when it already points at the push
 * manifest's digest nothing else is sent. Otherwise each blob costs one HEAD when present; blobs the
 * store knows in another repository of the same registry are mounted; the rest is streamed from the
 * store (chunked uploads: memory does not grow with the layer size).
 */
import type { Readable } from 'node:stream';
import { DimgError, isDimgError } from '../errors.js';
import { canonicalBytes } from '../oci/canonical-json.js';
import { sha256, type Digest } from '../oci/digest.js';
import { MediaType, isImageManifestType, isIndexType, layerCompression } from '../oci/media-types.js';
import { formatReference, parseReference } from '../oci/reference.js';
import type { Descriptor, ImageConfig, ImageManifest } from '../oci/types.js';
import { startStreamingUpload, type RegistryClient } from '../registry/index.js';
import { putManifestSettling, registrySink } from '../endpoint/registry.js';
import { transfer } from '../endpoint/transfer.js';
import type { BlobOutcome, ImageSink, ImageSource, ManifestBytes, TransferEvent } from '../endpoint/types.js';
import type { Store } from '../store/store.js';
import { layerForm, type LayerFormEvent, type LayerFormOptions } from './layer-form.js';
import { BLOCK_SIZE } from '../layer/adaptive-gzip.js';
import pLimit from 'p-limit';
import { PushState } from './push-state.js';
import { claimImage, loadImage } from '../image/local-image.js';
import { abortError, abortable } from './abort.js';

/** Progress of a push: blob/manifest events (a mount names the repository it came from), layer compression, and the up-to-date case. */
export type PushEvent = (TransferEvent & { from?: string }) | LayerFormEvent | { kind: 'up-to-date'; digest: Digest; ref: string };

/** Options of pushImage. */
export interface PushOptions {
  onEvent?: (e: PushEvent) => void;
  /** Bytes sent so far per blob while uploads run (for live progress). */
  onBytes?: (d: Descriptor, sent: number) => void;
  /** Cancels the push: pending work stops and the promise rejects with PUSH_CANCELLED. */
  signal?: AbortSignal;
  /** Parallel blob uploads (default 4). */
  concurrency?: number;
}

/**
 * Pushes the store image `localDescriptor` (a single-platform image manifest) to `target`
 * (`host/repo:tag`) and returns the pushed manifest's digest, media type and size. Errors are
 * DimgErrors naming the registry, repository and object (REGISTRY_DENIED, REGISTRY_UNAUTHORIZED, …);
 * PUSH_CANCELLED when `signal` fires.
 */
export async function pushImage(store: Store, client: RegistryClient, localDescriptor: Descriptor, target: string, opts: PushOptions = {}): Promise<{ digest: Digest; mediaType: string; size: number }> {
  const ref = parseReference(target);
  if (!ref.tag || ref.digest) {
    throw new DimgError('PUSH_TARGET_INVALID', `push target ${target} must be a name with a tag and without a digest`, 'push to NAME:TAG, e.g. 127.0.0.1:5000/shop/web:1.0');
  }
  const what = formatReference(ref);
  const signal = opts.signal;
  const check = () => {
    if (signal?.aborted) throw abortError(`push of ${what}`);
  };
  check();
  // A concurrent prune may untag the image meanwhile; what the push reads must stay.
  if (isImageManifestType(localDescriptor.mediaType)) await claimImage(store, await loadImage(store, localDescriptor), `push of ${what}`);
  const repo = client.repository(ref);
  const state = new PushState(store);
  // Layers compressed during this push are streamed into `repo` as they are compressed (layer-form.ts).
  const streamed = new Set<Digest>();
  const mountedFrom = new Map<Digest, string>();
  const openBlob = async (d: Descriptor): Promise<Readable> => {
    check();
    // Unverified here: the upload verifies digest and size while it sends (and the registry again).
    return abortable(store.blobs.openUnverified(d.digest), signal, `push of ${what}`);
  };
  // Every blob is uploaded at most once per push, whoever asks first. While a push compresses a layer,
  // the blobs known by then (the config, the layers already in their registry form) go up alongside
  // it rather than after it; that starts only once some layer is being compressed, so pushing an image
  // the registry already holds still costs no more than the tag's HEAD (with a layer to compress,
  // each blob costs a HEAD even if the tag turns out to be up to date). A failed upload is forgotten,
  // so a later request tries again; at most `concurrency` run at once, early or not.
  const uploads = new Map<Digest, Promise<BlobOutcome>>();
  const limit = pLimit(opts.concurrency ?? 4);
  const upload = (desc: Descriptor): Promise<BlobOutcome> => {
    let p = uploads.get(desc.digest);
    if (!p) {
      const started = limit(() => uploadBlob(desc));
      started.catch(() => {
        if (uploads.get(desc.digest) === started) uploads.delete(desc.digest);
      });
      uploads.set(desc.digest, started);
      p = started;
    }
    return p;
  };
  // The registry endpoint, mounting what the store knows another repository of the registry holds.
  const registry = registrySink(repo, {
    onBytes: opts.onBytes,
    holders: (digest) => state.holders(digest, repo.domain),
    onStored: async (desc, _outcome, from) => {
      if (from) mountedFrom.set(desc.digest, from);
      await state.addHolder(desc.digest, repo.domain, repo.path);
    },
    check,
  });
  const uploadBlob = async (desc: Descriptor): Promise<BlobOutcome> => {
    check();
    if (streamed.has(desc.digest)) return 'uploaded';
    return registry.putBlob(desc, () => openBlob(desc));
  };
  const ready: Descriptor[] = [(await store.blobs.readJson<ImageManifest>(localDescriptor.digest)).config];
  let eager = false;
  const onForm = (e: LayerFormEvent): void => {
    ready.push({ mediaType: e.mediaType, digest: e.digest, size: e.size });
    eager ||= e.compressed;
    // Observed later through transfer (or the allSettled below on failure).
    if (eager) for (const d of ready.splice(0)) upload(d).catch(() => undefined);
  };
  const tag = ref.tag; // narrowed above
  try {
    const pm = await pushManifest(store, localDescriptor, {
      onEvent: (e) => {
        opts.onEvent?.(e);
        onForm(e);
      },
      signal,
      earlyUpload: () => startStreamingUpload(repo),
      onEarlyUploaded: async (digest) => {
        streamed.add(digest);
        await state.addHolder(digest, repo.domain, repo.path);
      },
    });
    check();
    const head = await repo.headManifest(tag);
    if (head && head.digest === pm.digest) {
      await Promise.allSettled(uploads.values());
      opts.onEvent?.({ kind: 'up-to-date', digest: pm.digest, ref: tag });
      return { digest: pm.digest, mediaType: pm.mediaType, size: pm.bytes.length };
    }
    // The store image as a registry sees it: the push manifest, the store's blobs.
    const source: ImageSource = {
      name: 'local store',
      manifest: async (r: string): Promise<ManifestBytes> => {
        if (r === tag || r === pm.digest) return pm;
        throw new DimgError('INTERNAL', `push of ${what}: unexpected manifest request ${r}`, 'this is a bug in dimg');
      },
      blob: openBlob,
    };
    // Blobs go through this push's shared uploads (each once, early or not); manifests straight in.
    const sink: ImageSink = { ...registry, putBlob: (desc) => upload(desc) };
    const result = await transfer(source, tag, sink, [tag], {
      concurrency: opts.concurrency,
      onEvent: opts.onEvent ? (e) => opts.onEvent!(e.kind === 'blob' && mountedFrom.has(e.digest) ? { ...e, from: mountedFrom.get(e.digest) } : e) : undefined,
    });
    return result;
  } catch (e) {
    // Nothing of this push may still be running once it has failed.
    await Promise.allSettled(uploads.values());
    throw e;
  }
}

/**
 * The push manifest of a store image (see the module comment), as exact bytes. Compresses layers
 * that have no registry form yet (into the store, recorded). Exported for the planner, which can learn
 * the digest a push will produce without pushing.
 */
export async function pushManifest(store: Store, desc: Descriptor, opts: LayerFormOptions = {}): Promise<ManifestBytes> {
  if (isIndexType(desc.mediaType) || !isImageManifestType(desc.mediaType)) {
    throw new DimgError('PUSH_NOT_AN_IMAGE', `local ${desc.digest} is ${desc.mediaType}, not a single-platform image manifest`, 'push one platform\'s image (pick it with --platform)');
  }
  const bytes = await store.blobs.read(desc.digest);
  const manifest = JSON.parse(bytes.toString('utf8')) as ImageManifest;
  const config = await store.blobs.readJson<ImageConfig>(manifest.config.digest);
  const diffIds = config.rootfs?.diff_ids ?? [];
  const docker = desc.mediaType === MediaType.dockerManifest;
  for (const [i, l] of manifest.layers.entries()) {
    if (layerCompression(l.mediaType) === 'none' && !(l.urls && l.urls.length > 0) && diffIds[i] !== undefined && diffIds[i] !== l.digest) {
      throw new DimgError('IMAGE_INVALID', `layer ${i + 1} of local image ${desc.digest} is an uncompressed tar ${l.digest} but the config says diff_id ${diffIds[i]}`, 'the image is inconsistent; rebuild it');
    }
  }
  // Small layers (one block, compressed on libuv's thread pool) all at once; layers of several blocks one at a
  // time, each on the whole worker pool and with at most one streamed upload open. After a failure no
  // further layer starts, and the push reports it only when nothing it started is still running.
  const big = pLimit(1);
  let failed = false;
  const formOf = async (l: Descriptor): Promise<Descriptor> => {
    if (layerCompression(l.mediaType) !== 'none' || (l.urls && l.urls.length > 0)) return l;
    const run = async (): Promise<Descriptor> => {
      if (failed) throw new DimgError('PUSH_CANCELLED', `layer ${l.digest} not compressed: another layer of the push failed`, '');
      try {
        const form = await layerForm(store, l.digest, l.size, opts);
        if (form.digest === l.digest) return l;
        return { ...l, mediaType: docker ? MediaType.dockerLayerGzip : form.mediaType, digest: form.digest, size: form.size };
      } catch (e) {
        failed = true; // before the limiter starts the next layer
        throw e;
      }
    };
    return l.size > BLOCK_SIZE ? big(run) : run();
  };
  const settled = await Promise.allSettled(manifest.layers.map(formOf));
  const firstError = settled.find((r) => r.status === 'rejected' && !isDimgError(r.reason, 'PUSH_CANCELLED')) ?? settled.find((r) => r.status === 'rejected');
  if (firstError) throw (firstError as PromiseRejectedResult).reason;
  const layers = settled.map((r) => (r as PromiseFulfilledResult<Descriptor>).value);
  const changed = layers.some((l, i) => l !== manifest.layers[i]);
  if (!changed) return { bytes, mediaType: desc.mediaType, digest: desc.digest };
  const out = canonicalBytes({ ...manifest, layers });
  return { bytes: out, mediaType: desc.mediaType, digest: sha256(out) };
}

/** Re-exported for the planner's apply, which puts manifests itself (see endpoint/registry.ts). */
export { putManifestSettling };
