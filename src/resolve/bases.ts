/**
 * Resolving registry bases (`from: busybox:1.36`, `copy --from: REF`) to a pinned manifest digest and
 * the image config, without pulling layers. Order: the lock's pin; else the registry (the truth for a
 * tag); else, when the registry cannot be reached, the local store's copy with a warning.
 */
import { DimgError, isDimgError, messageOf } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import { isIndexType } from '../oci/media-types.js';
import { formatPlatform } from '../oci/platform.js';
import { parseReference, type ParsedReference } from '../oci/reference.js';
import type { ContainerConfig, ImageConfig, ImageManifest, Platform } from '../oci/types.js';
import { findImage } from '../image/find.js';
import type { RegistryClient } from '../registry/client.js';
import { parseImageManifest, parseIndex } from '../registry/manifest.js';
import { selectPlatform } from '../registry/select.js';
import type { Store } from '../store/store.js';
import { lockKey, type LockFile } from './lock.js';

/** A resolved base: the platform manifest digest and its container config. */
export interface ResolvedBase {
  ref: string;
  digest: Digest;
  config: ContainerConfig;
  /** Where the answer came from. */
  source: 'lock' | 'registry' | 'store';
}

/** Options: the lock (if any), a warning sink. */
export interface BaseResolverOptions {
  store: Store;
  client?: RegistryClient;
  lock?: LockFile;
  warn?: (message: string) => void;
}

/** Resolves and memoises bases for one plan. */
export class BaseResolver {
  private readonly memo = new Map<string, Promise<ResolvedBase>>();

  constructor(private readonly opts: BaseResolverOptions) {}

  /** The pinned digest and config of `ref` for `platform` (a string is parsed here, once). */
  resolve(ref: string | ParsedReference, platform: Platform): Promise<ResolvedBase> {
    const parsed = parseReference(ref);
    const key = lockKey(parsed, formatPlatform(platform));
    let p = this.memo.get(key);
    if (!p) {
      p = this.lookup(parsed, platform, key);
      this.memo.set(key, p);
    }
    return p;
  }

  /** Everything resolved so far, as lock entries (for `dimg lock`). */
  async pins(): Promise<Record<string, Digest>> {
    const out: Record<string, Digest> = {};
    for (const [k, p] of this.memo) out[k] = (await p).digest;
    return out;
  }

  private async lookup(parsed: ParsedReference, platform: Platform, key: string): Promise<ResolvedBase> {
    const ref = parsed.toString();
    const pinned = parsed.digest ?? this.opts.lock?.bases[key]?.digest;
    const wanted = pinned ? parsed.repositoryOnly().withDigest(pinned) : parsed;
    const local = await this.fromStore(wanted, platform).catch(() => undefined);
    if (pinned && local) return { ref, digest: local.digest, config: local.config, source: 'lock' };
    const { client } = this.opts;
    if (client) {
      try {
        return { ...(await this.fromRegistry(client, parsed, pinned, platform)), source: pinned ? 'lock' : 'registry' };
      } catch (e) {
        if (!local || !isUnreachable(e)) throw e;
        this.opts.warn?.(`base ${ref}: registry unreachable (${messageOf(e)}); using the local store's copy ${local.digest}`);
      }
    }
    if (local) return { ref, digest: local.digest, config: local.config, source: 'store' };
    throw new DimgError('BASE_NOT_FOUND', `base image ${ref} is neither in the local store nor reachable in its registry`, `pull it (dimg image pull ${ref}) or check the registry`);
  }

  private async fromStore(
    ref: ParsedReference,
    platform: Platform,
  ): Promise<{ digest: Digest; config: ContainerConfig }> {
    const found = await findImage(this.opts.store, ref, platform);
    return { digest: found.image.descriptor.digest, config: found.image.config.config ?? {} };
  }

  private async fromRegistry(
    client: RegistryClient,
    parsed: ParsedReference,
    pinned: Digest | undefined,
    platform: Platform,
  ): Promise<{ ref: string; digest: Digest; config: ContainerConfig }> {
    const ref = parsed.toString();
    const repo = client.repository(parsed);
    let m = await repo.getManifest(pinned ?? parsed.tag ?? 'latest');
    if (isIndexType(m.mediaType)) {
      const chosen = selectPlatform(parseIndex(m), ref, platform);
      m = await repo.getManifest(chosen.digest);
    }
    const manifest: ImageManifest = parseImageManifest(m);
    const chunks: Buffer[] = [];
    for await (const c of await repo.getBlob(manifest.config.digest, manifest.config.size)) chunks.push(c as Buffer);
    const config = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ImageConfig;
    return { ref, digest: m.digest, config: config.config ?? {} };
  }
}

function isUnreachable(e: unknown): boolean {
  return isDimgError(e, 'REGISTRY_UNREACHABLE', 'REGISTRY_CONNECTION', 'REGISTRY_UNAVAILABLE', 'REGISTRY_TLS');
}
