/**
 * Mark-and-sweep garbage collection of the store. Roots: every index.json entry (tagged or dangling),
 * every build-cache entry (unless asked to drop them; a cache entry a running dimg process wrote or
 * hit is kept even then), and everything the live leases of other dimg processes claim (blobs, overlay
 * layer dirs, cache entries they are building with: see leases.ts). Marked: manifests, child
 * manifests of indexes, configs, layer blobs, the layer records' alternative blobs of kept layers,
 * and the overlay dirs of kept layer chains. Leases are read under the store lock, which GC holds
 * until everything doomed is out of sight, so a claim is never missed; deleting the trees of doomed
 * layer dirs happens after the lock is released (they are renamed to staging names first).
 */
import { promises as fs } from 'node:fs';
import type { Digest } from '../oci/digest.js';
import { isIndexType, isImageManifestType } from '../oci/media-types.js';
import type { ImageConfig, ImageIndex, ImageManifest } from '../oci/types.js';
import { chainIds } from './overlay.js';
import type { Store } from './store.js';

/** What a GC run removed. */
export interface GcResult {
  blobsRemoved: number;
  bytesReclaimed: number;
  layerDirsRemoved: number;
  cacheEntriesRemoved: number;
}

/** Options: `dropCache` removes every build-cache entry first (`prune --cache`). */
export interface GcOptions {
  dropCache?: boolean;
}

/** Runs GC under the store lock. */
export async function collectGarbage(store: Store, opts: GcOptions = {}): Promise<GcResult> {
  const detached: string[] = [];
  const result = await store.withLock(async () => {
    const result: GcResult = { blobsRemoved: 0, bytesReclaimed: 0, layerDirsRemoved: 0, cacheEntriesRemoved: 0 };
    const leased = await store.leases.live();
    if (opts.dropCache) {
      for (const e of await store.cache.all()) {
        if (leased.cacheKeys.has(e.key)) continue; // a running build wrote or uses it
        await store.cache.remove(e.key);
        result.cacheEntriesRemoved++;
      }
    }
    const marked = new Set<Digest>(leased.blobs);
    const keptChains = new Set<Digest>(leased.chains);
    const keptDiffIds = new Set<Digest>();
    for (const entry of await store.entries()) {
      await markManifest(store, entry.descriptor.digest, entry.descriptor.mediaType, marked, keptChains, keptDiffIds);
    }
    for (const e of await store.cache.all()) {
      e.blobs.forEach((b) => marked.add(b));
      if (e.chainId) keptChains.add(e.chainId);
      const diffIds = (e as { diffIds?: Digest[] }).diffIds;
      diffIds?.forEach((d) => keptDiffIds.add(d));
    }
    for (const rec of await store.layers.all()) {
      if (keptDiffIds.has(rec.diffId)) rec.blobs.forEach((b) => marked.add(b.digest));
    }
    // A live older dimg claims nothing: keep what it may have written since it started (its rule).
    const barrier = leased.legacySince;
    const doomed = (await store.blobs.list()).filter((b) => !marked.has(b.digest) && (barrier === undefined || b.mtimeMs < barrier - 1000));
    const doomedSet = new Set(doomed.map((b) => b.digest));
    // Records first, blobs after: a GC killed half-way must never leave a record naming a deleted blob.
    for (const rec of await store.layers.all()) {
      const kept = rec.blobs.filter((b) => !doomedSet.has(b.digest));
      if (kept.length !== rec.blobs.length) await store.layers.put({ ...rec, blobs: kept });
    }
    for (const blob of doomed) {
      await store.blobs.remove(blob.digest);
      result.blobsRemoved++;
      result.bytesReclaimed += blob.size;
    }
    if (barrier === undefined) {
      for (const chain of await store.overlay.list()) {
        if (keptChains.has(chain)) continue;
        const staged = await store.overlay.detach(chain);
        if (staged) detached.push(staged);
        result.layerDirsRemoved++;
      }
    }
    return result;
  });
  // Out of sight already; a crash before this leaves staging dirs that the next open removes.
  for (const dir of detached) await fs.rm(dir, { recursive: true, force: true });
  return result;
}

async function markManifest(store: Store, digest: Digest, mediaType: string, marked: Set<Digest>, chains: Set<Digest>, diffIds: Set<Digest>): Promise<void> {
  if (marked.has(digest)) return;
  marked.add(digest);
  if (!(await store.blobs.has(digest))) return; // verify reports missing content; GC only sweeps
  if (isIndexType(mediaType)) {
    const index = await store.blobs.readJson<ImageIndex>(digest);
    for (const m of index.manifests) await markManifest(store, m.digest, m.mediaType, marked, chains, diffIds);
    return;
  }
  if (!isImageManifestType(mediaType)) return;
  const manifest = await store.blobs.readJson<ImageManifest>(digest);
  marked.add(manifest.config.digest);
  manifest.layers.forEach((l) => marked.add(l.digest));
  if (await store.blobs.has(manifest.config.digest)) {
    const config = await store.blobs.readJson<ImageConfig>(manifest.config.digest);
    const ids = config.rootfs?.diff_ids ?? [];
    ids.forEach((d) => diffIds.add(d));
    chainIds(ids).forEach((c) => chains.add(c));
  }
}
