/**
 * What `dimg watch` may write: only the registries named with `--push`, and there only the tags
 * matching each image's watchTags. The planner applies this scope when asked to plan for watch, so a
 * dev loop never reads or writes the production registry, and with no `--push` at all it builds
 * into the local store only.
 */
import { DimgError } from '../errors.js';
import type { ParsedReference } from '../oci/reference.js';
import { DEFAULT_WATCH_TAGS, matchesTagPattern, type ImageSpec, type Spec } from '../specfile/model.js';

/**
 * `spec` with every image's registry targets limited to the registries in `pushTo` (names of the
 * spec's `registries`) and to watch tags. Fails with WATCH_PUSH_UNKNOWN naming a registry the spec
 * does not declare.
 */
export function restrictToWatch(spec: Spec, pushTo: readonly string[]): Spec {
  checkWatchPush(spec, pushTo);
  const keep = new Set(pushTo);
  const images: ImageSpec[] = spec.images.map((img) => ({ ...img, targets: img.targets.filter((t) => keep.has(t.registry) && isWatchTag(img, t.ref)) }));
  return { ...spec, images };
}

/** Fails with WATCH_PUSH_UNKNOWN when `--push` names a registry `spec` does not declare. */
export function checkWatchPush(spec: Spec, pushTo: readonly string[]): void {
  const unknown = pushTo.filter((r) => !Object.hasOwn(spec.registries, r));
  if (unknown.length > 0) {
    const declared = Object.keys(spec.registries);
    throw new DimgError(
      'WATCH_PUSH_UNKNOWN',
      `--push ${unknown.join(', ')}: ${unknown.length === 1 ? 'this registry is' : 'these registries are'} not declared in ${spec.file}`,
      declared.length > 0 ? `use a name under "registries": ${declared.join(', ')}` : 'declare the registry under "registries" in the spec',
    );
  }
}

/** Whether watch may write `ref` (a target of `img`): its tag matches the image's watchTags. */
function isWatchTag(img: ImageSpec, ref: ParsedReference): boolean {
  return matchesTagPattern(ref.tag ?? 'latest', img.watchTags ?? DEFAULT_WATCH_TAGS);
}

/**
 * One line per image and `--push` registry whose tags watch leaves alone because none is a
 * development tag (watchTags), e.g. `web: pushes no tag to dev: 0.2.0, stable are not watch tags
 * (watchTags: dev, *-dev, dev-*); dimg apply writes them`. Empty when every image has one.
 */
export function heldBackTags(spec: Spec, pushTo: readonly string[]): string[] {
  const out: string[] = [];
  for (const img of spec.images) {
    for (const registry of pushTo) {
      const here = img.targets.filter((t) => t.registry === registry);
      const held = here.filter((t) => !isWatchTag(img, t.ref));
      if (held.length === 0) continue;
      const tags = held.map((t) => t.ref.tag ?? 'latest').join(', ');
      const what = held.length === here.length ? `pushes no tag to ${registry}` : `leaves some tags in ${registry} alone`;
      out.push(`${img.key}: ${what}: ${tags} ${held.length === 1 ? 'is not a watch tag' : 'are not watch tags'} (watchTags: ${(img.watchTags ?? DEFAULT_WATCH_TAGS).join(', ')}); \`dimg apply\` writes them`);
    }
  }
  return out;
}
