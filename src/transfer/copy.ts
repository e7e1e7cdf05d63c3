/**
 * `dimg image copy` between any two of: a registry (`docker://REF` or a plain reference), an OCI
 * layout directory (`oci:DIR[:TAG]`) and a Docker archive (`docker-archive:FILE[:NAME:TAG]`).
 *
 * Each side is opened as an image endpoint (src/endpoint) and the image moves with the one generic
 * `transfer`, so every pair is the same code: manifests and blobs byte for byte, digests kept, an index
 * whole with `allPlatforms`. A destination without a tag takes the source's tag (else `latest`); a
 * Docker archive destination without a name takes the source's name.
 */
import { DimgError } from '../errors.js';
import { formatReference, parseReference } from '../oci/reference.js';
import { isImageManifestType } from '../oci/media-types.js';
import type { Descriptor, ImageManifest, Platform } from '../oci/types.js';
import { dockerArchiveSink, dockerArchiveSource } from '../archive/endpoint.js';
import { registrySink } from '../endpoint/registry.js';
import { transfer, type TransferResult } from '../endpoint/transfer.js';
import type { ImageSink, ImageSource, TransferEvent } from '../endpoint/types.js';
import type { RegistryClient } from '../registry/client.js';
import { ociLayoutSink, ociLayoutSource } from './oci-layout.js';
import type { Endpoint } from './endpoint.js';

/** Options of copyBetween. */
export interface CopyOptions {
  platform?: Platform;
  allPlatforms?: boolean;
  onEvent?: (e: TransferEvent) => void;
  onBytes?: (d: Descriptor, sent: number) => void;
  signal?: AbortSignal;
}

/** What a copy wrote: the top manifest digest at the destination. */
export interface CopyResult extends TransferResult {
  /** How the destination is shown in the final line (`oci:DIR:TAG`, a reference, …). */
  shown: string;
  /** For a Docker archive destination holding one image: the image ID (config digest). */
  id?: string;
}

/** A source side: the endpoint, the ref to read, and the name (repository and tag) it carries, if any. */
interface OpenSource {
  source: ImageSource;
  ref: string;
  repository?: string;
  tag?: string;
}

/** Copies the image `src` names to `dst`; see the module comment. */
export async function copyBetween(
  client: RegistryClient,
  src: Endpoint,
  dst: Endpoint,
  opts: CopyOptions = {},
): Promise<CopyResult> {
  const from = await openSource(client, src);
  try {
    const tag = (explicit?: string) => explicit ?? from.tag ?? 'latest';
    let sink: ImageSink;
    let refs: string[];
    let shown: string;
    if (dst.kind === 'registry') {
      sink = registrySink(client.repository(dst.ref), { onBytes: opts.onBytes });
      refs = dst.ref.digest && !dst.ref.tag ? [] : [tag(dst.ref.tag)];
      const digest = refs[0] ? undefined : dst.ref.digest;
      shown = formatReference({ domain: dst.ref.domain, path: dst.ref.path, tag: refs[0], digest });
    } else if (dst.kind === 'oci') {
      sink = ociLayoutSink(dst.dir);
      refs = [tag(dst.tag)];
      shown = `oci:${dst.dir}:${refs[0]}`;
    } else {
      const name = dst.name ?? (from.repository ? `${from.repository}:${tag()}` : undefined);
      const ref = name ? parseReference(name) : undefined;
      sink = dockerArchiveSink(dst.file, { repository: ref ? `${ref.domain}/${ref.path}` : undefined });
      refs = ref ? [ref.tag ?? 'latest'] : [];
      shown = `docker-archive:${dst.file}${name ? `:${name}` : ''}`;
    }
    const r = await transfer(from.source, from.ref, sink, refs, {
      platform: opts.platform,
      allPlatforms: opts.allPlatforms,
      onEvent: opts.onEvent,
      signal: opts.signal,
    });
    if (dst.kind === 'registry' && dst.ref.digest && dst.ref.digest !== r.digest) {
      throw new DimgError(
        'DIGEST_MISMATCH',
        `copy to ${dst.ref.domain}/${dst.ref.path}@${dst.ref.digest}: the image copied has digest ${r.digest}`,
        'name the destination by tag, or use the digest of the image being copied',
      );
    }
    if (dst.kind !== 'docker-archive' || !isImageManifestType(r.mediaType)) return { ...r, shown };
    // Docker names an archived image by its ID (the config digest); say it as `docker save` users expect.
    const m = await from.source.manifest(r.digest, opts.signal);
    return { ...r, shown, id: (JSON.parse(m.bytes.toString('utf8')) as ImageManifest).config.digest };
  } finally {
    await from.source.close?.();
  }
}

async function openSource(client: RegistryClient, e: Endpoint): Promise<OpenSource> {
  if (e.kind === 'registry') {
    const ref = e.ref.digest ?? e.ref.tag;
    if (!ref) {
      const what = `copy source ${e.ref.domain}/${e.ref.path}`;
      throw new DimgError('REFERENCE_INVALID', `${what} has neither tag nor digest`, 'name a tag or digest to copy');
    }
    return { source: client.pullSource(e.ref), ref, repository: `${e.ref.domain}/${e.ref.path}`, tag: e.ref.tag };
  }
  if (e.kind === 'oci') return { source: ociLayoutSource(e.dir), ref: e.tag ?? '', tag: e.tag };
  const named = e.name ? parseReference(e.name) : undefined;
  const source = dockerArchiveSource(e.file);
  if (named) return { source, ref: e.name!, repository: `${named.domain}/${named.path}`, tag: named.tag };
  // The only image of the archive, under the first name it carries (if any).
  try {
    const images = await source.images();
    const first = images.length === 1 ? images[0]!.names[0] : undefined;
    const ref = first ? parseReference(first) : undefined;
    return { source, ref: '', repository: ref ? `${ref.domain}/${ref.path}` : undefined, tag: ref?.tag };
  } catch (err) {
    await source.close?.();
    throw err;
  }
}
