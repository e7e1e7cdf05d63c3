/**
 * `dimg plan`, `dimg apply` and `dimg lock`: the main job. plan shows what apply would do (text or
 * JSON, saved with -o); apply makes the plan and executes it, or executes a saved plan after checking
 * it is not stale; lock pins registry bases into images.lock.
 */
import { promises as fs } from 'node:fs';
import type { Command } from 'commander';
import { DimgError } from '../../errors.js';
import { DEFAULT_SPEC_FILE, loadSpec } from '../../specfile/load.js';
import { renderPlanText } from '../../plan/render/text.js';
import { parsePlanJson, renderPlanJson } from '../../plan/render/json.js';
import { describeChanges, planForFile, specFileOf } from '../../plan/saved.js';
import { hasChanges, type Plan } from '../../plan/types.js';
import { checkTargets } from '../../exec/plan-checks.js';
import { Planner, type PlanSession } from '../../exec/planner.js';
import { lockPathFor, readLock, renderLock, type LockFile } from '../../resolve/lock.js';
import { nodeSpecPorts } from '../../specfile/node-ports.js';
import type { Spec } from '../../specfile/model.js';
import { writeFileAtomic } from '../../store/fsutil.js';
import { openStoreFor } from '../context.js';
import { positiveInt } from '../build-output.js';
import { withCancellation } from '../cancellation.js';
import { progressMode } from '../apply-output.js';
import { applyReporter } from '../../progress/apply.js';
import type { ExecResult } from '../../exec/execute.js';
import { dirname, resolve } from 'node:path';

interface PlanFlags {
  prune?: boolean;
  target: string[];
  frozenLock?: boolean;
  showUnchanged?: boolean;
}

/** Registers plan, apply and lock. */
export function register(program: Command): void {
  program
    .command('plan')
    .description('show what apply would build, push, retag and delete (nothing is changed)')
    .argument('[file]', `spec file (default ${DEFAULT_SPEC_FILE})`)
    .option('--json', 'print the plan as JSON (versioned format)')
    .option('-o, --out <plan.json>', 'also save the plan for `dimg apply plan.json`')
    .option('--detailed-exitcode', 'exit 0 when there are no changes, 2 when there are, 1 on error')
    .option('--target <image>', 'limit to this image and what it depends on (repeatable)', collect, [])
    .option('--prune', 'also delete tags this project owns that the spec no longer declares')
    .option('--frozen-lock', 'build on the digests images.lock pins; fail if it is missing or lacks a base')
    .option('--show-unchanged', 'also list tags that are up to date')
    .action(async (file: string | undefined, o: PlanFlags & { json?: boolean; out?: string; detailedExitcode?: boolean }, cmd: Command) => {
      const { planner, session } = await planFor(file, o, cmd);
      try {
        const plan = session.plan;
        if (o.out) await fs.writeFile(o.out, renderPlanJson(planForFile(plan, o.out)));
        process.stdout.write(o.json ? renderPlanJson(plan) : renderPlanText(plan, { showUnchanged: o.showUnchanged, color: colorOn() }));
        if (o.detailedExitcode && hasChanges(plan)) process.exitCode = 2;
      } finally {
        planner.close();
      }
    });

  program
    .command('apply')
    .description('converge registries and the local store to the spec: build, push, retag, prune')
    .argument('[file]', `spec file (default ${DEFAULT_SPEC_FILE}) or a plan saved with \`dimg plan -o\``)
    .option('--target <image>', 'limit to this image and what it depends on (repeatable)', collect, [])
    .option('--prune', 'also delete tags this project owns that the spec no longer declares')
    .option('--frozen-lock', 'build on the digests images.lock pins; fail if it is missing or lacks a base')
    .option('--parallelism <n>', 'actions run at once', '4')
    .option('--progress <mode>', 'auto, tty, plain or json (NDJSON events)', 'auto')
    .option('--metadata-file <file>', 'write JSON of every image: its digest and each tag with the digest it holds')
    .action(async (file: string | undefined, o: PlanFlags & { parallelism: string; progress: string; metadataFile?: string }, cmd: Command) => {
      const mode = progressMode(o.progress);
      const reporter = applyReporter(mode);
      const saved = file && file.endsWith('.json') ? parsePlanJson(await readPlanFile(file), file) : undefined;
      const { planner, session } = await planFor(saved ? specFileOf(saved, file!) : file, saved ? { ...o, prune: saved.options.prune, target: saved.options.targets } : o, cmd, reporter.warn);
      try {
        const plan = saved ? checkSaved(saved, session) : session.plan;
        if (mode !== 'json') process.stdout.write(renderPlanText(plan, { color: mode === 'tty' && colorOn() }));
        const writeMetadata = async (result: ExecResult) => {
          if (!o.metadataFile) return;
          const { applyMetadata } = await import('../../exec/metadata.js');
          const path = resolve(o.metadataFile);
          await writeFileAtomic(path, `${JSON.stringify(applyMetadata(plan, result, session.spec.project), null, 2)}\n`, dirname(path));
        };
        if (!hasChanges(plan)) {
          await writeMetadata({ done: [], outputs: new Map(), failed: [], skipped: [], ms: 0 });
          return;
        }
        if (mode !== 'json') process.stdout.write('\n');
        // Loaded only now: the executor brings the builder and the push code, which a no-op apply never needs.
        const { applyPlan } = await import('../../exec/apply.js');
        await withCancellation('apply', async (signal) => {
          const result = await applyPlan(session, plan, {
            parallelism: positiveInt(o.parallelism, '--parallelism'),
            signal,
            onEvent: reporter.exec,
            onBuildEvent: reporter.build,
            warn: reporter.warn,
          });
          reporter.finish(result);
          // Also after a partial failure: what did get written is what CI may need to know.
          await writeMetadata(result);
          if (result.failed.length > 0) {
            const first = result.failed[0]!;
            throw first.error instanceof DimgError
              ? first.error
              : new DimgError('APPLY_FAILED', `${first.action.id}: ${(first.error as Error)?.message ?? String(first.error)}`, 'fix the cause and run apply again; what succeeded stays done');
          }
          for (const f of result.recordFailures.slice(1)) reporter.warn(f.message);
          if (result.recordFailures.length > 0) throw result.recordFailures[0]!;
        });
      } finally {
        planner.close();
      }
    });

  program
    .command('lock')
    .description('pin registry base images to digests in images.lock (read by plan and apply)')
    .argument('[file]', `spec file (default ${DEFAULT_SPEC_FILE})`)
    .option('--update [image...]', 'resolve the pins again: all of them, or those of the bases of these images (put FILE first)')
    .action(async (file: string | undefined, o: { update?: true | string[] }, cmd: Command) => {
      const store = await openStoreFor(cmd);
      const specFile = resolve(file ?? DEFAULT_SPEC_FILE);
      const lockPath = lockPathFor(specFile);
      const previous = await readLock(lockPath);
      const spec = await loadSpec(specFile, nodeSpecPorts({ env: process.env }));
      // The current lock keeps its pins unless asked to update them; it is never removed first, so a
      // failed or killed `dimg lock` leaves the committed file as it was.
      let start: LockFile = previous ?? { version: 1, bases: {} };
      if (o.update === true) start = { version: 1, bases: {} };
      else if (Array.isArray(o.update)) start = withoutPinsOf(start, spec, o.update);
      const planner = await Planner.forSpec(spec, { store, lock: start, warn: (m) => process.stderr.write(`Warning: ${m}\n`) });
      try {
        // Only the bases are resolved: pinning needs no tag, record or store observed.
        const { resolved } = await planner.resolve(spec);
        const lock: LockFile = { version: 1, bases: {} };
        for (const [key, digest] of resolved.pins) lock.bases[key] = { digest };
        const text = renderLock(lock);
        await writeFileAtomic(lockPath, text, dirname(lockPath));
        const n = Object.keys(lock.bases).length;
        const moved = Object.entries(lock.bases).filter(([k, e]) => previous?.bases[k] && previous.bases[k]!.digest !== e.digest).length;
        const what = previous && renderLock(previous) === text ? ' (unchanged)' : moved > 0 ? ` (${moved} pin${moved === 1 ? '' : 's'} moved)` : '';
        process.stdout.write(`${lockPath}: ${n} base image${n === 1 ? '' : 's'} pinned${what}\n`);
      } finally {
        planner.close();
      }
    });
}

