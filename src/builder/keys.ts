/**
 * The identity of an image before it is built: its base key, one cache key per step, and its input
 * digest. The planner computes these without building anything (so a CI runner with an empty store
 * can tell that a registry tag is current), and the builder uses the very same function, so the two
 * always agree.
 *
 * Base key: scratch → digest of (scratch, platform); another image of the spec → that image's input
 * digest; a registry/store reference → its manifest digest; a rootfs directory → digest of its tree
 * (paths, modes, owners, contents); a rootfs tarball → sha256 of the file (its layer is the tree repacked).
 * Step key = sha256(parent key, canonical step, inputs): copy/add from the context → content digest of
 * the files sent; copy/add `from` an image → that image's identity (as for a base).
 * Input digest = sha256(last step key, entrypoint, cmd, labels, annotations, project).
 */
import { lstatSync, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { IGNORE_FILES } from '../specfile/ignore.js';
import { canonicalJson } from '../oci/canonical-json.js';
import { sha256, type Digest } from '../oci/digest.js';
import type { ContainerConfig, Platform } from '../oci/types.js';
import type { CopyFrom, CopyStep, ImageSpec } from '../specfile/model.js';
import { DimgError } from '../errors.js';
import { applyConfigStep, applyImageLevel } from './config-steps.js';
import { contextFilter, loadIgnore, resolveCopy, type ResolvedCopy } from './copy-step.js';
import { copyInputDigest, type CopyFilter, type CopySource } from './copy-inputs.js';
import { stepKey } from './step-key.js';
import type { FileDigests } from './file-digests.js';
import type { IgnoreMatcher } from '../specfile/ignore.js';

/** Step kinds that change only the config (no layer). */
export const CONFIG_ONLY_STEPS: ReadonlySet<string> = new Set(['env', 'workdir', 'user', 'label', 'expose', 'volume', 'shell', 'stopsignal', 'healthcheck']);

/** A context copy resolved while keying, reused by the builder so the files are listed once. */
export interface CopyPlan extends ResolvedCopy {
  root: string;
  filter?: CopyFilter;
}

/** The keys of one image. */
export interface ImageKeys {
  baseKey: Digest;
  /** One per step of the spec, in order. */
  stepKeys: Digest[];
  /** For context copy/add steps, their resolved sources (by step index). */
  copyPlans: (CopyPlan | undefined)[];
  inputDigest: Digest;
  /** The container config after all steps and image-level settings (what dependants start from). */
  config: ContainerConfig;
}

/**
 * A memo of tree-walk digests (rootfs directories, a context copy's sources) that someone who sees
 * every file change under the trees keeps valid across calls (`dimg watch` and its file watcher).
 * `digest` returns the digest remembered for `key`, or runs `walk` and may remember its result;
 * the memo must forget it as soon as anything under one of `roots` (paths: directories or files)
 * changes, and must not remember a walk during which such a change happened.
 */
export interface TreeDigestMemo {
  digest(key: string, roots: readonly string[], walk: () => Promise<Digest>): Promise<Digest>;
}

/** What keying needs from outside: the base's identity and config, and identities of `copy --from` images. */
export interface KeyContext {
  base: { key: Digest; config: ContainerConfig };
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
  let container: ContainerConfig = structuredClone(ctx.base.config);
  const stepKeys: Digest[] = [];
  const copyPlans: (CopyPlan | undefined)[] = [];
  const matcher = spec.context ? await contextMatcher(spec.context, ctx.ignores) : undefined;
  for (let i = 0; i < spec.steps.length; i++) {
    const step = spec.steps[i]!;
    let inputs: unknown = null;
    let plan: CopyPlan | undefined;
    if (CONFIG_ONLY_STEPS.has(step.kind)) {
      container = applyConfigStep(container, step);
    } else if (step.kind === 'copy' || step.kind === 'add') {
      const copy = step as CopyStep;
      if (copy.from) {
        inputs = { from: await ctx.fromIdentity(copy.from) };
      } else {
        const label = `[${spec.key} ${i + 2}/${spec.steps.length + 1}] ${copy.kind.toUpperCase()} ${copy.src.join(' ')}`;
        if (!spec.context) throw new DimgError('CONTEXT_MISSING', `${label}: image ${spec.key} has no context to copy from`, 'set `context:` for the image');
        const resolved = await resolveCopy(copy, spec.context, container.WorkingDir, matcher, label);
        const filter = contextFilter(spec.context, matcher);
        plan = { ...resolved, root: spec.context, filter };
        const walk = () => copyInputDigest(resolved.sources, filter, ctx.digests);
        inputs = { content: ctx.trees ? await memoisedCopy(ctx.trees, spec.context, resolved.sources, walk) : await walk() };
      }
    }
    key = stepKey(key, step, inputs);
    stepKeys.push(key);
    copyPlans.push(plan);
  }
  const inputDigest = sha256(
    canonicalJson({ steps: key, entrypoint: spec.entrypoint ?? null, cmd: spec.cmd ?? null, labels: spec.labels, annotations: spec.annotations, project: ctx.project }),
  );
  return { baseKey: ctx.base.key, stepKeys, copyPlans, inputDigest, config: applyImageLevel(container, spec).config };
}

/** The base key of `scratch` for a platform. */
export function scratchKey(platform: Platform): Digest {
  return sha256(canonicalJson({ base: 'scratch', platform }));
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
 * A context copy's walk through the memo. The key names the context, its inode and the sources with
 * theirs (what the walk reads and where it puts it); the roots are the sources and the context's
 * ignore files (the filter's rules), so an edit of either is a change.
 */
async function memoisedCopy(trees: TreeDigestMemo, context: string, sources: readonly CopySource[], walk: () => Promise<Digest>): Promise<Digest> {
  const id = (p: string) => {
    const st = lstatSync(p, { throwIfNoEntry: false });
    return st ? [st.dev, st.ino] : null;
  };
  const key = `copy ${JSON.stringify([context, id(context), sources.map((s) => [s.from, s.to, id(s.from)])])}`;
  const roots = [...sources.map((s) => s.from), ...IGNORE_FILES.map((n) => join(context, n))];
  return trees.digest(key, roots, walk);
}
