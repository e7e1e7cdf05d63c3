/**
 * What the store knows about each layer, keyed by its diff_id (the digest of the uncompressed tar):
 * the blobs that carry it (the uncompressed tar dimg builds, gzip variants made for or pulled from
 * registries), so a push never compresses the same layer twice and a pull never stores it twice.
 */
import { join } from 'node:path';
import { promises as fs } from 'node:fs';
import type { Digest } from '../oci/digest.js';
import { digestHex } from '../oci/digest.js';
import { readJsonFile, writeFileAtomic } from './fsutil.js';

/** One stored blob of a layer. */
export interface LayerBlob {
  digest: Digest;
  mediaType: string;
  size: number;
}

/** The record of one layer. */
export interface LayerRecord {
  diffId: Digest;
  /** Size of the uncompressed tar in bytes, when known. */
  size?: number;
  blobs: LayerBlob[];
}

/** The `layers/` metadata directory. */
export class LayerIndex {
  constructor(
    readonly dir: string,
    private readonly tmpDir: string,
    /** Runs a function under the store lock (re-entrant), which GC holds while it edits records. */
    private readonly locked: <T>(fn: () => Promise<T>) => Promise<T> = (fn) => fn(),
  ) {}

  /** The record for `diffId`, or undefined. */
  async get(diffId: Digest): Promise<LayerRecord | undefined> {
    return readJsonFile<LayerRecord>(join(this.dir, `${digestHex(diffId)}.json`));
  }

  /**
   * Adds `blob` (and the uncompressed size, if known) to the record of `diffId`. The write is under
   * the store lock: GC drops swept blobs from records under it, and a record read before GC and
   * written after would name a blob that is gone.
   */
  async add(diffId: Digest, blob: LayerBlob, size?: number): Promise<void> {
    const known = await this.get(diffId);
    if (known?.blobs.some((b) => b.digest === blob.digest) && (size === undefined || known.size === size)) return;
    await this.locked(async () => {
      const current = (await this.get(diffId)) ?? { diffId, blobs: [] };
      const next: LayerRecord = {
        diffId,
        size: size ?? current.size,
        blobs: [...current.blobs.filter((b) => b.digest !== blob.digest), blob],
      };
      await writeFileAtomic(join(this.dir, `${digestHex(diffId)}.json`), JSON.stringify(next), this.tmpDir);
    });
  }

  /** Every record (GC and verify). */
  async all(): Promise<LayerRecord[]> {
    const out: LayerRecord[] = [];
    for (const name of await fs.readdir(this.dir)) {
      if (!name.endsWith('.json')) continue;
      const r = await readJsonFile<LayerRecord>(join(this.dir, name)).catch(() => undefined);
      if (r) out.push(r);
    }
    return out;
  }

  /** Replaces or removes (when no blobs remain) a record. */
  async put(record: LayerRecord): Promise<void> {
    const path = join(this.dir, `${digestHex(record.diffId)}.json`);
    if (record.blobs.length === 0) await fs.rm(path, { force: true });
    else await writeFileAtomic(path, JSON.stringify(record), this.tmpDir);
  }
}
