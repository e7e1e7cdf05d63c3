/**
 * The one planner. `dimg plan`, `apply` and `lock` build one per command; `dimg watch` builds one per
 * generation (registries and lock unchanged) and plans every cycle through it. A planner holds the
 * long-lived parts — store, registry client, base resolver, file-digest memo, tree memo — so
 * successive plans reuse what earlier ones learnt (pinned bases, file hashes, directory walks), and
 * each plan resolves the desired state, observes the store and registries, and diffs the two.
 * `dimg build` and `dimg image build` plan through it too (`buildOnly`): one build action per image
 * asked for and what it builds on, with nothing observed and no registry asked.
 */
import type { Digest } from '../oci/digest.js';
import type { Spec } from '../specfile/model.js';
import { RegistryClient } from '../registry/client.js';
import type { Store } from '../store/store.js';
import { FileDigests } from '../builder/file-digests.js';
import { ContextKeyer, type TreeDigestMemo } from '../builder/keys.js';
import { selectImages } from '../builder/dependencies.js';
import { diff } from '../plan/diff.js';
import { observedFingerprint, snapshotOf } from '../plan/saved.js';
import { PLAN_FORMAT_VERSION, type Plan } from '../plan/types.js';
import type { ActualState, RemoteTag } from '../plan/state.js';
import { BaseResolver } from '../resolve/bases.js';
import { resolveSpec, type ResolvedSpec } from '../resolve/desired.js';
import { lockPathFor, readLock, type LockFile } from '../resolve/lock.js';
import { observe, readTags } from '../resolve/observe.js';
import { checkFrozen, checkLockPresent, checkPruneProject, checkTargets } from './plan-checks.js';
import { desiredFingerprint, specDigestOf } from './plan-fingerprints.js';
import { repositoriesToPrune } from './prune-scope.js';
import { clientOptionsForSpec } from './spec-client.js';
import { restrictToWatch } from './watch-scope.js';
import { buildActions, StoreBases } from './build-plan.js';

/** What one plan is for. The same options must be given to `resolve` and to the `plan` reusing it. */
export interface PlanOptions {
  /** Delete owned tags the spec no longer declares (also on when the spec says `prune: true`). */
  prune?: boolean;
  /** Limit to these images and their dependencies; each must name an image (TARGET_UNKNOWN). */
  targets?: readonly string[];
  /** Fail when the lock is missing or does not pin a base the spec needs (pinned digests are used as they are). */
  frozenLock?: boolean;
  /**
   * Plan for `dimg watch`: only the registries in `push` (WATCH_PUSH_UNKNOWN for one the spec does
   * not declare), there only tags matching watchTags, and never prune, whatever `prune` and the
   * spec say: a dev loop must not delete what a release wrote.
   */
  watch?: { push: readonly string[] };
  /** The desired state `resolve` already computed for this spec and these options: not hashed again. */
  resolution?: Resolution;
  /**
   * A build-only plan (`dimg build`, `dimg image build`): a build action for each image of `images`
   * (all when empty; IMAGE_NOT_IN_SPEC for an unknown key) and each image it builds on, whatever the
   * store holds. Nothing is observed and no registry is asked: bases are the store's images by the
   * names the spec gives (the lock is not read), so it works offline. The other options are ignored.
   */
  buildOnly?: { images?: readonly string[] };
}

/** The desired state of a spec under some plan options, before anything is observed. */
export interface Resolution {
  /** The spec as planned: under `watch`, its targets limited to what watch may write. */
  spec: Spec;
  resolved: ResolvedSpec;
  /** `desiredFingerprint` of `resolved`: equal means no input of any image, nor where it goes, changed. */
  fingerprint: Digest;
}

/** A plan and everything it was made from, which `applyPlan` reuses instead of hashing or asking again. */
export interface PlanSession {
  spec: Spec;
  store: Store;
  client: RegistryClient;
  resolved: ResolvedSpec;
  actual: ActualState;
  digests: FileDigests;
  plan: Plan;
}

