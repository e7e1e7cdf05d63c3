/**
 * A Docker archive (`docker save` tar, `docker-archive:FILE`) as an image endpoint.
 *
 * Source: the archive is read once (load.ts: any `docker save` version, OCI layout archives, skopeo's
 * docker-archive) into a private temporary store, never buffered in memory, and served from there
 * (manifests and indexes byte for byte as the archive holds them; a Docker ≤ 24 archive, which has
 * none, gets the OCI manifest load.ts makes for it). `close()` removes the temporary store.
 *
 * Sink: writes the Docker 25+ shape (an OCI layout plus `manifest.json` and `repositories`, see
 * save.ts), which `docker load` of any version and skopeo read. Blobs and manifests are written as
 * they arrive, exact bytes, so the manifest digest is kept (`docker load` and skopeo decompress a
 * compressed layer file themselves). Each blob is verified while it streams into the tar; a wrong one
 * fails the transfer. Everything goes into a temporary file beside FILE; `commit()` appends index.json,
 * manifest.json, oci-layout and repositories, fsyncs and renames it over FILE, `abort()` removes it,
 * so FILE is only ever a complete archive (the one before, or the new one).
 */
import { createReadStream, createWriteStream, mkdtempSync, promises as fs } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pLimit from 'p-limit';
import tar from 'tar-stream';
import { DimgError } from '../errors.js';
import { VerifyingStream, digestHex, isDigest, type Digest } from '../oci/digest.js';
import { MediaType, isImageManifestType, isIndexType } from '../oci/media-types.js';
import { familiarName, formatReference, parseReference } from '../oci/reference.js';
import { ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME } from '../oci/types.js';
import type { Descriptor, ImageIndex, ImageManifest } from '../oci/types.js';
import type { BlobOutcome, ImageSink, ImageSource, ManifestBytes } from '../endpoint/types.js';
import { Store } from '../store/store.js';
import { storeSource } from '../transfer/store-sink.js';
import { loadArchive, type LoadedImage } from './load.js';

/** The archive `file` as an ImageSource; see the module comment. */
export function dockerArchiveSource(file: string): ImageSource & { images(): Promise<LoadedImage[]> } {
  const name = `docker-archive:${file}`;
  let root: string | undefined;
  let opened: Promise<{ store: Store; images: LoadedImage[] }> | undefined;
  const open = () =>
    (opened ??= (async () => {
      root = mkdtempSync(join(tmpdir(), 'dimg-archive-'));
      const store = await Store.open(root);
      const input = createReadStream(file, { highWaterMark: 1 << 20 });
      const images = await loadArchive(store, input, `archive ${file}`).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
        const hint = 'check the path after docker-archive:';
        throw new DimgError('ARCHIVE_NOT_FOUND', `archive ${file} does not exist`, hint);
      });
      return { store, images };
    })());
  const pick = (images: LoadedImage[], ref: string): LoadedImage => {
    const all = images.flatMap((l) => l.names).join(', ') || 'none';
    const hint = `name one: docker-archive:${file}:NAME:TAG (names: ${all})`;
    if (ref === '') {
      if (images.length === 1) return images[0]!;
      throw new DimgError('ARCHIVE_AMBIGUOUS', `archive ${file} holds ${images.length} images`, hint);
    }
    const full = fullName(ref);
    const hit = images.find((l) => l.names.includes(full) || l.names.some((n) => parseReference(n).tag === ref));
    if (!hit) throw new DimgError('IMAGE_NOT_FOUND', `archive ${file} has no image named ${ref}`, hint);
    return hit;
  };
  return {
    name,
    images: async () => (await open()).images,
    async manifest(ref: string): Promise<ManifestBytes> {
      const { store, images } = await open();
      const digest = isDigest(ref) ? ref : pick(images, ref).descriptor.digest;
      if (!(await store.blobs.has(digest))) {
        const hint = 'the archive does not hold it';
        throw new DimgError('IMAGE_NOT_FOUND', `archive ${file} has no manifest ${digest}`, hint);
      }
      return storeSource(store).manifest(digest);
    },
    async blob(d: Descriptor): Promise<Readable> {
      const { store } = await open();
      if (!(await store.blobs.has(d.digest))) {
        const hint = 'the archive is incomplete; save it again';
        throw new DimgError('BLOB_NOT_FOUND', `archive ${file} has no blob ${d.digest}`, hint);
      }
      return store.blobs.open(d.digest, d.size);
    },
    async close(): Promise<void> {
      await opened?.catch(() => undefined);
      if (root) await fs.rm(root, { recursive: true, force: true });
      root = undefined;
    },
  };
}

