/**
 * The desired state of a spec: for every image, its input digest (computed without building, by the
 * same key function the builder uses), the base it stands on, its local names and its registry
 * targets. Registry bases are resolved through a BaseResolver (lock pin, registry, store).
 */
import type { Digest } from '../oci/digest.js';
import { formatPlatform, parsePlatform, hostPlatform } from '../oci/platform.js';
import { lockKey } from './lock.js';
import type { ContainerConfig, Platform } from '../oci/types.js';
import { DimgError } from '../errors.js';
import type { ImageSpec, Spec } from '../specfile/model.js';
import { computeImageKeys, rootfsKey, scratchKey, type ImageKeys, type TreeDigestMemo } from '../builder/keys.js';
import { dependenciesOf } from '../builder/graph.js';
import type { FileDigests } from '../builder/file-digests.js';
import type { DesiredImage, DesiredState } from '../plan/state.js';
import { targetRef } from '../plan/types.js';
import type { BaseResolver } from './bases.js';
import type { IgnoreMatcher } from '../specfile/ignore.js';
import pLimit from 'p-limit';

/** The desired state plus what computing it learnt (reused by apply so nothing is hashed twice). */
export interface ResolvedSpec {
  desired: DesiredState;
  keys: Map<string, ImageKeys>;
  /** Registry base references pinned to manifest digests (`REF|PLATFORM` → digest, see lock.ts), for the builder and `dimg lock`. */
  pins: Map<string, Digest>;
}

/** What desired-state computation needs. */
export interface DesiredContext {
  bases: BaseResolver;
  digests: FileDigests;
  /** Prune on (flag or spec). */
  prune: boolean;
  /** Reuse of rootfs and context walks across calls (watch); see TreeDigestMemo. */
  trees?: TreeDigestMemo;
}

/** How many images are keyed at once (keying is mostly waiting on file stats and reads). */
const KEYING_PARALLELISM = 8;

/**
 * Computes the desired state of every image of `spec`. Images are keyed concurrently, each after the
 * images it depends on; the result lists them in the spec's order, and when several fail, the error
 * of the first in that order is thrown (the same one a sequential pass would meet).
 */
export async function resolveSpec(spec: Spec, ctx: DesiredContext): Promise<ResolvedSpec> {
  const keys = new Map<string, ImageKeys>();
  const pins = new Map<string, Digest>();
  const pinRef = async (ref: string, platform: Platform): Promise<{ digest: Digest; config: ContainerConfig }> => {
    const r = await ctx.bases.resolve(ref, platform);
    pins.set(lockKey(ref, formatPlatform(platform)), r.digest);
    return r;
  };
  // Contexts shared by many images have their ignore file read once per pass.
  const ignores = new Map<string, Promise<IgnoreMatcher | undefined>>();
  const limit = pLimit(KEYING_PARALLELISM);
  const pending = new Map<string, Promise<DesiredImage>>();
  const desire = async (img: ImageSpec): Promise<DesiredImage> => {
    // The spec lists images in dependency order, so every dependency's promise already exists.
    await Promise.all(dependenciesOf(img).map((d) => pending.get(d)));
    return limit(async () => {
      const platform = platformOf(img);
      const base = await baseOf(img, platform, keys, ctx.digests, pinRef, ctx.trees);
      const k = await computeImageKeys(img, {
        base,
        fromIdentity: async (from) => (from.kind === 'image' ? requireKeys(keys, from.key, img.key).inputDigest : (await pinRef(from.ref, platform)).digest),
        digests: ctx.digests,
        project: spec.project,
        ignores,
        trees: ctx.trees,
      });
      keys.set(img.key, k);
      return {
        key: img.key,
        inputDigest: k.inputDigest,
        baseDigest: base.key,
        dependsOn: dependenciesOf(img),
        localRefs: [...img.localRefs],
        targets: img.targets.map((t) => targetRef(t.registry, t.ref)),
      };
    });
  };
  for (const img of spec.images) {
    const p = desire(img);
    p.catch(() => undefined); // reported below, in spec order
    pending.set(img.key, p);
  }
  const settled = await Promise.allSettled(spec.images.map((img) => pending.get(img.key)!));
  const images: DesiredImage[] = [];
  for (const r of settled) {
    if (r.status === 'rejected') throw r.reason;
    images.push(r.value);
  }
  return { desired: { project: spec.project, images, prune: ctx.prune }, keys, pins };
}

/** The platform an image is built for. */
export function platformOf(img: ImageSpec): Platform {
  return img.platform ? parsePlatform(img.platform) : hostPlatform();
}

async function baseOf(
  img: ImageSpec,
  platform: Platform,
  keys: Map<string, ImageKeys>,
  digests: FileDigests,
  pinRef: (ref: string, platform: Platform) => Promise<{ digest: Digest; config: ContainerConfig }>,
  trees?: TreeDigestMemo,
): Promise<{ key: Digest; config: ContainerConfig }> {
  const from = img.from;
  switch (from.kind) {
    case 'scratch':
      return { key: scratchKey(platform), config: {} };
    case 'image': {
      const parent = requireKeys(keys, from.key, img.key);
      return { key: parent.inputDigest, config: parent.config };
    }
    case 'ref': {
      const r = await pinRef(from.ref, platform);
      return { key: r.digest, config: r.config };
    }
    case 'rootfs':
      return { key: await rootfsKey(from.path, platform, digests, img.key, trees), config: {} };
    case 'archive':
      throw new DimgError('ARCHIVE_BASE_UNSUPPORTED', `image ${img.key}: building on an archive (${from.path}) needs it loaded first`, `run \`dimg image load -i ${from.path}\` and use the loaded image's name as \`from\``);
  }
}

function requireKeys(keys: Map<string, ImageKeys>, key: string, user: string): ImageKeys {
  const k = keys.get(key);
  if (!k) throw new DimgError('SPEC_ORDER', `image ${user} depends on ${key}, which is not computed before it`, 'this is a bug in the spec graph order');
  return k;
}
