/**
 * A registry repository as an image endpoint. Source: manifests and blobs read with the repository's
 * verified GETs. Sink: blobs HEAD-checked (an existing one is `exists`), mounted from another
 * repository of the same registry when one is known to hold it (the source's repository, and any the
 * caller knows of), else streamed up in chunks, verified while sent; manifests PUT with their media
 * type, retried briefly on registry 2.8's link-file race (putManifestSettling). A registry writes in
 * place: nothing is pending, so the sink needs no commit, and a failed transfer has named nothing
 * because the tag is put last.
 */
import type { Readable } from 'node:stream';
import { isDimgError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/types.js';
import type { RemoteRepository } from '../registry/repository.js';
import type { BlobOutcome, ImageSink, ImageSource, ManifestBytes } from './types.js';

/** An ImageSource over one repository (no mirrors; RegistryClient.pullSource adds them). */
export function registrySource(repo: RemoteRepository): ImageSource {
  return {
    name: repo.name,
    location: { domain: repo.domain, path: repo.path },
    manifest: (r: string, signal?: AbortSignal): Promise<ManifestBytes> => repo.getManifest(r, signal),
    blob: (d: Descriptor, signal?: AbortSignal): Promise<Readable> => repo.getBlob(d.digest, d.size, signal),
  };
}

/** Options of registrySink. */
export interface RegistrySinkOptions {
  /** Bytes sent so far per blob while uploads run (for live progress). */
  onBytes?: (d: Descriptor, sent: number) => void;
  /** Other repositories of this registry known to hold `digest`, most likely first (mount candidates). */
  holders?: (digest: Digest) => Promise<string[]>;
  /** Told once a blob is in the repository, with where it was mounted from, if it was. */
  onStored?: (desc: Descriptor, outcome: BlobOutcome, mountedFrom?: string) => void | Promise<void>;
  /** Checked before each manifest PUT and between settling retries; throws to stop. */
  check?: () => void;
}

/** An ImageSink writing to one repository; see the module comment. */
export function registrySink(
  repo: RemoteRepository,
  opts: RegistrySinkOptions | ((d: Descriptor, sent: number) => void) = {},
): ImageSink {
  const o: RegistrySinkOptions = typeof opts === 'function' ? { onBytes: opts } : opts;
  const check = o.check ?? (() => undefined);
  return {
    name: repo.name,
    async putBlob(desc, open, from): Promise<BlobOutcome> {
      const known = o.holders ? await o.holders(desc.digest) : [];
      const fromSource = from && from.domain === repo.domain ? [from.path] : [];
      const mountFrom = [...new Set([...fromSource, ...known])].filter((p) => p !== repo.path);
      const outcome = await repo.uploadBlob(desc.digest, desc.size, open, {
        mountFrom: mountFrom.length > 0 ? mountFrom : undefined,
        onProgress: o.onBytes ? (n) => o.onBytes!(desc, n) : undefined,
      });
      await o.onStored?.(desc, outcome, outcome === 'mounted' ? mountFrom[0] : undefined);
      return outcome;
    },
    async putManifest(ref, m): Promise<void> {
      check();
      await putManifestSettling(repo, ref, m, check);
    },
    hasManifest: async (digest: Digest) => (await repo.headManifest(digest)) !== undefined,
  };
}

/**
 * PUTs a manifest, retrying briefly when the registry claims a blob we just made sure of is unknown.
 * Registry 2.8 rewrites a repository's blob link file in place (truncate, then write) whenever any
 * writer links that blob again; a manifest PUT that verifies its blobs at that instant reads an empty
 * link and answers DIGEST_INVALID + MANIFEST_BLOB_UNKNOWN. Concurrent pushes of one image (two
 * applies at once) hit this; the state settles within milliseconds, so a few retries converge, while
 * a blob that is really missing still fails after them.
 */
export async function putManifestSettling(
  repo: { putManifest(ref: string, bytes: Buffer, mediaType: string): Promise<Digest> },
  ref: string,
  m: ManifestBytes,
  check: () => void,
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await repo.putManifest(ref, m.bytes, m.mediaType);
      return;
    } catch (e) {
      const racing =
        isDimgError(e) && (e.code === 'REGISTRY_DIGEST_INVALID' || e.code === 'REGISTRY_MANIFEST_BLOB_UNKNOWN');
      if (!racing || attempt >= 4) throw e;
      check();
      await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
    }
  }
}
