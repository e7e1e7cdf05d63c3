/**
 * Observing the actual state: the local store (which input digests it holds, what each local name
 * points at) and every target tag in the registries, read with GET requests in parallel (bounded per
 * registry). The project's ownership records are read for every repository it declares tags in and,
 * for prune, for every repository of its registries; with prune, each recorded tag the spec no longer
 * declares is looked at (HEAD) to see whether it still holds what the project wrote.
 */
import pLimit from 'p-limit';
import { isDimgError } from '../errors.js';
import { isDigest, type Digest } from '../oci/digest.js';
import { isImageManifestType } from '../oci/media-types.js';
import { parseReference, type ParsedReference } from '../oci/reference.js';
import { ANNOTATION_BASE_DIGEST, ANNOTATION_INPUT_DIGEST, ANNOTATION_PROJECT, type ImageManifest } from '../oci/types.js';
import type { RegistryClient } from '../registry/client.js';
import type { ManifestBytes } from '../registry/manifest.js';
import type { Store } from '../store/store.js';
import type { ActualState, DesiredState, LocalState, ObservedRecord, RemoteTag } from '../plan/state.js';
import { readRecord } from '../registry/ownership-io.js';
import { MANIFEST_ABSENT_CODES } from '../registry/errors.js';
import { targetReference } from '../plan/types.js';

/** What observing needs. */
export interface ObserveContext {
  store?: Store;
  client: RegistryClient;
  /** Requests in flight per registry (default 16). */
  perRegistry?: number;
  /**
   * For prune: the repositories (`host/path`) to read ownership records from, by registry name,
   * besides those the desired targets are in.
   */
  pruneRepositories?: Map<string, string[]>;
  /** Tags already read (e.g. started while the desired state was being computed), by ref. */
  remote?: Promise<Map<string, RemoteTag | null>>;
  /** Receives non-fatal findings (a record copied from elsewhere, ignored). */
  warn?: (message: string) => void;
}

/**
 * This project's record in every repository it declares a tag in (and, with prune, in every
 * repository of `ctx.pruneRepositories`), with what undeclared recorded tags hold now when pruning.
 */
async function observeRecords(
  desired: DesiredState,
  ctx: ObserveContext,
  limitFor: (domain: string) => ReturnType<typeof pLimit>,
): Promise<ObservedRecord[]> {
  const repos = new Map<string, { registry: string; name: ParsedReference }>(); // by `host/path`
  for (const img of desired.images) {
    for (const t of img.targets) {
      const ref = targetReference(t);
      repos.set(ref.repository, { registry: t.registry, name: ref.repositoryOnly() });
    }
  }
  for (const [registry, names] of desired.prune ? (ctx.pruneRepositories ?? []) : []) {
    for (const n of names) {
      if (!repos.has(n)) repos.set(n, { registry, name: parseReference(n, { defaultTag: false }) });
    }
  }
  const declared = new Set(desired.images.flatMap((i) => i.targets.map((t) => t.ref)));
  const sorted = [...repos].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const out = await Promise.all(sorted.map(async ([repository, { registry, name }]): Promise<ObservedRecord> => {
    const repo = ctx.client.repository(name);
    const limit = limitFor(name.domain);
    const stored = await limit(() => readRecord(repo, desired.project, repository, ctx.warn));
    const tags = new Map(Object.entries(stored?.record.tags ?? {}).map(([tag, e]) => [tag, e.digest] as const));
    const now = new Map<string, Digest | null>();
    if (desired.prune) {
      // Only undeclared tags: the declared ones were read with the targets, and prune never touches them.
      const undeclared = [...tags.keys()].filter((tag) => !declared.has(name.withTag(tag).toString()));
      await Promise.all(undeclared.map((tag) => limit(async () => {
        now.set(tag, (await repo.headManifest(tag))?.digest ?? null);
      })));
    }
    return { registry, repository, tags, now };
  }));
  return out;
}

/** Reads the local store and the registries. */
export async function observe(desired: DesiredState, ctx: ObserveContext): Promise<ActualState> {
  const limitFor = registryLimiter(ctx.perRegistry);
  const refs = desired.images.flatMap((i) => i.targets.map(targetReference));
  const [local, known] = await Promise.all([
    ctx.store ? observeLocal(ctx.store) : Promise.resolve<LocalState>({ byInputDigest: new Map(), refs: new Map() }),
    ctx.remote ?? Promise.resolve(new Map<string, RemoteTag | null>()),
  ]);
  const missing = refs.filter((r) => !known.has(r.toString()));
  const remote = new Map([...known, ...(await readTags(ctx.client, missing, ctx.perRegistry))]);
  const records = await observeRecords(desired, ctx, limitFor);
  return { local, remote, records };
}

/** A per-registry-host concurrency limiter (default 16 requests in flight per host). */
function registryLimiter(perRegistry = 16): (host: string) => ReturnType<typeof pLimit> {
  const limits = new Map<string, ReturnType<typeof pLimit>>();
  return (host) => {
    let l = limits.get(host);
    if (!l) limits.set(host, (l = pLimit(perRegistry)));
    return l;
  };
}

/**
 * Reads every ref's tag in parallel (bounded per registry), keyed by the canonical string (the form
 * the plan's targets carry).
 */
export async function readTags(
  client: RegistryClient,
  refs: readonly ParsedReference[],
  perRegistry?: number,
): Promise<Map<string, RemoteTag | null>> {
  const limitFor = registryLimiter(perRegistry);
  const unique = new Map(refs.map((r) => [r.toString(), r] as const));
  const read = ([key, ref]: [string, ParsedReference]) =>
    limitFor(ref.domain)(() => readTag(client, ref)).then((t) => [key, t] as const);
  return new Map(await Promise.all([...unique].map(read)));
}

/** What a registry tag holds (annotations read from its manifest), or null when absent. */
export async function readTag(client: RegistryClient, ref: ParsedReference): Promise<RemoteTag | null> {
  let m: ManifestBytes;
  try {
    m = await client.repository(ref).getManifest(ref.tag ?? 'latest');
  } catch (e) {
    if (isDimgError(e, ...MANIFEST_ABSENT_CODES)) return null;
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
