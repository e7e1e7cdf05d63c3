/**
 * The watch loop. Each burst of file events leads to an evaluation: reload the spec, recompute every
 * image's input digest, and compare the desired state with the one last converged (or being
 * built). Equal: nothing happens (a save without a content change costs one rehash). Different: a
 * cycle in progress is cancelled (its builder cleans up) and a new one plans against the store and
 * the `--push` registries and applies. An invalid spec is reported and the last good state kept.
 *
 * Evaluations run one at a time; the apply of a cycle runs in the background so a later burst can
 * cancel it.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { DimgError, isDimgError, messageOf } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { loadSpec } from '../specfile/load.js';
import { nodeSpecPorts } from '../specfile/node-ports.js';
import type { Spec } from '../specfile/model.js';
import type { Store } from '../store/store.js';
import { FileDigests } from '../builder/file-digests.js';
import { lockPathFor } from '../resolve/lock.js';
import { targetReference, hasChanges, type BuildAction } from '../plan/types.js';
import { applyPlan } from '../exec/apply.js';
import { Planner, type PlanOptions, type Resolution } from '../exec/planner.js';
import { checkWatchPush, heldBackTags } from '../exec/watch-scope.js';
import { Debouncer, type ChangeBatch } from './debounce.js';
import { FileWatcher } from './watcher.js';
import { WatchTreeMemo } from './tree-memo.js';
import { imagesAffectedBy, isIgnoreFileOf, sameWatchSet, watchSetOf, type WatchSet } from './watch-set.js';
import type { WatchReporter } from './report.js';

/** Options of a watch loop. */
export interface WatchOptions {
  specFile: string;
  store: Store;
  /** Registry names of the spec to push to; empty: the local store only. */
  push: readonly string[];
  reporter: WatchReporter;
  env?: NodeJS.ProcessEnv;
  parallelism?: number;
  /** Force polling instead of inotify. */
  poll?: boolean;
  /** Debounce quiet window and maximum wait (ms). */
  quietMs?: number;
  maxMs?: number;
}

/**
 * The planner (registry client, base resolver) for one set of registries and one lock file. The
 * file-digest and tree memos outlive it: they belong to the loop.
 */
interface Generation {
  key: string;
  planner: Planner;
}

/** A cycle's apply running in the background. */
interface Running {
  fingerprint: Digest;
  ac: AbortController;
  promise: Promise<boolean>;
  since: number;
  paths: string[];
}

/** Result of one evaluation. */
type Evaluation = 'unchanged' | 'started' | 'problem' | 'stopped';

/** A running `dimg watch`. Start with `WatchLoop.start`, end with `stop()`. */
export class WatchLoop {
  private readonly specFile: string;
  private readonly digests: FileDigests;
  /** Rootfs and context walks reused while no event touched them. */
  private readonly trees = new WatchTreeMemo();
  private generation: Generation | undefined;
  private watchSet: WatchSet | undefined;
  private watcher: FileWatcher | undefined;
  private debouncer: Debouncer | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private running: Running | undefined;
  /** Desired-state digest of the last successful cycle. */
  private converged: Digest | undefined;
  private hasGoodSpec = false;
  private stopping = false;
  /** Paths and first-event time of bursts not yet served by a successful cycle. */
  private pendingPaths: string[] = [];
  private pendingSince: number | undefined;

  private constructor(
    private readonly opts: WatchOptions,
    digests: FileDigests,
  ) {
    this.specFile = resolve(opts.specFile);
    this.digests = digests;
  }

  /** Creates a loop (without watching yet). */
  static async create(opts: WatchOptions): Promise<WatchLoop> {
    return new WatchLoop(opts, await FileDigests.load(opts.store.root, opts.store.tmpDir));
  }

  /** Says which release tags watch leaves alone, at the first cycle and whenever that changes. */
  private tellHeldBack(spec: Spec): void {
    const lines = heldBackTags(spec, this.opts.push);
    const key = lines.join('\n');
    if (key === this.heldBackSaid) return;
    this.heldBackSaid = key;
    for (const line of lines) this.opts.reporter.info(line);
  }

