/**
 * The store's names: the OCI layout's `index.json`. Each tagged image is one descriptor carrying
 * its full normalised name in both `org.opencontainers.image.ref.name` and `io.containerd.image.name`,
 * so `skopeo inspect oci:$DIMG_ROOT/oci:docker.io/library/busybox:latest` finds it. An image whose
 * last tag moved elsewhere stays as a descriptor without a name (a dangling image, as Docker keeps
 * them) until `prune`. Every change is a read-modify-write of index.json under the store lock.
 */
import { join } from 'node:path';
import { ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, type Descriptor, type ImageIndex } from '../oci/types.js';
import { MediaType } from '../oci/media-types.js';
import { canonicalJson } from '../oci/canonical-json.js';
import { DimgError } from '../errors.js';
import { readJsonFile, writeFileAtomic } from './fsutil.js';

/** One entry of the store's index: an image (manifest or index) and its name, if tagged. */
export interface ImageEntry {
  /** Full normalised reference `domain/path:tag`, absent for dangling images. */
  name?: string;
  descriptor: Descriptor;
}

/** Reads and writes `index.json` of an OCI layout directory. */
export class RefStore {
  readonly indexPath: string;

  constructor(
    readonly layoutDir: string,
    private readonly tmpDir: string,
  ) {
    this.indexPath = join(layoutDir, 'index.json');
  }

  /** All entries, in index order. A missing index.json is an empty store. */
  async entries(): Promise<ImageEntry[]> {
    const index = await this.readIndex();
    return index.manifests.map((d) => ({ name: d.annotations?.[ANNOTATION_IMAGE_NAME] ?? d.annotations?.[ANNOTATION_REF_NAME], descriptor: d }));
  }

  /** The parsed index.json (an empty index when absent). */
  async readIndex(): Promise<ImageIndex> {
    let index: ImageIndex | undefined;
    try {
      index = await readJsonFile<ImageIndex>(this.indexPath);
    } catch {
      throw new DimgError('STORE_CORRUPT', `the store's index is not valid JSON: ${this.indexPath}`, 'run `dimg store verify --repair` to rebuild it from the blobs');
    }
    return index ?? emptyIndex();
  }

  /**
   * Applies `change` to the entry list and writes index.json atomically. The caller must hold the
   * store lock. Entries are stored with their names as annotations; order is kept stable.
   */
  async update(change: (entries: ImageEntry[]) => ImageEntry[]): Promise<void> {
    const next = change(await this.entries());
    const index = emptyIndex();
    index.manifests = next.map(toDescriptor);
    await writeFileAtomic(this.indexPath, `${canonicalJson(index)}\n`, this.tmpDir);
  }
}

/**
 * Returns the entry list with `name` pointing at `descriptor`. The image that `name` held before
 * stays as a dangling entry when no other name refers to it; a dangling entry of the new image is
 * dropped (it has a name now).
 */
export function withTag(entries: ImageEntry[], name: string, descriptor: Descriptor): ImageEntry[] {
  const previous = entries.find((e) => e.name === name);
  let next = entries.filter((e) => e.name !== name && !(e.name === undefined && e.descriptor.digest === descriptor.digest));
  if (previous && previous.descriptor.digest !== descriptor.digest && !next.some((e) => e.descriptor.digest === previous.descriptor.digest)) {
    next.push({ descriptor: stripNames(previous.descriptor) });
  }
  next = [...next, { name, descriptor: stripNames(descriptor) }];
  return next;
}

/** The empty index.json of a new layout. */
export function emptyIndex(): ImageIndex {
  return { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
}

function stripNames(d: Descriptor): Descriptor {
  const annotations = { ...(d.annotations ?? {}) };
  delete annotations[ANNOTATION_REF_NAME];
  delete annotations[ANNOTATION_IMAGE_NAME];
  const out: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (d.platform) out.platform = d.platform;
  if (Object.keys(annotations).length > 0) out.annotations = annotations;
  return out;
}

function toDescriptor(e: ImageEntry): Descriptor {
  const d = stripNames(e.descriptor);
  const annotations: Record<string, string> = { ...(d.annotations ?? {}) };
  if (e.name) {
    annotations[ANNOTATION_REF_NAME] = e.name;
    annotations[ANNOTATION_IMAGE_NAME] = e.name;
  }
  return { ...d, annotations };
}
