/**
 * The two sides of every image transfer: an ImageSource images are read from and an ImageSink they are
 * written to. Registry repositories, the local store, OCI layout directories and Docker archives each
 * implement both (registry.ts here, transfer/store-sink.ts, transfer/oci-layout.ts, archive/endpoint.ts),
 * so one `transfer` (transfer.ts) moves images between any two of them.
 *
 * The streaming contract every implementation keeps:
 *  - blobs are read and written as streams, hashed while they stream and never buffered whole; a
 *    source verifies what it hands out, and a sink refuses (DIGEST_MISMATCH / SIZE_MISMATCH) a blob
 *    whose bytes are not its descriptor's, keeping nothing of it;
 *  - a sink reports a blob it already has (`exists`) without reading the stream, and a registry sink
 *    may mount it from another repository of the same registry (`mounted`);
 *  - manifests and indexes are put with their exact bytes, by digest (index children) and by tag;
 *  - nothing a sink writes is visible under a tag until `commit()`: a transfer that fails calls
 *    `abort()` instead, and the destination is as valid as before (no half-written tag or entry).
 */
import type { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/types.js';

/** A manifest or index with its exact bytes (what its digest is computed over) and media type. */
export interface ManifestBytes {
  bytes: Buffer;
  mediaType: string;
  digest: Digest;
}

/** Where a blob lives on a registry, so a sink on the same registry can mount instead of copying. */
export interface BlobLocation {
  domain: string;
  path: string;
}

/** How a blob ended up in a sink. */
export type BlobOutcome = 'exists' | 'mounted' | 'uploaded';

/** Anything images can be read from (a registry repository, the local store, a layout, an archive). */
export interface ImageSource {
  /** For messages: `127.0.0.1:5000/app`, `oci:DIR`, `docker-archive:FILE`, `local store`. */
  readonly name: string;
  /** Set when the source is a registry repository (enables cross-repository mounts). */
  readonly location?: BlobLocation;
  /**
   * A manifest or index by tag or digest, exact bytes. A missing one fails with a DimgError naming
   * it (IMAGE_NOT_FOUND, REGISTRY_MANIFEST_UNKNOWN, BLOB_NOT_FOUND). Stops when `signal` fires.
   */
  manifest(ref: string, signal?: AbortSignal): Promise<ManifestBytes>;
  /**
   * A blob's bytes as a stream the source verifies against the descriptor while it is read. A missing
   * blob fails (the promise or the stream) with a DimgError naming its digest.
   */
  blob(desc: Descriptor, signal?: AbortSignal): Promise<Readable>;
  /** Frees what the source holds (temp files of an unpacked archive). Idempotent. */
  close?(): Promise<void>;
}

/** Anything images can be written to; see the module comment for the contract. */
export interface ImageSink {
  readonly name: string;
  /**
   * Stores a blob unless present; `open` may be called more than once (one fresh stream per attempt)
   * or not at all (`exists`, `mounted`). `from` is where the source holds it, for a mount.
   */
  putBlob(desc: Descriptor, open: () => Promise<Readable>, from?: BlobLocation): Promise<BlobOutcome>;
  /** Stores manifest bytes under `ref` (a tag, or the manifest's digest for index children). */
  putManifest(ref: string, m: ManifestBytes): Promise<void>;
  /** True when the sink already has this manifest digest and all it references (a transfer then skips it). */
  hasManifest?(digest: Digest): Promise<boolean>;
  /**
   * Makes what was put final (an archive writes its index and manifest.json and renames the file into
   * place). Sinks that write in place need none. Called once, after the last put.
   */
  commit?(): Promise<void>;
  /** Drops what was put and not committed; the destination stays as it was. Never throws. */
  abort?(): Promise<void>;
}

/** Progress events, one per blob and manifest written. */
export type TransferEvent =
  | { kind: 'blob'; digest: Digest; size: number; mediaType: string; outcome: BlobOutcome }
  | { kind: 'manifest'; digest: Digest; mediaType: string; ref: string };
