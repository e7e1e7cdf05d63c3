/**
 * The overlay part of the store, shaped like Docker's overlay2 driver: each layer unpacked once into
 * `overlay/<chainIdHex>/diff`, with a short link `overlay/l/<ID>` → `../<chainIdHex>/diff` so a deep
 * stack of lowerdirs fits in one mount's option page (mounts run with cwd = `overlay/`, lowerdir=l/A:l/B).
 * A layer dir appears atomically: it is unpacked into a temp dir and renamed, so a crash never leaves a
 * half-unpacked directory under its final name.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { digestHex, type Digest } from '../oci/digest.js';
import { exists } from './fsutil.js';
import { PRIVATE_DIR_MODE } from './private-dirs.js';
import type { LeaseItems } from './leases.js';

/** Unpacks a layer tar into a fresh directory in overlay-lowerdir form (whiteouts as 0/0 devices). */
export type LayerUnpacker = (tar: Readable, targetDir: string) => Promise<void>;

/** A layer directory ready to be a lowerdir. */
export interface LayerDir {
  chainId: Digest;
  /** Absolute path of the unpacked tree. */
  diffDir: string;
  /** Short name relative to the overlay root, e.g. `l/AB12…`, for mount options. */
  link: string;
}

/** Manages `overlay/`. */
export class OverlayDirs {
  readonly linkDir: string;

  constructor(
    readonly dir: string,
    private readonly unpack: LayerUnpacker,
    /** Protects a layer dir from GC before it is looked up or made (the store's lease). */
    private readonly claim: (items: LeaseItems) => Promise<void> = async () => undefined,
  ) {
    this.linkDir = join(dir, 'l');
  }

  /**
   * The layer dir for `chainId` if it is already unpacked. Claims it first for this process's lease:
   * whoever asks is about to use it (mount it, link from it).
   */
  async get(chainId: Digest): Promise<LayerDir | undefined> {
    await this.claim({ chains: [chainId] });
    return this.lookup(chainId);
  }

  /** `get` without claiming (GC, repair). */
  private async lookup(chainId: Digest): Promise<LayerDir | undefined> {
    const base = join(this.dir, digestHex(chainId));
    let link: string;
    try {
      link = (await fs.readFile(join(base, 'link'), 'utf8')).trim();
      if (!(await exists(join(base, 'diff')))) return undefined;
    } catch {
      return undefined;
    }
    // The short link is made right after the dir is published; a crash in between, or a cleanup that
    // judged it dangling, leaves the dir without it. Mounts go through the link: make it again.
    if (!(await exists(join(this.linkDir, link)))) await this.makeLink(chainId, link);
    return { chainId, diffDir: join(base, 'diff'), link: `l/${link}` };
  }

  /**
   * Returns the layer dir for `chainId`, unpacking `openTar()` into it first if needed. Concurrent
   * callers (even in other processes) may both unpack; the first rename wins and the other's copy is
   * discarded, so the result is always one complete directory.
   */
  async ensure(chainId: Digest, openTar: () => Promise<Readable>): Promise<LayerDir> {
    const found = await this.get(chainId);
    if (found) return found;
    await fs.mkdir(this.linkDir, { recursive: true, mode: PRIVATE_DIR_MODE });
    const staging = this.stagingPath();
    try {
      await fs.mkdir(staging, { mode: PRIVATE_DIR_MODE });
      await fs.mkdir(join(staging, 'diff'), { mode: 0o755 });
      await this.unpack(await openTar(), join(staging, 'diff'));
      await this.publish(chainId, staging);
    } finally {
      await fs.rm(staging, { recursive: true, force: true });
    }
    const made = await this.get(chainId);
    if (!made) throw new Error(`overlay layer dir for ${chainId} vanished after unpacking`);
    return made;
  }

  /**
   * A fresh directory inside `overlay/` (same file system, so `adopt` can rename it into place) for a
   * caller that materialises a layer itself. Named like a staging dir, so a crash leaves nothing that
   * `cleanStaging` would not remove.
   */
  async stagingDir(label: string): Promise<string> {
    const dir = join(this.dir, `.tmp-${process.pid}-${label}-${randomBytes(6).toString('hex')}`);
    await fs.mkdir(dir, { recursive: true, mode: 0o755 });
    return dir;
  }

  /**
   * Makes the directory `tree` (already in overlay-lowerdir form, on the store's file system) the
   * layer dir of `chainId` by renaming it, instead of unpacking the layer's tar again: a RUN step's
   * upperdir, or a COPY layer written while it was packed. The caller guarantees that `tree` holds
   * exactly what unpacking the layer would give. When the layer dir already exists, the existing one
   * is kept and `tree` is left where it is for the caller to remove. Crash-safe like `ensure`.
   */
  async adopt(chainId: Digest, tree: string): Promise<LayerDir> {
    const found = await this.get(chainId);
    if (found) return found;
    await fs.mkdir(this.linkDir, { recursive: true, mode: PRIVATE_DIR_MODE });
    const staging = this.stagingPath();
    let moved = false;
    try {
      await fs.mkdir(staging, { mode: PRIVATE_DIR_MODE });
      await fs.rename(tree, join(staging, 'diff'));
      moved = true;
      await this.publish(chainId, staging);
    } finally {
      // Give an unused tree back to the caller; drop the staging dir either way.
      if (moved) await fs.rename(join(staging, 'diff'), tree).catch(() => undefined);
      await fs.rm(staging, { recursive: true, force: true });
    }
    const made = await this.get(chainId);
    if (!made) throw new Error(`overlay layer dir for ${chainId} vanished after adopting ${tree}`);
    return made;
  }

