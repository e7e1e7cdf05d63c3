/**
 * `dimg image save`: one tar archive holding several images in the shape Docker 25+ writes, which
 * both `docker load` (any version) and skopeo's `docker-archive:` transport read:
 *
 *   oci-layout, index.json          an OCI image layout: one descriptor per tag, annotated with the tag
 *                                   (`org.opencontainers.image.ref.name`) and the full name
 *                                   (`io.containerd.image.name`); untagged images get a plain descriptor
 *   blobs/sha256/<hex>              configs, OCI manifests, and layers stored UNCOMPRESSED (digest = diff_id)
 *   manifest.json                   `[{Config, RepoTags, Layers}]` with paths into blobs/sha256/
 *   repositories                    `{"repo": {"tag": "<top layer hex>"}}`
 *
 * Layers the store keeps compressed (pulled images) are decompressed while streaming into the archive,
 * their diff_id checked on the way; an image whose layers are all uncompressed keeps its manifest
 * bytes, so a save/load round trip keeps its manifest digest. Every entry has fixed metadata (uid/gid
 * 0, no user names, mode 0644/0755, mtime = the image's `created` for its blobs and 0 for the rest), so
 * the same images always give a byte-identical archive.
 */
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { DimgError } from '../errors.js';
import { canonicalBytes } from '../oci/canonical-json.js';
import { HashingStream, digestHex, sha256, type Digest } from '../oci/digest.js';
import { MediaType, layerCompression } from '../oci/media-types.js';
import { familiarName, formatReference, parseReference, repositoryName, type Reference } from '../oci/reference.js';
import { ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, type Descriptor, type ImageIndex, type ImageManifest } from '../oci/types.js';
import { findImage } from '../image/find.js';
import { loadImage, type LocalImage } from '../image/local-image.js';
import { decompress, gzip } from '../layer/index.js';
import type { Store } from '../store/store.js';

/** One image to save, with the full names (`domain/path:tag`) it is saved under (possibly none). */
export interface SaveItem {
  image: LocalImage;
  names: string[];
}

/**
 * Resolves what the user asked to save. A name with a tag (or a digest, or an image ID) selects one
 * image; a repository name without a tag selects every tag of that repository, as `docker save` does;
 * `all` selects every tagged image. Images selected twice are saved once, with all their names.
 */
export async function resolveSaveSet(store: Store, queries: readonly string[], opts: { all?: boolean } = {}): Promise<SaveItem[]> {
  const items = new Map<Digest, SaveItem>();
  const add = (image: LocalImage, name?: string) => {
    const item = items.get(image.descriptor.digest) ?? { image, names: [] };
    if (name && !item.names.includes(name)) item.names.push(name);
    items.set(image.descriptor.digest, item);
  };
  const entries = await store.entries();
  if (opts.all) {
    for (const e of entries) if (e.name) add(await loadImage(store, e.descriptor), e.name);
  }
  for (const q of queries) {
    let ref: Reference | undefined;
    try {
      ref = parseReference(q, { defaultTag: false });
    } catch {
      ref = undefined;
    }
    if (ref && ref.tag === undefined && ref.digest === undefined) {
      const repo = repositoryName(ref);
      const tagged = entries.filter((e) => e.name?.startsWith(`${repo}:`));
      if (tagged.length > 0) {
        for (const e of tagged) add(await loadImage(store, e.descriptor), e.name);
        continue;
      }
    }
    const found = await findImage(store, q);
    const name = ref && ref.tag !== undefined && !ref.digest ? formatReference(ref) : undefined;
    add(found.image, name);
  }
  if (items.size === 0) throw new DimgError('NOTHING_TO_SAVE', 'no images to save', 'name the images to save, or pass --all to save every tagged image');
  return [...items.values()];
}

interface BlobPlan {
  digest: Digest;
  size: number;
  mtime: Date;
  /** Produces the blob's bytes (verified). */
  open: () => Promise<Readable>;
}

interface ArchiveImage {
  manifest: Descriptor;
  configHex: string;
  layerHexes: string[];
  names: string[];
}

/**
 * Writes `items` as one archive into `out` (gzip-compressed with `gzip`), streaming every blob.
 * Resolves when `out` has received everything; rejects (and destroys the stream) on the first error,
 * e.g. a store blob whose content no longer matches its digest.
 */
