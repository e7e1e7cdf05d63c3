/**
 * The builder: an ImageSpec's steps turned into layers on top of its base, with a content-addressed
 * step cache in the store, a config assembled Docker-style (Env, Cmd, Entrypoint, WorkingDir, User,
 * ExposedPorts, Volumes, Labels, StopSignal, Healthcheck, Shell) and history entries, the manifest
 * annotated with the image's input digest and project, and the result tagged under its local refs.
 *
 * Step key = sha256(parent key | base digest, canonicalStep(step), input digests): for copy/add the
 * content digest of the files sent (paths, modes, contents; not mtimes), for `from` images their
 * manifest digest. Secret ids are part of the canonical step, their values never. A hit reuses the
 * layer without running anything; a cache entry is written only after its layer blob is durable.
 */
import { promises as fs } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { DimgError, isDimgError, messageOf } from '../errors.js';
import { canonicalJson } from '../oci/canonical-json.js';
import { sha256, type Digest } from '../oci/digest.js';
import { ANNOTATION_BASE_DIGEST, ANNOTATION_INPUT_DIGEST, ANNOTATION_PROJECT, type ContainerConfig, type Descriptor, type HistoryEntry, type ImageConfig } from '../oci/types.js';
import { commitImage } from '../image/commit.js';
import { chainIds } from '../store/overlay.js';
import type { Store } from '../store/store.js';
import { tempPath } from '../store/fsutil.js';
import { canonicalStep } from '../specfile/steps.js';
import type { CopyStep, ImageSpec, RunStep, Step } from '../specfile/model.js';
import { applyConfigStep, applyImageLevel, DEFAULT_SHELL, setEnv } from './config-steps.js';
import { describeStep } from './history.js';
import { epochIso, findRef, platformOf, resolveBase, type BaseContext, type BuiltRef, type BuiltSpecImage } from './base.js';
import { computeImageKeys, CONFIG_ONLY_STEPS } from './keys.js';
import { openLayer, packLayerSources, type PendingLayer, type StoredLayer } from './layer-blobs.js';
import type { PackOptions } from '../layer/tar-writer.js';
import { contextFilter, loadIgnore, parseChmod, resolveChown, resolveCopy, unpackArchive } from './copy-step.js';
import { copyInputDigest, type CopySource } from './copy-inputs.js';
import { FileDigests } from './file-digests.js';
import type { LayerView } from './layer-view.js';
// The sandbox, layer-dir and layer-view modules are loaded when a step actually runs, so a fully
// cached build does not pay for loading them.
import type { RunDriver, SecretMount } from './sandbox.js';
import { LayerMirror } from '../layer/mirror.js';
import { OffsetRecorder } from '../layer/offset-record.js';
import { PreviousTarReader } from '../layer/previous-pack.js';
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

