/**
 * The content digest of what a copy/add step sends into its layer: for every source and every path
 * under it that the ignore rules keep, its relative path, type, permission bits and content digest
 * (symlink target for links). Mtimes and owners on disk are left out on purpose: the layer gets
 * ownership from `chown` (default 0:0) and mtimes clamped to SOURCE_DATE_EPOCH, so they cannot change it.
 */
import { promises as fs } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Digest } from '../oci/digest.js';
import { compareBytes } from '../layer/paths.js';
import type { FileDigests } from './file-digests.js';

/** One source of a copy layer: an absolute path on disk placed at an archive path. */
export interface CopySource {
  from: string;
  to: string;
}

/** Same contract as PackOptions.filter: false drops a path (and a directory's subtree). */
export type CopyFilter = (relPath: string, isDir: boolean, source: CopySource) => boolean;

const PARALLEL = 16;

/**
 * Digest of the sources' content as described above. With `withOwners`, each path's uid:gid is part
 * of it too (a rootfs keeps the ownership it has on disk, unlike a copy step).
 */
export async function copyInputDigest(sources: readonly CopySource[], filter: CopyFilter | undefined, digests: FileDigests, withOwners = false): Promise<Digest> {
  const lines: string[] = [];
  for (const source of sources) {
    const items: { rel: string; abs: string }[] = [];
    const st = await fs.lstat(source.from);
    items.push({ rel: '', abs: source.from });
    if (st.isDirectory()) await list(source, '', filter, items);
    const described = await mapLimit(items, PARALLEL, async ({ rel, abs }) => {
      const s = await fs.lstat(abs);
      const perm = (s.mode & 0o7777).toString(8) + (withOwners ? ` ${s.uid}:${s.gid}` : '');
      if (s.isFile()) return `f ${perm} ${await digests.digest(abs, s)}`;
      if (s.isDirectory()) return `d ${perm}`;
      if (s.isSymbolicLink()) return `l ${await fs.readlink(abs)}`;
      return `o ${s.mode.toString(8)} ${s.rdev}`;
    });
    for (let i = 0; i < items.length; i++) lines.push(`${JSON.stringify([source.to, items[i]!.rel])} ${described[i]}`);
  }
  return `sha256:${createHash('sha256').update(lines.join('\n')).digest('hex')}`;
}

async function list(source: CopySource, rel: string, filter: CopyFilter | undefined, out: { rel: string; abs: string }[]): Promise<void> {
  const dir = rel ? join(source.from, rel) : source.from;
  const entries = await fs.readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => compareBytes(a.name, b.name));
  for (const e of entries) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    const isDir = e.isDirectory();
    if (filter && !filter(r, isDir, source)) continue;
    out.push({ rel: r, abs: join(source.from, r) });
    if (isDir) await list(source, r, filter, out);
  }
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
