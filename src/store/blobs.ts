/**
 * The content-addressed blob store under `oci/blobs/sha256/`. Writes stream through a hash into a
 * temp file that is fsynced and renamed into place only when the digest (and size, when known)
 * match, so a crash or a bad source never leaves a partial or wrong blob visible. Reads verify.
 * Every blob written (or found already present by a write) is claimed for this process's lease.
 */
import { closeSync, createReadStream, createWriteStream, fstatSync, openSync, readSync, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { DimgError } from '../errors.js';
import { HashingStream, VerifyingStream, digestHex, digestMismatch, sha256, type Digest } from '../oci/digest.js';
import { fsyncDir, tempPath } from './fsutil.js';
import type { LeaseItems } from './leases.js';

/** What a blob write produced. */
export interface BlobInfo {
  digest: Digest;
  size: number;
}

/** The blob part of a store: paths, atomic verified writes, verified reads. */
export class BlobStore {
  constructor(
    /** `…/oci/blobs/sha256` */
    readonly dir: string,
    /** A temp dir on the same file system. */
    readonly tmpDir: string,
    /** Protects a blob from GC before it is written or found present (the store's lease). */
    private readonly claim: (items: LeaseItems) => Promise<void> = async () => undefined,
  ) {}

  /** Where the blob with `digest` lives (whether or not it exists). For the store itself and tests: other code reads through open, openUnverified or openRandomAccess (a test keeps it so). */
  path(digest: Digest): string {
    return join(this.dir, digestHex(digest));
  }

  /** The blob's size, or undefined when it is not in the store. */
  async stat(digest: Digest): Promise<number | undefined> {
    try {
      return (await fs.stat(this.path(digest))).size;
    } catch {
      return undefined;
    }
  }

  /** True when the blob is present. */
  async has(digest: Digest): Promise<boolean> {
    return (await this.stat(digest)) !== undefined;
  }

  /**
   * Streams `source` into the store. With `expected`, the content must have that digest (and size,
   * if given) or the write fails with DIGEST_MISMATCH / SIZE_MISMATCH and nothing is stored. An
   * already-present blob is not rewritten (the source is still drained to verify it).
   */
  async write(source: Readable, expected?: { digest: Digest; size?: number }, subject = 'blob'): Promise<BlobInfo> {
    const tmp = tempPath(this.tmpDir, 'blob');
    const hasher = new HashingStream();
    try {
      const out = createWriteStream(tmp, { flags: 'wx', mode: 0o644 });
      await pipeline(source, hasher, out);
      const digest = hasher.digest();
      const size = hasher.size;
      if (expected && expected.digest !== digest) throw digestMismatch(subject, expected.digest, digest);
      if (expected?.size !== undefined && expected.size !== size) {
        throw new DimgError('SIZE_MISMATCH', `${subject}: got ${size} bytes, expected ${expected.size}`, 'the source is corrupt or truncated; fetch it again');
      }
      await this.commit(tmp, digest);
      return { digest, size };
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  /** Stores a small in-memory blob (manifests, configs, index JSON). */
  async writeBytes(data: Buffer, expected?: Digest): Promise<BlobInfo> {
    const digest = sha256(data);
    if (expected && expected !== digest) throw digestMismatch('blob', expected, digest);
    // Claimed before looking: a present blob that GC took right after the check would be lost.
    await this.claim({ blobs: [digest] });
    if (!(await this.has(digest))) {
      const tmp = tempPath(this.tmpDir, 'blob');
      try {
        const fh = await fs.open(tmp, 'wx', 0o644);
        try {
          await fh.writeFile(data);
          await fh.sync();
        } finally {
          await fh.close();
        }
        await this.commit(tmp, digest);
      } finally {
        await fs.rm(tmp, { force: true });
      }
    }
    return { digest, size: data.length };
  }

  /**
   * Moves an already-hashed temp file into place as `digest`. The caller guarantees the file's
   * content has that digest (it hashed it while writing). Used by writers that produce a blob and
   * its digest in one pass (layer packing).
   */
  async adopt(tmpFile: string, digest: Digest): Promise<void> {
    await this.commit(tmpFile, digest);
  }

  private async commit(tmp: string, digest: Digest): Promise<void> {
    const dest = this.path(digest);
    await this.claim({ blobs: [digest] });
    if (await this.has(digest)) return;
    const fh = await fs.open(tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, dest);
    await fsyncDir(this.dir);
  }

  /**
   * A verified read stream: errors with DIGEST_MISMATCH / SIZE_MISMATCH at the end if the file on
   * disk is not what its name says, and with BLOB_NOT_FOUND when it is missing. Reads in chunks of
   * `chunkSize` bytes (default 1 MiB; the last may be shorter).
   */
  open(digest: Digest, size?: number, chunkSize = 1 << 20): Readable {
    const file = createReadStream(this.path(digest), { highWaterMark: chunkSize });
    const verify = new VerifyingStream(digest, size, `blob ${digest}`);
    file.on('error', (e) => verify.destroy(this.readError(digest, e)));
    // A reader that stops early (cancelled push, failed upload) destroys `verify`; close the file too.
    verify.on('close', () => file.destroy());
    return file.pipe(verify);
  }

  /**
   * The blob's bytes without checking them, for a consumer that verifies digest and size itself
   * while it reads (an upload does, and the registry checks again): hashing twice costs a core for
   * large layers. Errors with BLOB_NOT_FOUND when the blob is missing.
   */
  openUnverified(digest: Digest): Readable {
    let fd: number;
    try {
      // Opened now so that a missing blob fails here, as BLOB_NOT_FOUND, not later inside a stream.
      fd = openSync(this.path(digest), 'r');
    } catch (e) {
      throw this.readError(digest, e);
    }
    return createReadStream('', { fd, highWaterMark: 1 << 20 });
  }

  /**
   * The blob for positional reads (a previous layer tar read by offset, a sample of a layer), without
   * verification: the caller checks what it uses (a tar header it compares, a ratio it estimates).
   * Errors with BLOB_NOT_FOUND when the blob is missing. Close it when done.
   */
  openRandomAccess(digest: Digest): { readonly size: number; read(into: Buffer, offset: number, length: number, position: number): number; close(): void } {
    let fd: number;
    try {
      fd = openSync(this.path(digest), 'r');
    } catch (e) {
      throw this.readError(digest, e);
    }
    const size = fstatSync(fd).size;
    return {
      size,
      read: (into, offset, length, position) => readSync(fd, into, offset, length, position),
      close: () => closeSync(fd),
    };
  }

  /** Reads a small blob fully, verified. */
  async read(digest: Digest): Promise<Buffer> {
    let data: Buffer;
    try {
      data = await fs.readFile(this.path(digest));
    } catch (e) {
      throw this.readError(digest, e);
    }
    const actual = sha256(data);
    if (actual !== digest) throw digestMismatch(`blob ${digest}`, digest, actual);
    return data;
  }

  /** Reads and parses a JSON blob, verified. */
  async readJson<T>(digest: Digest): Promise<T> {
    const data = await this.read(digest);
    try {
      return JSON.parse(data.toString('utf8')) as T;
    } catch {
      throw new DimgError('BLOB_CORRUPT', `blob ${digest} is not valid JSON`, 'run `dimg store verify` to find and repair damaged content');
    }
  }

  /** Removes a blob (GC only). */
  async remove(digest: Digest): Promise<void> {
    await fs.rm(this.path(digest), { force: true });
  }

  /** Every blob digest present, with size and mtime (GC, verify). */
  async list(): Promise<{ digest: Digest; size: number; mtimeMs: number }[]> {
    const out: { digest: Digest; size: number; mtimeMs: number }[] = [];
    for (const name of await fs.readdir(this.dir)) {
      if (!/^[a-f0-9]{64}$/.test(name)) continue;
      const st = await fs.stat(join(this.dir, name)).catch(() => undefined);
      if (st) out.push({ digest: `sha256:${name}`, size: st.size, mtimeMs: st.mtimeMs });
    }
    return out;
  }

  private readError(digest: Digest, e: unknown): Error {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      return new DimgError('BLOB_NOT_FOUND', `blob ${digest} is missing from the local store`, 'pull or rebuild the image; `dimg store verify` lists images with missing content');
    }
    return e as Error;
  }
}
