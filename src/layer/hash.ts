/**
 * Hashing layers while they stream: the diff_id (sha256 of the uncompressed tar) and, when the layer
 * is compressed on the way, the blob digest too, in one pass and without buffering.
 */
import { pipeline } from 'node:stream/promises';
import type { Readable, Writable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { adaptiveGzip } from './adaptive-gzip.js';
import { HashingStream, type Digest } from '../oci/digest.js';

/** The identity of an uncompressed layer tar. */
export interface TarDigest {
  /** sha256 of the uncompressed tar: the config's `rootfs.diff_ids` entry. */
  diffId: Digest;
  /** Bytes of the uncompressed tar. */
  size: number;
}

/** A layer as written: its diff_id and the digest/size of the bytes that reached the destination. */
export interface WrittenLayer extends TarDigest {
  /** Digest of what was written to `dest` (equals diffId when uncompressed). */
  digest: Digest;
  /** Bytes written to `dest`. */
  blobSize: number;
}

/**
 * Streams `tar` into `dest` unchanged and resolves with its diff_id and size once `dest` finished.
 * Nothing is buffered beyond stream high-water marks. Rejects with the first error of either side
 * (and destroys both).
 */
export async function hashTar(tar: Readable, dest: Writable): Promise<TarDigest> {
  const h = new HashingStream();
  await pipeline(tar, h, dest);
  return { diffId: h.digest(), size: h.size };
}

/**
 * Streams `tar` into `dest`, gzip-compressed at `level` (Node zlib, deterministic for a given level)
 * unless `compression` is 'none', hashing the uncompressed and the written bytes on the way.
 * With `parallel`, the layer is compressed as push compresses it (adaptiveGzip: 4 MiB blocks as
 * independent gzip members on worker threads, incompressible blocks stored, `level` ignored): a
 * different but equally deterministic blob for inputs over one block, so pick one setting and keep it.
 */
export async function writeLayer(tar: Readable, dest: Writable, opts: { compression: 'none' | 'gzip'; level?: number; parallel?: boolean | { workers?: number } }): Promise<WrittenLayer> {
  const raw = new HashingStream();
  if (opts.compression === 'none') {
    await pipeline(tar, raw, dest);
    return { diffId: raw.digest(), size: raw.size, digest: raw.digest(), blobSize: raw.size };
  }
  const blob = new HashingStream();
  if (opts.parallel) {
    tar.on('error', (err) => raw.destroy(err));
    await pipeline(adaptiveGzip(tar.pipe(raw), opts.parallel === true ? {} : opts.parallel), blob, dest);
  } else {
    await pipeline(tar, raw, createGzip({ level: opts.level ?? 6 }), blob, dest);
  }
  return { diffId: raw.digest(), size: raw.size, digest: blob.digest(), blobSize: blob.size };
}
