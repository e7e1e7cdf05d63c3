/**
 * The planner's core: compares desired against actual state and returns the actions that converge
 * them, with reasons. Pure: no I/O; the same inputs always give the same plan.
 */
import type { Digest } from '../oci/digest.js';
import type { ActualState, DesiredImage, DesiredState, RemoteTag } from './state.js';
import type { Action, BuildAction, BuildReason, DeleteAction, PlanWarning, PushAction, PushReason, RetagAction, TargetRef, UnchangedAction } from './types.js';

/** The plan's actions and warnings, before the envelope (digests, timestamps) is added. */
export interface DiffResult {
  actions: Action[];
  warnings: PlanWarning[];
}

/** Options: limit to some images (and their dependencies), as `--target` does. */
export interface DiffOptions {
  targetImages?: string[];
}

/** Computes the actions for `desired` given `actual`. */
export function diff(desired: DesiredState, actual: ActualState, opts: DiffOptions = {}): DiffResult {
  const images = selectImages(desired.images, opts.targetImages);
  const tagActions = new Map<string, (PushAction | RetagAction | UnchangedAction)[]>();
  for (const img of images) tagActions.set(img.key, img.targets.map((t) => tagAction(img, t, desired, actual)));

  const builds = decideBuilds(images, actual, tagActions);
  const actions: Action[] = [];
  for (const img of images) {
    const build = builds.get(img.key);
    if (build) {
      build.dependsOn = img.dependsOn.filter((d) => builds.has(d)).map((d) => `build:${d}`);
      actions.push(build);
    }
    // Pushes of one image into one repository run one after another: the first uploads the blobs,
    // the next find them present and only write their manifest (concurrent uploads of the same blob
    // into one repository race inside registry 2.8 and fail).
    const lastPush = new Map<string, string>();
    for (const a of tagActions.get(img.key)!) {
      if (a.kind === 'push') {
        const repo = repositoryOf(a.target.ref);
        const previous = lastPush.get(repo);
        a.dependsOn = [...(build ? [build.id] : []), ...(previous ? [previous] : [])];
        lastPush.set(repo, a.id);
      }
      actions.push(a);
    }
  }
  const warnings: PlanWarning[] = [];
  if (desired.prune && !opts.targetImages?.length) actions.push(...pruneActions(desired, actual, warnings));
  return { actions, warnings };
}

function selectImages(all: DesiredImage[], wanted: string[] | undefined): DesiredImage[] {
  if (!wanted || wanted.length === 0) return all;
  const byKey = new Map(all.map((i) => [i.key, i]));
  const keep = new Set<string>();
  const visit = (k: string) => {
    if (keep.has(k)) return;
    keep.add(k);
    byKey.get(k)?.dependsOn.forEach(visit);
  };
  wanted.forEach(visit);
  return all.filter((i) => keep.has(i.key));
}

function tagAction(img: DesiredImage, target: TargetRef, desired: DesiredState, actual: ActualState): PushAction | RetagAction | UnchangedAction {
  const id = `${img.key}:${target.registry}:${target.ref}`;
  const now = actual.remote.get(target.ref) ?? null;
  if (now && now.inputDigest === img.inputDigest) {
    return { kind: 'unchanged', id: `unchanged:${id}`, dependsOn: [], image: img.key, target, digest: now.digest };
  }
  const reason = pushReason(now, img, target, desired, actual);
  const sibling = findSameImage(target.ref, img.inputDigest, actual);
  if (sibling) {
    return { kind: 'retag', id: `retag:${id}`, dependsOn: [], image: img.key, target, inputDigest: img.inputDigest, digest: sibling.tag.digest, source: sibling.ref, current: now?.digest, reason };
  }
  return { kind: 'push', id: `push:${id}`, dependsOn: [], image: img.key, target, inputDigest: img.inputDigest, reason, current: now?.digest };
}

function pushReason(now: RemoteTag | null, img: DesiredImage, target: TargetRef, desired: DesiredState, actual: ActualState): PushReason {
  if (!now) {
    // The image is current in another registry and this registry holds none of its tags: the
    // registry was added to the spec (or emptied), not a tag moved behind dimg's back.
    const current = (t: TargetRef) => actual.remote.get(t.ref)?.inputDigest === img.inputDigest;
    const here = img.targets.filter((t) => t.registry === target.registry);
    if (here.every((t) => !actual.remote.get(t.ref)) && img.targets.some((t) => t.registry !== target.registry && current(t))) return 'new registry';
    // Absent, but another tag of the same image in this registry already holds it: someone deleted this one.
    return here.some(current) ? 'drift' : 'new tag';
  }
  if (now.inputDigest === undefined) return 'not owned';
  // The tag holds another image of the spec, or another project's image: it was moved behind
  // dimg's back. Anything else is taken for an older build of this image: the spec (or a watch
  // session pushing elsewhere) moved on and this tag has not followed yet, which is not drift.
  const otherImage = desired.images.some((i) => i.key !== img.key && i.inputDigest === now.inputDigest);
  if (otherImage || (now.project !== undefined && now.project !== desired.project)) return 'drift';
  return 'outdated';
}

