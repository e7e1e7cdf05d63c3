/**
 * The builder: an ImageSpec's steps turned into layers on top of its base, with a content-addressed
 * step cache in the store, a config assembled Docker-style (Env, Cmd, Entrypoint, WorkingDir, User,
 * ExposedPorts, Volumes, Labels, StopSignal, Healthcheck, Shell) and history entries, the manifest
 * annotated with the image's input digest and project, and the result tagged under its local refs.
 *
 * Each step is driven the same way, whatever its kind: its key (computed up front by keys.ts, through
 * the step's operation, step-ops.ts), a cache lookup for steps that make a layer, the operation's
 * execution on a miss, and the record (cache entry once the layer blob is durable, history). A hit
 * reuses the layer without running anything.
 */
import { promises as fs } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { DimgError, isDimgError, messageOf } from '../errors.js';
import { canonicalJson } from '../oci/canonical-json.js';
import { sha256, type Digest } from '../oci/digest.js';
import { ANNOTATION_BASE_DIGEST, ANNOTATION_INPUT_DIGEST, ANNOTATION_PROJECT, type ContainerConfig, type Descriptor, type HistoryEntry, type ImageConfig } from '../oci/types.js';
import { commitImage } from '../image/commit.js';
import { extractLayer } from '../layer/index.js';
import { chainIds } from '../store/overlay.js';
import type { Store } from '../store/store.js';
import { tempPath } from '../store/fsutil.js';
import type { CopyFrom, ImageSpec } from '../specfile/model.js';
import { applyImageLevel, DEFAULT_SHELL } from './config-steps.js';
import { describeStep } from './history.js';
import { epochIso, findRef, resolveBase, type BaseContext, type BuiltRef, type BuiltSpecImage } from './base.js';
import { platformOf } from './dependencies.js';
import { computeImageKeys, type ImageKeys } from './keys.js';
import { openLayer, type PendingLayer, type StoredLayer } from './layer-blobs.js';
import { FileDigests } from './file-digests.js';
import { LayerView } from './layer-view.js';
import { detectRunDriver, type RunDriver } from './sandbox.js';
import { stepOp } from './step-ops.js';
import type { StepRun } from './step-op.js';
import type { BuildListener } from './events.js';

/** Options of one build. */
export interface BuildOptions {
  store: Store;
  /** The spec's `project` (manifest annotation). */
  project: string;
  /** SOURCE_DATE_EPOCH in seconds for config/history times and tar mtimes (default: $SOURCE_DATE_EPOCH or 0). */
  sourceDateEpoch?: number;
  /** Ignore the step cache (entries are still written). */
  noCache?: boolean;
  /** Secret values by id (`--secret id=ID,src=PATH`): host files, overriding the spec's sources. */
  secrets?: Readonly<Record<string, string>>;
  onEvent?: BuildListener;
  signal?: AbortSignal;
  /** Fetches a missing registry base into the store (the registry client's pull). */
  pull?: BaseContext['pull'];
  /** Force a RUN driver instead of detecting one. */
  runDriver?: RunDriver;
  /** Images of the same spec already built in this run, by key (bases and `copy --from`). */
  built?: (key: string) => Promise<BuiltSpecImage>;
  /** File-digest memo shared by the images of one run (saved by the caller). */
  digests?: FileDigests;
  /**
   * The keys planning computed for this image just before (a build-only plan). They are used, and the
   * context not walked again, when the base and every `copy --from` image still have the planned
   * identities; otherwise every key is computed anew.
   */
  planned?: ImageKeys;
}

/** A built image. */
export interface BuiltImage extends BuiltRef {
  key: string;
  /** Manifest annotations' input digest: everything that went into the image. */
  inputDigest: Digest;
  /** The image ID (config digest). */
  id: Digest;
  /** Local names it was tagged under. */
  tags: string[];
  /** True when every step came from the cache. */
  cached: boolean;
}

/** The SOURCE_DATE_EPOCH to use: the option, else the environment variable, else 0. */
export function sourceDateEpochOf(opt?: number, env: NodeJS.ProcessEnv = process.env): number {
  if (opt !== undefined) return opt;
  const v = env.SOURCE_DATE_EPOCH;
  if (v && /^\d+$/.test(v)) return Number(v);
  return 0;
}


/** Builds `spec` into the store and tags it under `spec.localRefs`. */
export async function buildImage(spec: ImageSpec, opts: BuildOptions): Promise<BuiltImage> {
  const b = new ImageBuild(spec, opts);
  try {
    return await b.run();
  } finally {
    await b.cleanup();
  }
}

