/**
 * An OCI image layout directory (`oci:DIR[:TAG]`, as skopeo and umoci name it) as an ImageSource and
 * an ImageSink, for `dimg image copy`. Blobs and manifests are copied byte for byte, so a copy between
 * a registry and a layout keeps every digest. Tags are index.json entries annotated with
 * `org.opencontainers.image.ref.name` = TAG (what skopeo writes and reads).
 */
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DimgError } from '../errors.js';
import { HashingStream, VerifyingStream, digestHex, digestMismatch, isDigest, sha256, type Digest } from '../oci/digest.js';
import { MediaType, isImageManifestType, isIndexType } from '../oci/media-types.js';
import { ANNOTATION_REF_NAME, type Descriptor, type ImageIndex } from '../oci/types.js';
import type { BlobOutcome, ImageSink, ImageSource, ManifestBytes } from '../endpoint/types.js';

const LAYOUT = '{"imageLayoutVersion":"1.0.0"}';

/** Reads the layout's index.json; fails with OCI_LAYOUT_INVALID naming the directory. */
async function readIndex(dir: string): Promise<ImageIndex> {
  let text: string;
  try {
    text = await fs.readFile(join(dir, 'index.json'), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new DimgError('OCI_LAYOUT_INVALID', `${dir} is not an OCI image layout: it has no index.json`, 'give the directory an `oci:` copy or `skopeo copy … oci:DIR` wrote');
    throw e;
  }
  try {
    const index = JSON.parse(text) as ImageIndex;
    if (!Array.isArray(index.manifests)) throw new Error('no manifests list');
    return index;
  } catch (e) {
    throw new DimgError('OCI_LAYOUT_INVALID', `${dir}/index.json is not a valid image index: ${(e as Error).message}`, 'the layout is damaged; write it again');
  }
}

function blobPath(dir: string, d: Digest): string {
  return join(dir, 'blobs', 'sha256', digestHex(d));
}

/**
 * The layout at `dir` as an ImageSource. `manifest(ref)`: a digest, or a tag (the index.json entry
 * whose ref.name is the tag); the empty ref takes the only entry. Blobs are verified while read.
 */
export function ociLayoutSource(dir: string): ImageSource & { resolve(ref: string): Promise<Descriptor> } {
  const src = {
    name: `oci:${dir}`,
    async resolve(ref: string): Promise<Descriptor> {
      const index = await readIndex(dir);
      const hits = ref === '' ? index.manifests : index.manifests.filter((d) => d.annotations?.[ANNOTATION_REF_NAME] === ref);
      if (hits.length === 1 || (hits.length > 1 && ref !== '')) return hits[0]!;
      if (ref === '' && hits.length > 1) throw new DimgError('OCI_LAYOUT_AMBIGUOUS', `oci:${dir} holds ${hits.length} images`, `name one: oci:${dir}:TAG (tags: ${index.manifests.map((d) => d.annotations?.[ANNOTATION_REF_NAME] ?? d.digest).join(', ')})`);
      throw new DimgError('IMAGE_NOT_FOUND', `oci:${dir} has no image tagged "${ref}"`, `its tags: ${index.manifests.map((d) => d.annotations?.[ANNOTATION_REF_NAME]).filter(Boolean).join(', ') || 'none'}`);
    },
    async manifest(ref: string): Promise<ManifestBytes> {
      let mediaType: string | undefined;
      let digest: Digest;
      if (isDigest(ref)) digest = ref;
      else {
        const d = await src.resolve(ref);
        digest = d.digest;
        mediaType = d.mediaType;
      }
      let bytes: Buffer;
      try {
        bytes = await fs.readFile(blobPath(dir, digest));
      } catch {
        throw new DimgError('BLOB_NOT_FOUND', `oci:${dir}: manifest ${digest} is missing from blobs/`, 'the layout is incomplete; write it again');
      }
      const actual = sha256(bytes);
      if (actual !== digest) throw digestMismatch(`oci:${dir} manifest`, digest, actual);
      const doc = JSON.parse(bytes.toString('utf8')) as { mediaType?: string; manifests?: unknown };
      mediaType = doc.mediaType ?? mediaType ?? (Array.isArray(doc.manifests) ? MediaType.ociIndex : MediaType.ociManifest);
      if (!isImageManifestType(mediaType) && !isIndexType(mediaType)) throw new DimgError('MEDIA_TYPE_UNSUPPORTED', `oci:${dir}: ${digest} has media type ${mediaType}, which is not an image`, 'only images and indexes can be copied');
      return { bytes, mediaType, digest };
    },
    async blob(d: Descriptor): Promise<Readable> {
      const file = createReadStream(blobPath(dir, d.digest), { highWaterMark: 1 << 20 });
      const verify = new VerifyingStream(d.digest, d.size, `oci:${dir} blob ${d.digest}`);
      file.on('error', (e) =>
        verify.destroy((e as NodeJS.ErrnoException).code === 'ENOENT' ? new DimgError('BLOB_NOT_FOUND', `oci:${dir}: blob ${d.digest} is missing`, 'the layout is incomplete; write it again') : e),
      );
      return file.pipe(verify);
    },
  };
  return src;
}

/**
 * An ImageSink writing into the layout at `dir` (created when missing). Blobs are written to a temp
 * file, verified, fsynced and renamed; a tag ref replaces the index.json entry of that tag.
 */
export function ociLayoutSink(dir: string): ImageSink {
  const blobs = join(dir, 'blobs', 'sha256');
  const ready = (async () => {
    await fs.mkdir(blobs, { recursive: true });
    if (!(await exists(join(dir, 'oci-layout')))) await fs.writeFile(join(dir, 'oci-layout'), LAYOUT);
    if (!(await exists(join(dir, 'index.json')))) await fs.writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] }));
  })();
  const has = async (d: Digest, size?: number) => {
    const st = await fs.stat(blobPath(dir, d)).catch(() => undefined);
    return st !== undefined && (size === undefined || st.size === size);
  };
  const put = async (d: Digest, size: number, src: Readable): Promise<void> => {
    const tmp = join(blobs, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      const h = new HashingStream();
      await pipeline(src, h, createWriteStream(tmp, { flags: 'wx', mode: 0o644 }));
      if (h.digest() !== d) throw digestMismatch(`blob ${d} for oci:${dir}`, d, h.digest());
      if (h.size !== size) throw new DimgError('SIZE_MISMATCH', `blob ${d} for oci:${dir}: got ${h.size} bytes, expected ${size}`, 'the source is corrupt');
      const fh = await fs.open(tmp, 'r');
      await fh.sync().finally(() => fh.close());
      await fs.rename(tmp, blobPath(dir, d));
    } finally {
      await fs.rm(tmp, { force: true });
    }
  };
  return {
    name: `oci:${dir}`,
    async putBlob(desc, open): Promise<BlobOutcome> {
      await ready;
      if (await has(desc.digest, desc.size)) return 'exists';
      await put(desc.digest, desc.size, await open());
      return 'uploaded';
    },
    async putManifest(ref, m): Promise<void> {
      await ready;
      if (!(await has(m.digest, m.bytes.length))) {
        await put(m.digest, m.bytes.length, Readable.from([m.bytes]));
      }
      if (isDigest(ref)) return;
      const index = await readIndex(dir);
      index.manifests = index.manifests.filter((d) => d.annotations?.[ANNOTATION_REF_NAME] !== ref);
      index.manifests.push({ mediaType: m.mediaType, digest: m.digest, size: m.bytes.length, annotations: { [ANNOTATION_REF_NAME]: ref } });
      const tmp = join(dir, `.index-${process.pid}-${randomBytes(6).toString('hex')}`);
      await fs.writeFile(tmp, JSON.stringify(index));
      await fs.rename(tmp, join(dir, 'index.json'));
    },
  };
}

async function exists(p: string): Promise<boolean> {
  return fs.stat(p).then(
    () => true,
    () => false,
  );
}
