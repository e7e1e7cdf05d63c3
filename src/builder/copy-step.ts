/**
 * Turning a copy/add step into layer sources: resolving `src` (relative to the context or to the root
 * of a `from` image; `*`, `?` and `[…]` wildcards per path segment), the destination (relative to
 * WORKDIR; a trailing `/`, several sources or a wildcard make it a directory), ignore rules, `chown`
 * (names resolved through the image's /etc/passwd and /etc/group) and `chmod`. `add` unpacks local
 * tar archives (plain or compressed) into the destination. No root is needed for any of it.
 */
import { constants as fsConstants, createReadStream, promises as fs } from 'node:fs';
import { join, posix, relative } from 'node:path';
import { DimgError } from '../errors.js';
import type { CopyStep } from '../specfile/model.js';
import { IGNORE_FILES, IgnoreMatcher } from '../specfile/ignore.js';
import { compareBytes } from '../layer/paths.js';
import { extractLayer } from '../layer/index.js';
import type { CopyFilter, CopySource } from './copy-inputs.js';
import type { LayerView } from './layer-view.js';
import { resolveUser } from './users.js';
import { expandSource, keptSources, WILDCARD, type SourceMatch, type SourceTree } from '../specfile/glob.js';
import { readDirScoped, readTextScoped, resolveScoped, type ScopedEntry } from '../layer/scoped-path.js';

/** A copy step resolved against its source root. */
export interface ResolvedCopy {
  /** Sources as they are on disk (archives not yet unpacked): what the cache key hashes. */
  sources: CopySource[];
  /** Which of `sources` are archives `add` will unpack (indexes into sources). */
  archives: Set<number>;
  filter?: CopyFilter;
}

/** Loads the context's ignore rules (`.dimgignore` wins over `.dockerignore`); undefined when none. */
export async function loadIgnore(context: string): Promise<IgnoreMatcher | undefined> {
  for (const name of IGNORE_FILES) {
    // Read inside the context like any source: an ignore file linking out of it is not read.
    let text: string | undefined;
    try {
      text = readTextScoped(context, name);
    } catch {
      text = undefined; // unreadable or a symlink loop: as before, no rules rather than a failed build
    }
    if (text !== undefined) {
      const m = IgnoreMatcher.parse(text, join(context, name));
      return m.empty ? undefined : m;
    }
  }
  return undefined;
}

/** The packer/hasher filter for sources under `context` with `matcher`. */
export function contextFilter(context: string, matcher: IgnoreMatcher | undefined): CopyFilter | undefined {
  if (!matcher) return undefined;
  return (rel, isDir, source) => {
    const base = relative(context, source.from);
    const path = base ? `${base.split('\\').join('/')}/${rel}` : rel;
    if (!matcher.ignores(path, isDir)) return true;
    return isDir ? !matcher.canSkipDir(path) : false;
  };
}

/**
 * Resolves `step` with `root` as the source root (the context, or a `from` image's unpacked root),
 * `workdir` the WORKDIR in effect. Sources are looked up inside `root` only (layer/scoped-path.ts):
 * symlinks in their parent components resolve as in a chroot at `root`, and a source that is a
 * symlink is copied as that symlink, so nothing outside `root` is ever read. Ignore rules apply to
 * the resolved path (a link cannot bring back what the ignore file excludes). Missing sources fail
 * with COPY_SOURCE_NOT_FOUND naming `label`.
 */