export async function writeArchive(store: Store, items: readonly SaveItem[], out: Writable, opts: { gzip?: boolean } = {}): Promise<void> {
  const blobs = new Map<Digest, BlobPlan>();
  const images: ArchiveImage[] = [];
  for (const item of items) images.push(await planImage(store, item, blobs));

  const pack = tar.pack();
  const packed = pack as unknown as Readable; // a streamx Readable, compatible with node streams
  const done = opts.gzip ? pipeline(gzip(packed), out) : pipeline(packed, out);
  const epoch = new Date(0);
  const dir = (name: string) => writeEntry(pack, { name, type: 'directory', mode: 0o755, mtime: epoch, size: 0 });
  const file = (name: string, data: Buffer, mtime = epoch) => writeEntry(pack, { name, type: 'file', mode: 0o644, mtime, size: data.length }, data);
  try {
    await dir('blobs/');
    await dir('blobs/sha256/');
    for (const b of blobs.values()) {
      const entry = pack.entry({ name: `blobs/sha256/${digestHex(b.digest)}`, type: 'file', mode: 0o644, mtime: b.mtime, size: b.size, uid: 0, gid: 0 });
      await pipeline(await b.open(), entry as unknown as Writable);
    }
    await file('index.json', indexJson(images));
    await file('manifest.json', manifestJson(images));
    await file('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
    await file('repositories', repositoriesJson(images));
    pack.finalize();
  } catch (e) {
    pack.destroy(e as Error);
    await done.catch(() => undefined);
    throw e;
  }
  await done;
}

function writeEntry(pack: tar.Pack, header: Partial<tar.Header> & { name: string }, data?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    pack.entry({ uid: 0, gid: 0, ...header }, data ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
  });
}

/** Decides the archive's manifest for one image and registers the blobs it needs. */
async function planImage(store: Store, item: SaveItem, blobs: Map<Digest, BlobPlan>): Promise<ArchiveImage> {
  const { image } = item;
  const created = image.config.created ? new Date(image.config.created) : new Date(0);
  const mtime = Number.isNaN(created.getTime()) || created.getTime() < 0 ? new Date(0) : new Date(Math.floor(created.getTime() / 1000) * 1000);
  const diffIds = image.config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== image.manifest.layers.length) {
    throw new DimgError('IMAGE_INVALID', `image ${image.id} has ${image.manifest.layers.length} layers but ${diffIds.length} diff_ids`, 'the image is inconsistent; rebuild or re-pull it');
  }
  const layers: Descriptor[] = [];
  let rewritten = image.descriptor.mediaType !== MediaType.ociManifest || image.manifest.config.mediaType !== MediaType.ociConfig;
  for (let i = 0; i < diffIds.length; i++) {
    const desc = image.manifest.layers[i]!;
    const diffId = diffIds[i]!;
    if (layerCompression(desc.mediaType) === 'none' && desc.digest === diffId) {
      layers.push(desc);
      add(blobs, { digest: diffId, size: desc.size, mtime, open: async () => store.blobs.open(diffId, desc.size) });
      continue;
    }
    rewritten = true;
    const plan = await uncompressedLayer(store, diffId, desc, mtime);
    add(blobs, plan);
    layers.push({ mediaType: MediaType.ociLayer, digest: diffId, size: plan.size });
  }
  const config = image.manifest.config;
  add(blobs, { digest: config.digest, size: config.size, mtime, open: async () => store.blobs.open(config.digest, config.size) });
  let manifest: Descriptor;
  if (!rewritten) {
    manifest = { mediaType: MediaType.ociManifest, digest: image.descriptor.digest, size: image.descriptor.size };
    add(blobs, { digest: manifest.digest, size: manifest.size, mtime, open: async () => store.blobs.open(manifest.digest, manifest.size) });
  } else {
    const m: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: config.digest, size: config.size },
      layers,
    };
    if (image.manifest.annotations) m.annotations = image.manifest.annotations;
    // The rewritten manifest exists only in the archive: the store keeps the image as it was.
    const bytes = canonicalBytes(m);
    manifest = { mediaType: MediaType.ociManifest, digest: sha256(bytes), size: bytes.length };
    add(blobs, { digest: manifest.digest, size: bytes.length, mtime, open: async () => Readable.from([bytes]) });
  }
  return { manifest, configHex: digestHex(config.digest), layerHexes: diffIds.map(digestHex), names: item.names };
}

