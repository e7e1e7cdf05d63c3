/**
 * Giving the store's overlay part the layer dirs of layers this build just made, without unpacking
 * their tars again: a RUN step's upperdir already is its layer in overlay-lowerdir form, and a COPY
 * layer can be written into a lowerdir while it is packed (see the layer module's mirror). BuildKit's
 * overlay snapshotter works the same way (a committed snapshot is the upperdir itself).
 *
 * Adoption is an optimisation: when it fails the directory is dropped and the layer is unpacked from
 * its tar the first time a later step needs it, exactly as before.
 */
import { lstatSync, readdirSync, rmSync, unlinkSync, lutimesSync } from 'node:fs';
import { join } from 'node:path';
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
