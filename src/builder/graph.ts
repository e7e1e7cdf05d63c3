/**
 * Building several images of a spec: the requested ones plus everything they build on or copy from,
 * in graph order, independent images concurrently (p-limit). A failed image fails its dependants
 * with the same error; the others still finish.
 */
import pLimit from 'p-limit';
import { DimgError } from '../errors.js';
import type { ImageSpec, Spec } from '../specfile/model.js';
import { buildImage, type BuildOptions, type BuiltImage } from './builder.js';
import { FileDigests } from './file-digests.js';

/** Options for building a spec's images. */
export interface SpecBuildOptions extends Omit<BuildOptions, 'project' | 'built' | 'digests'> {
  /** Image keys to build (default: all); their dependencies are added. */
  images?: readonly string[];
  /** How many images build at once (default 2). */
  parallelism?: number;
}

/** The keys `image` depends on: its `from` image and `copy --from` images of the spec. */
export function dependenciesOf(image: ImageSpec): string[] {
  const deps = new Set<string>();
  if (image.from.kind === 'image') deps.add(image.from.key);
  for (const s of image.steps) if ((s.kind === 'copy' || s.kind === 'add') && s.from?.kind === 'image') deps.add(s.from.key);
  return [...deps];
}

/** Selects `wanted` (keys; all when empty) plus their dependencies, in the spec's dependency order. */
export function selectImages(spec: Spec, wanted: readonly string[] | undefined): ImageSpec[] {
  const byKey = new Map(spec.images.map((i) => [i.key, i]));
  if (!wanted || wanted.length === 0) return [...spec.images];
  const keep = new Set<string>();
  const visit = (k: string) => {
    if (keep.has(k)) return;
    const img = byKey.get(k);
    if (!img) {
      throw new DimgError('IMAGE_NOT_IN_SPEC', `no image "${k}" in ${spec.file}`, `images in the spec: ${spec.images.filter((i) => !i.intermediate).map((i) => i.key).join(', ')}`);
    }
    keep.add(k);
    dependenciesOf(img).forEach(visit);
  };
  wanted.forEach(visit);
  return spec.images.filter((i) => keep.has(i.key));
}

/**
 * Builds the selected images; resolves with every image's result in spec order, or rejects with the
 * first failure after all started builds have settled (so no build is abandoned half-way).
 */
export async function buildSpec(spec: Spec, opts: SpecBuildOptions): Promise<BuiltImage[]> {
  const images = selectImages(spec, opts.images);
  const limit = pLimit(Math.max(1, opts.parallelism ?? 2));
  const digests = await FileDigests.load(opts.store.root, opts.store.tmpDir);
  const results = new Map<string, Promise<BuiltImage>>();
  const built = (key: string): Promise<BuiltImage> => {
    const p = results.get(key);
    if (!p) return Promise.reject(new DimgError('IMAGE_NOT_IN_SPEC', `image ${key} is not part of this build`, ''));
    return p;
  };
  for (const img of images) {
    const deps = dependenciesOf(img);
    const p = (async () => {
      // Wait for dependencies outside the limiter so a waiting image never holds a build slot.
      await Promise.all(deps.map(built));
      return limit(() => buildImage(img, { ...opts, project: spec.project, built, digests }));
    })();
    p.catch(() => undefined);
    results.set(img.key, p);
  }
  const settled = await Promise.allSettled(images.map((i) => results.get(i.key)!));
  await digests.save();
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<BuiltImage>).value);
}
