/**
 * `dimg image load`: images from an archive into the store. Accepted shapes:
 *  - Docker 25+ (`oci-layout` + `index.json` + `manifest.json`) and plain OCI image layout archives
 *    (`index.json` only): read through index.json, manifests and configs kept byte for byte, names from
 *    `io.containerd.image.name`, else a `ref.name` that is a full reference, else manifest.json's RepoTags;
 *  - Docker ≤ 24 and skopeo `docker-archive:` (`manifest.json` + config + layer files, legacy dirs,
 *    symlinked layers): config kept byte for byte (same image ID), an OCI manifest made for it.
 * The archive is read once (read.ts). Then every image is checked completely (files present, each
 * layer's diff_id equal to the config's `rootfs.diff_ids` entry) before ANY name is set, so a failing
 * load leaves no name pointing at a broken image; blobs it already stored are unnamed and GC reclaims them.
 */
import type { Readable } from 'node:stream';
import { DimgError } from '../errors.js';
import { canonicalBytes } from '../oci/canonical-json.js';
import { HashingStream, isDigest, sha256, type Digest } from '../oci/digest.js';
import { MediaType, isImageManifestType, isIndexType, layerCompression } from '../oci/media-types.js';
import { formatReference, parseReference } from '../oci/reference.js';
import { ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest } from '../oci/types.js';
import { MAGIC_BYTES, decompress, detectCompression, type Compression } from '../layer/index.js';
import type { Store } from '../store/store.js';
import { ArchiveFiles, readArchive, type ArchiveFile } from './read.js';
import { pipeline } from 'node:stream/promises';
import { Readable as NodeReadable, Writable } from 'node:stream';

/** One image the load stored. */
export interface LoadedImage {
  /** The image ID (config digest). */
  id: Digest;
  /** The store descriptor (manifest or index). */
  descriptor: Descriptor;
  /** Full names given to it (may be empty). */
  names: string[];
}

/** Loads the archive streamed by `input` (named `subject` in errors) into `store`. */
export async function loadArchive(store: Store, input: Readable, subject = 'archive'): Promise<LoadedImage[]> {
  const files = await readArchive(store, input, subject);
  const ctx = new LoadContext(store, files, subject);
  const staged = files.has('index.json') && (files.has('oci-layout') || !files.has('manifest.json')) ? await ctx.fromIndex() : await ctx.fromManifestJson();
  // Everything is stored and verified: now the names.
  for (const img of staged) {
    if (img.names.length === 0) await store.addUntagged(img.descriptor);
    for (const name of img.names) await store.tag(name, img.descriptor);
  }
  return staged;
}

interface DockerManifestRow {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/** The per-load state: the archive's files and the store. */
class LoadContext {
  constructor(
    private readonly store: Store,
    private readonly files: ArchiveFiles,
    private readonly subject: string,
  ) {}

  /** Images listed in index.json (OCI layout, Docker 25+). */
  async fromIndex(): Promise<LoadedImage[]> {
    const layout = this.files.resolve('oci-layout');
    if (layout) {
      const v = this.json<{ imageLayoutVersion?: string }>(layout);
      if (v.imageLayoutVersion !== '1.0.0') throw this.invalid(`oci-layout has version ${JSON.stringify(v.imageLayoutVersion)}, only 1.0.0 is supported`);
    }
    const index = this.json<ImageIndex>(this.need('index.json', 'the OCI index'));
    if (!Array.isArray(index.manifests)) throw this.invalid('index.json has no manifests list');
    const tagsByConfig = this.repoTagsByConfig();
    const byDigest = new Map<Digest, LoadedImage>();
    for (const d of index.manifests) {
      if (!isDigest(d.digest)) throw this.invalid(`index.json lists an invalid digest ${JSON.stringify(d.digest)}`);
      let img = byDigest.get(d.digest);
      if (!img) {
        const desc: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
        if (d.platform) desc.platform = d.platform;
        const id = await this.storeTree(desc);
        img = { id, descriptor: desc, names: [] };
        byDigest.set(d.digest, img);
      }
      const name = nameFromAnnotations(d.annotations);
      if (name && !img.names.includes(name)) img.names.push(name);
    }
    for (const img of byDigest.values()) {
      if (img.names.length > 0) continue;
      for (const t of tagsByConfig.get(img.id) ?? []) if (!img.names.includes(t)) img.names.push(t);
    }
    return [...byDigest.values()];
  }

