/**
 * A pass-through that also computes the diff_id of what passes (the sha256 of the content after
 * decompression), so an archive file is stored and identified as a layer in one read. Uncompressed
 * content is recognised by its first bytes and not hashed a second time: its diff_id is its digest.
 */
import { PassThrough, Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HashingStream, type Digest } from '../oci/digest.js';
import { MAGIC_BYTES, decompress, detectCompression, type Compression } from '../layer/index.js';

/** What the tap learnt about the content. */
export interface DiffInfo {
  compression: Compression;
  /** diff_id, when the content is compressed (for plain content: the blob digest). */
  diffId?: Digest;
  /** Uncompressed size, when compressed. */
  size?: number;
  /** Why decompression failed (the content is not a valid compressed stream). */
  error?: Error;
}

/** See the module comment. `info()` resolves after the stream has flushed. */
export class DiffTap extends Transform {
  private head: Buffer[] = [];
  private headLen = 0;
  private inner: PassThrough | undefined;
  private innerDone: Promise<{ diffId: Digest; size: number } | Error> | undefined;
  private compression: Compression | undefined;

  constructor(private readonly subject: string) {
    super({ highWaterMark: 1 << 20 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.compression === undefined) {
      this.head.push(chunk);
      this.headLen += chunk.length;
      if (this.headLen < MAGIC_BYTES) return cb();
      this.decide();
      const buffered = Buffer.concat(this.head);
      this.head = [];
      this.forward(buffered, cb);
      return;
    }
    this.forward(chunk, cb);
  }

  override _flush(cb: TransformCallback): void {
    if (this.compression === undefined) {
      this.decide();
      const buffered = Buffer.concat(this.head);
      this.head = [];
      if (buffered.length > 0) {
        this.forward(buffered, (err) => (err ? cb(err) : this.finishInner(cb)));
        return;
      }
    }
    this.finishInner(cb);
  }

  /** The result; valid once the stream has finished. */
  async info(): Promise<DiffInfo> {
    const compression = this.compression ?? 'none';
    if (!this.innerDone) return { compression };
    const r = await this.innerDone;
    return r instanceof Error ? { compression, error: r } : { compression, diffId: r.diffId, size: r.size };
  }

  private decide(): void {
    this.compression = detectCompression(Buffer.concat(this.head));
    if (this.compression === 'none') return;
    const inner = new PassThrough({ highWaterMark: 1 << 20 });
    this.inner = inner;
    this.innerDone = (async () => {
      const h = new HashingStream();
      await pipeline(await decompress(inner, this.subject), h, new Writable({ write: (_c, _e, done) => done() }));
      return { diffId: h.digest(), size: h.size };
    })().catch((e: Error) => {
      inner.resume(); // keep draining so the outer stream is never blocked by a failed decoder
      return e;
    });
  }

  private forward(chunk: Buffer, cb: TransformCallback): void {
    this.push(chunk);
    const inner = this.inner;
    if (!inner || inner.destroyed) return cb();
    if (inner.write(chunk)) return cb();
    // Back-pressure from the decompressor; a failed decoder resumes the pass-through, so drain comes.
    let called = false;
    const go = () => {
      if (called) return;
      called = true;
      inner.off('drain', go);
      inner.off('close', go);
      cb();
    };
    inner.on('drain', go);
    inner.on('close', go);
  }

  private finishInner(cb: TransformCallback): void {
    if (!this.inner) return cb();
    this.inner.end();
    void this.innerDone!.then(() => cb());
  }
}