/**
 * `lock` without the pins of the registry bases (`from:` and `copy from:` references) of `images`,
 * so those are resolved again. Unknown image names are TARGET_UNKNOWN with did-you-mean.
 */
function withoutPinsOf(lock: LockFile, spec: Spec, images: readonly string[]): LockFile {
  checkTargets(images, spec, '--update');
  const refs = new Set<string>();
  for (const key of images) {
    const img = spec.images.find((i) => i.key === key)!;
    if (img.from.kind === 'ref') refs.add(img.from.ref);
    for (const step of img.steps) if ((step.kind === 'copy' || step.kind === 'add') && step.from?.kind === 'ref') refs.add(step.from.ref);
  }
  const bases = Object.fromEntries(Object.entries(lock.bases).filter(([k]) => !refs.has(k.slice(0, k.lastIndexOf('|')))));
  return { version: 1, bases };
}

/**
 * Loads the spec and plans it through a planner made for this command. The caller closes the
 * planner once the plan (and its apply) is done.
 */
async function planFor(file: string | undefined, o: PlanFlags, cmd: Command, warn?: (m: string) => void): Promise<{ planner: Planner; session: PlanSession }> {
  const store = await openStoreFor(cmd);
  const spec = await loadSpec(resolve(file ?? DEFAULT_SPEC_FILE), nodeSpecPorts({ env: process.env }));
  const planner = await Planner.forSpec(spec, { store, warn: warn ?? ((m) => process.stderr.write(`Warning: ${m}\n`)) });
  try {
    return { planner, session: await planner.plan(spec, { prune: o.prune, targets: o.target, frozenLock: o.frozenLock }) };
  } catch (e) {
    planner.close();
    throw e;
  }
}

/** A saved plan may run only if the spec and the observed state are what it was made from. */
function checkSaved(saved: Plan, session: PlanSession): Plan {
  const now = session.plan;
  const changes = describeChanges(saved.observed, now.observed!);
  const what = changes.length > 0 ? `:\n  ${changes.join('\n  ')}` : '';
  if (saved.specDigest !== now.specDigest) {
    throw new DimgError('PLAN_STALE', `the saved plan was made from a different ${now.specFile} (the spec or its inputs changed)${what}`, 'make a new plan with `dimg plan -o plan.json`');
  }
  if (saved.observedFingerprint !== now.observedFingerprint) {
    throw new DimgError('PLAN_STALE', `the saved plan is stale: the registries or the local store changed since it was made${what}`, 'make a new plan with `dimg plan -o plan.json`');
  }
  // Apply it with this checkout's absolute path, whatever path the plan was made in.
  return { ...saved, specFile: now.specFile };
}

async function readPlanFile(file: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (e) {
    throw new DimgError('PLAN_NOT_FOUND', `cannot read plan ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'make one with `dimg plan -o plan.json`');
  }
}

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

function colorOn(): boolean {
  return Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
}
