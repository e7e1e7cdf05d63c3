/**
 * `dimg image import`: a root filesystem (a directory, or a tarball: plain, gzip, zstd, xz, bzip2, or a
 * stream such as stdin) becomes a one-layer image, like `docker import`.
 *
 * Decisions:
 *  - The layer is stored UNCOMPRESSED (`application/vnd.oci.image.layer.v1.tar`, digest = diff_id), as
 *    every layer dimg makes; compression happens at push.
 *  - A tarball is not stored verbatim: it is unpacked by the safe extractor into a temp dir in the store
 *    (so path traversal, symlink escapes and the like are refused) and repacked by the reproducible tar
 *    writer, exactly like a directory (rootfs-layer.ts, which `from: { rootfs }` builds use too). The
 *    layer therefore depends only on the tree: entry order, headers and mtimes (clamped to
 *    SOURCE_DATE_EPOCH, 0 when unset) are normalised; numeric uid/gid, modes, xattrs, links and
 *    device nodes are kept.
 *  - Config: `created` = SOURCE_DATE_EPOCH when set (else now); one history entry
 *    `{created, comment}` without `created_by`; `comment` (config and history) is the message, by
 *    default `Imported from <source>` where <source> is `-` for stdin or the source's base name (never
 *    a host path). So the same import gives the same manifest digest on any machine.
 */
import { createReadStream, promises as fs } from 'node:fs';
import { basename } from 'node:path';
import type { Readable } from 'node:stream';
import { DimgError } from '../errors.js';
import { hostPlatform } from '../oci/platform.js';
import type { ImageConfig, Platform } from '../oci/types.js';
import { storeRootfsLayer, type RootfsSource } from './rootfs-layer.js';
import type { Store } from '../store/store.js';
import { applyChanges } from './changes.js';
import { commitImage } from './commit.js';
import type { Descriptor } from '../oci/types.js';
import type { Digest } from '../oci/digest.js';

/** What to import. */
export interface ImportOptions {
  /** A directory or tarball path, or a tar stream (e.g. stdin). */
  source: string | Readable;
  /** How the source is named in the comment; default `-` for streams, the base name for paths. */
  sourceLabel?: string;
  /** `--change` instructions (CMD, ENV, …). */
  changes?: readonly string[];
  /** Default: the host's platform. */
  platform?: Platform;
  /** Commit message; default `Imported from <source>`. */
  message?: string;
  /** SOURCE_DATE_EPOCH in seconds: the config's `created` and the clamp for file mtimes. */
  sourceDateEpoch?: number;
}

/** The imported image (not yet named). */
export interface ImportedImage {
  descriptor: Descriptor;
  id: Digest;
  diffId: Digest;
}

/**
 * Imports `opts.source` into the store and returns the new image's descriptor and ID. Fails with
 * IMPORT_SOURCE naming the source when it cannot be read, and with the extractor's LAYER_* errors
 * for an unsafe or malformed tarball; a failure leaves nothing named and no temp files behind.
 */
export async function importImage(store: Store, opts: ImportOptions): Promise<ImportedImage> {
  const label = opts.sourceLabel ?? (typeof opts.source === 'string' ? basename(opts.source) || opts.source : '-');
  const epoch = opts.sourceDateEpoch;
  const containerConfig = applyChanges({}, opts.changes ?? []); // fail on a bad --change before any work
  let source: RootfsSource;
  if (typeof opts.source === 'string') {
    const st = await fs.stat(opts.source).catch((e: NodeJS.ErrnoException) => {
      throw new DimgError('IMPORT_SOURCE', `cannot read import source ${opts.source}: ${e.code === 'ENOENT' ? 'no such file or directory' : e.message}`, 'give a root filesystem directory, a tarball, or - for stdin');
    });
    source = st.isDirectory() ? { dir: opts.source } : { tar: createReadStream(opts.source) };
  } else {
    source = { tar: opts.source };
  }
  const subject = typeof opts.source === 'string' ? `tarball ${opts.source}` : `tarball from ${label}`;
  const layer = await storeRootfsLayer(store, source, subject, epoch);
  const platform = opts.platform ?? hostPlatform();
  const created = epoch !== undefined ? new Date(epoch * 1000).toISOString().replace(/\.000Z$/, 'Z') : new Date().toISOString();
  const comment = opts.message ?? `Imported from ${label}`;
  const config: ImageConfig = {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    created,
    comment,
    config: containerConfig,
    rootfs: { type: 'layers', diff_ids: [layer.diffId] },
    history: [{ created, comment }],
  };
  const { descriptor } = await commitImage(store, { config, layers: [layer.descriptor] });
  const manifest = await store.blobs.readJson<{ config: { digest: Digest } }>(descriptor.digest);
  return { descriptor, id: manifest.config.digest, diffId: layer.diffId };
}

/** Parses SOURCE_DATE_EPOCH (whole seconds); undefined when unset or empty. */
export function sourceDateEpoch(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const v = env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v)) throw new DimgError('SOURCE_DATE_EPOCH_INVALID', `SOURCE_DATE_EPOCH="${v}" is not a whole number of seconds`, 'set it to a Unix time, e.g. SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)');
  return Number(v);
}