  /** Images listed in manifest.json (Docker ≤ 24, skopeo docker-archive, GGCR tarballs). */
  async fromManifestJson(): Promise<LoadedImage[]> {
    if (!this.files.has('manifest.json')) throw this.invalid('it has neither manifest.json nor an OCI index.json');
    const rows = this.manifestRows();
    const out: LoadedImage[] = [];
    for (const [i, row] of rows.entries()) {
      const what = `image ${i + 1} of manifest.json${row.RepoTags?.length ? ` (${row.RepoTags.join(', ')})` : ''}`;
      const configFile = this.need(row.Config, `the config of ${what}`);
      const configBytes = await this.bytes(configFile);
      const config = this.parse<ImageConfig>(configBytes, row.Config);
      const diffIds = config.rootfs?.diff_ids;
      if (!Array.isArray(diffIds)) throw this.invalid(`config ${row.Config} of ${what} has no rootfs.diff_ids`);
      if (diffIds.length !== row.Layers.length) throw this.invalid(`${what} lists ${row.Layers.length} layers but its config has ${diffIds.length} diff_ids`);
      const layers: Descriptor[] = [];
      for (const [j, path] of row.Layers.entries()) layers.push(await this.storeLayer(this.need(path, `layer ${j + 1} of ${what}`), diffIds[j]!, what));
      const configDesc = await this.store.blobs.writeBytes(configBytes);
      const manifest: ImageManifest = {
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: MediaType.ociConfig, digest: configDesc.digest, size: configDesc.size },
        layers,
      };
      const stored = await this.store.blobs.writeBytes(canonicalBytes(manifest));
      const platform = { architecture: config.architecture, os: config.os, ...(config.variant ? { variant: config.variant } : {}) };
      out.push({
        id: configDesc.digest,
        descriptor: { mediaType: MediaType.ociManifest, digest: stored.digest, size: stored.size, platform },
        names: (row.RepoTags ?? []).map((t) => this.fullName(t)),
      });
    }
    return out;
  }

  private manifestRows(): DockerManifestRow[] {
    const rows = this.json<unknown>(this.need('manifest.json', 'the image list'));
    const ok = Array.isArray(rows) && rows.every((r) => r && typeof r === 'object' && typeof (r as DockerManifestRow).Config === 'string' && Array.isArray((r as DockerManifestRow).Layers) && (r as DockerManifestRow).Layers.every((l) => typeof l === 'string'));
    if (!ok) throw this.invalid('manifest.json is not a list of {Config, RepoTags, Layers}');
    return rows as DockerManifestRow[];
  }

  /** manifest.json's RepoTags by config digest (names for index entries that carry none). */
  private repoTagsByConfig(): Map<Digest, string[]> {
    const out = new Map<Digest, string[]>();
    if (!this.files.has('manifest.json')) return out;
    for (const row of this.manifestRows()) {
      const f = this.files.resolve(row.Config);
      if (!f) continue;
      const id = f.kind === 'blob' ? f.digest : sha256(f.data);
      out.set(id, (row.RepoTags ?? []).map((t) => this.fullName(t)));
    }
    return out;
  }

