/**
 * Moving an image (a manifest or a whole index) from any ImageSource to any ImageSink, keeping
 * digests: blobs first (in parallel, bounded), then child manifests by digest, then the top manifest
 * under the requested tag. Registry→registry copy, pull (registry → store) and push (store →
 * registry) are all this one function with different source/sink adapters.
 */
import type { Readable } from 'node:stream';
import pLimit from 'p-limit';
import { DimgError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { isImageManifestType, isIndexType } from '../oci/media-types.js';
import type { Descriptor, ImageIndex, ImageManifest, Platform } from '../oci/types.js';
import { parseImageManifest, parseIndex, type ManifestBytes } from './manifest.js';
import { selectPlatform } from './select.js';
import { destroyOnAbort } from './abort.js';

/** Where a blob lives on a registry, so a sink on the same registry can mount instead of copying. */
export interface BlobLocation {
  domain: string;
  path: string;
}

/** Anything images can be read from (a registry repository, the local store, an archive). */
export interface ImageSource {
  /** For messages: `127.0.0.1:5000/app`. */
  readonly name: string;
  /** Set when the source is a registry repository (enables cross-repository mounts). */
  readonly location?: BlobLocation;
  /** A manifest or index by tag or digest, exact bytes. A source that can, stops when `signal` fires. */
  manifest(ref: string, signal?: AbortSignal): Promise<ManifestBytes>;
  /** A blob's bytes, verified against the descriptor by the source. */
  blob(desc: Descriptor, signal?: AbortSignal): Promise<Readable>;
}

/** How a blob ended up in a sink. */
export type BlobOutcome = 'exists' | 'mounted' | 'uploaded';

/** Anything images can be written to. */
export interface ImageSink {
  readonly name: string;
  /** Stores a blob unless present; `open` may be called more than once (one fresh stream per attempt). */
  putBlob(desc: Descriptor, open: () => Promise<Readable>, from?: BlobLocation): Promise<BlobOutcome>;
  /** Stores manifest bytes under `ref` (a tag, or the manifest's digest for index children). */
  putManifest(ref: string, m: ManifestBytes): Promise<void>;
  /** True when the sink already has this manifest digest (lets a re-push skip all blob checks). */
  hasManifest?(digest: Digest): Promise<boolean>;
}

/** Progress events, one per blob and manifest written. */
export type TransferEvent =
  | { kind: 'blob'; digest: Digest; size: number; mediaType: string; outcome: BlobOutcome }
  | { kind: 'manifest'; digest: Digest; mediaType: string; ref: string };

/** Options of a transfer. */
export interface TransferOptions {
  /** Copy a whole index (every platform). Otherwise an index is resolved to one platform's manifest. */
  allPlatforms?: boolean;
  /** The platform to pick from an index (default: the host's). */
  platform?: Platform;
  /** Parallel blob transfers (default 4). */
  concurrency?: number;
  onEvent?: (e: TransferEvent) => void;
  /**
   * Stops the transfer: requests in flight are aborted, blob streams destroyed (so a sink discards
   * what it had written of them), no manifest is written after it fired, and the transfer rejects
   * (TRANSFER_CANCELLED, or ABORTED from a request that was in flight).
   */
  signal?: AbortSignal;
}

/** What was written: the top manifest as stored in the sink. */
export interface TransferResult {
  digest: Digest;
  mediaType: string;
  size: number;
}

/**
 * Copies the image `ref` of `src` to `dst` under each of `dstRefs` (tags, or the digest). With an index
 * and no `allPlatforms`, the selected platform's manifest is copied instead and its digest returned.
 * Digests are kept: manifests are written as the exact source bytes.
 */
export async function transferImage(src: ImageSource, dst: ImageSink, ref: string, dstRefs: string[], opts: TransferOptions = {}): Promise<TransferResult> {
  const limit = pLimit(opts.concurrency ?? 4);
  const what = `transfer of ${src.name}:${ref}`;
  const { signal } = opts;
  checkSignal(signal, what);
  let top = await src.manifest(ref, signal);
  if (isIndexType(top.mediaType) && !opts.allPlatforms) {
    const d = selectPlatform(parseIndex(top), `${src.name}:${ref}`, opts.platform);
    checkSignal(signal, what);
    top = await src.manifest(d.digest, signal);
  }
  const seenBlobs = new Map<Digest, Promise<void>>();
  await copyTree(src, dst, top, limit, seenBlobs, opts, 0, what);
  const refs = dstRefs.length > 0 ? dstRefs : [top.digest];
  for (const r of refs) {
    // Nothing is named once cancelled: a tag written now would outlive the transfer that was stopped.
    checkSignal(signal, what);
    await dst.putManifest(r, top);
    opts.onEvent?.({ kind: 'manifest', digest: top.digest, mediaType: top.mediaType, ref: r });
  }
  return { digest: top.digest, mediaType: top.mediaType, size: top.bytes.length };
}

async function copyTree(src: ImageSource, dst: ImageSink, m: ManifestBytes, limit: ReturnType<typeof pLimit>, seen: Map<Digest, Promise<void>>, opts: TransferOptions, depth: number, what: string): Promise<void> {
  const { signal } = opts;
  if (depth > 4) throw new DimgError('MANIFEST_INVALID', `${src.name}: indexes nested deeper than 4 levels`, 'the image is malformed');
  if (dst.hasManifest && (await dst.hasManifest(m.digest))) return;
  if (isIndexType(m.mediaType)) {
    const index: ImageIndex = parseIndex(m);
    for (const child of unique(index.manifests)) {
      checkSignal(signal, what);
      const cm = await src.manifest(child.digest, signal);
      await copyTree(src, dst, cm, limit, seen, opts, depth + 1, what);
      checkSignal(signal, what);
      await dst.putManifest(child.digest, cm);
      opts.onEvent?.({ kind: 'manifest', digest: cm.digest, mediaType: cm.mediaType, ref: cm.digest });
    }
    return;
  }
  if (!isImageManifestType(m.mediaType)) {
    throw new DimgError('MANIFEST_UNSUPPORTED', `${src.name}@${m.digest}: unsupported manifest type ${m.mediaType}`, 'dimg copies OCI and Docker schema2 manifests and indexes');
  }
  const man: ImageManifest = parseImageManifest(m);
  // Layers with `urls` are foreign/non-distributable: registries do not hold them and do not require them.
  const blobs = unique([man.config, ...man.layers.filter((l) => !l.urls || l.urls.length === 0)]);
  await Promise.all(
    blobs.map((desc) => {
      let p = seen.get(desc.digest);
      if (!p) {
        p = limit(async () => {
          checkSignal(signal, what);
          const outcome = await dst.putBlob(desc, async () => destroyOnAbort(await src.blob(desc, signal), signal, () => transferCancelled(what)), src.location);
          opts.onEvent?.({ kind: 'blob', digest: desc.digest, size: desc.size, mediaType: desc.mediaType, outcome });
        });
        seen.set(desc.digest, p);
      }
      return p;
    }),
  );
}

/** TRANSFER_CANCELLED, the error a cancelled transfer of `what` (`pull of host/repo:tag`) fails with. */
export function transferCancelled(what: string): DimgError {
  return new DimgError('TRANSFER_CANCELLED', `${what} was cancelled`, 'run the command again to finish it; blobs already stored are reused');
}

function checkSignal(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw transferCancelled(what);
}

function unique(ds: Descriptor[]): Descriptor[] {
  const seen = new Set<string>();
  return ds.filter((d) => (seen.has(d.digest) ? false : (seen.add(d.digest), true)));
}
