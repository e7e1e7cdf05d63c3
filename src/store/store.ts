/**
 * The local image store: the embedded default, no daemon. Layout under the root ($DIMG_ROOT, default
 * `~/.local/share/dimg`):
 *
 *   oci/        a valid OCI image layout (oci-layout, index.json, blobs/sha256/…) readable by skopeo/umoci
 *   overlay/    each layer unpacked once, keyed by chain ID, with short links in overlay/l/
 *   layers/     per diff_id: which blobs carry the layer (uncompressed tar, gzip variants)
 *   cache/      build-cache entries (GC roots)
 *   leases/     one file per live dimg process: what it is working with, kept from GC (leases.ts)
 *   tmp/        temp files on the same file system, for atomic renames
 *   lock        the exclusive lock around index.json updates and GC
 */
import { promises as fs } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { DimgError } from '../errors.js';
import { BlobStore } from './blobs.js';
import { RefStore, withTag, type ImageEntry } from './refs.js';
import { LayerIndex } from './layers.js';
import { OverlayDirs, type LayerUnpacker } from './overlay.js';
import { CacheStore } from './cache.js';
import { Leases, type LeaseItems } from './leases.js';
import { withFileLock, holdsFileLock, processAlive } from './lock.js';
import { writeFileAtomic, exists } from './fsutil.js';
import { ensurePrivateDir, prepareStoreRoot } from './private-dirs.js';
import type { Descriptor } from '../oci/types.js';

/** Options for opening a store. */
export interface StoreOptions {
  /** How to unpack a layer tar into an overlay lowerdir (the layer module's extractor). */
  unpack?: LayerUnpacker;
  /** How long to wait for the lock before failing with STORE_LOCKED. */
  lockTimeoutMs?: number;
  /** Receives warnings about the store itself (e.g. that its permissions were tightened). */
  warn?: (message: string) => void;
}

/** The store root from `$DIMG_ROOT`, else `$XDG_DATA_HOME/dimg`, else `~/.local/share/dimg`. */
export function defaultStoreRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DIMG_ROOT) return resolve(env.DIMG_ROOT);
  const data = env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(data, 'dimg');
}

/** An open store. Cheap to open; every method is safe to call from several processes at once. */
export class Store {
  readonly layoutDir: string;
  readonly tmpDir: string;
  readonly blobs: BlobStore;
  readonly refs: RefStore;
  readonly layers: LayerIndex;
  readonly overlay: OverlayDirs;
  readonly cache: CacheStore;
  readonly leases: Leases;
  readonly lockPath: string;

  private constructor(
    readonly root: string,
    private readonly opts: StoreOptions,
  ) {
    this.layoutDir = join(root, 'oci');
    this.tmpDir = join(root, 'tmp');
    this.lockPath = join(root, 'lock');
    this.leases = Leases.of(join(root, 'leases'), (fn) => this.withLock(fn), () => holdsFileLock(this.lockPath));
    // Whatever this process writes or picks up is claimed before it is checked or used (leases.ts).
    const claim = (items: LeaseItems) => this.leases.protect(items);
    this.blobs = new BlobStore(join(this.layoutDir, 'blobs', 'sha256'), this.tmpDir, claim);
    this.refs = new RefStore(this.layoutDir, this.tmpDir);
    this.layers = new LayerIndex(join(root, 'layers'), this.tmpDir, (fn) => this.withLock(fn));
    this.overlay = new OverlayDirs(join(root, 'overlay'), opts.unpack ?? missingUnpacker, claim);
    this.cache = new CacheStore(join(root, 'cache'), this.tmpDir, claim);
  }

  /**
   * Protects `items` from GC until this process's current operation ends (see Leases). Claim first,
   * then check that the items exist: an item GC removed before the claim is then seen as missing.
   */
  claim(items: LeaseItems): Promise<void> {
    return this.leases.protect(items);
  }

  /**
   * Opens (creating if needed) the store at `root`. Makes the root private to its owner (see
   * private-dirs.ts), creates the OCI layout files, takes this process's lease, and removes temp
   * files left by dead processes. Fails with STORE_UNUSABLE naming the root when it cannot be created
   * or written, and with STORE_UNSAFE when another user owns it.
   */
  static async open(root: string = defaultStoreRoot(), opts: StoreOptions = {}): Promise<Store> {
    const store = new Store(resolve(root), opts);
    try {
      const tightened = await prepareStoreRoot(store.root);
      if (tightened) opts.warn?.(tightened);
      for (const d of [store.blobs.dir, store.layers.dir, store.overlay.dir, store.cache.dir, store.leases.dir, store.tmpDir]) {
        await ensurePrivateDir(d);
      }
      const layoutFile = join(store.layoutDir, 'oci-layout');
      if (!(await exists(layoutFile))) await writeFileAtomic(layoutFile, '{"imageLayoutVersion":"1.0.0"}', store.tmpDir);
      if (!(await exists(store.refs.indexPath))) await store.withLock(async () => {
        if (!(await exists(store.refs.indexPath))) await store.refs.update(() => []);
      });
      await store.leases.take();
      await store.cleanTemp();
    } catch (e) {
      if (e instanceof DimgError) throw e;
      throw new DimgError('STORE_UNUSABLE', `cannot use the dimg store at ${store.root}: ${(e as Error).message}`, 'set DIMG_ROOT (or --root) to a writable directory', { cause: e });
    }
    return store;
  }

  /** Runs `fn` holding the store's exclusive lock (short metadata updates only). */
  withLock<T>(fn: () => Promise<T>): Promise<T> {
    return withFileLock(this.lockPath, fn, { timeoutMs: this.opts.lockTimeoutMs });
  }

  /** All index entries (tagged and dangling images). */
  entries(): Promise<ImageEntry[]> {
    return this.refs.entries();
  }

  /** Points `name` (a full normalised reference with tag) at `descriptor`; the old target may become dangling. */
  async tag(name: string, descriptor: Descriptor): Promise<void> {
    await this.withLock(() => this.refs.update((entries) => withTag(entries, name, descriptor)));
  }

  /**
   * Adds an untagged image (e.g. `load` of an archive entry without a name) unless it is already
   * in the index under some name.
   */
  async addUntagged(descriptor: Descriptor): Promise<void> {
    await this.withLock(() =>
      this.refs.update((entries) => (entries.some((e) => e.descriptor.digest === descriptor.digest) ? entries : [...entries, { descriptor }])),
    );
  }

  /** Removes the named entries and dangling entries of the given digests. Returns what was removed. */
  async removeEntries(match: (e: ImageEntry) => boolean): Promise<ImageEntry[]> {
    const removed: ImageEntry[] = [];
    await this.withLock(() =>
      this.refs.update((entries) =>
        entries.filter((e) => {
          if (!match(e)) return true;
          removed.push(e);
          return false;
        }),
      ),
    );
    return removed;
  }

  private async cleanTemp(): Promise<void> {
    for (const name of await fs.readdir(this.tmpDir).catch(() => [] as string[])) {
      const m = /^[a-z]+-(\d+)-/.exec(name);
      if (m && Number(m[1]) !== process.pid && !processAlive(Number(m[1]))) await fs.rm(join(this.tmpDir, name), { recursive: true, force: true });
    }
    await this.overlay.cleanStaging(processAlive);
  }
}

const missingUnpacker: LayerUnpacker = async () => {
  throw new Error('this Store was opened without a layer unpacker; open it with storeOptions() from src/store/defaults.ts');
};
