/**
 * Build-only plans, for `dimg build` and `dimg image build`: the plan is data like any plan (one
 * build action per image, with ids and dependsOn), made by the one Planner (`buildOnly`), and run by
 * the one executor through the same build port as apply. What is particular to them lives here: the
 * bases they build on (the store's images by the names the spec gives; no registry, no lock), their
 * actions, and their execution (every build settles; the first failure in plan order is thrown).
 */
import { DimgError, isDimgError } from '../errors.js';
import { formatPlatform } from '../oci/platform.js';
import type { Platform } from '../oci/types.js';
import { findImage } from '../image/find.js';
import type { Store } from '../store/store.js';
import type { BuiltImage } from '../builder/builder.js';
import type { BuildListener } from '../builder/events.js';
import type { Action, BuildAction } from '../plan/types.js';
import type { DesiredState } from '../plan/state.js';
import type { ResolvedBase } from '../resolve/bases.js';
import { BuildPort } from './build-port.js';
import { executePlan, type ExecutorPorts } from './execute.js';
import type { PlanSession } from './planner.js';

/**
 * The bases of a build-only plan: a registry base is the store's image under the name the spec
 * gives (a digest reference pins it), exactly what the builder builds on; nothing is read from a
 * registry or a lock, so a build works offline. A base missing from the store fails with
 * IMAGE_NOT_FOUND and the pull command to run.
 */
export class StoreBases {
  private readonly memo = new Map<string, Promise<ResolvedBase>>();

  constructor(private readonly store: Store) {}

  /** The store image `ref` for `platform`: its manifest digest and container config. */
  resolve(ref: string, platform: Platform): Promise<ResolvedBase> {
    const key = `${ref}|${formatPlatform(platform)}`;
    let p = this.memo.get(key);
    if (!p) {
      p = this.lookup(ref, platform);
      this.memo.set(key, p);
    }
    return p;
  }

  private async lookup(ref: string, platform: Platform): Promise<ResolvedBase> {
    try {
      const found = await findImage(this.store, ref, platform);
      return { ref, digest: found.image.descriptor.digest, config: found.image.config.config ?? {}, source: 'store' };
    } catch (e) {
      if (!isDimgError(e, 'IMAGE_NOT_FOUND')) throw e;
      const hint = `pull it first: dimg image pull ${ref}`;
      throw new DimgError('IMAGE_NOT_FOUND', `base image ${ref} is not in the local store`, hint);
    }
  }
}

/** One build action per image of `desired` (bases first), each depending on the builds of its dependencies. */
export function buildActions(desired: DesiredState): BuildAction[] {
  return desired.images.map((img) => ({
    kind: 'build',
    id: `build:${img.key}`,
    dependsOn: img.dependsOn.map((d) => `build:${d}`),
    image: img.key,
    inputDigest: img.inputDigest,
    reason: 'requested',
  }));
}

/** How a build-only plan is run. */
export interface BuildPlanOptions {
  /** How many images build at once (default 2). */
  parallelism?: number;
  signal?: AbortSignal;
  onBuildEvent?: BuildListener;
  /** Run every step even when the build cache has it. */
  noCache?: boolean;
  /** Secret files by id (`--secret`), overriding the spec's sources. */
  secrets?: Readonly<Record<string, string>>;
  sourceDateEpoch?: number;
}

/**
 * Runs the build-only plan of `session` through the executor and the build port. Resolves with every
 * image built, in plan order; when builds fail, rejects with the first failure in plan order once every
 * started build has settled (dependants of a failed build are not started).
 */
export async function executeBuildPlan(session: PlanSession, opts: BuildPlanOptions = {}): Promise<BuiltImage[]> {
  const { store, spec, resolved, digests, plan } = session;
  // One lease operation, as an apply: what the builds make or stand on stays claimed until all are done.
  return store.leases.operation(async () => {
    const { onBuildEvent, noCache, secrets, sourceDateEpoch, signal } = opts;
    const local = session.actual.local.byInputDigest;
    const source = { store, spec, resolved, digests, local };
    const port = new BuildPort(source, { onBuildEvent, noCache, secrets, sourceDateEpoch, reusePlannedKeys: true });
    const result = await executePlan(plan, buildOnlyPorts(port), { parallelism: opts.parallelism ?? 2, signal });
    await digests.save();
    const order = new Map(plan.actions.map((a, i) => [a.id, i]));
    const failed = [...result.failed].sort((a, b) => order.get(a.action.id)! - order.get(b.action.id)!)[0];
    if (failed) throw failed.error;
    if (result.skipped.length > 0) {
      const skipped = result.skipped.map((a) => a.id).join(', ');
      throw new DimgError('BUILD_CANCELLED', `build cancelled before ${skipped}`, 'run it again to finish');
    }
    const builds = plan.actions.filter((a): a is BuildAction => a.kind === 'build');
    return Promise.all(builds.map((a) => port.built(a.image)!));
  });
}

/** The executor ports of a build-only plan: its actions are builds, anything else is a bug. */
function buildOnlyPorts(port: BuildPort): ExecutorPorts {
  const refuse = async (action: Action): Promise<never> => {
    const message = `action ${action.id}: a build-only plan holds build actions only`;
    throw new DimgError('PLAN_INVALID', message, 'this is a bug in the planner');
  };
  return { build: (action, signal) => port.build(action, signal), push: refuse, retag: refuse, delete: refuse };
}
