/**
 * A step kind as an operation, like BuildKit's solver.Op: each kind computes its own cache key and
 * runs itself. Config steps (env, workdir, …) change the image config and make no layer; layer
 * steps (run, copy, add) make one layer, which the builder looks up in the cache by the step's key
 * before running the step. The table of every kind is step-ops.ts; the loop that drives them is
 * builder.ts (key → cache lookup → execute → record).
 */
import type { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import type { ContainerConfig, Descriptor } from '../oci/types.js';
import type { CopyFrom, ImageSpec, Step } from '../specfile/model.js';
import type { IgnoreMatcher } from '../specfile/ignore.js';
import type { Store } from '../store/store.js';
import type { CopyPlan, TreeDigestMemo } from './dependencies.js';
import type { BuildListener } from './events.js';
import type { FileDigests } from './file-digests.js';
import type { PendingLayer } from './layer-blobs.js';
import type { LayerView } from './layer-view.js';
import type { RunDriver } from './sandbox.js';

/** What a step's cache key may look at (the same during planning and building). */
export interface StepKeying {
  spec: ImageSpec;
  /** The step's position in `spec.steps`. */
  position: number;
  /** The key of what the step stands on: the previous step's key, or the base key. */
  parent: Digest;
  /** The config in effect before the step (WORKDIR resolves copy destinations). */
  config: ContainerConfig;
  /** The ignore rules of the image's context, if any. */
  matcher: IgnoreMatcher | undefined;
  /** The identity of a `copy --from` image (input digest of a spec image, manifest digest of a ref). */
  fromIdentity: (from: CopyFrom) => Promise<Digest>;
  digests: FileDigests;
  trees?: TreeDigestMemo;
}

/** A step's key, and for a context copy the sources keying resolved (the builder packs those). */
export interface StepKeyResult {
  key: Digest;
  copyPlan?: CopyPlan;
  /** For a `copy --from` step, the identity of the image it copies from (part of the key). */
  fromIdentity?: Digest;
}

/** What a layer step runs with: the image so far, and the build's services. */
export interface StepRun {
  store: Store;
  spec: ImageSpec;
  /** The step's position in `spec.steps`. */
  position: number;
  /** `[web 3/7] RUN …`: names the step in errors. */
  label: string;
  /** The config in effect before the step. */
  config: ContainerConfig;
  /** The layers below the step, base first, and their diff_ids. */
  layers: readonly Descriptor[];
  diffIds: readonly Digest[];
  /** SOURCE_DATE_EPOCH in seconds. */
  epoch: number;
  /** What keying resolved for a context copy. */
  copyPlan: CopyPlan | undefined;
  noCache: boolean;
  /** Secret files by id given for this build (override the spec's sources). */
  secrets: Readonly<Record<string, string>> | undefined;
  signal: AbortSignal | undefined;
  runDriver: RunDriver | undefined;
  emit: BuildListener;
  /** A temp path in the store's tmp dir, removed when the build ends. */
  tempPath(prefix: string): string;
  /** Work that must settle (blob durable, memory written) before the image is committed. */
  defer(work: Promise<void>): void;
  /** Opens a layer below the step (waiting for its blob when this build just made it). */
  openParent(layer: Descriptor, diffId: Digest): Promise<Readable>;
  /** The merged view of the layers below the step, or undefined when they cannot be unpacked. */
  parentView(): Promise<LayerView | undefined>;
  /** The flattened root of a `copy --from` image (unpacked once per build). */
  fromRoot(from: CopyFrom): Promise<string>;
  /** True when a later RUN step will mount the layers as overlay lowerdirs. */
  runFollows(): Promise<boolean>;
}

/** A step that only changes the image config. */
export interface ConfigOp<S extends Step = Step> {
  readonly kind: 'config';
  cacheKey(step: S, k: StepKeying): Promise<StepKeyResult>;
  /** The config after the step. */
  configure(config: ContainerConfig, step: S): ContainerConfig;
}

/** A step that makes one layer. */
export interface LayerOp<S extends Step = Step> {
  readonly kind: 'layer';
  cacheKey(step: S, k: StepKeying): Promise<StepKeyResult>;
  /** Runs the step: its layer, packed, its blob still being made durable (see PendingLayer). */
  execute(step: S, run: StepRun): Promise<PendingLayer>;
}

/** An operation for steps of type `S`. */
export type StepOp<S extends Step = Step> = ConfigOp<S> | LayerOp<S>;