  /**
   * Moves a staged layer dir (`staging/diff`) under its chain ID, then adds its new short link. When
   * another process published the same chain first, its dir wins and ours is left for the caller to
   * remove. The link comes after the rename so that it never points nowhere while this process is
   * alive: another process opening the store removes dangling links (cleanStaging), and one removed
   * between link and rename left a layer dir that could not be mounted.
   */
  private async publish(chainId: Digest, staging: string): Promise<void> {
    const short = randomBytes(13).toString('hex').toUpperCase().slice(0, 26);
    await fs.writeFile(join(staging, 'link'), short);
    try {
      await fs.rename(staging, join(this.dir, digestHex(chainId)));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
      return;
    }
    await this.makeLink(chainId, short);
    // No fsync here. A layer dir is a cache of its layer tar whose files are never fsynced (that
    // would cost as much as the unpack), so syncing the directory would promise nothing; and on ext4
    // a directory fsync commits the journal with every dirty data block of the store (data=ordered),
    // ~0.1 s on the build's critical path right after a layer tar was written. The next fsync of a
    // blob or of index.json commits the rename anyway.
  }

  /** The short link `l/SHORT` → the layer dir's diff; one made meanwhile (by lookup or publish) is fine. */
  private async makeLink(chainId: Digest, short: string): Promise<void> {
    await fs.symlink(`../${digestHex(chainId)}/diff`, join(this.linkDir, short)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
  }

  /** A fresh staging name in `overlay/` (`.tmp-PID-…`: cleanStaging removes those of dead processes). */
  private stagingPath(): string {
    return join(this.dir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
  }

  /** Chain IDs of every unpacked layer dir. */
  async list(): Promise<Digest[]> {
    const names = await fs.readdir(this.dir).catch(() => [] as string[]);
    return names.filter((n) => /^[a-f0-9]{64}$/.test(n)).map((n) => `sha256:${n}` as Digest);
  }

  /**
   * Removes a layer dir and its short link (GC). The dir is first renamed to a staging name (atomic),
   * so a removal killed half-way never leaves a partial tree under the chain ID for a build to mount;
   * the next open's cleanup finishes it.
   */
  async remove(chainId: Digest): Promise<void> {
    const found = await this.detach(chainId);
    if (found) await fs.rm(found, { recursive: true, force: true });
  }

  /**
   * The quick half of `remove`, for GC under the store lock: renames the layer dir to a staging name
   * and drops its short link. Returns the staging path for the caller to delete after releasing the
   * lock (deleting a big tree takes long; nobody can see it under a staging name).
   */
  async detach(chainId: Digest): Promise<string | undefined> {
    const link = await fs.readFile(join(this.dir, digestHex(chainId), 'link'), 'utf8').then((l) => l.trim(), () => undefined);
    const staging = this.stagingPath();
    try {
      await fs.rename(join(this.dir, digestHex(chainId)), staging);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    if (link) await fs.rm(join(this.linkDir, link), { force: true });
    return staging;
  }

  /** Removes staging dirs left by crashed processes that are no longer alive. */
  async cleanStaging(alive: (pid: number) => boolean): Promise<void> {
    for (const name of await fs.readdir(this.dir).catch(() => [] as string[])) {
      const m = /^\.tmp-(\d+)-/.exec(name);
      if (m && !alive(Number(m[1]))) await fs.rm(join(this.dir, name), { recursive: true, force: true });
    }
    // Short links whose layer dir is gone (a removal killed between moving the dir and dropping its
    // link) point nowhere. A live layer dir never has a dangling link: publish links after renaming.
    for (const name of await fs.readdir(this.linkDir).catch(() => [] as string[])) {
      const broken = await fs.stat(join(this.linkDir, name)).then(() => false, () => true);
      if (broken) await fs.rm(join(this.linkDir, name), { force: true });
    }
  }
}

/** ChainID per the OCI config spec: ChainID(L0) = DiffID(L0); ChainID(L0..n) = sha256(ChainID(..n-1) + " " + DiffID(n)). */
export function chainIds(diffIds: readonly Digest[]): Digest[] {
  const out: Digest[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : chainStep(prev, d));
  }
  return out;
}

/** The chain ID of layer `diffId` on top of the chain `parent` (undefined: a first layer). */
export function chainOf(parent: Digest | undefined, diffId: Digest): Digest {
  return parent === undefined ? diffId : chainStep(parent, diffId);
}

function chainStep(prev: Digest, diffId: Digest): Digest {
  return `sha256:${createHash('sha256').update(`${prev} ${diffId}`).digest('hex')}`;
}