/** The parts a planner is built from; see `Planner.forSpec` for the usual way to get them. */
export interface PlannerParts {
  store: Store;
  /** Owned by the planner from now on: `close()` closes it. */
  client: RegistryClient;
  /** The lock the base resolver takes pins from (undefined: there is none); `frozenLock` checks against it. */
  lock: LockFile | undefined;
  digests: FileDigests;
  /** Whether `plan` writes `digests` back (true when the planner loaded them; a shared memo is saved by its owner). */
  saveDigests: boolean;
  /** Rootfs and context walks kept across plans (watch); see TreeDigestMemo. */
  trees?: TreeDigestMemo;
  /** Receives non-fatal findings (unset credentials, unreadable catalogs, odd ownership records). */
  warn?: (message: string) => void;
}

/** How `Planner.forSpec` sets up the parts it does not receive. */
export interface PlannerSetup {
  store: Store;
  /** Where registry credentials named by the spec are read (default: process.env). */
  env?: NodeJS.ProcessEnv;
  warn?: (message: string) => void;
  /** Use this lock instead of reading images.lock (`dimg lock --update` passes one with pins left out). */
  lock?: LockFile;
  /** A file-digest memo shared with other planners (watch); without one, the store's is loaded, and saved after each plan. */
  digests?: FileDigests;
  trees?: TreeDigestMemo;
}

/** Makes plans of specs against one store and one set of registries. Close it with `close()`. */
export class Planner {
  /** The local store plans observe and applies build into. */
  readonly store: Store;
  /** The registry client every plan of this planner reads through (and its applies write through). */
  readonly client: RegistryClient;
  /** The file-digest memo: hashes are reused across plans and by the builds of their applies. */
  readonly digests: FileDigests;
  /** Registry bases resolved once per planner (lock pin, registry, store), so later plans ask no more. */
  private readonly bases: BaseResolver;
  private readonly parts: PlannerParts;

  constructor(parts: PlannerParts) {
    this.parts = parts;
    this.store = parts.store;
    this.client = parts.client;
    this.digests = parts.digests;
    this.bases = new BaseResolver({ store: parts.store, client: parts.client, lock: parts.lock, warn: parts.warn });
  }

  /**
   * A planner for the registries and lock of `spec`: a client configured from the spec (credentials
   * from `setup.env`), the lock next to the spec file unless `setup.lock` is given, and the store's
   * file-digest memo unless `setup.digests` is shared.
   */
  static async forSpec(spec: Spec, setup: PlannerSetup): Promise<Planner> {
    const client = new RegistryClient(clientOptionsForSpec(spec, setup.env ?? process.env, setup.warn));
    try {
      const digests = setup.digests ?? (await FileDigests.load(setup.store.root, setup.store.tmpDir));
      const lock = setup.lock ?? (await readLock(lockPathFor(spec.file)));
      return new Planner({ store: setup.store, client, lock, digests, saveDigests: !setup.digests, trees: setup.trees, warn: setup.warn });
    } catch (e) {
      client.close();
      throw e;
    }
  }

  /**
   * A planner for build-only plans against `store`: its registry client is never used by them (a
   * build-only plan asks no registry), and there is no lock.
   */
  static async forBuild(store: Store, setup: Pick<PlannerSetup, 'digests' | 'warn'> = {}): Promise<Planner> {
    const digests = setup.digests ?? (await FileDigests.load(store.root, store.tmpDir));
    const client = new RegistryClient();
    return new Planner({ store, client, lock: undefined, digests, saveDigests: !setup.digests, warn: setup.warn });
  }

  /**
   * The desired state of `spec` under `options`: input digests of every image (hashing only what the
   * memos do not know) and the pinned bases. Nothing is observed; watch compares `fingerprint` with
   * the last converged one before it pays for a plan.
   */
  async resolve(spec: Spec, options: PlanOptions = {}): Promise<Resolution> {
    return this.resolveScoped(this.scope(spec, options), options);
  }

