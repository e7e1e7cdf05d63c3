/**
 * Removing images the docker way: `rm NAME` untags, and deletes the image when its last name goes;
 * `rm ID` deletes the image with all its names, but refuses (unless forced) when those names span
 * several repositories or the build cache still records the image. `prune` removes dangling images
 * (with `all`, every image the build cache does not record). Both end with a garbage collection so
 * the space is really reclaimed; layers shared with remaining images stay (GC is reference-based).
 */
import { DimgError } from '../errors.js';
import { parseReference } from '../oci/reference.js';
import type { Digest } from '../oci/digest.js';
import { collectGarbage } from '../store/gc.js';
import type { ImageEntry } from '../store/refs.js';
import type { Store } from '../store/store.js';
import { findImage } from './find.js';
import { loadImage } from './local-image.js';

/** What happened, in order, as Docker prints it (`Untagged: busybox:latest`, `Deleted: sha256:…`). */
export type RemoveEvent = { untagged: string } | { deleted: Digest };

/** The outcome of `removeImages`: events, per-query errors, and bytes freed by the final GC. */
export interface RemoveResult {
  events: RemoveEvent[];
  errors: DimgError[];
  reclaimed: number;
}

/** Removes (untags / deletes) each query in turn; a failing query does not stop the others. */
export async function removeImages(store: Store, queries: readonly string[], opts: { force?: boolean } = {}): Promise<RemoveResult> {
  const events: RemoveEvent[] = [];
  const errors: DimgError[] = [];
  for (const q of queries) {
    try {
      events.push(...(await removeOne(store, q, Boolean(opts.force))));
    } catch (e) {
      if (!(e instanceof DimgError)) throw e;
      errors.push(e);
    }
  }
  const gc = events.some((e) => 'deleted' in e) ? await collectGarbage(store) : undefined;
  return { events, errors, reclaimed: gc?.bytesReclaimed ?? 0 };
}

async function removeOne(store: Store, query: string, force: boolean): Promise<RemoveEvent[]> {
  const entries = await store.entries();
  const ids = await imageIds(store, entries);
  const byName = nameOf(query);
  const named = byName ? entries.find((e) => e.name === byName) : undefined;
  if (named) {
    const id = ids.get(named);
    const others = entries.filter((e) => e !== named && id !== undefined && ids.get(e) === id);
    const lastName = !others.some((e) => e.name !== undefined);
    if (lastName && !force && id) await refuseIfCached(store, query, id, named.descriptor.digest);
    // The last name of an image deletes the image: its dangling twins go too.
    const doomed = lastName ? [named, ...others] : [named];
    await removeExact(store, doomed);
    const out: RemoveEvent[] = [{ untagged: parseReference(named.name!).familiar() }];
    if (lastName && id) out.push({ deleted: id });
    return out;
  }
  const found = await findImage(store, query);
  const id = found.image.id;
  const all = entries.filter((e) => ids.get(e) === id || e.descriptor.digest === found.entry.descriptor.digest);
  const names = all.filter((e) => e.name !== undefined).map((e) => parseReference(e.name!));
  const repos = new Set(names.map((r) => r.repository));
  if (!force && repos.size > 1) {
    throw new DimgError(
      'IMAGE_CONFLICT',
      `unable to delete ${id.slice(7, 19)} (must be forced): image is referenced in multiple repositories ` +
        `(${names.map((r) => r.familiar()).join(', ')})`,
      'remove it by name (`dimg image rm NAME:TAG`) to untag one name, or pass -f to delete the image and all its names',
    );
  }
  if (!force) await refuseIfCached(store, query, id, found.entry.descriptor.digest);
  await removeExact(store, all);
  return [...names.map((r) => ({ untagged: r.familiar() })), { deleted: id }];
}

/** Removes exactly these entries (same name and digest), so a concurrent retag is never undone. */
async function removeExact(store: Store, doomed: readonly ImageEntry[]): Promise<void> {
  const keys = new Set(doomed.map(entryKey));
  await store.removeEntries((e) => keys.has(entryKey(e)));
}

