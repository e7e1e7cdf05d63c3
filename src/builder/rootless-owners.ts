/**
 * Owners of a rootless step's root. The parent layers are flattened by the host user, who cannot
 * chown, so every extracted file is the caller's (root inside the namespace). This module reads the
 * owners the layers record (whiteouts and opaque markers applied, as flattening does) and sets the
 * non-root ones from inside the user namespace, where the namespace's root may chown to every
 * mapped id. Set-id bits are restored afterwards, because chown clears them.
 */
import type { Readable } from 'node:stream';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import tarStream from 'tar-stream';
import { decompress } from '../layer/index.js';
import { OPAQUE_MARKER, WHITEOUT_PREFIX, entryComponents } from '../layer/paths.js';
import { runInUserNamespace, type IdMapping } from './rootless-ids.js';

/** What a layer says about one path. */
interface Owned {
  uid: number;
  gid: number;
  mode: number;
  symlink: boolean;
}

/** Root-relative path → owner, mode and kind, after all `layers` (base first) were applied. */
export async function layerOwners(layers: readonly (() => Promise<Readable>)[]): Promise<Map<string, Owned>> {
  const owners = new Map<string, Owned>();
  const dropBelow = (dir: string, keep?: Set<string>) => {
    const prefix = dir === '' ? '' : `${dir}/`;
    for (const k of [...owners.keys()]) if (k.startsWith(prefix) && k !== dir && !keep?.has(k)) owners.delete(k);
  };
  for (const open of layers) {
    const ex = tarStream.extract();
    const input = await decompress(await open());
    input.on('error', (e) => ex.destroy(e));
    input.pipe(ex);
    // An opaque marker hides the lower layers' children only, not what this layer adds around it.
    const mine = new Set<string>();
    for await (const entry of ex) {
      const h = entry.header;
      entry.resume();
      const parts = entryComponents(h.name);
      const base = parts[parts.length - 1] ?? '';
      const dir = parts.slice(0, -1).join('/');
      if (base === OPAQUE_MARKER) {
        dropBelow(dir, mine);
        continue;
      }
      if (base.startsWith(WHITEOUT_PREFIX)) {
        const victim = dir ? `${dir}/${base.slice(WHITEOUT_PREFIX.length)}` : base.slice(WHITEOUT_PREFIX.length);
        owners.delete(victim);
        dropBelow(victim);
        continue;
      }
      const rel = parts.join('/');
      if (rel === '') continue;
      const pax = (h as { pax?: Record<string, string> }).pax;
      const uid = Number(pax?.uid ?? h.uid ?? 0);
      const gid = Number(pax?.gid ?? h.gid ?? 0);
      let owned: Owned = { uid, gid, mode: h.mode ?? 0, symlink: h.type === 'symlink' };
      if (h.type === 'link' && h.linkname) {
        // A hard link shares the inode, and so the owner, of its target.
        owned = owners.get(entryComponents(h.linkname).join('/')) ?? owned;
      }
      if (h.type !== 'directory') dropBelow(rel);
      owners.set(rel, owned);
      mine.add(rel);
    }
  }
  return owners;
}

/**
 * Gives every path below `root` the owner its layers record, where that is not the namespace's
 * root (the extractor's own files already read as 0:0 inside). Paths the flattening did not create
 * (devices a non-root extraction cannot make) are skipped. Batches of one `chown` per owner.
 */
export async function applyLayerOwners(mapping: IdMapping, root: string, owners: Map<string, Owned>): Promise<void> {
  const byOwner = new Map<string, string[]>();
  const setId: string[] = [];
  for (const [rel, o] of owners) {
    if (o.uid === 0 && o.gid === 0) continue;
    const abs = join(root, rel);
    if (!(await lstat(abs).then(() => true, () => false))) continue;
    const key = `${o.uid}:${o.gid}`;
    const list = byOwner.get(key) ?? [];
    list.push(abs);
    byOwner.set(key, list);
    if (!o.symlink && o.mode & 0o6000) setId.push((o.mode & 0o7777).toString(8), abs);
  }
  // Single mode maps nothing but 0: the files keep reading as root's, as in the copy driver.
  if (byOwner.size === 0 || mapping.mode !== 'full') return;
  await runChowns(mapping, byOwner, setId);
}

async function runChowns(mapping: IdMapping, byOwner: Map<string, string[]>, setId: string[]): Promise<void> {
  // xargs-like batches keep each argv far below ARG_MAX.
  for (const [owner, paths] of byOwner) {
    for (let i = 0; i < paths.length; i += 500) {
      const batch = [owner, ...paths.slice(i, i + 500)];
      await runInUserNamespace(mapping, 'o=$1; shift; exec chown -h "$o" -- "$@"', batch);
    }
  }
  for (let i = 0; i < setId.length; i += 1000) {
    const batch = setId.slice(i, i + 1000);
    await runInUserNamespace(mapping, 'while [ $# -gt 1 ]; do chmod "$1" "$2" || exit 1; shift 2; done', batch);
  }
}
