/**
 * Applying a plan: the executor's ports wired to the build port (build-port.ts, shared with the
 * build commands), the push/pull transfer and the registry client. Builds reuse what planning
 * computed (pinned bases, file digests); every tag written is read back to check it now holds the
 * expected manifest; webhooks are told about pushed tags.
 */
import { DimgError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { parseReference, repositoryName } from '../oci/reference.js';
import type { BuildListener } from '../builder/events.js';
import { pullImage } from '../transfer/pull.js';
import { pushImage, putManifestSettling } from '../transfer/push.js';
import type { PushAction, RetagAction, DeleteAction, BuildAction, Plan } from '../plan/types.js';
import { BuildPort, type BuildSource } from './build-port.js';
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
  private readonly builds: BuildPort;
  /** What was written and deleted, for the ownership records. */
  readonly outcomes: TagOutcomes = { written: [], removed: [] };

  constructor(
    private readonly session: PlanSession,
    private readonly opts: ApplyOptions,
  ) {
    const { store, spec, resolved, digests, client } = session;
    const source: BuildSource = {
      store,
      spec,
      resolved,
      digests,
      local: session.actual.local.byInputDigest,
      pull: async (ref, platform, signal) => {
        await pullImage(store, client, ref, { platform, signal });
      },
    };
    const { onBuildEvent, sourceDateEpoch } = opts;
    this.builds = new BuildPort(source, { onBuildEvent, sourceDateEpoch, checkPlanned: true, pinBases: true });
  }

  build(action: BuildAction, signal: AbortSignal): Promise<ActionOutput> {
    return this.builds.build(action, signal);
  }

  async push(action: PushAction, signal: AbortSignal): Promise<ActionOutput> {
    const descriptor = await this.builds.localImage(action.image, action.inputDigest, signal);
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
