/**
 * `dimg image copy` between any two of: a registry (`docker://REF` or a plain reference), an OCI
 * layout directory (`oci:DIR[:TAG]`) and a Docker archive (`docker-archive:FILE[:NAME:TAG]`).
 *
 * Digests are kept where the format allows: registry ↔ registry and registry ↔ OCI layout copy
 * manifests and blobs byte for byte. A Docker archive holds uncompressed layers and no manifest digest
 * of its own, so copying into one keeps the image ID (config digest) and layers' diff_ids; copying out
 * of one to a registry pushes it like `dimg image push` (layers compressed once, deterministically).
 * Docker archives go through a private temporary store (the user's store is never touched) with the
 * archive module's reader and writer.
 */
import { createReadStream, createWriteStream, mkdtempSync, promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DimgError } from '../errors.js';
import { formatReference, parseReference } from '../oci/reference.js';
import type { Descriptor, Platform } from '../oci/types.js';
import { loadArchive, writeArchive } from '../archive/index.js';
import { loadImage } from '../image/local-image.js';
import { registrySink, transferImage, type ImageSource, type RegistryClient, type TransferEvent, type TransferResult } from '../registry/index.js';
import { Store } from '../store/store.js';
import { ociLayoutSink, ociLayoutSource } from './oci-layout.js';
import { pushImage, type PushEvent } from './push.js';
import { storeSink, storeSource } from './store-sink.js';
import type { Endpoint } from './endpoint.js';

/** Options of copyBetween. */
export interface CopyOptions {
  platform?: Platform;
  allPlatforms?: boolean;
  onEvent?: (e: TransferEvent | PushEvent) => void;
  onBytes?: (d: Descriptor, sent: number) => void;
}

/** What a copy wrote: the top manifest digest at the destination (for an archive, the image's manifest digest in it). */
export interface CopyResult extends TransferResult {
  /** How the destination is shown in the final line (`oci:DIR:TAG`, a familiar reference, …). */
  shown: string;
  /** For a Docker archive destination: the image ID (config digest), which the archive keeps. */
  id?: string;
}

/** Copies the image `src` names to `dst`; see the module comment. */
export async function copyBetween(client: RegistryClient, src: Endpoint, dst: Endpoint, opts: CopyOptions = {}): Promise<CopyResult> {
  if (src.kind === 'registry' && dst.kind === 'registry') {
    const r = await client.copyImage(src.ref, dst.ref, { platform: opts.platform, allPlatforms: opts.allPlatforms, onEvent: opts.onEvent, onBytes: opts.onBytes });
    return { ...r, shown: formatReference({ ...dst.ref, tag: dst.ref.tag ?? src.ref.tag, digest: undefined }) };
  }
  const srcTag = src.kind === 'registry' ? src.ref.tag : src.kind === 'oci' ? src.tag : src.name ? parseReference(src.name).tag : undefined;
  const transferOpts = { platform: opts.platform, allPlatforms: opts.allPlatforms, onEvent: opts.onEvent };
  if (src.kind !== 'docker-archive' && dst.kind !== 'docker-archive') {
    const source = sourceOf(client, src);
    const srcRef = src.kind === 'registry' ? (src.ref.digest ?? src.ref.tag!) : (src.tag ?? '');
    if (dst.kind === 'oci') {
      const tag = dst.tag ?? srcTag ?? 'latest';
      const r = await transferImage(source, ociLayoutSink(dst.dir), srcRef, [tag], transferOpts);
      return { ...r, shown: `oci:${dst.dir}:${tag}` };
    }
    const tag = dst.ref.tag ?? srcTag ?? 'latest';
    const r = await transferImage(source, registrySink(client.repository(dst.ref), opts.onBytes), srcRef, [tag], transferOpts);
    return { ...r, shown: formatReference({ domain: dst.ref.domain, path: dst.ref.path, tag }) };
  }
  // A Docker archive on either side: through a private temporary store.
  const root = mkdtempSync(join(tmpdir(), 'dimg-copy-'));
  try {
    const store = await Store.open(root);
    let desc: Descriptor;
    let name: string | undefined;
    if (src.kind === 'docker-archive') {
      const loaded = await loadArchive(store, createReadStream(src.file), `archive ${src.file}`).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') throw new DimgError('ARCHIVE_NOT_FOUND', `archive ${src.file} does not exist`, 'check the path after docker-archive:');
        throw e;
      });
      const pick = src.name ? loaded.filter((l) => l.names.includes(src.name!)) : loaded;
      if (pick.length !== 1) {
        const names = loaded.flatMap((l) => l.names).join(', ') || 'none';
        throw new DimgError('ARCHIVE_AMBIGUOUS', `archive ${src.file} ${src.name ? `has no image named ${src.name}` : `holds ${loaded.length} images`}`, `name one: docker-archive:${src.file}:NAME:TAG (names: ${names})`);
      }
      desc = (await loadImage(store, pick[0]!.descriptor, opts.platform)).descriptor;
      name = src.name ?? pick[0]!.names[0];
    } else {
      const source = sourceOf(client, src);
      const repository = src.kind === 'registry' ? `${src.ref.domain}/${src.ref.path}` : 'localhost/oci-layout';
      const sink = storeSink(store, { repository });
      const srcRef = src.kind === 'registry' ? (src.ref.digest ?? src.ref.tag!) : (src.tag ?? '');
      const r = await transferImage(source, sink, srcRef, [srcTag ?? 'latest'], { platform: opts.platform, onEvent: opts.onEvent });
      desc = sink.last?.digest === r.digest ? sink.last : { mediaType: r.mediaType, digest: r.digest, size: r.size };
      name = src.kind === 'registry' ? `${repository}:${srcTag ?? 'latest'}` : undefined;
    }
    if (dst.kind === 'registry') {
      const tag = dst.ref.tag ?? (name ? parseReference(name).tag : undefined) ?? 'latest';
      const target = formatReference({ domain: dst.ref.domain, path: dst.ref.path, tag });
      const r = await pushImage(store, client, desc, target, { onEvent: opts.onEvent, onBytes: opts.onBytes });
      return { ...r, shown: target };
    }
    if (dst.kind === 'oci') {
      const tag = dst.tag ?? (name ? parseReference(name).tag : undefined) ?? 'latest';
      const r = await transferImage(storeSource(store), ociLayoutSink(dst.dir), desc.digest, [tag], transferOpts);
      return { ...r, shown: `oci:${dst.dir}:${tag}` };
    }
    const image = await loadImage(store, desc, opts.platform);
    const names = dst.name ? [dst.name] : name ? [name] : [];
    const tmp = `${dst.file}.tmp-${process.pid}`;
    try {
      const out = createWriteStream(tmp, { flags: 'w', mode: 0o644 });
      await writeArchive(store, [{ image, names }], out);
      await fs.rename(tmp, dst.file);
    } finally {
      await fs.rm(tmp, { force: true });
    }
    return { digest: image.descriptor.digest, mediaType: image.descriptor.mediaType, size: image.descriptor.size, id: image.id, shown: `docker-archive:${dst.file}${names[0] ? `:${names[0]}` : ''}` };
  } finally {
    await fs.rm(root, { recursive: true, force: true });
  }
}

function sourceOf(client: RegistryClient, e: Endpoint): ImageSource {
  if (e.kind === 'registry') return client.pullSource(e.ref);
  if (e.kind === 'oci') return ociLayoutSource(e.dir);
  throw new DimgError('INTERNAL', 'docker-archive sources are read through a store', 'this is a bug in dimg');
}
