/**
 * Mount points a RUN step needs (/proc, /dev, /etc/resolv.conf, /etc/hosts, /etc/hostname, secret
 * targets) created so that nothing of them lands in the step's layer.
 *
 * Overlay driver: they go into a separate "init" lower dir placed between the parent layers and the
 * upperdir, as Docker's init layer does. Their ancestor directories copy mode, owner and mtime from
 * the parent view, so a later copy-up of e.g. /etc into the upperdir carries the image's own
 * attributes, not ours. Copy driver: they are created directly in the flattened root only where
 * missing, before the snapshot, so the diff never sees them.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { LayerView } from './layer-view.js';

/** One mount point: a root-relative path and whether a directory or a file is mounted there. */
export interface MountPoint {
  rel: string;
  kind: 'dir' | 'file';
}

/**
 * Creates `points` under `targetDir`. With `shadow`, every leaf is (re)created (init-layer mode: it
 * hides whatever the parents have there, so a bind mount never follows an image symlink out to the
 * host); without it only missing leaves are made. A point whose ancestor in `view` is not a plain
 * directory (a symlinked /etc, say) cannot be provided safely and is left out of the result.
 */
export async function prepareMountPoints(targetDir: string, view: LayerView, points: readonly MountPoint[], shadow: boolean): Promise<MountPoint[]> {
  const usable: MountPoint[] = [];
  const times: [string, Date, Date][] = [];
  for (const p of points) {
    const parts = p.rel.split('/').filter(Boolean);
    let ok = true;
    for (let i = 1; i < parts.length && ok; i++) ok = await ensureAncestor(targetDir, view, parts.slice(0, i).join('/'), times);
    if (!ok) continue;
    const dest = join(targetDir, ...parts);
    const existing = await view.lookup(p.rel);
    if (!shadow && existing) {
      const fits = p.kind === 'dir' ? existing.stats.isDirectory() : existing.stats.isFile();
      if (fits) usable.push(p);
      continue;
    }
    if (p.kind === 'dir') await fs.mkdir(dest, { recursive: true, mode: 0o755 });
    else await (await fs.open(dest, 'a', 0o644)).close();
    usable.push(p);
  }
  // Times last and deepest first: creating children bumps a directory's mtime.
  for (const [dest, atime, mtime] of times.reverse()) await fs.utimes(dest, atime, mtime);
  return usable;
}

async function ensureAncestor(targetDir: string, view: LayerView, rel: string, times: [string, Date, Date][]): Promise<boolean> {
  const dest = join(targetDir, rel);
  const here = await fs.lstat(dest).catch(() => undefined);
  if (here) return here.isDirectory();
  const found = await view.lookup(rel);
  if (found && !found.stats.isDirectory()) return false;
  await fs.mkdir(dest, { mode: 0o755 });
  if (found) {
    const st = found.stats;
    await fs.chmod(dest, st.mode & 0o7777);
    await fs.chown(dest, st.uid, st.gid).catch(() => undefined);
    times.push([dest, st.atime, st.mtime]);
  }
  return true;
}