  private heldBackSaid = '';

  /**
   * One cycle and no watching (`--once`): resolves to true when everything converged. An invalid
   * spec or a failed action throws its error.
   */
  async once(): Promise<boolean> {
    const started = performance.now();
    const r = await this.evaluate({ paths: [], firstAt: started }, { throwProblems: true });
    if (r !== 'started') return r === 'unchanged';
    return this.running!.promise;
  }

  /**
   * Starts watching: the first cycle runs at once (against the state on disk), then every burst of
   * changes is evaluated. Resolves when the watcher is ready. A spec invalid at start throws.
   */
  async start(): Promise<void> {
    const started = performance.now();
    const spec = await loadSpec(this.specFile, nodeSpecPorts({ env: this.opts.env ?? process.env }));
    // An unknown --push registry fails the start, before anything is watched.
    checkWatchPush(spec, this.opts.push);
    this.watchSet = await watchSetOf(spec, this.opts.store.root);
    this.debouncer = new Debouncer((batch) => this.enqueue(batch), { quietMs: this.opts.quietMs, maxMs: this.opts.maxMs });
    this.watcher = await FileWatcher.start(this.watchSet, {
      poll: this.opts.poll,
      onChange: (path) => {
        // At once, not after the debounce: a walk running now must not be remembered.
        this.trees.changed(path);
        this.debouncer?.push(path);
      },
      onNotice: (m) => this.opts.reporter.warn(m),
      onError: (e) => this.opts.reporter.warn(`watcher: ${messageOf(e)}`),
      onUnwatched: (path) => this.trees.unwatched(path),
      onReset: () => this.trees.reset(),
    });
    // The watcher is ready and watching this set: the first cycle may remember its walks.
    this.trees.watching(this.watchSet);
    const mode = this.watcher.isPolling ? 'polling' : 'inotify';
    this.opts.reporter.info(`watching ${this.specFile} and ${this.watchSet.trees.length} context/rootfs director${this.watchSet.trees.length === 1 ? 'y' : 'ies'} (${mode}); pushing to ${this.opts.push.length > 0 ? this.opts.push.join(', ') : 'the local store only'}`);
    this.enqueue({ paths: [], firstAt: started });
  }

