/**
 * What pushes remember in the store, under `<root>/push/`:
 *
 *   layers/<diff_id hex>.json   the blob chosen to carry an uncompressed layer in a registry (its gzip
 *                               variant, or the tar itself when gzip did not pay), so the pushed
 *                               manifest of an image never changes and no layer is compressed twice
 *   blobs/<digest hex>.json     per registry, the repositories known to hold a blob (from pushes and
 *                               pulls), so a push to another repository of that registry mounts it
 *
 * Files are written atomically and lock-free: a lost race only loses a hint that is learnt again.
 */
import { join } from 'node:path';
import { promises as fs } from 'node:fs';
import { digestHex, type Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/types.js';
import { readJsonFile, writeFileAtomic } from '../store/fsutil.js';
import { ensurePrivateDir } from '../store/private-dirs.js';
import type { Store } from '../store/store.js';

/** The registry form of one uncompressed layer. */
export interface LayerChoice {
  diffId: Digest;
  /** The blob pushed for it (gzip variant, or the tar itself). */
  blob: Pick<Descriptor, 'mediaType' | 'digest' | 'size'>;
  /** Uncompressed size, for reports. */
  rawSize: number;
}

/** Per-store push memory; cheap to create. */
export class PushState {
  private readonly dir: string;

  constructor(private readonly store: Store) {
    this.dir = join(store.root, 'push');
  }

  /** The recorded choice for `diffId` when its blob is still in the store, else undefined. */
  async choice(diffId: Digest): Promise<LayerChoice | undefined> {
    const c = await readJsonFile<LayerChoice>(join(this.dir, 'layers', `${digestHex(diffId)}.json`)).catch(() => undefined);
    if (!c || c.diffId !== diffId || !c.blob) return undefined;
    // The push will upload this blob: claim it before checking it is there.
    await this.store.claim({ blobs: [c.blob.digest] });
    return (await this.store.blobs.stat(c.blob.digest)) === c.blob.size ? c : undefined;
  }

  /** Records the choice for a layer. */
  async setChoice(c: LayerChoice): Promise<void> {
    await this.write(join(this.dir, 'layers'), `${digestHex(c.diffId)}.json`, JSON.stringify(c));
  }

  /** Repositories of registry `domain` known to hold `digest`, most recent first. */
  async holders(digest: Digest, domain: string): Promise<string[]> {
    const rec = await readJsonFile<Record<string, string[]>>(join(this.dir, 'blobs', `${digestHex(digest)}.json`)).catch(() => undefined);
    return rec?.[domain] ?? [];
  }

  /** Records that repository `path` of `domain` holds `digest` (keeps the 8 most recent per registry). */
  async addHolder(digest: Digest, domain: string, path: string): Promise<void> {
    const file = `${digestHex(digest)}.json`;
    const rec = (await readJsonFile<Record<string, string[]>>(join(this.dir, 'blobs', file)).catch(() => undefined)) ?? {};
    const list = rec[domain] ?? [];
    if (list[0] === path) return;
    rec[domain] = [path, ...list.filter((p) => p !== path)].slice(0, 8);
    await this.write(join(this.dir, 'blobs'), file, JSON.stringify(rec));
  }

  private async write(dir: string, name: string, data: string): Promise<void> {
    await ensurePrivateDir(dir);
    await writeFileAtomic(join(dir, name), data, this.store.tmpDir);
  }
}
