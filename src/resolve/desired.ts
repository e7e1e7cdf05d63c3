/**
 * The desired state of a spec: for every image, its input digest (computed without building, by the
 * same key function the builder uses), the base it stands on, its local names and its registry
 * targets. Registry bases are resolved through a BaseResolver (lock pin, registry, store). Keying that
 * reads files comes through the `ImageKeyer` port (the builder's, handed in by the planner): resolve
 * imports only the builder's pure graph-and-key module.
 */
import type { Digest } from '../oci/digest.js';
import { formatPlatform } from '../oci/platform.js';
import { lockKey } from './lock.js';
import type { ContainerConfig, Platform } from '../oci/types.js';
import { DimgError } from '../errors.js';
import type { ImageSpec, Spec } from '../specfile/model.js';
import { dependenciesOf, platformOf, scratchKey, type ImageKeyer, type ImageKeys } from '../builder/dependencies.js';
import type { DesiredImage, DesiredState } from '../plan/state.js';
import type { BaseResolver } from './bases.js';
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
  /** Registry bases to pinned digests and configs (BaseResolver; a build-only plan looks in the store alone). */
  bases: Pick<BaseResolver, 'resolve'>;
  /** Computes step keys and rootfs keys (reads context files and rootfs trees). */
  keyer: ImageKeyer;
  /** Prune on (flag or spec). */
  prune: boolean;
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
  const limit = pLimit(KEYING_PARALLELISM);
  const pending = new Map<string, Promise<DesiredImage>>();
  const desire = async (img: ImageSpec): Promise<DesiredImage> => {
    // The spec lists images in dependency order, so every dependency's promise already exists.
    await Promise.all(dependenciesOf(img).map((d) => pending.get(d)));
    return limit(async () => {
      const platform = platformOf(img);
      const base = await baseOf(img, platform, keys, ctx.keyer, pinRef);
      const k = await ctx.keyer.imageKeys(img, base, async (from) => {
        if (from.kind === 'image') return requireKeys(keys, from.key, img.key).inputDigest;
        return (await pinRef(from.ref, platform)).digest;
      });
      keys.set(img.key, k);
      return {
        key: img.key,
        inputDigest: k.inputDigest,
        baseDigest: base.key,
        dependsOn: dependenciesOf(img),
        localRefs: [...img.localRefs],
        targets: img.targets.map((t) => ({ registry: t.registry, ref: t.ref })),
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

async function baseOf(
  img: ImageSpec,
  platform: Platform,
  keys: Map<string, ImageKeys>,
  keyer: ImageKeyer,
  pinRef: (ref: string, platform: Platform) => Promise<{ digest: Digest; config: ContainerConfig }>,
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
      return { key: await keyer.rootfsKey(from.path, platform, img.key), config: {} };
    case 'archive':
      throw new DimgError('ARCHIVE_BASE_UNSUPPORTED', `image ${img.key}: building on an archive (${from.path}) needs it loaded first`, `run \`dimg image load -i ${from.path}\` and use the loaded image's name as \`from\``);
  }
}

function requireKeys(keys: Map<string, ImageKeys>, key: string, user: string): ImageKeys {
  const k = keys.get(key);
  if (!k) throw new DimgError('SPEC_ORDER', `image ${user} depends on ${key}, which is not computed before it`, 'this is a bug in the spec graph order');
  return k;
}
