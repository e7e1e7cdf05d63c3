/**
 * The planner's core: compares desired against actual state and returns the actions that converge
 * them, with reasons. Pure: no I/O; the same inputs always give the same plan.
 */
import type { Digest } from '../oci/digest.js';
import type { ActualState, DesiredImage, DesiredState, RemoteTag } from './state.js';
import { throwAwayManifest } from '../registry/throwaway-manifest.js';
import { parseReference, type ParsedReference } from '../oci/reference.js';
import { targetRef, targetReference } from './types.js';
import type { Action, BuildAction, BuildReason, DeleteAction, OwnershipChange, PlanWarning, PushAction, PushReason, RetagAction, TargetRef, UnchangedAction } from './types.js';

/** The plan's actions and warnings, before the envelope (digests, timestamps) is added. */
export interface DiffResult {
  actions: Action[];
  /** Ownership record entries apply adds (adopt) or drops (forget) besides the tags it writes. */
  ownership: OwnershipChange[];
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
        const repo = targetReference(a.target).repository;
        const previous = lastPush.get(repo);
        a.dependsOn = [...(build ? [build.id] : []), ...(previous ? [previous] : [])];
        lastPush.set(repo, a.id);
      }
      actions.push(a);
    }
  }
  const warnings: PlanWarning[] = [];
  const ownership = adoptions(desired, images, actual);
  if (desired.prune && opts.targetImages?.length) {
    // Prune looks at every tag of the project, so a plan limited to some images cannot do it.
    warnings.push({ subject: '--prune', message: `prune is not done with --target (${opts.targetImages.join(', ')}): it looks at every tag of the project, so it runs only for the whole spec; run without --target to prune` });
  } else if (desired.prune) actions.push(...pruneActions(desired, actual, warnings, ownership));
  return { actions, ownership, warnings };
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
  const sibling = findSameImage(target, img.inputDigest, desired, actual);
  if (sibling) {
    return { kind: 'retag', id: `retag:${id}`, dependsOn: [], image: img.key, target, inputDigest: img.inputDigest, digest: sibling.tag.digest, source: sibling.ref, current: now?.digest, reason };
  }
  return { kind: 'push', id: `push:${id}`, dependsOn: [], image: img.key, target, inputDigest: img.inputDigest, reason, current: now?.digest };
}

function pushReason(now: RemoteTag | null, img: DesiredImage, target: TargetRef, desired: DesiredState, actual: ActualState): PushReason {
  // What this project's ownership record says it wrote under the tag: the one sure sign of drift.
  const written = recordedDigest(actual, targetReference(target));
  if (!now) {
    // Written by this project and now gone: deleted behind dimg's back.
    if (written) return 'drift';
    // The image is current in another registry and this registry holds none of its tags: the
    // registry was added to the spec (or emptied), not a tag moved behind dimg's back.
    const current = (t: TargetRef) => actual.remote.get(t.ref)?.inputDigest === img.inputDigest;
    const here = img.targets.filter((t) => t.registry === target.registry);
    if (here.every((t) => !actual.remote.get(t.ref)) && img.targets.some((t) => t.registry !== target.registry && current(t))) return 'new registry';
    return 'new tag';
  }
  if (now.inputDigest === undefined) return written ? 'drift' : 'not owned';
  if (written && written !== now.digest) return 'drift';
  // Without a record (a tag written before records existed): the tag holds another image of the
  // spec, or another project's image, so it was moved behind dimg's back. Anything else is taken
  // for an older build of this image: the spec (or a watch session pushing elsewhere) moved on and
  // this tag has not followed yet, which is not drift.
  const otherImage = desired.images.some((i) => i.key !== img.key && i.inputDigest === now.inputDigest);
  if (!written && (otherImage || (now.project !== undefined && now.project !== desired.project))) return 'drift';
  return 'outdated';
}

/** The digest this project's ownership record lists for `ref`, if any. */
function recordedDigest(actual: ActualState, ref: ParsedReference): Digest | undefined {
  return actual.records.find((r) => r.repository === ref.repository)?.tags.get(ref.tag!);
}