/** The chain ID of the last layer of `diffIds`. */
function lastChainId(diffIds: Digest[]): Digest {
  const chain = chainIds(diffIds);
  return chain[chain.length - 1]!;
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
    // Every key is computed up front by the same function the planner uses.
    const keys = await computeImageKeys(spec, {
      base: { key: base.key, config: container },
      fromIdentity: async (from) => {
        const img = await this.fromImage(from);
        return 'inputDigest' in img ? (img as BuiltSpecImage).inputDigest : img.descriptor.digest;
      },
      digests: this.digests,
      project: this.opts.project,
    });
    let allCached = true;
    for (let i = 0; i < spec.steps.length; i++) {
      const step = spec.steps[i]!;
      const index = i + 2;
      const shell = container.Shell ?? [...DEFAULT_SHELL];
      const display = describeStep(step, shell);
      const label = `[${spec.key} ${index}/${total}] ${display.length > 60 ? `${display.slice(0, 59)}…` : display}`;
      const ts = Date.now();
      this.checkCancel(label);
      const key = keys.stepKeys[i]!;
      if (CONFIG_ONLY_STEPS.has(step.kind)) {
        container = applyConfigStep(container, step);
        history.push({ created: this.created, created_by: display, empty_layer: true });
        this.emit({ type: 'step-done', image: spec.key, index, total, display, cached: allCached, durationMs: Date.now() - ts });
        continue;
      }
      this.emit({ type: 'step-start', image: spec.key, index, total, display });
      const copyPlan = keys.copyPlans[i];
      const hit = this.opts.noCache ? undefined : await this.cacheHit(key);
      let layer: StoredLayer;
      let entry: HistoryEntry;
      if (hit) {
        layer = { descriptor: hit.layer, diffId: hit.diffId };
        entry = hit.history;
      } else {
        allCached = false;
        entry = { created: this.created, created_by: display };
        layer =
          step.kind === 'run'
            ? await this.runStep(step, container, layers, diffIds, label, index)
            : await this.copyStep(step as CopyStep, container, layers, diffIds, label, copyPlan, await this.runFollows(i), i);
        const chain = chainIds([...diffIds, layer.diffId]);
        // The next step starts while the kernel writes this layer's blob out; its cache entry is
        // recorded once the blob is durable (never before), and the image waits for all of them.
        const pending = layer as PendingLayer;
        const done = entry;
        this.durable.set(layer.diffId, pending.durable);
        this.recording.push(
          pending.durable.then(() =>
            this.store.cache.put({
              key,
              blobs: [pending.descriptor.digest],
              chainId: chain[chain.length - 1],
              created: new Date().toISOString(),
              diffIds: [pending.diffId],
              layer: pending.descriptor,
              diffId: pending.diffId,
              history: done,
              image: spec.key,
              step: display,
            }),
          ),
        );
        this.recording[this.recording.length - 1]!.catch(() => undefined);
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

  private checkCancel(label: string): void {
    if (this.opts.signal?.aborted) throw new DimgError('BUILD_CANCELLED', `${label}: build cancelled`, '');
  }

  /** A usable cache entry: its layer blob must still be in the store. */
  private async cacheHit(key: Digest): Promise<{ layer: Descriptor; diffId: Digest; history: HistoryEntry } | undefined> {
    const e = await this.store.cache.get(key);
    if (!e) return undefined;
    const layer = e.layer as Descriptor | undefined;
    const diffId = e.diffId as Digest | undefined;
    const hist = e.history as HistoryEntry | undefined;
    if (!layer || !diffId || !hist) return undefined;
    // cache.get claimed the entry's blobs, so the layer checked here stays until it is used.
    if ((await this.store.blobs.stat(layer.digest)) !== layer.size) return undefined;
    return { layer, diffId, history: hist };
  }

  private async runStep(step: RunStep, container: ContainerConfig, layers: Descriptor[], diffIds: Digest[], label: string, index: number): Promise<PendingLayer> {
    const chains = chainIds(diffIds);
    const parents = layers.map((l, j) => ({ chainId: chains[j]!, diffId: diffIds[j]!, open: () => this.openParent(l, diffIds[j]!) }));
    const argv = step.form === 'shell' ? [...(container.Shell ?? DEFAULT_SHELL), ...step.command] : [...step.command];
    let env = [...(container.Env ?? [])];
    for (const [k, v] of Object.entries(step.env)) env = setEnv(env, k, v);
    const secrets = await this.secretFiles(step, label);
    let driverNoted = false;
    const { runInSandbox } = await import('./sandbox.js');
    const { adoptLayerDir, settleRunDiff } = await import('./layer-dirs.js');
    return runInSandbox(
      {
        store: this.store,
        parents,
        argv,
        env,
        user: container.User,
        workdir: container.WorkingDir,
        network: step.network,
        secrets,
        driver: this.opts.runDriver,
        label,
        signal: this.opts.signal,
        onOutput: (chunk) => this.emit({ type: 'step-output', image: this.spec.key, index, chunk }),
      },
      async ({ diffDir, driver }) => {
        if (driver === 'copy' && !driverNoted) {
          driverNoted = true;
          this.emit({ type: 'notice', image: this.spec.key, message: 'overlay mounts are unavailable here: RUN uses the copy-based driver (slower)' });
        }
        const layer = await packLayerSources(this.store, [{ from: diffDir, to: '' }], { overlay: true, sourceDateEpoch: this.epoch });
        if (driver === 'overlay') {
          // The upperdir is the new layer in lowerdir form: keep it instead of unpacking the tar later.
          try {
            settleRunDiff(diffDir, this.epoch);
            await adoptLayerDir(this.store, lastChainId([...diffIds, layer.diffId]), diffDir);
          } catch {
            /* the layer is unpacked from its tar when a later step needs it */
          }
        }
        return layer;
      },
    );
  }

  /** Host files for the step's secrets: --secret values, the spec's `src`, or its `env` written to a temp file. */
  private async secretFiles(step: RunStep, label: string): Promise<SecretMount[]> {
    const out: SecretMount[] = [];
    for (const s of step.secrets) {
      let src = this.opts.secrets?.[s.id] ?? s.src;
      if (!src && s.env && process.env[s.env] !== undefined) {
        src = tempPath(this.store.tmpDir, 'secret');
        this.temps.push(src);
        await fs.writeFile(src, process.env[s.env]!, { mode: 0o600 });
      }
      if (!src) {
        if (!s.required) continue;
        throw new DimgError('SECRET_MISSING', `${label}: secret "${s.id}" has no value`, `pass --secret id=${s.id},src=PATH${s.env ? ` or set ${s.env}` : ''}`);
      }
      out.push({ id: s.id, src, target: s.target });
    }
    return out;
  }

  private async copyStep(
    step: CopyStep,
    container: ContainerConfig,
    layers: Descriptor[],
    diffIds: Digest[],
    label: string,
    plan: { sources: CopySource[]; archives: Set<number>; root: string; filter?: ReturnType<typeof contextFilter> } | undefined,
    lowerdirSoon: boolean,
    stepIndex: number,
  ): Promise<PendingLayer> {
    if (!plan) {
      const root = await this.fromRoot(step.from!);
      const resolved = await resolveCopy(step, root, container.WorkingDir, undefined, label);
      plan = { ...resolved, root };
    }
    const view = await this.parentView(layers, diffIds);
    const owner = await resolveChown(step.chown, view, label);
    const mode = parseChmod(step.chmod, label);
    const sources: CopySource[] = [];
    for (let i = 0; i < plan.sources.length; i++) {
      const s = plan.sources[i]!;
      if (!plan.archives.has(i)) {
        sources.push(s);
        continue;
      }
      const dir = tempPath(this.store.tmpDir, 'add');
      this.temps.push(dir);
      await unpackArchive(s.from, dir);
      sources.push({ from: dir, to: s.to });
    }
    // Parent directories of the destinations keep the attributes they have in the image: the
    // layer's entry for e.g. `tmp/` replaces them when unpacked (parentAttrs must answer synchronously).
    const attrs = new Map<string, { mode: number; uid: number; gid: number; mtime: number } | undefined>();
    if (view) {
      for (const s of sources) {
        const parts = s.to.split('/').filter(Boolean);
        for (let k = 1; k < parts.length; k++) {
          const p = parts.slice(0, k).join('/');
          if (attrs.has(p)) continue;
          const e = await view.lookup(p);
          attrs.set(p, e?.stats.isDirectory() ? { mode: e.stats.mode & 0o7777, uid: e.stats.uid, gid: e.stats.gid, mtime: Math.floor(e.stats.mtimeMs / 1000) } : undefined);
        }
      }
    }
    const filter = plan.filter;
    // A later RUN needs this layer as a lowerdir: write it there while packing (from the same bytes)
    // rather than unpacking the tar afterwards.
    const slot = `${this.spec.key}\0${stepIndex}`;
    const { loadCopyMemory, saveCopyMemory } = await import('./copy-memory.js');
    // --no-cache: nothing from earlier builds, not even unchanged file contents.
    const memory = this.opts.noCache ? {} : await loadCopyMemory(this.store, slot);
    const dirs = lowerdirSoon ? await import('./layer-dirs.js') : undefined;
    const staging = dirs ? await this.store.overlay.stagingDir('copy') : undefined;
    const mirror = staging ? new LayerMirror({ dir: staging, donor: memory.donor }) : undefined;
    const record = new OffsetRecorder();
    const packOpts: PackOptions = {
      observers: [record, mirror],
      content: memory.previous ? new PreviousTarReader(memory.previous) : undefined,
      sourceDateEpoch: this.epoch,
      owner,
      mode,
      // Ignore rules apply to context files only, not to unpacked archives.
      filter: filter ? (rel, isDir, src) => (src.from.startsWith(plan!.root) ? filter(rel, isDir, src) : true) : undefined,
      parentAttrs: (p) => attrs.get(p.replace(/^\/+|\/+$/g, '')),
    };
    try {
      const layer = await packLayerSources(this.store, sources, packOpts);
      const chain = lastChainId([...diffIds, layer.diffId]);
      if (mirror?.complete) await dirs!.adoptLayerDir(this.store, chain, mirror.dir);
      // Remembered once the tar is in the store (the image waits for it like for the cache entry).
      const parentChain = diffIds.length > 0 ? lastChainId(diffIds) : undefined;
      const files = record.files;
      const remembered = layer.durable.then(() => saveCopyMemory(this.store, slot, layer.diffId, parentChain, files));
      remembered.catch(() => undefined);
      this.recording.push(remembered);
      return layer;
    } finally {
      if (mirror) await fs.rm(mirror.dir, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  /** True when a RUN step after step `i` will mount the layers as overlay lowerdirs. */
  private async runFollows(i: number): Promise<boolean> {
    if (!this.spec.steps.slice(i + 1).some((s) => s.kind === 'run')) return false;
    const { detectRunDriver } = await import('./sandbox.js');
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
      const { LayerView } = await import('./layer-view.js');
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

  private async fromImage(from: NonNullable<CopyStep['from']>): Promise<BuiltRef> {
    if (from.kind === 'image') return this.builtRef(from.key);
    return findRef(this.baseContext(), from.ref, platformOf(this.spec), this.spec.key);
  }

  /** The flattened root of a `copy --from` image (unpacked once per build into the store's tmp dir). */
  private fromRoot(from: NonNullable<CopyStep['from']>): Promise<string> {
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
        const { extractLayer } = await import('../layer/index.js');
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
  private async openParent(layer: Descriptor, diffId: Digest) {
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
