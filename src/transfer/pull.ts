/**
 * `dimg image pull`: an image from a registry (through its mirrors first) into the local store.
 * Manifests and blobs are stored exactly as the registry sent them, so digests are kept; an image
 * already complete in the store transfers no blob (only its manifest is read to learn the digest).
 */
import { DimgError } from '../errors.js';
import { formatReference, parseReference, type Reference } from '../oci/reference.js';
import type { Descriptor, Platform } from '../oci/types.js';
import type { RegistryClient } from '../registry/index.js';
import { transfer, transferCancelled } from '../endpoint/transfer.js';
import type { TransferEvent } from '../endpoint/types.js';
import type { Store } from '../store/store.js';
import { storeSink } from './store-sink.js';

/** Options of pullImage. */
export interface PullOptions {
  /** Platform to select from an index (default: the host's). */
  platform?: Platform;
  /** Pull every tag of the repository (`ref` must then name no tag or digest other than the default). */
  allTags?: boolean;
  onEvent?: (e: TransferEvent & { tag?: string }) => void;
  /** Stops the pull: downloads in flight are aborted and discarded; no image is named. */
  signal?: AbortSignal;
}

/** One pulled image: its store descriptor and the full name it got (`domain/path:tag` or `…@digest`). */
export interface PulledImage {
  descriptor: Descriptor;
  name: string;
}

/**
 * Pulls `ref` (`busybox`, `host:5000/a/b:t`, `…@sha256:…`) into `store`. A tag names the stored image
 * `domain/path:tag`; a digest stores it unnamed (an entry without tag, as `docker pull name@digest`
 * keeps it). With `allTags`, every tag of the repository is pulled; the result is the last one and
 * `pulled` lists all. Fails with the registry's errors (REGISTRY_MANIFEST_UNKNOWN, …) naming the image.
 */
export async function pullImage(store: Store, client: RegistryClient, ref: string, opts: PullOptions = {}): Promise<PulledImage & { pulled: PulledImage[] }> {
  const parsed = parseReference(ref, { defaultTag: !opts.allTags });
  if (opts.allTags && (parsed.tag !== undefined || parsed.digest !== undefined)) {
    throw new DimgError('PULL_ALL_TAGS_WITH_TAG', `pull --all-tags of ${ref}: name the repository without a tag or digest`, `use \`dimg image pull -a ${parsed.domain}/${parsed.path}\``);
  }
  const refs: Reference[] = opts.allTags
    ? (await client.repository(parsed).listTags()).sort().map((tag) => ({ domain: parsed.domain, path: parsed.path, tag }))
    : [parsed];
  if (refs.length === 0) throw new DimgError('REGISTRY_NAME_UNKNOWN', `repository ${parsed.domain}/${parsed.path} has no tags`, 'check the repository name');
  const pulled: PulledImage[] = [];
  for (const r of refs) {
    if (opts.signal?.aborted) throw transferCancelled(`pull of ${ref}`);
    pulled.push(await pullOne(store, client, r, opts));
  }
  return { ...pulled[pulled.length - 1]!, pulled };
}

async function pullOne(store: Store, client: RegistryClient, ref: Reference, opts: PullOptions): Promise<PulledImage> {
  const source = client.pullSource(ref);
  const repository = `${ref.domain}/${ref.path}`;
  const sink = storeSink(store, { repository, origin: { domain: ref.domain, path: ref.path } });
  const srcRef = ref.digest ?? ref.tag!;
  const result = await transfer(source, srcRef, sink, ref.digest ? [] : [ref.tag!], {
    platform: opts.platform,
    signal: opts.signal,
    onEvent: opts.onEvent ? (e) => opts.onEvent!({ ...e, tag: ref.tag }) : undefined,
  });
  const descriptor: Descriptor = sink.last && sink.last.digest === result.digest ? sink.last : { mediaType: result.mediaType, digest: result.digest, size: result.size };
  if (ref.digest) {
    await store.addUntagged(descriptor);
    return { descriptor, name: formatReference({ domain: ref.domain, path: ref.path, digest: ref.digest }) };
  }
  return { descriptor, name: `${repository}:${ref.tag}` };
}