class ImageBuild {
  private readonly store: Store;
  private readonly epoch: number;
  private readonly created: string;
  private readonly digests: FileDigests;
  private readonly temps: string[] = [];
  private readonly fromRoots = new Map<string, Promise<string>>();
  private readonly started = Date.now();
  /** Blobs of layers made in this build that are still being made durable, by diff_id. */
  private readonly durable = new Map<Digest, Promise<void>>();
  /** Cache entries waiting for their layer blob to be durable. */
  private readonly recording: Promise<void>[] = [];

  constructor(
    private readonly spec: ImageSpec,
    private readonly opts: BuildOptions,
  ) {
    this.store = opts.store;
    this.epoch = sourceDateEpochOf(opts.sourceDateEpoch);
    this.created = epochIso(this.epoch);
    this.digests = opts.digests ?? FileDigests.inMemory();
  }

  private emit: BuildListener = (e) => {
    try {
      this.opts.onEvent?.(e);
    } catch {
      /* a renderer's failure must not break the build */
    }
  };

  private builtRef = async (key: string): Promise<BuiltSpecImage> => {
    if (!this.opts.built) throw new DimgError('IMAGE_NOT_FOUND', `image ${this.spec.key}: image ${key} of the spec has not been built`, 'build the images it depends on first (dimg build builds them in order)');
    return this.opts.built(key);
  };

  async run(): Promise<BuiltImage> {
    const spec = this.spec;
    const total = spec.steps.length + 1;
    this.emit({ type: 'image-start', image: spec.key, steps: total });
    const t0 = Date.now();
    const baseCtx = this.baseContext();
    const base = await resolveBase(spec, baseCtx);
    this.emit({ type: 'step-done', image: spec.key, index: 1, total, display: base.display, cached: true, durationMs: Date.now() - t0 });
    let container: ContainerConfig = structuredClone(base.config.config ?? {});
    const layers: Descriptor[] = [...base.layers];
    const diffIds: Digest[] = [...base.config.rootfs.diff_ids];
    const history: HistoryEntry[] = [...(base.config.history ?? [])];
    if (layers.length !== diffIds.length) {
      throw new DimgError('IMAGE_INVALID', `image ${spec.key}: its base has ${layers.length} layers but ${diffIds.length} diff_ids`, 'the base image is malformed; rebuild or re-pull it');
    }
    // Every key is computed up front by the same function the planner uses (or was, just before).
    const fromIdentity = async (from: CopyFrom): Promise<Digest> => {
      const img = await this.fromImage(from);
      return 'inputDigest' in img ? (img as BuiltSpecImage).inputDigest : img.descriptor.digest;
    };
    const keys =
      (await this.plannedKeys(base.key, fromIdentity)) ??
      (await computeImageKeys(spec, {
        base: { key: base.key, config: container },
        fromIdentity,
        digests: this.digests,
        project: this.opts.project,
      }));
    let allCached = true;
    for (let position = 0; position < spec.steps.length; position++) {
      const step = spec.steps[position]!;
      const index = position + 2;
      const display = describeStep(step, container.Shell ?? [...DEFAULT_SHELL]);
      const label = `[${spec.key} ${index}/${total}] ${display.length > 60 ? `${display.slice(0, 59)}…` : display}`;
      const ts = Date.now();
      this.checkCancel(label);
      const key = keys.stepKeys[position]!;
      const op = stepOp(step);
      if (op.kind === 'config') {
        container = op.configure(container, step);
        history.push({ created: this.created, created_by: display, empty_layer: true });
        this.emit({ type: 'step-done', image: spec.key, index, total, display, cached: allCached, durationMs: Date.now() - ts });
        continue;
      }
      this.emit({ type: 'step-start', image: spec.key, index, total, display });
      const hit = this.opts.noCache ? undefined : await this.cacheHit(key);
      let layer: StoredLayer;
      let entry: HistoryEntry;
      if (hit) {
        layer = { descriptor: hit.layer, diffId: hit.diffId };
        entry = hit.history;
      } else {
        allCached = false;
        entry = { created: this.created, created_by: display };
        const run = this.stepRun(position, label, container, layers, diffIds, keys.copyPlans[position]);
        const pending = await op.execute(step, run);
        this.record(key, pending, [...diffIds, pending.diffId], entry, display);
        layer = pending;
      }
      layers.push(layer.descriptor);
      diffIds.push(layer.diffId);
      history.push(entry);
      this.emit({ type: 'step-done', image: spec.key, index, total, display, cached: Boolean(hit), durationMs: Date.now() - ts });
    }
    const level = applyImageLevel(container, spec);
    for (const line of level.history) history.push({ created: this.created, created_by: line, empty_layer: true });
    const platform = platformOf(spec);
    const config: ImageConfig = {
      created: this.created,
      architecture: base.config.architecture || platform.architecture,
      os: base.config.os || platform.os,
      config: level.config,
      rootfs: { type: 'layers', diff_ids: diffIds },
      history,
    };
    const variant = base.config.variant ?? platform.variant;
    if (variant) config.variant = variant;
    if (base.config['os.version']) config['os.version'] = base.config['os.version'];
    const inputDigest = keys.inputDigest;
    const annotations: Record<string, string> = { ...spec.annotations, [ANNOTATION_INPUT_DIGEST]: inputDigest, [ANNOTATION_PROJECT]: this.opts.project, [ANNOTATION_BASE_DIGEST]: base.key };
    await Promise.all(this.recording);
    const { descriptor } = await commitImage(this.store, { config, layers, annotations });
    // index.json is rewritten (lock, temp file, two fsyncs) only for names that do not point here yet.
    const named = new Map((await this.store.entries()).map((e) => [e.name, e.descriptor.digest]));
    for (const ref of spec.localRefs) if (named.get(ref) !== descriptor.digest) await this.store.tag(ref, descriptor);
    const id = sha256(canonicalJson(config)) as Digest;
    this.emit({ type: 'image-done', image: spec.key, digest: descriptor.digest, id, tags: [...spec.localRefs], durationMs: Date.now() - this.started });
    return { key: spec.key, descriptor, config, layers, inputDigest, id, tags: [...spec.localRefs], cached: allCached };
  }

