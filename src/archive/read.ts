/**
 * Reading an image archive in one pass. Every regular file is either kept in memory (small files:
 * JSON metadata, small layers) or streamed straight into the store's blob area as it passes (hashed on
 * the way, with its diff_id computed when it is compressed), so an archive of any size is read once
 * and never buffered whole. Files named `blobs/sha256/<hex>` must hash to their name. Symlinks and hard
 * links inside the archive are recorded and followed later (skopeo writes `<id>/layer.tar → ../x.tar`).
 * Nothing is ever written to the file system by archive path.
 */
import { posix } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { DimgError, isDimgError, messageOf } from '../errors.js';
import { digestMismatch, sha256, type Digest } from '../oci/digest.js';
import { decompress } from '../layer/index.js';
import type { Store } from '../store/store.js';
import { DiffTap, type DiffInfo } from './diff-tap.js';

/** Files up to this size are kept in memory (and metadata files may not be larger). */
export const MEMORY_FILE_MAX = 1 << 20;
/** Total bytes kept in memory; later small files are streamed to the store like big ones. */
const MEMORY_BUDGET = 64 << 20;
/** Metadata files whose size is capped (skopeo caps manifest.json at 1 MiB too). */
const METADATA = new Set(['manifest.json', 'index.json', 'repositories', 'oci-layout']);
const BLOB_PATH = /^blobs\/sha256\/([a-f0-9]{64})$/;

/** One regular file of the archive. */
export type ArchiveFile =
  | { kind: 'memory'; path: string; data: Buffer }
  | { kind: 'blob'; path: string; digest: Digest; size: number; diff: DiffInfo };

/** The files of an archive, by normalised path, with its links. */
export class ArchiveFiles {
  readonly files = new Map<string, ArchiveFile>();
  readonly links = new Map<string, string>();

  /** The regular file at `path`, following symlinks and hard links; undefined if there is none. */
  resolve(path: string): ArchiveFile | undefined {
    let p = normalizePath(path);
    for (let hops = 0; p !== undefined && hops < 32; hops++) {
      const f = this.files.get(p);
      if (f) return f;
      p = this.links.get(p);
    }
    return undefined;
  }

  /** True when the archive has a file or link at `path`. */
  has(path: string): boolean {
    const p = normalizePath(path);
    return p !== undefined && (this.files.has(p) || this.links.has(p));
  }
}

/**
 * The archive path `p` normalised (`./a/../b` → `b`), or undefined when it is absolute after
 * normalisation escapes the root (`../x`): such a path names nothing inside the archive.
 */
export function normalizePath(p: string): string | undefined {
  const n = posix.normalize(p.replace(/^\/+/, '')).replace(/\/+$/, '');
  if (n === '..' || n.startsWith('../') || n === '.' || n === '') return undefined;
  return n;
}

/**
 * Reads the (possibly gzip/zstd/xz/bzip2-compressed) tar `input` once. `subject` names the archive in
 * errors. Fails with ARCHIVE_CORRUPT for a truncated or malformed tar, DIGEST_MISMATCH for a blob file
 * whose content is not its name, ARCHIVE_INVALID for an oversized metadata file.
 */
export async function readArchive(store: Store, input: Readable, subject: string): Promise<ArchiveFiles> {
  const out = new ArchiveFiles();
  let memory = 0;
  const extract = tar.extract();
  try {
    const plain = await decompress(input, subject);
    const feeding = pipeline(plain, extract as unknown as Writable);
    feeding.catch(() => undefined); // reported through the iterator below
    for await (const entry of extract) {
      const h = entry.header;
      const path = normalizePath(h.name);
      const src = entry as unknown as Readable;
      if (path === undefined || (h.type !== 'file' && h.type !== 'contiguous-file')) {
        if (path !== undefined && (h.type === 'symlink' || h.type === 'link') && h.linkname) {
          const target = h.type === 'symlink' && !h.linkname.startsWith('/') ? posix.join(posix.dirname(path), h.linkname) : h.linkname;
          const t = normalizePath(target);
          if (t !== undefined) out.links.set(path, t);
        }
        await drain(src);
        continue;
      }
      const size = h.size ?? 0;
      if (METADATA.has(path) && size > MEMORY_FILE_MAX) {
        throw new DimgError('ARCHIVE_INVALID', `${subject}: ${path} is ${size} bytes, more than the ${MEMORY_FILE_MAX}-byte limit`, 'the archive is not an image archive, or is malicious');
      }
      const named = BLOB_PATH.exec(path);
      const expected = named ? (`sha256:${named[1]}` as Digest) : undefined;
      const what = `${subject}: entry ${path}`;
      if (size <= MEMORY_FILE_MAX && memory + size <= MEMORY_BUDGET) {
        const data = await collect(src);
        if (expected) {
          const actual = sha256(data);
          if (actual !== expected) throw digestMismatch(what, expected, actual);
        }
        memory += data.length;
        out.files.set(path, { kind: 'memory', path, data });
        continue;
      }
      const tap = new DiffTap(what);
      const [info] = await Promise.all([store.blobs.write(tap, expected ? { digest: expected, size } : undefined, what), pipeline(src, tap)]);
      out.files.set(path, { kind: 'blob', path, digest: info.digest, size: info.size, diff: await tap.info() });
    }
    await feeding;
  } catch (e) {
    if (isDimgError(e) && e.code !== 'LAYER_CORRUPT') throw e;
    throw new DimgError('ARCHIVE_CORRUPT', `${subject} is not a readable image archive: ${messageOf(e)}`, 'the file is truncated or damaged, or not a tar archive; save it again', { cause: e });
  } finally {
    extract.destroy();
  }
  return out;
}

async function collect(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function drain(s: Readable): Promise<void> {
  for await (const _ of s) void _;
}
