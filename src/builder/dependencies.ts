/**
 * What an image depends on and how its keys combine, with no file system or network: the one place
 * the planner (src/resolve) and the builder agree on the graph and on the key formulas. Keying that
 * must read files (context copies, rootfs trees) is behind the `ImageKeyer` port, which the builder
 * implements (keys.ts) and the planner is handed.
 *
 * Step key = sha256(parent key, canonical step, inputs); input digest = sha256(last step key,
 * entrypoint, cmd, labels, annotations, project). See keys.ts for what each kind of base and step
 * contributes.
 */
import { DimgError } from '../errors.js';
import { canonicalJson } from '../oci/canonical-json.js';
import { sha256, type Digest } from '../oci/digest.js';
import { hostPlatform, parsePlatform } from '../oci/platform.js';
import type { ContainerConfig, Platform } from '../oci/types.js';
import { canonicalStep } from '../specfile/steps.js';
import type { CopyFrom, ImageSpec, Spec, Step } from '../specfile/model.js';

/** The keys `image` depends on: its `from` image and `copy --from` images of the spec. */
export function dependenciesOf(image: ImageSpec): string[] {
  const deps = new Set<string>();
  if (image.from.kind === 'image') deps.add(image.from.key);
  for (const s of image.steps) {
    if ((s.kind === 'copy' || s.kind === 'add') && s.from?.kind === 'image') deps.add(s.from.key);
  }
  return [...deps];
}

/**
 * Selects `wanted` (keys; all when empty) plus their dependencies, in the spec's dependency order.
 * An unknown key fails with IMAGE_NOT_IN_SPEC, listing the images one may name.
 */
export function selectImages(spec: Spec, wanted: readonly string[] | undefined): ImageSpec[] {
  const byKey = new Map(spec.images.map((i) => [i.key, i]));
  if (!wanted || wanted.length === 0) return [...spec.images];
  const keep = new Set<string>();
  const visit = (k: string) => {
    if (keep.has(k)) return;
    const img = byKey.get(k);
    if (!img) {
      const named = spec.images.filter((i) => !i.intermediate).map((i) => i.key).join(', ');
      throw new DimgError('IMAGE_NOT_IN_SPEC', `no image "${k}" in ${spec.file}`, `images in the spec: ${named}`);
    }
    keep.add(k);
    dependenciesOf(img).forEach(visit);
  };
  wanted.forEach(visit);
  return spec.images.filter((i) => keep.has(i.key));
}

/** The platform an image is built for: its `platform`, else the host's. */
export function platformOf(img: ImageSpec): Platform {
  return img.platform ? parsePlatform(img.platform) : hostPlatform();
}

/** The cache key of one step: sha256 over the parent key, the canonical step and its input digests. */
export function stepKey(parent: Digest, step: Step, inputs: unknown): Digest {
  return sha256(canonicalJson({ v: 1, parent, step: canonicalStep(step), inputs }));
}

/** The base key of `scratch` for a platform. */
export function scratchKey(platform: Platform): Digest {
  return sha256(canonicalJson({ base: 'scratch', platform }));
}

/** The input digest of `spec` whose last step key (or base key, with no steps) is `last`. */
export function inputDigestOf(last: Digest, spec: ImageSpec, project: string): Digest {
  const { entrypoint, cmd, labels, annotations } = spec;
  const identity = { steps: last, entrypoint: entrypoint ?? null, cmd: cmd ?? null, labels, annotations, project };
  return sha256(canonicalJson(identity));
}

/** One source of a copy layer: an absolute path on disk placed at an archive path. */
export interface CopySource {
  from: string;
  to: string;
}

/** Same contract as PackOptions.filter: false drops a path (and a directory's subtree). */
export type CopyFilter = (relPath: string, isDir: boolean, source: CopySource) => boolean;

/** A context copy resolved while keying, reused by the builder so the files are listed once. */
export interface CopyPlan {
  /** Sources as they are on disk (archives not yet unpacked): what the cache key hashes. */
  sources: CopySource[];
  /** Which of `sources` are archives `add` will unpack (indexes into sources). */
  archives: Set<number>;
  /** The directory the sources were resolved in (the context). */
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
  /** For `copy --from` steps, the identity of the image copied from (by step index). */
  fromIdentities: (Digest | undefined)[];
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

/** A base's identity and config, as keying starts from it. */
export interface KeyedBase {
  key: Digest;
  config: ContainerConfig;
}

/**
 * The keying that reads files, as a port: the builder's implementation walks contexts and rootfs
 * trees (keys.ts); the planner receives one and never imports it.
 */
export interface ImageKeyer {
  /**
   * Every key of `image` standing on `base`; `fromIdentity` gives the identity of a `copy --from`
   * image. Fails like a build would on missing or escaping copy sources.
   */
  imageKeys(image: ImageSpec, base: KeyedBase, fromIdentity: (from: CopyFrom) => Promise<Digest>): Promise<ImageKeys>;
  /** The base key of a rootfs directory or tarball for `platform` (ROOTFS_NOT_FOUND naming `imageKey`). */
  rootfsKey(path: string, platform: Platform, imageKey: string): Promise<Digest>;
}
