/**
 * The metadata file of an apply (`--metadata-file`, as `docker buildx bake --metadata-file`): for
 * every image of the plan, the manifest digest it has in the local store and, for each tag, what
 * the tag holds after the apply and whether this apply wrote it. CI jobs read it to pass digests on
 * (signing, deployment) without asking the registries again.
 */
import type { Digest } from '../oci/digest.js';
import type { Plan } from '../plan/types.js';
import type { ExecResult } from './execute.js';

/** One tag of an image after the apply. */
export interface TagMetadata {
  registry: string;
  ref: string;
  /** The manifest digest the registry holds under the tag; absent when the tag was not written. */
  digest?: Digest;
  /** pushed, retagged, unchanged (was already right), failed or skipped. */
  status: 'pushed' | 'retagged' | 'unchanged' | 'failed' | 'skipped';
}

/** One image of the plan. */
export interface ImageMetadata {
  inputDigest?: Digest;
  /** The local store's manifest digest, when this apply built the image. */
  digest?: Digest;
  built: boolean;
  tags: TagMetadata[];
}

/** The whole file: images by key, and the tags deleted by prune. */
export interface ApplyMetadata {
  formatVersion: 1;
  project?: string;
  images: Record<string, ImageMetadata>;
  deleted: { registry: string; ref: string; digest: Digest; status: 'deleted' | 'failed' | 'skipped' }[];
}

/** Builds the metadata of `plan` as executed with `result`. */
export function applyMetadata(plan: Plan, result: ExecResult, project?: string): ApplyMetadata {
  const failed = new Set(result.failed.map((f) => f.action.id));
  const images: Record<string, ImageMetadata> = {};
  const image = (key: string): ImageMetadata => (images[key] ??= { built: false, tags: [] });
  const deleted: ApplyMetadata['deleted'] = [];
  for (const a of plan.actions) {
    const output = result.outputs.get(a.id);
    const status = output ? 'done' : failed.has(a.id) ? 'failed' : 'skipped';
    switch (a.kind) {
      case 'build': {
        const m = image(a.image);
        m.inputDigest = a.inputDigest;
        m.built = status === 'done';
        if (output?.digest) m.digest = output.digest;
        break;
      }
      case 'push':
      case 'retag': {
        const m = image(a.image);
        m.inputDigest ??= a.inputDigest;
        const written = a.kind === 'push' ? 'pushed' : 'retagged';
        m.tags.push({ registry: a.target.registry, ref: a.target.ref, ...(output?.digest ? { digest: output.digest } : {}), status: status === 'done' ? written : status });
        break;
      }
      case 'unchanged':
        image(a.image).tags.push({ registry: a.target.registry, ref: a.target.ref, ...(a.digest ? { digest: a.digest } : {}), status: 'unchanged' });
        break;
      case 'delete':
        deleted.push({ registry: a.target.registry, ref: a.target.ref, digest: a.digest, status: status === 'done' ? 'deleted' : status });
        break;
    }
  }
  return { formatVersion: 1, ...(project ? { project } : {}), images, deleted };
}