export async function resolveCopy(step: CopyStep, root: string, workdir: string | undefined, matcher: IgnoreMatcher | undefined, label: string): Promise<ResolvedCopy> {
  const dest = posix.resolve(workdir || '/', step.to);
  const wild = step.src.some((s) => WILDCARD.test(s));
  const matches: SourceMatch<ScopedEntry>[] = [];
  for (const src of step.src) {
    const rel = posix.normalize(src.replace(/^\/+/, '') || '.');
    if (rel === '..' || rel.startsWith('../')) {
      throw new DimgError('COPY_SOURCE_OUTSIDE', `${label}: source ${src} is outside the build context`, 'sources must be inside the context directory');
    }
    const found = await expandSource(sourceTree(root), rel);
    const kept = keptSources(found, matcher);
    if (kept.length === 0) {
      throw new DimgError('COPY_SOURCE_NOT_FOUND', `${label}: source ${src} not found in ${root}${found.length ? ' (excluded by the ignore file)' : ''}`, 'check the path (relative to the context) and the ignore file');
    }
    matches.push(...kept);
  }
  // Docker copies into a directory destination: a trailing `/` or `.`, several sources, a wildcard,
  // or the WORKDIR itself (which always is a directory).
  const destIsDir = step.to.endsWith('/') || step.to === '.' || step.to.endsWith('/.') || matches.length > 1 || wild || (workdir !== undefined && dest === posix.resolve('/', workdir));
  const destArchive = dest.replace(/^\/+/, '');
  const sources: CopySource[] = [];
  const archives = new Set<number>();
  for (const { path, entry } of matches) {
    const st = entry.stats;
    if (st.isDirectory()) {
      sources.push({ from: entry.abs, to: destArchive });
    } else if (step.kind === 'add' && st.isFile() && (await isTarArchive(entry.abs))) {
      archives.add(sources.length);
      sources.push({ from: entry.abs, to: destArchive });
    } else {
      // A file, or a symlink (never a directory source, even when it points at one): it lands at
      // dest/NAME in a directory destination, as Docker does, and never replaces the directory.
      sources.push({ from: entry.abs, to: destIsDir ? posix.join(destArchive, posix.basename(path)) : destArchive });
    }
  }
  return { sources, archives };
}

/** `root` as expandSource sees it: looked up inside it only, directory names in byte order. */
function sourceTree(root: string): SourceTree<ScopedEntry> {
  return {
    lookup: async (rel) => resolveScoped(root, rel),
    list: async (rel) => readDirScoped(root, rel)?.sort(compareBytes),
  };
}

/** True for a tar archive, plain or compressed (decided by content, not by name). */
export async function isTarArchive(path: string): Promise<boolean> {
  // O_NOFOLLOW: resolveCopy found a regular file here; a symlink swapped in since is not opened.
  const fh = await fs.open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await fh.read(head, 0, 512, 0);
    if (bytesRead >= 2 && head[0] === 0x1f && head[1] === 0x8b) return true; // gzip
    if (bytesRead >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return true; // zstd
    if (bytesRead >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return true; // xz
    if (bytesRead >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh') return true;
    return bytesRead === 512 && head.subarray(257, 262).toString('latin1') === 'ustar';
  } finally {
    await fh.close();
  }
}

/** Unpacks an archive source of `add` into `dir` (flattened, ownership kept only as root). */
export async function unpackArchive(path: string, dir: string): Promise<void> {
  // The unpacked root becomes the destination directory in the layer: 0755 (as Docker makes it)
  // whatever the umask, unless the archive has an entry for `./`.
  await fs.mkdir(dir, { recursive: true });
  await fs.chmod(dir, 0o755);
  await extractLayer(createReadStream(path), dir, { mode: 'flatten', subject: `archive ${path}` });
}

/**
 * `chown` as numeric ids: `uid[:gid]` directly, names through the image's files (`view`). A user
 * without a group gets gid = uid, as Docker's --chown does.
 */
export async function resolveChown(chown: string | undefined, view: LayerView | undefined, label: string): Promise<{ uid: number; gid: number }> {
  if (!chown) return { uid: 0, gid: 0 };
  const g = chown.split(':', 2)[1];
  const passwd = view ? await view.readFile('etc/passwd') : undefined;
  const group = view ? await view.readFile('etc/group') : undefined;
  const ident = resolveUser(chown, passwd, group, label);
  if (g === undefined || g === '') return { uid: ident.uid, gid: ident.uid };
  return { uid: ident.uid, gid: ident.gid };
}

/** `chmod` as permission bits, or undefined. */
export function parseChmod(chmod: string | undefined, label: string): number | undefined {
  if (chmod === undefined) return undefined;
  if (!/^[0-7]{3,4}$/.test(chmod)) throw new DimgError('CHMOD_INVALID', `${label}: chmod "${chmod}" is not an octal mode`, 'write it like 0755 or 644');
  return parseInt(chmod, 8);
}
