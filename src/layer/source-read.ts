/**
 * Reading a regular file's content for a tar entry exactly: the size the walk saw, not a byte more or
 * less, or the pack fails (a tar whose header says one size and whose content has another is corrupt).
 */
import { promises as fs, readFileSync } from 'node:fs';
import { DimgError, messageOf } from '../errors.js';

/** Files up to this size are read whole; larger ones in READ_CHUNK pieces. */
export const SMALL_FILE = 1 << 20;
/** The size of one read of a larger file. */
export const READ_CHUNK = 1 << 20;

/** LAYER_SOURCE_CHANGED naming `path`. */
export function sourceChanged(path: string, detail: string): DimgError {
  const hint = 'a file changed while the layer was being packed; retry once nothing writes to it';
  return new DimgError('LAYER_SOURCE_CHANGED', `layer source ${path}: ${detail}`, hint);
}

function unreadable(path: string, err: unknown): DimgError {
  const message = `layer source ${path}: ${messageOf(err)}`;
  return new DimgError('LAYER_BAD_SOURCE', message, 'check that the file exists and is readable');
}

/**
 * The whole content of `path`, which must be `size` bytes (LAYER_SOURCE_CHANGED otherwise). Synchronous
 * on purpose: measured 10x faster than the thread pool for small files (docs/benchmarks.md), and each
 * read blocks for microseconds only.
 */
export function readSmall(path: string, size: number): Buffer {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (err) {
    throw unreadable(path, err);
  }
  if (data.length !== size) throw sourceChanged(path, `size changed from ${size} to ${data.length} bytes`);
  return data;
}

/**
 * Exactly `size` bytes of `path` in 1 MiB reads; fails if the file is shorter or longer. With
 * `shared`, every chunk is read into that one buffer (valid until the next chunk is requested).
 */
export async function* readLarge(path: string, size: number, shared?: Buffer): AsyncGenerator<Buffer> {
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(path, 'r');
  } catch (err) {
    throw unreadable(path, err);
  }
  try {
    const read = async (buf: Buffer, position: number) => (await fh.read(buf, 0, buf.length, position)).bytesRead;
    const short = (done: number) => sourceChanged(path, `shrank to ${done} bytes while being read (expected ${size})`);
    yield* readChunks(read, 0, size, shared, short);
    const probe = await fh.read(Buffer.alloc(1), 0, 1, size);
    if (probe.bytesRead !== 0) throw sourceChanged(path, `grew beyond ${size} bytes while being read`);
  } finally {
    await fh.close();
  }
}

/**
 * `size` bytes from `start` through `read` in READ_CHUNK pieces, each into `shared` when given (valid
 * until the next piece is requested) or a fresh buffer; a read of 0 bytes fails with `short(done)`.
 */
export async function* readChunks(
  read: (buf: Buffer, position: number) => number | Promise<number>,
  start: number,
  size: number,
  shared: Buffer | undefined,
  short: (done: number) => Error,
): AsyncGenerator<Buffer> {
  let done = 0;
  while (done < size) {
    const want = Math.min(READ_CHUNK, size - done);
    const buf = shared ? shared.subarray(0, want) : Buffer.allocUnsafe(want);
    const n = await read(buf, start + done);
    if (n === 0) throw short(done);
    done += n;
    yield n === buf.length ? buf : buf.subarray(0, n);
  }
}