  /** Stores a manifest or index from `blobs/sha256/` and everything it needs; returns the image ID. */
  private async storeTree(d: Descriptor): Promise<Digest> {
    if (typeof d.digest !== 'string' || !isDigest(d.digest)) throw this.invalid(`an index lists an invalid digest ${JSON.stringify(d.digest)}`);
    const path = `blobs/sha256/${d.digest.slice(7)}`;
    if (isIndexType(d.mediaType)) {
      const bytes = await this.bytes(this.need(path, `index ${d.digest}`));
      this.checkSize(d, bytes.length);
      const index = this.parse<ImageIndex>(bytes, path);
      let first: Digest | undefined;
      for (const m of index.manifests ?? []) {
        // An index may list platforms the archive does not carry (Docker saves only what it has).
        if (!this.files.has(`blobs/sha256/${m.digest.slice(7)}`)) continue;
        const id = await this.storeTree(m);
        first ??= id;
      }
      if (!first) throw this.invalid(`index ${d.digest} has none of its manifests in the archive`);
      await this.store.blobs.writeBytes(bytes, d.digest);
      return first;
    }
    if (!isImageManifestType(d.mediaType)) throw this.invalid(`${d.digest} has media type ${d.mediaType}, which is not an image`);
    const bytes = await this.bytes(this.need(path, `manifest ${d.digest}`));
    this.checkSize(d, bytes.length);
    const manifest = this.parse<ImageManifest>(bytes, path);
    if (!manifest || !manifest.config || !Array.isArray(manifest.layers)) throw this.invalid(`manifest ${d.digest} is not an image manifest`);
    for (const x of [manifest.config, ...manifest.layers]) {
      if (!x || typeof x.digest !== 'string' || !isDigest(x.digest)) throw this.invalid(`manifest ${d.digest} lists an invalid digest ${JSON.stringify(x?.digest)}`);
    }
    const cpath = `blobs/sha256/${manifest.config.digest.slice(7)}`;
    const configBytes = await this.bytes(this.need(cpath, `the config of manifest ${d.digest}`));
    this.checkSize(manifest.config, configBytes.length);
    const config = this.parse<ImageConfig>(configBytes, cpath);
    const diffIds = config.rootfs?.diff_ids ?? [];
    const what = `manifest ${d.digest}`;
    if (diffIds.length !== manifest.layers.length) throw this.invalid(`${what} has ${manifest.layers.length} layers but its config has ${diffIds.length} diff_ids`);
    for (const [j, l] of manifest.layers.entries()) {
      const stored = await this.storeLayer(this.need(`blobs/sha256/${l.digest.slice(7)}`, `layer ${j + 1} of ${what}`), diffIds[j]!, what, l.mediaType);
      if (stored.digest !== l.digest) throw this.invalid(`layer ${j + 1} of ${what} was stored under ${stored.digest}, not ${l.digest}`);
      this.checkSize(l, stored.size);
    }
    await this.store.blobs.writeBytes(configBytes, manifest.config.digest);
    await this.store.blobs.writeBytes(bytes, d.digest);
    return manifest.config.digest;
  }

  /** A descriptor must state its content's true size (readers such as skopeo trust it). */
  private checkSize(d: Descriptor, actual: number): void {
    if (d.size !== actual) throw this.invalid(`the descriptor of ${d.digest} says ${JSON.stringify(d.size)} bytes, the content has ${actual}`);
  }

  /**
   * Makes sure the layer file is in the store, checks its diff_id, records it, and returns its
   * descriptor. xz/bzip2 layers (which OCI has no media type for) are stored decompressed.
   */
  private async storeLayer(file: ArchiveFile, diffId: Digest, what: string, declaredType?: string): Promise<Descriptor> {
    let blob: { digest: Digest; size: number };
    let diff: { compression: Compression; diffId: Digest; size: number };
    if (file.kind === 'memory') {
      blob = await this.store.blobs.writeBytes(file.data);
      diff = await diffOf(file.data, `layer ${file.path}`);
    } else {
      blob = { digest: file.digest, size: file.size };
      if (file.diff.error) throw new DimgError('LAYER_CORRUPT', `${this.subject}: layer ${file.path} of ${what} cannot be decompressed: ${file.diff.error.message}`, 'the archive is damaged; save it again');
      diff = file.diff.compression === 'none' ? { compression: 'none', diffId: file.digest, size: file.size } : { compression: file.diff.compression, diffId: file.diff.diffId!, size: file.diff.size! };
    }
    if (diff.diffId !== diffId) {
      throw new DimgError(
        'DIFF_ID_MISMATCH',
        `${this.subject}: layer ${file.path} of ${what} has diff_id ${diff.diffId}, but the image config says ${diffId}`,
        'the archive is corrupt or was assembled wrongly; nothing was named',
      );
    }
    let mediaType = declaredType && layerCompression(declaredType) === diff.compression ? declaredType : undefined;
    if (diff.compression === 'bzip2' || diff.compression === 'xz') {
      // No OCI media type exists for these: keep the uncompressed tar instead.
      blob = await this.store.blobs.write(await decompress(this.store.blobs.open(blob.digest, blob.size), `layer ${file.path}`), { digest: diffId, size: diff.size }, `layer ${file.path}`);
      mediaType = MediaType.ociLayer;
    }
    mediaType ??= diff.compression === 'gzip' ? MediaType.ociLayerGzip : diff.compression === 'zstd' ? MediaType.ociLayerZstd : MediaType.ociLayer;
    await this.store.layers.add(diffId, { digest: blob.digest, mediaType, size: blob.size }, diff.size);
    return { mediaType, digest: blob.digest, size: blob.size };
  }

