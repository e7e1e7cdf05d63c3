/**
 * Giving the store's overlay part the layer dirs of layers this build just made, without unpacking
 * their tars again: a RUN step's upperdir already is its layer in overlay-lowerdir form, and a COPY
 * layer can be written into a lowerdir while it is packed (see the layer module's mirror). BuildKit's
 * overlay snapshotter works the same way (a committed snapshot is the upperdir itself).
 *
 * Adoption is an optimisation: when it fails the directory is dropped and the layer is unpacked from
 * its tar the first time a later step needs it, exactly as before.
 */
import { lstatSync, promises as fs, readdirSync, rmSync, unlinkSync, lutimesSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { tempPath } from '../store/fsutil.js';
import type { Digest } from '../oci/digest.js';
import type { Store } from '../store/store.js';

/**
 * Makes a RUN step's upperdir `dir` look exactly like unpacking its layer tar would: every mtime (and
 * atime) clamped to min(mtime, `epoch`) in whole seconds, as the tar records them, and sockets removed
 * (tar cannot hold them). Whiteouts (0/0 devices) and opaque-dir xattrs are already in lowerdir form.
 * Throws when the dir holds another device node (unpacking would refuse it): the caller then keeps
 * nothing and the layer is unpacked, and refused, as before.
 * Synchronous: one lstat and one utimensat per entry, inline.
 */
export function settleRunDiff(dir: string, epoch: number): void {
  const visit = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isSocket()) {
        unlinkSync(p);
        continue;
      }
      if (st.isDirectory()) visit(p);
      if (st.isCharacterDevice() && st.rdev === 0) continue; // whiteout: its times are never seen
      if (st.isCharacterDevice() || st.isBlockDevice()) {
        // Unpacking refuses device nodes in a layer; keeping the dir must not be more permissive.
        throw new Error(`${p} is a device node: the layer is not kept as a layer dir`);
      }
      const t = Math.min(Math.max(0, Math.floor(st.mtimeMs / 1000)), epoch);
      lutimesSync(p, t, t);
    }
  };
  visit(dir);
}

/**
 * Renames `dir` into the store as the layer dir of `chainId` (see OverlayDirs.adopt). Never throws:
 * on failure, or when the layer dir already exists, `dir` is removed and false is returned.
 */
export async function adoptLayerDir(store: Store, chainId: Digest, dir: string): Promise<boolean> {
  let adopted = false;
  try {
    const before = await store.overlay.get(chainId);
    if (!before) {
      await store.overlay.adopt(chainId, dir);
      adopted = true;
    }
  } catch {
    adopted = false;
  }
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch {
    /* a leftover staging dir is swept when the store is next opened */
  }
  return adopted;
}

/**
 * Where a copy step's last mirrored layer dir is remembered: one small file per image and step under
 * `build/copy-layers/`, pointing at the chain ID; the dir's `sources.json` (beside `diff`) maps each
 * archive path to the source file and stat it was written from. The next build of the same step hard-
 * links the files that did not change from that dir instead of writing them again (see LayerMirror).
 * Both are hints: wrong, missing or stale ones only mean files are written rather than linked.
 */
function donorPointer(store: Store, slot: string): string {
  return join(store.root, 'build', 'copy-layers', `${createHash('sha256').update(slot).digest('hex')}.json`);
}

/** The donor for a copy step's mirror (`slot` names the image and step), or undefined. */
export async function loadCopyDonor(store: Store, slot: string): Promise<{ dir: string; sources: Map<string, string> } | undefined> {
  try {
    const { chainId } = JSON.parse(await fs.readFile(donorPointer(store, slot), 'utf8')) as { chainId: Digest };
    const found = await store.overlay.get(chainId);
    if (!found) return undefined;
    const sources = JSON.parse(await fs.readFile(join(dirname(found.diffDir), 'sources.json'), 'utf8')) as Record<string, string>;
    return { dir: found.diffDir, sources: new Map(Object.entries(sources)) };
  } catch {
    return undefined;
  }
}

/** Remembers the layer dir of `chainId` (just adopted from a mirror that recorded `sources`) as the donor of `slot`. */
export async function saveCopyDonor(store: Store, slot: string, chainId: Digest, sources: ReadonlyMap<string, string>): Promise<void> {
  try {
    const found = await store.overlay.get(chainId);
    if (!found) return;
    // Temp file + rename without fsync: a hint lost in a crash costs only rewriting files.
    const write = async (path: string, text: string): Promise<void> => {
      const tmp = tempPath(store.tmpDir, 'donor');
      await fs.writeFile(tmp, text);
      await fs.rename(tmp, path);
    };
    await write(join(dirname(found.diffDir), 'sources.json'), JSON.stringify(Object.fromEntries(sources)));
    await fs.mkdir(dirname(donorPointer(store, slot)), { recursive: true });
    await write(donorPointer(store, slot), JSON.stringify({ chainId }));
  } catch {
    /* a hint only */
  }
}