  /** The planned keys, when what they stand on (base, `copy --from` images) is what was planned. */
  private async plannedKeys(
    baseKey: Digest,
    fromIdentity: (from: CopyFrom) => Promise<Digest>,
  ): Promise<ImageKeys | undefined> {
    const planned = this.opts.planned;
    if (!planned || planned.baseKey !== baseKey) return undefined;
    for (const [position, step] of this.spec.steps.entries()) {
      if ((step.kind !== 'copy' && step.kind !== 'add') || !step.from) continue;
      if ((await fromIdentity(step.from)) !== planned.fromIdentities[position]) return undefined;
    }
    return planned;
  }

  private checkCancel(label: string): void {
    if (this.opts.signal?.aborted) throw new DimgError('BUILD_CANCELLED', `${label}: build cancelled`, '');
  }

  /** A usable cache entry: its layer blob must still be in the store. */
  private async cacheHit(key: Digest): Promise<{ layer: Descriptor; diffId: Digest; history: HistoryEntry } | undefined> {
    const e = await this.store.cache.get(key);
    if (!e) return undefined;
    // Entries are JSON on disk: one written by an older dimg, or cut short, may lack a field.
    const { layer, diffId, history: hist } = e;
    if (!layer || !diffId || !hist) return undefined;
    // cache.get claimed the entry's blobs, so the layer checked here stays until it is used.
    if ((await this.store.blobs.stat(layer.digest)) !== layer.size) return undefined;
    return { layer, diffId, history: hist };
  }

  /**
   * Records a layer step that ran: the next step starts while the kernel writes the layer's blob out;
   * its cache entry is written once the blob is durable (never before), and the image waits for it.
   */
  private record(key: Digest, pending: PendingLayer, diffIds: Digest[], history: HistoryEntry, display: string): void {
    const chain = chainIds(diffIds);
    this.durable.set(pending.diffId, pending.durable);
    const entry = {
      key,
      blobs: [pending.descriptor.digest],
      chainId: chain[chain.length - 1],
      diffIds: [pending.diffId],
      layer: pending.descriptor,
      diffId: pending.diffId,
      history,
      image: this.spec.key,
      step: display,
    };
    this.defer(pending.durable.then(() => this.store.cache.put({ ...entry, created: new Date().toISOString() })));
  }

  private defer(work: Promise<void>): void {
    work.catch(() => undefined);
    this.recording.push(work);
  }