  private need(path: string, what: string): ArchiveFile {
    const f = this.files.resolve(path);
    if (!f) {
      throw new DimgError('ARCHIVE_INVALID', `${this.subject}: ${what} refers to "${path}", which is not a file in the archive`, 'the archive is incomplete, or its manifest points outside it');
    }
    return f;
  }

  private async bytes(f: ArchiveFile): Promise<Buffer> {
    if (f.kind === 'memory') return f.data;
    if (f.size > 16 << 20) throw this.invalid(`${f.path} is ${f.size} bytes, too big for a JSON document`);
    return this.store.blobs.read(f.digest);
  }

  private json<T>(f: ArchiveFile): T {
    if (f.kind !== 'memory') throw this.invalid(`${f.path} is too big`);
    return this.parse<T>(f.data, f.path);
  }

  private parse<T>(data: Buffer, path: string): T {
    try {
      return JSON.parse(data.toString('utf8')) as T;
    } catch {
      throw this.invalid(`${path} is not valid JSON`);
    }
  }

  private fullName(tag: string): string {
    try {
      return formatReference(parseReference(tag));
    } catch (e) {
      throw this.invalid(`manifest.json has an invalid RepoTags entry ${JSON.stringify(tag)}: ${(e as Error).message}`);
    }
  }

  private invalid(why: string): DimgError {
    return new DimgError('ARCHIVE_INVALID', `${this.subject}: ${why}`, 'the archive is not a valid image archive; nothing was named');
  }
}

/**
 * The full name an index.json entry carries: `io.containerd.image.name`, else a `ref.name` that is a
 * whole reference (`busybox:1.36`, `host:5000/a/b:t`). A bare tag (`latest`, skopeo's `x`) is no name.
 */
function nameFromAnnotations(a: Record<string, string> | undefined): string | undefined {
  for (const [key, requireFull] of [[ANNOTATION_IMAGE_NAME, false], [ANNOTATION_REF_NAME, true]] as const) {
    const v = a?.[key];
    if (!v) continue;
    if (requireFull && !/[:/]/.test(v)) continue;
    try {
      const ref = parseReference(v);
      if (!ref.digest) return formatReference(ref);
    } catch {
      /* not a reference: not a name */
    }
  }
  return undefined;
}

async function diffOf(data: Buffer, subject: string): Promise<{ compression: Compression; diffId: Digest; size: number }> {
  const compression = detectCompression(data.subarray(0, MAGIC_BYTES));
  if (compression === 'none') return { compression, diffId: sha256(data), size: data.length };
  const h = new HashingStream();
  try {
    await pipeline(await decompress(NodeReadable.from([data]), subject), h, new Writable({ write: (_c, _e, cb) => cb() }));
  } catch (e) {
    throw new DimgError('LAYER_CORRUPT', `${subject} cannot be decompressed: ${(e as Error).message}`, 'the archive is damaged; save it again');
  }
  return { compression, diffId: h.digest(), size: h.size };
}
