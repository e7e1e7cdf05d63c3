/**
 * The content digest of what a copy/add step sends into its layer: for every source and every path
 * under it that the ignore rules keep, its relative path, type, permission bits and content digest
 * (symlink target for links). Mtimes and owners on disk are left out on purpose: the layer gets
 * ownership from `chown` (default 0:0) and mtimes clamped to SOURCE_DATE_EPOCH, so they cannot change it.
 */
import { lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Digest } from '../oci/digest.js';
import { compareBytes } from '../layer/paths.js';
import type { FileDigests } from './file-digests.js';

import type { CopyFilter, CopySource } from './dependencies.js';

export type { CopyFilter, CopySource } from './dependencies.js';

/**
 * Digest of the sources' content as described above. With `withOwners`, each path's uid:gid is part
 * of it too (a rootfs keeps the ownership it has on disk, unlike a copy step).
 *
 * Listing and lstat are synchronous (one directory per event-loop turn): thousands of small
 * file-system calls through the thread pool cost several times more than inline, and on an unchanged
 * context this walk is most of what a fully cached build does. Contents are read only for files the
 * memo does not know (see FileDigests).
 */
export async function copyInputDigest(sources: readonly CopySource[], filter: CopyFilter | undefined, digests: FileDigests, withOwners = false): Promise<Digest> {
  const h = createHash('sha256');
  let first = true;
  const line = (l: string): void => {
    h.update(first ? l : `\n${l}`);
    first = false;
  };
  for (const source of sources) {
    const st = lstatSync(source.from);
    const items: { rel: string; abs: string; st: Stats }[] = [{ rel: '', abs: source.from, st }];
    if (st.isDirectory()) await list(source, '', filter, items);
    for (const { rel, abs, st: s } of items) {
      const perm = (s.mode & 0o7777).toString(8) + (withOwners ? ` ${s.uid}:${s.gid}` : '');
      let d: string;
      if (s.isFile()) d = `f ${perm} ${digests.known(abs, s) ?? (await digests.digest(abs, s))}`;
      else if (s.isDirectory()) d = `d ${perm}`;
      else if (s.isSymbolicLink()) d = `l ${readlinkSync(abs)}`;
      else d = `o ${s.mode.toString(8)} ${s.rdev}`;
      line(`${JSON.stringify([source.to, rel])} ${d}`);
    }
  }
  return `sha256:${h.digest('hex')}`;
}

async function list(source: CopySource, rel: string, filter: CopyFilter | undefined, out: { rel: string; abs: string; st: Stats }[]): Promise<void> {
  const dir = rel ? join(source.from, rel) : source.from;
  const names = readdirSync(dir).sort(byteOrder);
  for (const name of names) {
    const r = rel ? `${rel}/${name}` : name;
    const abs = join(source.from, r);
    const st = lstatSync(abs);
    const isDir = st.isDirectory();
    if (filter && !filter(r, isDir, source)) continue;
    out.push({ rel: r, abs, st });
    if (isDir) {
      // Depth first, in order: the subtree's lines follow the directory's own line.
      await new Promise<void>((resolve) => setImmediate(resolve));
      await list(source, r, filter, out);
    }
  }
}

/** UTF-8 byte order; plain comparison where it is the same thing (no surrogates or U+E000 and above). */
function byteOrder(a: string, b: string): number {
  // eslint-disable-next-line no-control-regex
  if (/^[\u0000-\ud7ff]*$/.test(a) && /^[\u0000-\ud7ff]*$/.test(b)) return a < b ? -1 : a > b ? 1 : 0;
  return compareBytes(a, b);
}
