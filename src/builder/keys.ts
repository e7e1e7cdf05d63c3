/**
 * The identity of an image before it is built: its base key, one cache key per step, and its input
 * digest. The planner computes these without building anything (so a CI runner with an empty store
 * can tell that a registry tag is current), through the `ImageKeyer` port this module implements, and
 * the builder uses the very same function, so the two always agree.
 *
 * Base key: scratch → digest of (scratch, platform); another image of the spec → that image's input
 * digest; a registry/store reference → its manifest digest; a rootfs directory → digest of its tree
 * (paths, modes, owners, contents); a rootfs tarball → sha256 of the file (its layer is the tree repacked).
 * Step key: each step kind's operation computes its own (step-ops.ts); the formulas are in
 * dependencies.ts. Input digest = sha256(last step key, entrypoint, cmd, labels, annotations, project).
 */
import { promises as fs } from 'node:fs';
import { canonicalJson } from '../oci/canonical-json.js';
import { sha256, type Digest } from '../oci/digest.js';
import type { ContainerConfig, Platform } from '../oci/types.js';
import type { CopyFrom, ImageSpec } from '../specfile/model.js';
import type { IgnoreMatcher } from '../specfile/ignore.js';
import { DimgError } from '../errors.js';
import { applyImageLevel } from './config-steps.js';
import { loadIgnore } from './copy-step.js';
import { copyInputDigest } from './copy-inputs.js';
import { inputDigestOf, type CopyPlan, type ImageKeyer, type ImageKeys, type KeyedBase } from './dependencies.js';
import type { TreeDigestMemo } from './dependencies.js';
import type { FileDigests } from './file-digests.js';
import { stepOp } from './step-ops.js';

export type { ImageKeys, TreeDigestMemo } from './dependencies.js';

/** What keying needs from outside: the base's identity and config, and identities of `copy --from` images. */
export interface KeyContext {
  base: KeyedBase;
  fromIdentity: (from: CopyFrom) => Promise<Digest>;
  digests: FileDigests;
  project: string;
  /** Ignore matchers by context directory, shared by the images of one pass (read once each). */
  ignores?: Map<string, Promise<IgnoreMatcher | undefined>>;
  /** Reuse of context walks across calls (watch); absent: every walk is done. */
  trees?: TreeDigestMemo;
}

function contextMatcher(context: string, memo: KeyContext['ignores']): Promise<IgnoreMatcher | undefined> {
  if (!memo) return loadIgnore(context);
  let m = memo.get(context);
  if (!m) memo.set(context, (m = loadIgnore(context)));
  return m;
}

/** Computes every key of `spec`. Fails like a build would on missing or escaping copy sources. */
export async function computeImageKeys(spec: ImageSpec, ctx: KeyContext): Promise<ImageKeys> {
  let key = ctx.base.key;
  let config: ContainerConfig = structuredClone(ctx.base.config);
  const stepKeys: Digest[] = [];
  const copyPlans: (CopyPlan | undefined)[] = [];
  const fromIdentities: (Digest | undefined)[] = [];
  const matcher = spec.context ? await contextMatcher(spec.context, ctx.ignores) : undefined;
  for (let position = 0; position < spec.steps.length; position++) {
    const step = spec.steps[position]!;
    const op = stepOp(step);
    const { fromIdentity, digests, trees } = ctx;
    const keying = { spec, position, parent: key, config, matcher, fromIdentity, digests, trees };
    const result = await op.cacheKey(step, keying);
    if (op.kind === 'config') config = op.configure(config, step);
    key = result.key;
    stepKeys.push(key);
    copyPlans.push(result.copyPlan);
    fromIdentities.push(result.fromIdentity);
  }
  const inputDigest = inputDigestOf(key, spec, ctx.project);
  const imageConfig = applyImageLevel(config, spec).config;
  return { baseKey: ctx.base.key, stepKeys, copyPlans, fromIdentities, inputDigest, config: imageConfig };
}

/**
 * The base key of a rootfs (directory tree with owners, or tarball bytes). With `trees`, the walk of a
 * directory is memoised under its path and inode (a directory replaced by another is walked anew).
 */
export async function rootfsKey(path: string, platform: Platform, digests: FileDigests, imageKey: string, trees?: TreeDigestMemo): Promise<Digest> {
  const st = await fs.stat(path).catch(() => undefined);
  if (!st) throw new DimgError('ROOTFS_NOT_FOUND', `image ${imageKey}: rootfs ${path} does not exist`, 'give a directory or a tarball');
  const walk = () => copyInputDigest([{ from: path, to: '' }], undefined, digests, true);
  const content = st.isDirectory()
    ? trees
      ? await trees.digest(`rootfs ${JSON.stringify([path, st.dev, st.ino])}`, [path], walk)
      : await walk()
    : await digests.digest(path, st);
  // A tarball's layer is its tree repacked by the safe extractor, no longer its bytes: `repacked`
  // keeps the layers and images made from the verbatim bytes before from being reused.
  return sha256(canonicalJson({ base: 'rootfs', content, dir: st.isDirectory(), platform, ...(st.isDirectory() ? {} : { repacked: true }) }));
}

/**
 * The keyer the planner is given: keys over the file-digest memo and, in watch, the tree memo. One
 * keyer serves one planning pass (each context's ignore file is read once per pass).
 */
export class ContextKeyer implements ImageKeyer {
  private readonly ignores = new Map<string, Promise<IgnoreMatcher | undefined>>();

  constructor(
    private readonly project: string,
    private readonly digests: FileDigests,
    private readonly trees?: TreeDigestMemo,
  ) {}

  imageKeys(image: ImageSpec, base: KeyedBase, fromIdentity: (from: CopyFrom) => Promise<Digest>): Promise<ImageKeys> {
    const { digests, project, ignores, trees } = this;
    return computeImageKeys(image, { base, fromIdentity, digests, project, ignores, trees });
  }

  rootfsKey(path: string, platform: Platform, imageKey: string): Promise<Digest> {
    return rootfsKey(path, platform, this.digests, imageKey, this.trees);
  }
}
