/**
 * Observing the actual state: the local store (which input digests it holds, what each local name
 * points at) and every target tag in the registries, read with GET requests in parallel (bounded per
 * registry). For prune, the tags of the project's repositories are inventoried too.
 */
import pLimit from 'p-limit';
import { isDimgError } from '../errors.js';
import { isDigest, type Digest } from '../oci/digest.js';
import { isImageManifestType } from '../oci/media-types.js';
import { parseReference } from '../oci/reference.js';
import { ANNOTATION_BASE_DIGEST, ANNOTATION_INPUT_DIGEST, ANNOTATION_PROJECT, type ImageManifest } from '../oci/types.js';
import type { RegistryClient } from '../registry/client.js';
import type { ManifestBytes } from '../registry/manifest.js';
import type { Store } from '../store/store.js';
import type { ActualState, DesiredState, LocalState, ObservedTag, RemoteTag } from '../plan/state.js';
import { repositoryOf } from '../plan/diff.js';

/** What observing needs. */
export interface ObserveContext {
  store?: Store;
  client: RegistryClient;
  /** Requests in flight per registry (default 16). */
  perRegistry?: number;
  /**
   * For prune: the repositories (`host/path`) to inventory, by registry name. Without it, only the
   * desired targets' repositories are inventoried.
   */
  pruneRepositories?: Map<string, string[]>;
  /** Tags already read (e.g. started while the desired state was being computed), by ref. */
  remote?: Promise<Map<string, RemoteTag | null>>;
}

/** Reads the local store and the registries. */
export async function observe(desired: DesiredState, ctx: ObserveContext): Promise<ActualState> {
  const limitFor = registryLimiter(ctx.perRegistry);
  const refs = desired.images.flatMap((i) => i.targets.map((t) => t.ref));
  const [local, known] = await Promise.all([
    ctx.store ? observeLocal(ctx.store) : Promise.resolve<LocalState>({ byInputDigest: new Map(), refs: new Map() }),
    ctx.remote ?? Promise.resolve(new Map<string, RemoteTag | null>()),
  ]);
  const missing = refs.filter((r) => !known.has(r));
  const remote = new Map([...known, ...(await readTags(ctx.client, missing, ctx.perRegistry))]);
  const inventory: ObservedTag[] = [];
  if (desired.prune) {
    const repos = ctx.pruneRepositories ?? new Map<string, string[]>();
    if (!ctx.pruneRepositories) {
      for (const img of desired.images) for (const t of img.targets) repos.set(t.registry, [...new Set([...(repos.get(t.registry) ?? []), repositoryOf(t.ref)])]);
    }
    for (const [registry, repoNames] of repos) {
      for (const repo of repoNames) {
        const r = parseReference(`${repo}:x`);
        const tags = await ctx.client.repository(r).listTags().catch((e) => {
          if (isDimgError(e) && /NAME_UNKNOWN|NOT_FOUND/.test(e.code)) return [] as string[];
          throw e;
        });
        const found = await Promise.all(tags.map((tag) => limitFor(repo)(async () => {
          const ref = `${repo}:${tag}`;
          const t = remote.get(ref) ?? (await readTag(ctx.client, ref));
          return t ? { registry, ref, ...t } : undefined;
        })));
        for (const f of found) if (f) inventory.push(f);
      }
    }
  }
  return { local, remote, inventory };
}

/** A per-registry-host concurrency limiter (default 16 requests in flight per host). */
function registryLimiter(perRegistry = 16): (ref: string) => ReturnType<typeof pLimit> {
  const limits = new Map<string, ReturnType<typeof pLimit>>();
  return (ref) => {
    const host = ref.slice(0, ref.indexOf('/'));
    let l = limits.get(host);
    if (!l) limits.set(host, (l = pLimit(perRegistry)));
    return l;
  };
}

/** Reads every ref's tag in parallel (bounded per registry). */
export async function readTags(client: RegistryClient, refs: readonly string[], perRegistry?: number): Promise<Map<string, RemoteTag | null>> {
  const limitFor = registryLimiter(perRegistry);
  const unique = [...new Set(refs)];
  return new Map(await Promise.all(unique.map((ref) => limitFor(ref)(() => readTag(client, ref)).then((t) => [ref, t] as const))));
}

/** What a registry tag holds (annotations read from its manifest), or null when absent. */
export async function readTag(client: RegistryClient, ref: string): Promise<RemoteTag | null> {
  const parsed = parseReference(ref);
  let m: ManifestBytes;
  try {
    m = await client.repository(parsed).getManifest(parsed.tag ?? 'latest');
  } catch (e) {
    if (isDimgError(e) && /MANIFEST_UNKNOWN|NAME_UNKNOWN|NOT_FOUND/.test(e.code)) return null;
    throw e;
  }
  return { digest: m.digest, ...annotationsOf(m) };
}

function annotationsOf(m: ManifestBytes): Omit<RemoteTag, 'digest'> {
  if (!isImageManifestType(m.mediaType)) return {};
  let manifest: ImageManifest;
  try {
    manifest = JSON.parse(m.bytes.toString('utf8')) as ImageManifest;
  } catch {
    return {};
  }
  const a = manifest.annotations ?? {};
  const out: Omit<RemoteTag, 'digest'> = {};
  if (a[ANNOTATION_INPUT_DIGEST] && isDigest(a[ANNOTATION_INPUT_DIGEST]!)) out.inputDigest = a[ANNOTATION_INPUT_DIGEST] as Digest;
  if (a[ANNOTATION_BASE_DIGEST] && isDigest(a[ANNOTATION_BASE_DIGEST]!)) out.baseDigest = a[ANNOTATION_BASE_DIGEST] as Digest;
  if (a[ANNOTATION_PROJECT]) out.project = a[ANNOTATION_PROJECT];
  return out;
}

/** Input digests held by the local store and what each local name points at. */
export async function observeLocal(store: Store): Promise<LocalState> {
  const byInputDigest = new Map<Digest, Digest>();
  const refs = new Map<string, Digest | undefined>();
  const inputOf = new Map<Digest, Digest | undefined>();
  for (const e of await store.entries()) {
    let input = inputOf.get(e.descriptor.digest);
    if (!inputOf.has(e.descriptor.digest)) {
      input = undefined;
      if (isImageManifestType(e.descriptor.mediaType)) {
        const m = await store.blobs.readJson<ImageManifest>(e.descriptor.digest).catch(() => undefined);
        const a = m?.annotations?.[ANNOTATION_INPUT_DIGEST];
        // Only count an image whose content is all present: a half-pruned image is not "held".
        if (m && a && isDigest(a) && (await hasAll(store, m))) input = a;
      }
      inputOf.set(e.descriptor.digest, input);
    }
    if (input) byInputDigest.set(input, e.descriptor.digest);
    if (e.name) refs.set(e.name, input);
  }
  return { byInputDigest, refs };
}

async function hasAll(store: Store, m: ImageManifest): Promise<boolean> {
  for (const d of [m.config, ...m.layers]) if ((await store.blobs.stat(d.digest)) !== d.size) return false;
  return true;
}
