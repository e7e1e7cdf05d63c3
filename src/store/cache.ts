/**
 * Build-cache entries, one JSON file per step key under `cache/`. The store treats them as GC roots:
 * each entry lists the blobs and the overlay layer dir (chain ID) it needs. An entry is written only
 * after everything it points at is durable, so a crash leaves either no entry or a complete one.
 * Every field is typed: what a step produced (its layer, diff ID and history entry) is read back
 * without casts, and an entry missing any of it is treated as a miss by the builder.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { digestHex, type Digest } from '../oci/digest.js';
import type { Descriptor, HistoryEntry } from '../oci/types.js';
import { readJsonFile, writeFileAtomic } from './fsutil.js';
import type { LeaseItems } from './leases.js';

/** A cache entry: what a step with this key produced. */
export interface CacheEntry {
  key: Digest;
  /** Blobs the entry needs (layer blob, config fragments…). */
  blobs: Digest[];
  /** Overlay layer dir the entry needs, if any. */
  chainId?: Digest;
  /** ISO time of creation (for pruning by age). */
  created: string;
  /** The layer the step produced (stored in the blob store). */
  layer: Descriptor;
  /** The layer's uncompressed digest. */
  diffId: Digest;
  /** Diff IDs of the entry's layers (the step's own layer). */
  diffIds: Digest[];
  /** The history entry of a build step; absent for a packed rootfs (it has none of its own). */
  history?: HistoryEntry;
  /** Which image and step wrote the entry (for `dimg store` listings and debugging). */
  image?: string;
  step?: string;
}

/** The `cache/` directory. */
export class CacheStore {
  constructor(
    readonly dir: string,
    private readonly tmpDir: string,
    /** Protects an entry this process writes from `prune --cache` while its operation runs. */
    private readonly claim: (items: LeaseItems) => Promise<void> = async () => undefined,
  ) {}

  /**
   * The entry for `key`, or undefined. Reading it claims it (the entry, its blobs and its layer dir)
   * for this process's operation before the caller checks and uses what it names, so a concurrent
   * `prune --cache` cannot take them in between. The caller still checks its payload is whole.
   */
  async get(key: Digest): Promise<CacheEntry | undefined> {
    const entry = await readJsonFile<CacheEntry>(join(this.dir, `${digestHex(key)}.json`)).catch(() => undefined);
    if (entry) await this.claim(claimOf(entry));
    return entry;
  }

  /** Records an entry atomically (the caller has made its blobs and layer dir durable first). */
  async put(entry: CacheEntry): Promise<void> {
    await this.claim(claimOf(entry));
    await writeFileAtomic(join(this.dir, `${digestHex(entry.key)}.json`), JSON.stringify(entry), this.tmpDir);
  }

  /** Every entry (GC roots, verify). Unreadable entries are skipped. */
  async all(): Promise<CacheEntry[]> {
    const out: CacheEntry[] = [];
    for (const name of await fs.readdir(this.dir).catch(() => [] as string[])) {
      if (!name.endsWith('.json')) continue;
      const e = await readJsonFile<CacheEntry>(join(this.dir, name)).catch(() => undefined);
      if (e) out.push(e);
    }
    return out;
  }

  /** Removes an entry. */
  async remove(key: Digest): Promise<void> {
    await fs.rm(join(this.dir, `${digestHex(key)}.json`), { force: true });
  }
}

/** What an entry keeps from GC while it is in use: itself, its blobs and its layer dir. */
function claimOf(entry: CacheEntry): LeaseItems {
  return { cacheKeys: [entry.key], blobs: entry.blobs, chains: entry.chainId ? [entry.chainId] : [] };
}
