/**
 * Planning one watch cycle, reusing the planner's pieces (resolveSpec, observe, diff) instead of
 * `planSpec`, because a watch loop (a) plans against a spec already loaded, (b) keeps its registry
 * client, base resolver and file-digest memo across cycles so an edit costs a rehash of the changed
 * file and a few requests, and (c) considers only the registries named with `--push`: the spec's
 * other targets are dropped before planning, so a dev loop never reads or writes the production
 * registry, and with no `--push` at all it builds into the local store only.
 */
import { DimgError } from '../errors.js';
import { canonicalJson } from '../oci/canonical-json.js';
import { sha256, type Digest } from '../oci/digest.js';
import { DEFAULT_WATCH_TAGS, matchesTagPattern, type ImageSpec, type Spec } from '../spec/model.js';
import { parseReference } from '../oci/reference.js';
import type { RegistryClient } from '../registry/client.js';
import type { Store } from '../store/store.js';
import type { FileDigests } from '../build/file-digests.js';
import type { TreeDigestMemo } from '../build/keys.js';
import { diff } from '../plan/diff.js';
import { PLAN_FORMAT_VERSION, type Plan } from '../plan/types.js';
import type { BaseResolver } from '../resolve/bases.js';
import { resolveSpec, type ResolvedSpec } from '../resolve/desired.js';
import { observe } from '../resolve/observe.js';
import { fingerprint, type PlanSession } from '../exec/plan-session.js';

/**
 * `spec` with every image's registry targets limited to the registries in `pushTo` (names of the
 * spec's `registries`). Fails with WATCH_PUSH_UNKNOWN naming a registry the spec does not declare.
 */
export function restrictTargets(spec: Spec, pushTo: readonly string[]): Spec {
  const unknown = pushTo.filter((r) => !Object.hasOwn(spec.registries, r));
  if (unknown.length > 0) {
    const declared = Object.keys(spec.registries);
    throw new DimgError(
      'WATCH_PUSH_UNKNOWN',
      `--push ${unknown.join(', ')}: ${unknown.length === 1 ? 'this registry is' : 'these registries are'} not declared in ${spec.file}`,
      declared.length > 0 ? `use a name under "registries": ${declared.join(', ')}` : 'declare the registry under "registries" in the spec',
    );
  }
  const keep = new Set(pushTo);
  const images: ImageSpec[] = spec.images.map((img) => ({ ...img, targets: img.targets.filter((t) => keep.has(t.registry) && isWatchTag(img, t.ref)) }));
  return { ...spec, images };
}

/** Whether watch may write `ref` (a target of `img`): its tag matches the image's watchTags. */
function isWatchTag(img: ImageSpec, ref: string): boolean {
  return matchesTagPattern(parseReference(ref).tag ?? 'latest', img.watchTags ?? DEFAULT_WATCH_TAGS);
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
      const tags = held.map((t) => parseReference(t.ref).tag ?? 'latest').join(', ');
      const what = held.length === here.length ? `pushes no tag to ${registry}` : `leaves some tags in ${registry} alone`;
      out.push(`${img.key}: ${what}: ${tags} ${held.length === 1 ? 'is not a watch tag' : 'are not watch tags'} (watchTags: ${(img.watchTags ?? DEFAULT_WATCH_TAGS).join(', ')}); \`dimg apply\` writes them`);
    }
  }
  return out;
}

/** What resolving and planning a cycle share across cycles. */
export interface WatchPlanContext {
  store: Store;
  client: RegistryClient;
  bases: BaseResolver;
  digests: FileDigests;
  /** Walks of rootfs directories and context copies kept from earlier cycles (see WatchTreeMemo). */
  trees?: TreeDigestMemo;
}

/** Input digests and targets of every image of the (restricted) spec; prune is never done by watch. */
export function resolveDesired(spec: Spec, ctx: WatchPlanContext): Promise<ResolvedSpec> {
  return resolveSpec(spec, { bases: ctx.bases, digests: ctx.digests, prune: false, trees: ctx.trees });
}

/**
 * A digest of the desired state: every image's input digest, base, local names and targets. Equal
 * digests mean nothing that goes into any image (nor where it goes) changed.
 */
export function desiredFingerprint(resolved: ResolvedSpec): Digest {
  return sha256(canonicalJson(resolved.desired));
}

/**
 * Observes the store and the `--push` registries and diffs them against `resolved`, returning a
 * session `applyPlan` can execute. Its `close()` does nothing: the client belongs to the loop.
 */
export async function planCycle(spec: Spec, resolved: ResolvedSpec, ctx: WatchPlanContext): Promise<PlanSession> {
  const actual = await observe(resolved.desired, { store: ctx.store, client: ctx.client });
  const { actions, ownership, warnings } = diff(resolved.desired, actual);
  const plan: Plan = {
    formatVersion: PLAN_FORMAT_VERSION,
    specDigest: desiredFingerprint(resolved),
    observedFingerprint: fingerprint(actual),
    specFile: spec.file,
    createdAt: new Date().toISOString(),
    options: { prune: false, targets: [] },
    actions,
    ownership,
    warnings,
  };
  return { spec, store: ctx.store, client: ctx.client, resolved, actual, digests: ctx.digests, plan, close: async () => undefined };
}