/** A full reference for `ref` when it is one (`shop/web:1` → `docker.io/shop/web:1`), else `ref`. */
function fullName(ref: string): string {
  try {
    return formatReference(parseReference(ref));
  } catch {
    return ref;
  }
}

/** Options of dockerArchiveSink. */
export interface DockerArchiveSinkOptions {
  /** Repository (`domain/path`) a tag ref names the image under; without it tagged images get no name. */
  repository?: string;
}

/** A sink writing a new archive at `file` (replacing it at commit); see the module comment. */
export function dockerArchiveSink(file: string, opts: DockerArchiveSinkOptions = {}): ImageSink {
  const name = `docker-archive:${file}`;
  const tmp = join(dirname(file), `.${basename(file)}.dimg-${process.pid}-${randomBytes(4).toString('hex')}`);
  const entries = pLimit(1); // a tar is written one entry at a time
  const written = new Map<Digest, number>();
  const manifests = new Map<Digest, ManifestBytes>();
  const tags: { ref: string; digest: Digest }[] = [];
  let pack: tar.Pack | undefined;
  let done: Promise<void> | undefined;
  let failed: unknown;
  let finished = false;
  const start = (): tar.Pack => {
    if (!pack) {
      pack = tar.pack();
      done = pipeline(pack as unknown as Readable, createWriteStream(tmp, { flags: 'wx', mode: 0o644 }));
      done.catch(() => undefined); // observed at commit or abort
    }
    return pack;
  };
  type Check = { digest: Digest; subject: string };
  const entry = (path: string, size: number, src: Readable, verify?: Check): Promise<void> =>
    entries(async () => {
      if (failed) throw failed;
      const e = start().entry({ name: path, type: 'file', mode: 0o644, mtime: new Date(0), size, uid: 0, gid: 0 });
      try {
        const sink = e as unknown as Writable;
        if (verify) await pipeline(src, new VerifyingStream(verify.digest, size, verify.subject), sink);
        else await pipeline(src, sink);
      } catch (err) {
        // A tar entry cut short cannot be taken back: the whole archive is abandoned.
        failed = err;
        throw err;
      }
    });
  const putBytes = async (d: Digest, bytes: Buffer): Promise<void> => {
    if (written.has(d)) return;
    written.set(d, bytes.length);
    const check = { digest: d, subject: `manifest ${d} for ${name}` };
    await entry(`blobs/sha256/${digestHex(d)}`, bytes.length, Readable.from([bytes]), check);
  };
  return {
    name,
    async putBlob(desc, open): Promise<BlobOutcome> {
      if (written.has(desc.digest)) return 'exists';
      written.set(desc.digest, desc.size);
      try {
        const check = { digest: desc.digest, subject: `blob ${desc.digest} for ${name}` };
        await entry(`blobs/sha256/${digestHex(desc.digest)}`, desc.size, await open(), check);
      } catch (e) {
        written.delete(desc.digest);
        throw e;
      }
      return 'uploaded';
    },
    async putManifest(ref, m): Promise<void> {
      await putBytes(m.digest, m.bytes);
      manifests.set(m.digest, m);
      if (!isDigest(ref)) tags.push({ ref, digest: m.digest });
    },
    async commit(): Promise<void> {
      if (finished) return;
      if (failed) throw failed;
      const meta = archiveMetadata(manifests, tags, opts.repository);
      const add = (path: string, data: Buffer) => entry(path, data.length, Readable.from([data]));
      await add('index.json', meta.index);
      await add('manifest.json', meta.manifestJson);
      await add('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
      await add('repositories', meta.repositories);
      start().finalize();
      await done;
      const fh = await fs.open(tmp, 'r');
      await fh.sync().finally(() => fh.close());
      await fs.rename(tmp, file);
      finished = true;
    },
    async abort(): Promise<void> {
      if (finished) return;
      finished = true;
      pack?.destroy();
      await done?.catch(() => undefined);
      await fs.rm(tmp, { force: true });
    },
  };
}

/** index.json, manifest.json and repositories for the manifests and tags a sink received. */
function archiveMetadata(
  manifests: Map<Digest, ManifestBytes>,
  tags: { ref: string; digest: Digest }[],
  repository: string | undefined,
): { index: Buffer; manifestJson: Buffer; repositories: Buffer } {
  const childrenOf = (m: ManifestBytes): Descriptor[] =>
    isIndexType(m.mediaType) ? ((JSON.parse(m.bytes.toString('utf8')) as ImageIndex).manifests ?? []) : [];
  const children = new Set<Digest>();
  for (const m of manifests.values()) for (const c of childrenOf(m)) children.add(c.digest);
  const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
  const rows: { Config: string; RepoTags: string[]; Layers: string[] }[] = [];
  const repos: Record<string, Record<string, string>> = {};
  const describe = (m: ManifestBytes): Descriptor => ({
    mediaType: m.mediaType,
    digest: m.digest,
    size: m.bytes.length,
  });
  const row = (m: ManifestBytes, repoTag?: { familiar: string; tag: string }) => {
    const images = isIndexType(m.mediaType)
      ? childrenOf(m).flatMap((c) => manifests.get(c.digest) ?? [])
      : [m];
    for (const [i, img] of images.entries()) {
      if (!isImageManifestType(img.mediaType)) continue;
      const man = JSON.parse(img.bytes.toString('utf8')) as ImageManifest;
      const layers = man.layers.map((l) => `blobs/sha256/${digestHex(l.digest)}`);
      // docker load names one image per tag: the index's first platform carries it.
      const named = repoTag && i === 0;
      const RepoTags = named ? [`${repoTag.familiar}:${repoTag.tag}`] : [];
      rows.push({ Config: `blobs/sha256/${digestHex(man.config.digest)}`, RepoTags, Layers: layers });
      const top = man.layers[man.layers.length - 1];
      if (named && top) (repos[repoTag.familiar] ??= {})[repoTag.tag] = digestHex(top.digest);
    }
  };
  for (const t of tags) {
    const m = manifests.get(t.digest)!;
    if (!repository) {
      index.manifests.push({ ...describe(m), annotations: { [ANNOTATION_REF_NAME]: t.ref } });
      row(m);
      continue;
    }
    const full = `${repository}:${t.ref}`;
    const familiar = familiarName(parseReference(full));
    const annotations = { [ANNOTATION_IMAGE_NAME]: full, [ANNOTATION_REF_NAME]: t.ref };
    index.manifests.push({ ...describe(m), annotations });
    row(m, { familiar, tag: t.ref });
  }
  const tagged = new Set(tags.map((t) => t.digest));
  for (const m of manifests.values()) {
    // Put by digest only and no index's child: an image the transfer named by its digest.
    if (tagged.has(m.digest) || children.has(m.digest)) continue;
    index.manifests.push(describe(m));
    row(m);
  }
  return {
    index: Buffer.from(`${JSON.stringify(index)}\n`),
    manifestJson: Buffer.from(`${JSON.stringify(rows)}\n`),
    repositories: Buffer.from(`${JSON.stringify(repos)}\n`),
  };
}