/** Another observed tag in the same registry repository that already holds the image. */
function findSameImage(ref: string, inputDigest: Digest, actual: ActualState): { ref: string; tag: RemoteTag } | undefined {
  const repo = repositoryOf(ref);
  for (const [other, tag] of actual.remote) {
    if (other !== ref && tag && tag.inputDigest === inputDigest && repositoryOf(other) === repo) return { ref: other, tag };
  }
  return undefined;
}

/** `host/path` of a `host/path:tag` reference. */
export function repositoryOf(ref: string): string {
  const at = ref.indexOf('@');
  const noDigest = at >= 0 ? ref.slice(0, at) : ref;
  const colon = noDigest.lastIndexOf(':');
  return colon > noDigest.lastIndexOf('/') ? noDigest.slice(0, colon) : noDigest;
}

function decideBuilds(images: DesiredImage[], actual: ActualState, tagActions: Map<string, Action[]>): Map<string, BuildAction> {
  const builds = new Map<string, BuildAction>();
  const byKey = new Map(images.map((i) => [i.key, i]));
  const needsLocal = new Set<string>();
  const hasDependants = new Set(images.flatMap((i) => i.dependsOn));
  // Walk dependants before their bases so a base is built when a dependant needs it.
  for (const img of [...images].reverse()) {
    const local = actual.local.byInputDigest.has(img.inputDigest);
    const pushes = tagActions.get(img.key)!.some((a) => a.kind === 'push');
    // An image with no registry targets is wanted in the local store for its own sake only when no
    // other image builds on it; otherwise it is an intermediate, built when a dependant needs it (so
    // a CI runner with an empty store sees "no changes" when the registries are up to date).
    const localTarget = img.targets.length === 0 && !hasDependants.has(img.key);
    const localRefsStale = localTarget && img.localRefs.some((r) => actual.local.refs.get(r) !== img.inputDigest);
    let reason: BuildReason | undefined;
    if (!local && (pushes || localTarget || needsLocal.has(img.key))) reason = previousReason(img, actual) ?? (pushes || localTarget ? 'new' : 'missing locally');
    else if (localRefsStale) reason = 'missing locally';
    if (!reason) continue;
    builds.set(img.key, { kind: 'build', id: `build:${img.key}`, dependsOn: [], image: img.key, inputDigest: img.inputDigest, reason });
    for (const dep of img.dependsOn) if (byKey.has(dep)) needsLocal.add(dep);
  }
  return builds;
}

/** Why an image's content differs from what its tags held before: a new base, or changed inputs. */
function previousReason(img: DesiredImage, actual: ActualState): BuildReason | undefined {
  const previous: RemoteTag[] = [];
  for (const t of img.targets) {
    const r = actual.remote.get(t.ref);
    if (r?.inputDigest) previous.push(r);
  }
  for (const r of img.localRefs) {
    const input = actual.local.refs.get(r);
    if (input) previous.push({ digest: input, inputDigest: input });
  }
  const changed = previous.filter((p) => p.inputDigest !== img.inputDigest);
  if (changed.length === 0) return undefined;
  if (img.baseDigest && changed.some((p) => p.baseDigest && p.baseDigest !== img.baseDigest)) return 'base changed';
  return 'input changed';
}

function pruneActions(desired: DesiredState, actual: ActualState, warnings: PlanWarning[]): DeleteAction[] {
  const declared = new Set(desired.images.flatMap((i) => i.targets.map((t) => t.ref)));
  const out: DeleteAction[] = [];
  // Which refs point at each digest in each repository: a digest still used by a kept tag cannot be
  // deleted (registries delete manifests by digest, taking every tag on it along).
  const users = new Map<string, string[]>();
  for (const t of actual.inventory) {
    const k = `${repositoryOf(t.ref)}@${t.digest}`;
    users.set(k, [...(users.get(k) ?? []), t.ref]);
  }
  for (const t of actual.inventory) {
    if (declared.has(t.ref) || t.project !== desired.project) continue;
    const others = (users.get(`${repositoryOf(t.ref)}@${t.digest}`) ?? []).filter((r) => r !== t.ref);
    const blocking = others.filter((r) => declared.has(r) || !isPrunable(r, actual, desired, declared));
    if (blocking.length > 0) {
      warnings.push({ subject: t.ref, message: `not deleted: its manifest ${t.digest} is also tagged ${blocking.join(', ')}, and registries delete by digest` });
      continue;
    }
    const reusedBy = desired.images.find((i) => i.inputDigest === t.inputDigest && i.targets.some((d) => repositoryOf(d.ref) === repositoryOf(t.ref)));
    if (t.inputDigest && reusedBy) {
      warnings.push({ subject: t.ref, message: `not deleted: image ${reusedBy.key} is declared in the same repository with the same content, and registries delete by digest` });
      continue;
    }
    out.push({ kind: 'delete', id: `delete:${t.registry}:${t.ref}`, dependsOn: [], target: { registry: t.registry, ref: t.ref }, digest: t.digest, reason: 'no longer declared' });
  }
  return out;
}

function isPrunable(ref: string, actual: ActualState, desired: DesiredState, declared: Set<string>): boolean {
  const t = actual.inventory.find((x) => x.ref === ref);
  return Boolean(t && !declared.has(ref) && t.project === desired.project);
}