  /** What the operation of the step at `position` runs with (snapshots of the image so far). */
  private stepRun(
    position: number,
    label: string,
    config: ContainerConfig,
    layers: Descriptor[],
    diffIds: Digest[],
    copyPlan: StepRun['copyPlan'],
  ): StepRun {
    const below = { layers: [...layers], diffIds: [...diffIds] };
    return {
      store: this.store,
      spec: this.spec,
      position,
      label,
      config,
      ...below,
      epoch: this.epoch,
      copyPlan,
      noCache: Boolean(this.opts.noCache),
      secrets: this.opts.secrets,
      signal: this.opts.signal,
      runDriver: this.opts.runDriver,
      emit: this.emit,
      tempPath: (prefix) => {
        const p = tempPath(this.store.tmpDir, prefix);
        this.temps.push(p);
        return p;
      },
      defer: (work) => this.defer(work),
      openParent: (layer, diffId) => this.openParent(layer, diffId),
      parentView: () => this.parentView(below.layers, below.diffIds),
      fromRoot: (from) => this.fromRoot(from),
      runFollows: () => this.runFollows(position),
    };
  }

  /** True when a RUN step after step `i` will mount the layers as overlay lowerdirs. */
  private async runFollows(i: number): Promise<boolean> {
    if (!this.spec.steps.slice(i + 1).some((s) => s.kind === 'run')) return false;
    const driver = this.opts.runDriver ?? (await detectRunDriver(this.store)).driver;
    return driver === 'overlay';
  }

  /**
   * The parent chain's merged view for chown names and parent-directory attributes. The chain is
   * unpacked once into the store's overlay dirs; when that is impossible (no privileges for whiteout
   * xattrs) the defaults apply.
   */
  private async parentView(layers: Descriptor[], diffIds: Digest[]): Promise<LayerView | undefined> {
    if (layers.length === 0) return undefined;
    try {
      const chains = chainIds(diffIds);
      const dirs: string[] = [];
      for (let j = 0; j < layers.length; j++) {
        const d = await this.store.overlay.ensure(chains[j]!, () => this.openParent(layers[j]!, diffIds[j]!));
        dirs.unshift(d.diffDir);
      }
      return new LayerView(dirs);
    } catch (e) {
      if (isDimgError(e, 'BUILD_CANCELLED')) throw e;
      this.emit({ type: 'notice', image: this.spec.key, message: `parent layers could not be unpacked (${messageOf(e)}); new parent directories get mode 0755 root:root` });
      return undefined;
    }
  }

  private baseContext(): BaseContext {
    return { store: this.store, built: this.builtRef, pull: this.opts.pull, sourceDateEpoch: this.epoch, digests: this.digests };
  }

  private async fromImage(from: CopyFrom): Promise<BuiltRef> {
    if (from.kind === 'image') return this.builtRef(from.key);
    return findRef(this.baseContext(), from.ref, platformOf(this.spec), this.spec.key);
  }

  /** The flattened root of a `copy --from` image (unpacked once per build into the store's tmp dir). */
  private fromRoot(from: CopyFrom): Promise<string> {
    const id = from.kind === 'image' ? `image:${from.key}` : `ref:${from.ref}`;
    let p = this.fromRoots.get(id);
    if (!p) {
      p = (async () => {
        const img = await this.fromImage(from);
        const dir = join(this.store.tmpDir, `fromimg-${process.pid}-${randomBytes(6).toString('hex')}`);
        this.temps.push(dir);
        // This dir is the image's `/`: a `copy --from` of `/` gives its destination this mode, so it
        // is Docker's 0755 whatever the umask (the store's tmp/ around it is private).
        await fs.mkdir(dir, { recursive: true });
        await fs.chmod(dir, 0o755);
        const diffIds = img.config.rootfs.diff_ids;
        for (let j = 0; j < img.layers.length; j++) {
          await extractLayer(await openLayer(this.store, img.layers[j]!, diffIds[j]!), dir, { mode: 'flatten', subject: `layer ${img.layers[j]!.digest}` });
        }
        return dir;
      })();
      this.fromRoots.set(id, p);
    }
    return p;
  }

  /** Opens a parent layer's tar, waiting first for its blob if this build just made it. */
  private async openParent(layer: Descriptor, diffId: Digest): Promise<Readable> {
    await this.durable.get(diffId);
    return openLayer(this.store, layer, diffId);
  }

  async cleanup(): Promise<void> {
    // A failed build still lets the blobs and cache entries of the steps that succeeded settle, so it
    // leaves neither temp files nor writes behind it.
    await Promise.allSettled(this.recording);
    for (const t of this.temps) await fs.rm(t, { recursive: true, force: true }).catch(() => undefined);
  }
}