  /**
   * The plan for `spec` under `options`, with what it was made from. Registry tags are read while the
   * input digests are computed, unless `options.resolution` is given (then only observing is left).
   */
  async plan(spec: Spec, options: PlanOptions = {}): Promise<PlanSession> {
    if (options.buildOnly) return this.planBuild(spec, options.buildOnly.images);
    let resolution = options.resolution;
    let remote: Promise<Map<string, RemoteTag | null>> | undefined;
    if (!resolution) {
      const scoped = this.scope(spec, options);
      // Registry reads do not depend on the input digests: start them while those are computed.
      remote = readTags(this.client, scoped.images.flatMap((i) => i.targets.map((t) => t.ref)));
      remote.catch(() => undefined);
      resolution = await this.resolveScoped(scoped, options);
    }
    const { resolved } = resolution;
    const warn = this.parts.warn;
    const pruneRepositories = resolved.desired.prune ? await repositoriesToPrune(resolution.spec, this.client, resolved, warn) : undefined;
    const actual = await observe(resolved.desired, { store: this.store, client: this.client, pruneRepositories, remote, warn });
    const targets = options.targets ?? [];
    const { actions, ownership, warnings } = diff(resolved.desired, actual, { targetImages: [...targets] });
    const observed = snapshotOf(resolved.desired, actual);
    const plan: Plan = {
      formatVersion: PLAN_FORMAT_VERSION,
      // A watch plan is applied at once and never saved: the desired fingerprint identifies it without
      // reading the spec file again on every cycle.
      specDigest: options.watch ? resolution.fingerprint : await specDigestOf(resolution.spec, resolved),
      observedFingerprint: observedFingerprint(observed),
      specFile: resolution.spec.file,
      observed,
      createdAt: new Date().toISOString(),
      options: { prune: resolved.desired.prune, targets: [...targets] },
      actions,
      ownership,
      warnings,
    };
    // Written back now, so a plan that is never applied still spares the next one the hashing.
    if (this.parts.saveDigests) await this.digests.save();
    return { spec: resolution.spec, store: this.store, client: this.client, resolved, actual, digests: this.digests, plan };
  }

  /** Closes the registry client. Plans still being applied must be done first. */
  close(): void {
    this.client.close();
  }

  /** A build-only plan (see PlanOptions.buildOnly). */
  private async planBuild(spec: Spec, images: readonly string[] | undefined): Promise<PlanSession> {
    const scoped: Spec = { ...spec, images: selectImages(spec, images) };
    const keyer = new ContextKeyer(spec.project, this.digests, this.parts.trees);
    const resolved = await resolveSpec(scoped, { bases: new StoreBases(this.store), keyer, prune: false });
    const local = { byInputDigest: new Map(), refs: new Map() };
    const actual: ActualState = { local, remote: new Map(), records: [] };
    const observed = snapshotOf(resolved.desired, actual);
    const plan: Plan = {
      formatVersion: PLAN_FORMAT_VERSION,
      // Never saved nor compared with a spec file read again: the desired state identifies it.
      specDigest: desiredFingerprint(resolved),
      observedFingerprint: observedFingerprint(observed),
      specFile: spec.file,
      observed,
      createdAt: new Date().toISOString(),
      options: { prune: false, targets: [...(images ?? [])] },
      actions: buildActions(resolved.desired),
      ownership: [],
      warnings: [],
    };
    if (this.parts.saveDigests) await this.digests.save();
    return { spec: scoped, store: this.store, client: this.client, resolved, actual, digests: this.digests, plan };
  }

  /** The spec as planned under `options`, after the checks that need nothing but the spec and lock. */
  private scope(spec: Spec, options: PlanOptions): Spec {
    if (options.frozenLock) checkLockPresent(this.parts.lock, spec.file);
    checkTargets(options.targets ?? [], spec);
    if (!options.watch && (options.prune || spec.prune)) checkPruneProject(spec);
    return options.watch ? restrictToWatch(spec, options.watch.push) : spec;
  }

  private async resolveScoped(spec: Spec, options: PlanOptions): Promise<Resolution> {
    const prune = !options.watch && Boolean(options.prune || spec.prune);
    // A keyer per pass: each context's ignore file is read once per plan, and again on the next.
    const keyer = new ContextKeyer(spec.project, this.digests, this.parts.trees);
    const resolved = await resolveSpec(spec, { bases: this.bases, keyer, prune });
    if (options.frozenLock) checkFrozen(resolved, this.parts.lock!, spec.file);
    return { spec, resolved, fingerprint: desiredFingerprint(resolved) };
  }
}
