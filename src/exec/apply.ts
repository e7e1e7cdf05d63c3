/**
 * Applying a plan: the executor's ports wired to the real builder, the push/pull transfer and the
 * registry client. Builds reuse what planning computed (pinned bases, file digests); every tag written
 * is read back to check it now holds the expected manifest; webhooks are told about pushed tags.
 */
import { DimgError, isDimgError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { parseReference, repositoryName } from '../oci/reference.js';
import type { Descriptor, ImageManifest } from '../oci/types.js';
import { claimImage, loadImage } from '../image/local-image.js';
import type { BaseSpec, CopyStep, ImageSpec, Step } from '../specfile/model.js';
import { buildImage, type BuiltImage } from '../builder/builder.js';
import type { BuildListener } from '../builder/events.js';
import type { BuiltSpecImage } from '../builder/base.js';
import { formatPlatform } from '../oci/platform.js';
import { lockKey } from '../resolve/lock.js';
import { platformOf } from '../resolve/desired.js';
import { pullImage } from '../transfer/pull.js';
import { pushImage, putManifestSettling } from '../transfer/push.js';
import type { PushAction, RetagAction, DeleteAction, BuildAction, Plan } from '../plan/types.js';
import { executePlan, type ActionOutput, type ExecEvent, type ExecResult, type ExecutorPorts } from './execute.js';
import type { PlanSession } from './planner.js';
import { notifyPushed } from './notify.js';
import { recordOwnership, type TagOutcomes } from './record-ownership.js';
import { untag } from '../registry/untag.js';

/** Options of an apply. */
export interface ApplyOptions {
  parallelism?: number;
  signal?: AbortSignal;
  onEvent?: (e: ExecEvent) => void;
  onBuildEvent?: BuildListener;
  /** Receives non-fatal problems (webhook failures…). */
  warn?: (message: string) => void;
  /** SOURCE_DATE_EPOCH override for builds. */
  sourceDateEpoch?: number;
}

/** What an apply did: the executor's result, plus ownership records that could not be updated. */
export interface ApplyResult extends ExecResult {
  /** OWNERSHIP_RECORD_FAILED errors, one per repository (the apply failed, though every tag stays). */
  recordFailures: DimgError[];
}

/**
 * Executes `plan` (normally `session.plan`) against the session's store and registries, then updates
 * the project's ownership records with what succeeded (also after failures or a cancellation).
 */
export async function applyPlan(session: PlanSession, plan: Plan, opts: ApplyOptions = {}): Promise<ApplyResult> {
  // One lease operation: what the builds write or build on stays claimed (kept from a concurrent
  // prune) until the whole apply is done, so dependants and pushes find their images whole.
  return session.store.leases.operation(async () => {
    const ports = new ApplyPorts(session, opts);
    const result = await executePlan(plan, ports, { parallelism: opts.parallelism, signal: opts.signal, onEvent: opts.onEvent });
    await session.digests.save();
    const recordFailures = await recordOwnership(session.client, session.spec.project, ports.outcomes, plan.ownership ?? []);
    return { ...result, recordFailures };
  });
}

class ApplyPorts implements ExecutorPorts {
  private readonly builds = new Map<string, Promise<BuiltImage>>();
  private readonly byInput = new Map<Digest, Descriptor>();
  /** What was written and deleted, for the ownership records. */
  readonly outcomes: TagOutcomes = { written: [], removed: [] };

  constructor(
    private readonly session: PlanSession,
    private readonly opts: ApplyOptions,
  ) {
    for (const [input, digest] of session.actual.local.byInputDigest) this.byInput.set(input, { digest, mediaType: '', size: 0 });
  }

  async build(action: BuildAction, signal: AbortSignal): Promise<ActionOutput> {
    const built = await this.buildOnce(action.image, signal);
    if (built.inputDigest !== action.inputDigest) {
      throw new DimgError('PLAN_MISMATCH', `image ${action.image}: built with input digest ${built.inputDigest}, planned ${action.inputDigest}`, 'the inputs changed while applying; run the plan again');
    }
    return { digest: built.descriptor.digest };
  }

  async push(action: PushAction, signal: AbortSignal): Promise<ActionOutput> {
    const descriptor = await this.localImage(action.image, action.inputDigest, signal);
    const result = await pushImage(this.session.store, this.session.client, descriptor, action.target.ref, { signal });
    await this.verifyTag(action.target.ref, result.digest);
    this.outcomes.written.push({ ref: action.target.ref, digest: result.digest });
    await this.notify(action.image, action.target.ref, result.digest);
    return { digest: result.digest };
  }

  async retag(action: RetagAction): Promise<ActionOutput> {
    const ref = parseReference(action.target.ref);
    const repo = this.session.client.repository(ref);
    const m = await repo.getManifest(action.digest);
    await putManifestSettling(repo, ref.tag!, m, () => undefined);
    await this.verifyTag(action.target.ref, action.digest);
    this.outcomes.written.push({ ref: action.target.ref, digest: action.digest });
    await this.notify(action.image, action.target.ref, action.digest);
    return { digest: action.digest };
  }

  /** Deletes the tag alone (throw-away manifest, see untag.ts); a tag someone else moved is kept. */
  async delete(action: DeleteAction): Promise<ActionOutput> {
    const ref = parseReference(action.target.ref);
    const outcome = await untag(this.session.client.repository(ref), ref.tag!, action.target.ref, this.session.spec.project, action.recorded);
    if (outcome.kind === 'moved') this.opts.warn?.(`${action.target.ref}: kept, not deleted: it now holds ${outcome.now}, written by someone else since the plan was made`);
    // Deleted, gone, or no longer this project's: in every case the entry leaves the record.
    this.outcomes.removed.push({ ref: action.target.ref, digest: action.recorded });
    return { digest: action.recorded };
  }

  /** Builds `key` once per apply (dependants and pushes share the result). */
  private buildOnce(key: string, signal: AbortSignal): Promise<BuiltImage> {
    let p = this.builds.get(key);
    if (!p) {
      const img = this.imageSpec(key);
      p = buildImage(pinBases(img, this.session.resolved.pins), {
        store: this.session.store,
        project: this.session.spec.project,
        digests: this.session.digests,
        signal,
        onEvent: this.opts.onBuildEvent,
        sourceDateEpoch: this.opts.sourceDateEpoch,
        pull: async (ref, platform) => {
          await pullImage(this.session.store, this.session.client, ref, { platform, signal });
        },
        built: (dep) => this.dependency(dep, signal),
      });
      p.then((b) => this.byInput.set(b.inputDigest, b.descriptor), () => undefined);
      this.builds.set(key, p);
    }
    return p;
  }

  /** A spec image a build stands on: built in this apply, else found in the store by input digest, else built now. */
  private async dependency(key: string, signal: AbortSignal): Promise<BuiltSpecImage> {
    const planned = this.builds.get(key);
    if (planned) return planned;
    const input = this.session.resolved.keys.get(key)?.inputDigest;
    const local = input ? this.byInput.get(input) : undefined;
    if (input && local) {
      const loaded = await this.loadLocal(local.digest).catch(() => undefined);
      if (loaded) return { ...loaded, inputDigest: input };
    }
    return this.buildOnce(key, signal);
  }

  /** The store descriptor of the image with `input` (built in this apply or already local). */
  private async localImage(key: string, input: Digest, signal: AbortSignal): Promise<Descriptor> {
    const built = this.builds.get(key);
    if (built) return (await built).descriptor;
    const local = this.byInput.get(input);
    // Gone since planning (a concurrent prune): build it again.
    const loaded = local ? await this.loadLocal(local.digest).catch(() => undefined) : undefined;
    if (loaded) return loaded.descriptor;
    return (await this.buildOnce(key, signal)).descriptor;
  }

  /** A local image by manifest digest, claimed for this apply (fails when a prune took any of it). */
  private async loadLocal(digest: Digest): Promise<{ descriptor: Descriptor; config: BuiltSpecImage['config']; layers: Descriptor[] }> {
    const store = this.session.store;
    await store.claim({ blobs: [digest] });
    const m = await store.blobs.readJson<ImageManifest>(digest);
    const size = (await store.blobs.stat(digest)) ?? 0;
    const img = await loadImage(store, { mediaType: m.mediaType ?? 'application/vnd.oci.image.manifest.v1+json', digest, size });
    await claimImage(store, img, `local image ${digest}`);
    return { descriptor: img.descriptor, config: img.config, layers: img.manifest.layers };
  }

  private imageSpec(key: string): ImageSpec {
    const img = this.session.spec.images.find((i) => i.key === key);
    if (!img) throw new DimgError('IMAGE_NOT_IN_SPEC', `image ${key} is not in ${this.session.spec.file}`, 'make the plan again');
    return img;
  }

  /** Reads the tag back: it must now hold `digest` (registries can drop writes; CI must know). */
  private async verifyTag(target: string, digest: Digest): Promise<void> {
    const ref = parseReference(target);
    const head = await this.session.client.repository(ref).headManifest(ref.tag!);
    if (head?.digest !== digest) {
      throw new DimgError('TAG_NOT_CONVERGED', `${target} holds ${head?.digest ?? 'nothing'} after writing ${digest}`, 'another writer may be changing this tag; run apply again');
    }
  }

  private async notify(image: string, ref: string, digest: Digest): Promise<void> {
    const urls = this.session.spec.notify;
    if (urls.length === 0) return;
    const failures = await notifyPushed(urls, { event: 'push', project: this.session.spec.project, image, ref, repository: repositoryName(parseReference(ref)), digest });
    for (const f of failures) this.opts.warn?.(`webhook ${f.url}: ${f.message}`);
  }
}

/**
 * The image spec with its registry bases (and `copy --from` references) pinned to the digests the
 * plan resolved, so the build uses exactly what was planned even if a tag moves meanwhile.
 */
function pinBases(img: ImageSpec, pins: Map<string, Digest>): ImageSpec {
  const platform = formatPlatform(platformOf(img));
  const pin = (ref: string): string => {
    const d = pins.get(lockKey(ref, platform));
    return d && !ref.includes('@') ? `${repositoryName(parseReference(ref))}@${d}` : ref;
  };
  const from: BaseSpec = img.from.kind === 'ref' ? { kind: 'ref', ref: pin(img.from.ref) } : img.from;
  const steps: Step[] = img.steps.map((s) =>
    (s.kind === 'copy' || s.kind === 'add') && s.from?.kind === 'ref' ? ({ ...s, from: { kind: 'ref', ref: pin(s.from.ref) } } as CopyStep) : s,
  );
  return { ...img, from, steps };
}


