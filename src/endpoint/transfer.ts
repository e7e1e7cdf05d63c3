/**
 * The one image transfer: from any ImageSource to any ImageSink (types.ts), keeping digests. Blobs
 * first (in parallel, at most `concurrency` at once, each blob once, those the sink has skipped),
 * then child manifests by digest, then the top manifest under each requested ref, then the sink's
 * commit. With `allPlatforms` an index stays an index with all its platforms (digest kept); without it,
 * the platform asked for (default: the host's) is picked from it. Copy, pull,
 * push and archive save/load are this function with different endpoints.
 */
import pLimit from 'p-limit';
import { DimgError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { isImageManifestType, isIndexType } from '../oci/media-types.js';
import type { Descriptor, ImageIndex, ImageManifest, Platform } from '../oci/types.js';
import { parseImageManifest, parseIndex } from '../registry/manifest.js';
import { selectPlatform } from '../registry/select.js';
import { destroyOnAbort } from '../registry/abort.js';
import type { ImageSink, ImageSource, ManifestBytes, TransferEvent } from './types.js';

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
   * what it had written of them), no manifest is written after it fired, the sink is aborted, and the
   * transfer rejects (TRANSFER_CANCELLED, or ABORTED from a request that was in flight).
   */
  signal?: AbortSignal;
  /** Leave the sink open (no commit, no abort): the caller puts more into it and commits it itself. */
  keepOpen?: boolean;
}

/** What was written: the top manifest as stored in the sink. */
export interface TransferResult {
  digest: Digest;
  mediaType: string;
  size: number;
}

/**
 * Copies the image `ref` of `src` to `dst` under each of `dstRefs` (tags, or none: then under its
 * digest). With an index and no `allPlatforms`, the selected platform's manifest is copied instead
 * and its digest returned. Manifests are written as the exact source bytes. On success the sink is
 * committed; on any failure it is aborted (unless `keepOpen`), so the destination names nothing new.
 */
export async function transfer(
  src: ImageSource,
  ref: string,
  dst: ImageSink,
  dstRefs: readonly string[],
  opts: TransferOptions = {},
): Promise<TransferResult> {
  try {
    const r = await copyImage(src, ref, dst, dstRefs, opts);
    if (!opts.keepOpen) {
      checkSignal(opts.signal, `transfer of ${src.name}:${ref}`);
      await dst.commit?.();
    }
    return r;
  } catch (e) {
    if (!opts.keepOpen) await dst.abort?.().catch(() => undefined);
    throw e;
  }
}

async function copyImage(
  src: ImageSource,
  ref: string,
  dst: ImageSink,
  dstRefs: readonly string[],
  opts: TransferOptions,
): Promise<TransferResult> {
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
  await copyTree(src, dst, top, { limit, seen: seenBlobs, opts, what }, 0);
  const refs = dstRefs.length > 0 ? dstRefs : [top.digest];
  for (const r of refs) {
    // Nothing is named once cancelled: a tag written now would outlive the transfer that was stopped.
    checkSignal(signal, what);
    await dst.putManifest(r, top);
    opts.onEvent?.({ kind: 'manifest', digest: top.digest, mediaType: top.mediaType, ref: r });
  }
  return { digest: top.digest, mediaType: top.mediaType, size: top.bytes.length };
}

/** What one copyTree walk shares: the limiter, the blobs started, the options and the subject. */
interface Walk {
  limit: ReturnType<typeof pLimit>;
  seen: Map<Digest, Promise<void>>;
  opts: TransferOptions;
  what: string;
}

async function copyTree(src: ImageSource, dst: ImageSink, m: ManifestBytes, walk: Walk, depth: number): Promise<void> {
  const { limit, seen, opts, what } = walk;
  const { signal } = opts;
  if (depth > 4) {
    throw new DimgError('MANIFEST_INVALID', `${src.name}: indexes nested deeper than 4 levels`, 'the image is malformed');
  }
  if (dst.hasManifest && (await dst.hasManifest(m.digest))) return;
  if (isIndexType(m.mediaType)) {
    const index: ImageIndex = parseIndex(m);
    for (const child of unique(index.manifests)) {
      checkSignal(signal, what);
      const cm = await src.manifest(child.digest, signal);
      await copyTree(src, dst, cm, walk, depth + 1);
      checkSignal(signal, what);
      await dst.putManifest(child.digest, cm);
      opts.onEvent?.({ kind: 'manifest', digest: cm.digest, mediaType: cm.mediaType, ref: cm.digest });
    }
    return;
  }
  if (!isImageManifestType(m.mediaType)) {
    throw new DimgError(
      'MANIFEST_UNSUPPORTED',
      `${src.name}@${m.digest}: unsupported manifest type ${m.mediaType}`,
      'dimg copies OCI and Docker schema2 manifests and indexes',
    );
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
          const open = async () => destroyOnAbort(await src.blob(desc, signal), signal, () => transferCancelled(what));
          const outcome = await dst.putBlob(desc, open, src.location);
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
  const hint = 'run the command again to finish it; blobs already stored are reused';
  return new DimgError('TRANSFER_CANCELLED', `${what} was cancelled`, hint);
}

function checkSignal(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw transferCancelled(what);
}

function unique(ds: Descriptor[]): Descriptor[] {
  const seen = new Set<string>();
  return ds.filter((d) => (seen.has(d.digest) ? false : (seen.add(d.digest), true)));
}
