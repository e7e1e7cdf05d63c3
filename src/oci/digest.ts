/**
 * Content digests (`sha256:<64 hex>`): parsing, computing, and verifying while streaming.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { DimgError } from '../errors.js';

/** A validated digest string such as `sha256:2c26…`. */
export type Digest = `sha256:${string}`;

const SHA256_RE = /^sha256:[a-f0-9]{64}$/;
const ANY_DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** True when `s` is a well-formed sha256 digest. */
export function isDigest(s: string): s is Digest {
  return SHA256_RE.test(s);
}

/**
 * Returns `s` as a Digest or throws DIGEST_INVALID naming `subject` (what the digest belongs to).
 * Only sha256 is supported; other well-formed algorithms get a clear "unsupported" message.
 */
export function parseDigest(s: string, subject = 'digest'): Digest {
  if (isDigest(s)) return s;
  if (ANY_DIGEST_RE.test(s) && !s.startsWith('sha256:')) {
    throw new DimgError('DIGEST_UNSUPPORTED', `${subject}: digest algorithm of "${s}" is not supported`, 'dimg supports sha256 digests only');
  }
  throw new DimgError('DIGEST_INVALID', `${subject}: "${s}" is not a valid digest`, 'a digest looks like sha256: followed by 64 lowercase hex characters');
}

/** The hex part of a digest (the file name under blobs/sha256/). */
export function digestHex(d: Digest): string {
  return d.slice('sha256:'.length);
}

/** sha256 of a buffer or string, as a Digest. */
export function sha256(data: Buffer | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Wraps a Hash to produce a Digest at the end. */
export function digestOfHash(h: Hash): Digest {
  return `sha256:${h.digest('hex')}`;
}

/**
 * A pass-through stream that hashes and counts what flows through it. After `finish`,
 * `digest()` and `size` describe exactly the bytes that passed.
 */
export class HashingStream extends Transform {
  private readonly hash = createHash('sha256');
  private result: Digest | undefined;
  /** Bytes seen so far. */
  size = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }

  /** The digest of everything that passed; only valid once the stream has ended. */
  digest(): Digest {
    if (!this.result) this.result = digestOfHash(this.hash);
    return this.result;
  }
}

/**
 * A pass-through stream that fails with DIGEST_MISMATCH (or SIZE_MISMATCH) at the end when the
 * bytes do not match `expected`. Also fails as soon as more than `expectedSize` bytes arrive,
 * so a lying source cannot make us read forever.
 */
export class VerifyingStream extends Transform {
  private readonly hash = createHash('sha256');
  private seen = 0;

  constructor(
    private readonly expected: Digest,
    private readonly expectedSize: number | undefined,
    private readonly subject: string,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.expectedSize !== undefined && this.seen > this.expectedSize) {
      cb(sizeMismatch(this.subject, this.expectedSize, this.seen, true));
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.expectedSize !== undefined && this.seen !== this.expectedSize) {
      cb(sizeMismatch(this.subject, this.expectedSize, this.seen, false));
      return;
    }
    const actual = digestOfHash(this.hash);
    if (actual !== this.expected) {
      cb(digestMismatch(this.subject, this.expected, actual));
      return;
    }
    cb();
  }
}

/** The error for content whose digest is not the one it was asked for. */
export function digestMismatch(subject: string, expected: Digest, actual: Digest): DimgError {
  return new DimgError(
    'DIGEST_MISMATCH',
    `${subject}: content has digest ${actual}, expected ${expected}`,
    'the data is corrupt or was changed; fetch it again (for the local store run `dimg store verify`)',
  );
}

function sizeMismatch(subject: string, expected: number, actual: number, early: boolean): DimgError {
  return new DimgError(
    'SIZE_MISMATCH',
    `${subject}: ${early ? 'more than' : 'got'} ${actual} bytes, expected ${expected}`,
    'the data is corrupt or truncated; fetch it again',
  );
}