/**
 * Another observed tag in the same registry repository that already holds the image. The observed
 * tags are keyed by their canonical strings; those of desired targets are looked up parsed.
 */
function findSameImage(
  target: TargetRef,
  inputDigest: Digest,
  desired: DesiredState,
  actual: ActualState,
): { ref: string; tag: RemoteTag } | undefined {
  const repo = targetReference(target).repository;
  const parsed = new Map(desired.images.flatMap((i) => i.targets.map((t) => [t.ref, targetReference(t)] as const)));
  for (const [other, tag] of actual.remote) {
    if (other === target.ref || !tag || tag.inputDigest !== inputDigest) continue;
    if ((parsed.get(other) ?? parseReference(other)).repository === repo) return { ref: other, tag };
  }
  return undefined;
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

/**
 * Prune and ownership bookkeeping. The rule: delete a tag only when (a) this project's record for the
 * tag's repository lists it, (b) it still holds exactly the recorded digest, and (c) the spec no
 * longer declares it. A recorded tag now holding something else was overwritten by someone else: it
 * is theirs now, kept, and its entry forgotten. Repositories without a record: nothing is deleted.
 * Copies made by other tools are never in the record, whatever annotations they carry.
 */
function pruneActions(desired: DesiredState, actual: ActualState, warnings: PlanWarning[], ownership: OwnershipChange[]): DeleteAction[] {
  const declared = new Set(desired.images.flatMap((i) => i.targets.map((t) => t.ref)));
  const out: DeleteAction[] = [];
  for (const rec of actual.records) {
    // Deletes in one repository run one after another: registry 2.8 drops a deleted manifest's tags
    // by scanning the repository's tags, and concurrent deletes there can leave a tag dangling.
    const chain = (a: DeleteAction): DeleteAction => {
      const last = out.at(-1);
      const previous = last && targetReference(last.target).repository === rec.repository ? last.id : undefined;
      a.dependsOn = previous ? [previous] : [];
      return a;
    };
    const repository = parseReference(rec.repository, { defaultTag: false });
    for (const [tag, recorded] of [...rec.tags].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (!rec.now.has(tag)) continue;
      const target = targetRef(rec.registry, repository.withTag(tag));
      const ref = target.ref;
      if (declared.has(ref)) continue;
      const now = rec.now.get(tag)!;
      if (now === null) {
        ownership.push({ kind: 'forget', target, digest: recorded, reason: 'the tag is gone' });
      } else if (now === recorded) {
        out.push(chain({ kind: 'delete', id: `delete:${rec.registry}:${ref}`, dependsOn: [], target, digest: now, recorded, reason: 'no longer declared' }));
      } else if (now === throwAwayManifest(desired.project, ref, recorded).digest) {
        out.push(chain({ kind: 'delete', id: `delete:${rec.registry}:${ref}`, dependsOn: [], target, digest: now, recorded, leftover: true, reason: 'left over by an interrupted prune' }));
      } else {
        ownership.push({ kind: 'forget', target, digest: recorded, reason: `someone else overwrote it (now ${now}); kept` });
      }
    }
  }
  return out;
}

/**
 * Declared tags that hold this project's image as desired but are not in its record (written by a
 * dimg without records, or a lost record update): recorded now, so prune can delete them later.
 * Only tags whose manifest carries this project's annotation: a foreign tag is recorded only when
 * apply itself writes it.
 */
function adoptions(desired: DesiredState, images: DesiredImage[], actual: ActualState): OwnershipChange[] {
  const records = new Map(actual.records.map((r) => [r.repository, r]));
  const out: OwnershipChange[] = [];
  for (const img of images) {
    for (const t of img.targets) {
      const now = actual.remote.get(t.ref);
      const ref = targetReference(t);
      const rec = records.get(ref.repository);
      if (!now || !rec || now.inputDigest !== img.inputDigest || now.project !== desired.project) continue;
      if (rec.tags.get(ref.tag!) === now.digest) continue;
      const reason = 'written by this project, not yet in its ownership record';
      out.push({ kind: 'adopt', target: t, digest: now.digest, reason });
    }
  }
  return out;
}

