/**
 * The executor's build port, shared by `apply` (full plans) and `dimg build` / `dimg image build`
 * (build-only plans): a plan's build action runs the builder on the image with its registry bases
 * pinned to what planning resolved, reusing planning's file-digest memo. Each image is built at most
 * once per execution; a build that stands on another image of the spec gets it from this execution,
 * else from the store by input digest, else builds it.
 */
import { DimgError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { formatPlatform } from '../oci/platform.js';
import { parseReference, repositoryName } from '../oci/reference.js';
import type { Descriptor, ImageManifest, Platform } from '../oci/types.js';
import { claimImage, loadImage } from '../image/local-image.js';
import type { BaseSpec, CopyStep, ImageSpec, Spec, Step } from '../specfile/model.js';
import type { Store } from '../store/store.js';
import { buildImage, type BuiltImage } from '../builder/builder.js';
import type { BuiltRef, BuiltSpecImage } from '../builder/base.js';
import { platformOf } from '../builder/dependencies.js';
import type { BuildListener } from '../builder/events.js';
import type { FileDigests } from '../builder/file-digests.js';
import type { BuildAction } from '../plan/types.js';
import { lockKey } from '../resolve/lock.js';
import type { ResolvedSpec } from '../resolve/desired.js';
import type { ActionOutput } from './execute.js';

/** What builds are made from: the planned spec and what planning learnt about it. */
export interface BuildSource {
  store: Store;
  spec: Pick<Spec, 'file' | 'project' | 'images'>;
  resolved: Pick<ResolvedSpec, 'keys' | 'pins'>;
  /** The file-digest memo planning filled (saved by the caller once the execution ends). */
  digests: FileDigests;
  /** Input digest → manifest digest of the images the store held when the plan was made. */
  local: ReadonlyMap<Digest, Digest>;
  /** Fetches a registry base missing from the store; without one, such a base fails its build. */
  pull?: (ref: string, platform: Platform, signal: AbortSignal) => Promise<void>;
}

/** How the port builds. */
export interface BuildPortOptions {
  onBuildEvent?: BuildListener;
  /** SOURCE_DATE_EPOCH override. */
  sourceDateEpoch?: number;
  /** Run every step even when the build cache has it. */
  noCache?: boolean;
  /** Secret files by id (`--secret`), overriding the spec's sources. */
  secrets?: Readonly<Record<string, string>>;
  /**
   * Fail a build whose input digest is not the planned one (PLAN_MISMATCH): apply must not push
   * what it did not plan. A build-only plan builds what the files hold when it runs.
   */
  checkPlanned?: boolean;
  /**
   * Build on the base digests planning pinned (apply: a tag that moves meanwhile is not used). Off for
   * a build-only plan, whose bases are the store's images by the names the spec gives, as the builder
   * finds them: the FROM lines then show those names.
   */
  pinBases?: boolean;
  /**
   * Let the builder use the keys planning computed (not walking the contexts again) while the base
   * and `copy --from` images are the planned ones. For a build-only plan, made just before it runs;
   * apply keys again at build time, so PLAN_MISMATCH can tell that the files changed meanwhile.
   */
  reusePlannedKeys?: boolean;
}

/** The build half of the executor's ports. */
export class BuildPort {
  private readonly builds = new Map<string, Promise<BuiltImage>>();
  private readonly byInput = new Map<Digest, Digest>();

  constructor(
    private readonly source: BuildSource,
    private readonly opts: BuildPortOptions = {},
  ) {
    for (const [input, digest] of source.local) this.byInput.set(input, digest);
  }

  /** Runs a build action; its output is the manifest digest in the store. */
  async build(action: BuildAction, signal: AbortSignal): Promise<ActionOutput> {
    const built = await this.buildOnce(action.image, signal);
    if (this.opts.checkPlanned && built.inputDigest !== action.inputDigest) {
      const { image, inputDigest } = action;
      const message = `image ${image}: built with input digest ${built.inputDigest}, planned ${inputDigest}`;
      throw new DimgError('PLAN_MISMATCH', message, 'the inputs changed while applying; run the plan again');
    }
    return { digest: built.descriptor.digest };
  }

  /** The result of `key`'s build in this execution, if it was started. */
  built(key: string): Promise<BuiltImage> | undefined {
    return this.builds.get(key);
  }

  /** The store descriptor of the image `key` with `input` (built in this execution or already local). */
  async localImage(key: string, input: Digest, signal: AbortSignal): Promise<Descriptor> {
    const built = this.builds.get(key);
    if (built) return (await built).descriptor;
    const local = this.byInput.get(input);
    // Gone since planning (a concurrent prune): build it again.
    const loaded = local ? await this.loadLocal(local).catch(() => undefined) : undefined;
    if (loaded) return loaded.descriptor;
    return (await this.buildOnce(key, signal)).descriptor;
  }

  /** Builds `key` once per execution (dependants and pushes share the result). */
  private buildOnce(key: string, signal: AbortSignal): Promise<BuiltImage> {
    let p = this.builds.get(key);
    if (!p) {
      const { store, spec, digests, pull } = this.source;
      const img = this.imageSpec(key);
      p = buildImage(this.opts.pinBases ? pinBases(img, this.source.resolved.pins) : img, {
        store,
        project: spec.project,
        digests,
        signal,
        onEvent: this.opts.onBuildEvent,
        sourceDateEpoch: this.opts.sourceDateEpoch,
        noCache: this.opts.noCache,
        secrets: this.opts.secrets,
        pull: pull ? (ref, platform) => pull(ref, platform, signal) : undefined,
        built: (dep) => this.dependency(dep, signal),
        planned: this.opts.reusePlannedKeys ? this.source.resolved.keys.get(key) : undefined,
      });
      p.then((b) => this.byInput.set(b.inputDigest, b.descriptor.digest), () => undefined);
      this.builds.set(key, p);
    }
    return p;
  }

  /**
   * A spec image a build stands on: built in this execution, else found in the store by input
   * digest, else built now.
   */
  private async dependency(key: string, signal: AbortSignal): Promise<BuiltSpecImage> {
    const planned = this.builds.get(key);
    if (planned) return planned;
    const input = this.source.resolved.keys.get(key)?.inputDigest;
    const local = input ? this.byInput.get(input) : undefined;
    if (input && local) {
      const loaded = await this.loadLocal(local).catch(() => undefined);
      if (loaded) return { ...loaded, inputDigest: input };
    }
    return this.buildOnce(key, signal);
  }

  /** A local image by manifest digest, claimed for this execution (fails when a prune took any of it). */
  private async loadLocal(digest: Digest): Promise<BuiltRef> {
    const store = this.source.store;
    await store.claim({ blobs: [digest] });
    const m = await store.blobs.readJson<ImageManifest>(digest);
    const size = (await store.blobs.stat(digest)) ?? 0;
    const mediaType = m.mediaType ?? 'application/vnd.oci.image.manifest.v1+json';
    const img = await loadImage(store, { mediaType, digest, size });
    await claimImage(store, img, `local image ${digest}`);
    return { descriptor: img.descriptor, config: img.config, layers: img.manifest.layers };
  }

  private imageSpec(key: string): ImageSpec {
    const img = this.source.spec.images.find((i) => i.key === key);
    if (!img) {
      const message = `image ${key} is not in ${this.source.spec.file}`;
      throw new DimgError('IMAGE_NOT_IN_SPEC', message, 'make the plan again');
    }
    return img;
  }
}

/**
 * The image spec with its registry bases (and `copy --from` references) pinned to the digests the
 * plan resolved, so the build uses exactly what was planned even if a tag moves meanwhile.
 */
export function pinBases(img: ImageSpec, pins: ReadonlyMap<string, Digest>): ImageSpec {
  const platform = formatPlatform(platformOf(img));
  const pin = (ref: string): string => {
    const d = pins.get(lockKey(ref, platform));
    return d && !ref.includes('@') ? `${repositoryName(parseReference(ref))}@${d}` : ref;
  };
  const from: BaseSpec = img.from.kind === 'ref' ? { kind: 'ref', ref: pin(img.from.ref) } : img.from;
  const steps: Step[] = img.steps.map((s) => {
    if ((s.kind !== 'copy' && s.kind !== 'add') || s.from?.kind !== 'ref') return s;
    return { ...s, from: { kind: 'ref', ref: pin(s.from.ref) } } as CopyStep;
  });
  return { ...img, from, steps };
}