  /**
   * Stops within `boundMs`: no more events, the cycle in progress is cancelled and given the rest of
   * the bound to clean up (remove mounts and temp files), watchers and sockets are closed.
   */
  async stop(boundMs = 800): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const deadline = performance.now() + boundMs;
    this.debouncer?.stop();
    this.running?.ac.abort();
    const settle = Promise.all([this.watcher?.close(), this.running?.promise.catch(() => false), this.queue.catch(() => undefined)]);
    await Promise.race([settle, new Promise((r) => setTimeout(r, Math.max(0, deadline - performance.now())).unref())]);
    await this.digests.save();
    this.generation?.planner.close();
  }

  private enqueue(batch: ChangeBatch): void {
    this.queue = this.queue.then(() => this.evaluate(batch, { throwProblems: false })).catch((e) => this.opts.reporter.problem(e, this.hasGoodSpec));
  }

  private async evaluate(batch: ChangeBatch, o: { throwProblems: boolean }): Promise<Evaluation> {
    if (this.stopping) return 'stopped';
    const r = this.opts.reporter;
    if (batch.paths.length > 0) {
      r.trigger(batch.paths);
      for (const p of batch.paths) {
        const tree = this.watchSet && isIgnoreFileOf(this.watchSet, p);
        if (tree) await this.watcher?.rescan(tree.path);
      }
    }
    this.pendingPaths.push(...batch.paths);
    this.pendingSince = Math.min(this.pendingSince ?? batch.firstAt, batch.firstAt);

    let spec: Spec;
    let resolution: Resolution;
    let gen: Generation;
    try {
      spec = await loadSpec(this.specFile, nodeSpecPorts({ env: this.opts.env ?? process.env }));
      this.tellHeldBack(spec);
      await this.updateWatchSet(spec);
      this.trees.watching(this.watcher ? this.watchSet : undefined);
      gen = await this.generationFor(spec);
      resolution = await gen.planner.resolve(spec, this.planOptions());
    } catch (e) {
      if (o.throwProblems) throw e;
      // A failed base lookup is memoised by the resolver: start afresh next time.
      if (this.generation) {
        this.generation.planner.close();
        this.generation = undefined;
      }
      r.problem(e, this.hasGoodSpec);
      return 'problem';
    }
    this.hasGoodSpec = true;
    if (this.stopping) return 'stopped';

    const fp = resolution.fingerprint;
    const current = this.running?.fingerprint ?? this.converged;
    if (fp === current) {
      if (this.running) {
        r.info('no input changed; the cycle in progress stays valid');
      } else {
        r.info('no input changed; nothing to rebuild');
        this.pendingPaths = [];
        this.pendingSince = undefined;
      }
      return 'unchanged';
    }
    if (this.running) {
      r.info('inputs changed during the cycle: cancelling it and starting over');
      const old = this.running;
      old.ac.abort();
      await old.promise.catch(() => false);
      this.pendingPaths = [...old.paths, ...this.pendingPaths];
      this.pendingSince = Math.min(old.since, this.pendingSince ?? old.since);
    }
    if (this.stopping) return 'stopped';
    const ac = new AbortController();
    const run: Running = { fingerprint: fp, ac, since: this.pendingSince ?? performance.now(), paths: this.pendingPaths, promise: Promise.resolve(false) };
    this.pendingPaths = [];
    this.pendingSince = undefined;
    run.promise = this.apply(spec, resolution, gen, run, o.throwProblems).finally(() => {
      if (this.running === run) this.running = undefined;
    });
    this.running = run;
    if (!o.throwProblems) run.promise.catch((e) => r.problem(e, true));
    return 'started';
  }

  /** Plans (reusing the evaluation's resolution) and applies one cycle; true when it converged. */
  private async apply(spec: Spec, resolution: Resolution, gen: Generation, run: Running, throwFailures: boolean): Promise<boolean> {
    const r = this.opts.reporter;
    const session = await gen.planner.plan(spec, { ...this.planOptions(), resolution });
    const plan = session.plan;
    if (run.ac.signal.aborted) return false;
    for (const w of plan.warnings) r.warn(`${w.subject}: ${w.message}`);
    if (!hasChanges(plan)) {
      this.converged = run.fingerprint;
      r.ready(performance.now() - run.since, 'up to date');
      return true;
    }
    const builds = plan.actions.filter((a): a is BuildAction => a.kind === 'build');
    r.rebuilding(builds, (image) => this.why(image, run.paths, builds, resolution));
    const builtDigests = new Map<string, string>();
    const result = await applyPlan(session, plan, {
      signal: run.ac.signal,
      parallelism: this.opts.parallelism,
      onEvent: r.progress.exec,
      onBuildEvent: (e) => {
        if (e.type === 'image-done') builtDigests.set(e.image, e.digest);
        r.progress.build(e);
      },
      warn: (m) => r.warn(m),
    });
    // The tags stay written; without the record prune keeps them (never the other way round).
    for (const f of result.recordFailures) r.warn(f.message);
    if (run.ac.signal.aborted) {
      r.info(this.stopping ? 'cycle cancelled (stopping)' : 'cycle cancelled');
      return false;
    }
    if (result.failed.length > 0 && !throwFailures && result.failed.some((f) => isDimgError(f.error, 'PLAN_MISMATCH'))) {
      // A file changed between planning and building: the builder saw the newer content. Start
      // over with the new state (the burst that made the change is evaluated after this anyway).
      r.info('inputs changed during the build: starting over');
      // The builder's own walk disagrees with what planning used. If that came from a remembered walk
      // (a change no file event reported, or one made while a walk ran), forget them all: otherwise the
      // next plan would use the same digest and this would repeat forever.
      this.trees.reset();
      this.converged = undefined;
      if (this.running === run) this.running = undefined;
      this.pendingPaths = [...run.paths, ...this.pendingPaths];
      this.pendingSince = Math.min(run.since, this.pendingSince ?? run.since);
      this.enqueue({ paths: [], firstAt: run.since });
      return false;
    }
    if (result.failed.length > 0) {
      const first = result.failed[0]!;
      const err = first.error instanceof DimgError ? first.error : new DimgError('WATCH_CYCLE_FAILED', `${first.action.id}: ${messageOf(first.error)}`, 'fix the cause; the next change retries');
      if (throwFailures) throw err;
      r.problem(err, false);
      this.converged = undefined;
      return false;
    }
    const tags = new Map<string, string>();
    for (const a of result.done) {
      if (a.kind !== 'push' && a.kind !== 'retag') continue;
      const ref = targetReference(a.target);
      const head = await gen.planner.client.repository(ref).headManifest(ref.tag!).catch(() => undefined);
      if (head) tags.set(a.target.ref, head.digest);
    }
    r.digests(builtDigests, tags);
    this.converged = run.fingerprint;
    const parts = [`${builds.length} rebuilt`];
    if (tags.size > 0) parts.push(`${tags.size} tag${tags.size === 1 ? '' : 's'} pushed`);
    r.ready(performance.now() - run.since, parts.join(', '));
    return true;
  }

  /** Why an image is rebuilt, in terms of the files that changed, or the rebuilt image it builds on. */
  private why(image: string, paths: readonly string[], builds: readonly BuildAction[], resolution: Resolution): string | undefined {
    const set = this.watchSet;
    if (!set) return undefined;
    const mine = paths.filter((p) => imagesAffectedBy(set, p).includes(image));
    if (mine.length > 0) {
      const shown = mine.slice(0, 3).map((p) => p.slice(p.lastIndexOf('/') + 1));
      return `${shown.join(', ')}${mine.length > 3 ? ` (+${mine.length - 3} more)` : ''} changed`;
    }
    const rebuilt = new Set(builds.map((b) => b.image));
    const bases = resolution.resolved.desired.images.find((i) => i.key === image)?.dependsOn.filter((d) => rebuilt.has(d)) ?? [];
    return bases.length > 0 ? `builds on ${bases.join(', ')}` : undefined;
  }

  private async updateWatchSet(spec: Spec): Promise<void> {
    const next = await watchSetOf(spec, this.opts.store.root);
    const prev = this.watchSet;
    this.watchSet = next;
    if (this.watcher && (!prev || !sameWatchSet(prev, next))) await this.watcher.update(next);
  }

  /** The planner for this spec's registries and lock; replaced when either changes. */
  private async generationFor(spec: Spec): Promise<Generation> {
    const lockText = await readFile(lockPathFor(spec.file), 'utf8').catch(() => '');
    const key = JSON.stringify({ registries: spec.registries, lockText });
    if (this.generation?.key === key) return this.generation;
    const warn = (m: string) => this.opts.reporter.warn(m);
    const planner = await Planner.forSpec(spec, { store: this.opts.store, env: this.opts.env ?? process.env, warn, digests: this.digests, trees: this.trees });
    const old = this.generation;
    this.generation = { key, planner };
    // The old client may still serve a cycle in progress; close it when that cycle ends.
    if (old) void (this.running?.promise ?? Promise.resolve()).finally(() => old.planner.close());
    return this.generation;
  }

  /** Watch's restrictions, as options of the one plan call: the `--push` registries, watch tags, no prune. */
  private planOptions(): PlanOptions {
    return { watch: { push: this.opts.push } };
  }
}