function add(blobs: Map<Digest, BlobPlan>, plan: BlobPlan): void {
  if (!blobs.has(plan.digest)) blobs.set(plan.digest, plan);
}

/**
 * How to produce the uncompressed tar of a layer stored compressed: an uncompressed variant the store
 * already has, else the compressed blob decompressed on the fly. The tar header needs the size first;
 * when the layer record does not know it, one extra decompression pass counts it (and records it).
 */
async function uncompressedLayer(store: Store, diffId: Digest, desc: Descriptor, mtime: Date): Promise<BlobPlan> {
  const rec = await store.layers.get(diffId).catch(() => undefined);
  const plain = rec?.blobs.find((b) => b.digest === diffId && layerCompression(b.mediaType) === 'none');
  if (plain && (await store.blobs.has(plain.digest))) {
    return { digest: diffId, size: plain.size, mtime, open: async () => store.blobs.open(diffId, plain.size) };
  }
  const subject = `layer ${desc.digest} (diff_id ${diffId})`;
  let size = rec?.size;
  if (size === undefined) {
    const counter = new HashingStream();
    await pipeline(await decompress(store.blobs.open(desc.digest, desc.size), subject), counter, discard());
    if (counter.digest() !== diffId) throw diffIdMismatch(subject, diffId, counter.digest());
    size = counter.size;
    await store.layers.add(diffId, { digest: desc.digest, mediaType: desc.mediaType, size: desc.size }, size);
  }
  const known = size;
  return {
    digest: diffId,
    size: known,
    mtime,
    open: async () => {
      const check = new DiffIdCheck(diffId, known, subject);
      const raw = await decompress(store.blobs.open(desc.digest, desc.size), subject);
      raw.on('error', (e) => check.destroy(e));
      return raw.pipe(check);
    },
  };
}

/** Verifies the decompressed bytes against the diff_id while they stream into the archive. */
class DiffIdCheck extends HashingStream {
  constructor(
    private readonly diffId: Digest,
    private readonly expectedSize: number,
    private readonly subject: string,
  ) {
    super();
  }

  override _flush(cb: (err?: Error | null) => void): void {
    const actual = this.digest();
    if (actual !== this.diffId) cb(diffIdMismatch(this.subject, this.diffId, actual));
    else if (this.size !== this.expectedSize) cb(new DimgError('SIZE_MISMATCH', `${this.subject}: uncompressed size is ${this.size}, the store recorded ${this.expectedSize}`, 'run `dimg store verify --repair` and pull the image again'));
    else cb();
  }
}

function diffIdMismatch(subject: string, expected: Digest, actual: Digest): DimgError {
  return new DimgError('DIFF_ID_MISMATCH', `${subject}: uncompressed content has digest ${actual}, expected ${expected}`, 'the stored layer is corrupt; run `dimg store verify --repair` and pull the image again');
}

function discard(): Writable {
  return new Writable({ write: (_c, _e, cb) => cb() });
}

function indexJson(images: readonly ArchiveImage[]): Buffer {
  const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
  for (const img of images) {
    if (img.names.length === 0) index.manifests.push({ ...img.manifest });
    for (const name of img.names) {
      const ref = parseReference(name);
      index.manifests.push({ ...img.manifest, annotations: { [ANNOTATION_IMAGE_NAME]: name, [ANNOTATION_REF_NAME]: ref.tag ?? 'latest' } });
    }
  }
  return Buffer.from(`${JSON.stringify(index)}\n`);
}

function manifestJson(images: readonly ArchiveImage[]): Buffer {
  const rows = images.map((img) => ({
    Config: `blobs/sha256/${img.configHex}`,
    RepoTags: img.names.map((n) => {
      const ref = parseReference(n);
      return `${familiarName(ref)}:${ref.tag ?? 'latest'}`;
    }),
    Layers: img.layerHexes.map((h) => `blobs/sha256/${h}`),
  }));
  return Buffer.from(`${JSON.stringify(rows)}\n`);
}

function repositoriesJson(images: readonly ArchiveImage[]): Buffer {
  const repos: Record<string, Record<string, string>> = {};
  for (const img of images) {
    const top = img.layerHexes[img.layerHexes.length - 1];
    if (!top) continue;
    for (const n of img.names) {
      const ref = parseReference(n);
      (repos[familiarName(ref)] ??= {})[ref.tag ?? 'latest'] = top;
    }
  }
  return Buffer.from(`${JSON.stringify(repos)}\n`);
}