function entryKey(e: ImageEntry): string {
  return `${e.name ?? ''}@${e.descriptor.digest}`;
}

/** The full name `query` denotes, when it is a plain name (no digest, not an ID). */
function nameOf(query: string): string | undefined {
  try {
    const ref = parseReference(query);
    return ref.digest ? undefined : ref.toString();
  } catch {
    return undefined;
  }
}

/** Image ID (config digest) per entry; entries that cannot be loaded have none. */
async function imageIds(store: Store, entries: readonly ImageEntry[]): Promise<Map<ImageEntry, Digest>> {
  const out = new Map<ImageEntry, Digest>();
  for (const e of entries) {
    const img = await loadImage(store, e.descriptor).catch(() => undefined);
    if (img) out.set(e, img.id);
  }
  return out;
}

/** Build-cache entries that record this image's manifest or config as content they need. */
async function cacheUsers(store: Store, id: Digest, manifest: Digest): Promise<number> {
  let n = 0;
  for (const c of await store.cache.all()) if (c.blobs.includes(id) || c.blobs.includes(manifest)) n++;
  return n;
}

async function refuseIfCached(store: Store, query: string, id: Digest, manifest: Digest): Promise<void> {
  const n = await cacheUsers(store, id, manifest);
  if (n > 0) {
    throw new DimgError(
      'IMAGE_IN_USE',
      `unable to delete image ${query} (${id.slice(7, 19)}): the build cache still records it (${n} ${n === 1 ? 'entry' : 'entries'})`,
      'pass -f to delete it anyway, or drop the cache first with `dimg image prune --cache`',
    );
  }
}

/** What `pruneImages` removed. */
export interface PruneResult {
  events: RemoveEvent[];
  reclaimed: number;
  cacheEntriesRemoved: number;
}

/**
 * Removes dangling images (no name); with `all`, every image the build cache does not record.
 * With `cache`, drops the build cache first (so `all` + `cache` empties the store). Then GC.
 * Images a running dimg process is working with (building on, or has built and named while its
 * operation runs: its lease claims their manifests) are in use and kept, as Docker keeps the images
 * of running containers; the choice is made under the store lock, against the leases of that moment.
 */
export async function pruneImages(store: Store, opts: { all?: boolean; cache?: boolean } = {}): Promise<PruneResult> {
  const events: RemoveEvent[] = [];
  await store.withLock(async () => {
    const entries = await store.entries();
    const ids = await imageIds(store, entries);
    const protectedBlobs = new Set<string>();
    if (!opts.cache) for (const c of await store.cache.all()) c.blobs.forEach((b) => protectedBlobs.add(b));
    const inUse = (await store.leases.live()).blobs;
    const doomed = entries.filter((e) => {
      if (e.name !== undefined && !opts.all) return false;
      if (inUse.has(e.descriptor.digest)) return false;
      const id = ids.get(e);
      return !protectedBlobs.has(e.descriptor.digest) && !(id && protectedBlobs.has(id));
    });
    await removeExact(store, doomed);
    const deleted = new Set<Digest>();
    for (const e of doomed) if (e.name) events.push({ untagged: parseReference(e.name).familiar() });
    const remaining = new Set([...ids.entries()].filter(([e]) => !doomed.includes(e)).map(([, id]) => id));
    for (const e of doomed) {
      const id = ids.get(e) ?? e.descriptor.digest;
      if (!remaining.has(id) && !deleted.has(id)) {
        deleted.add(id);
        events.push({ deleted: id });
      }
    }
  });
  const gc = await collectGarbage(store, { dropCache: Boolean(opts.cache) });
  return { events, reclaimed: gc.bytesReclaimed, cacheEntriesRemoved: gc.cacheEntriesRemoved };
}

/** Text of one event as Docker prints it under `rmi` (capitalised) or `prune` (lower case). */
export function eventText(e: RemoveEvent, lower = false): string {
  const [verb, what] = 'untagged' in e ? ['Untagged', e.untagged] : ['Deleted', e.deleted];
  return `${lower ? verb.toLowerCase() : verb}: ${what}`;
}

