/**
 * Blob uploads (distribution spec "pushing blobs"): HEAD to skip existing blobs, cross-repository
 * mount, a monolithic PUT for small blobs, and PATCH chunks streamed from the source for large ones.
 *
 * Registry 2.8 facts this code relies on: the upload Location is absolute and already carries a
 * `_state` query (so `digest` is added as a URL parameter); PATCH Content-Range is ignored and data is
 * appended, so a failed chunk cannot be resent in place: the whole upload restarts with a fresh source
 * (`open()` again) in a new session; the `Range` answer may be `0-N` or `bytes=0-N`.
 */
import { PassThrough, Readable, type Writable } from 'node:stream';
import { DimgError, isDimgError, type ErrorCode } from '../errors.js';
import { VerifyingStream, type Digest } from '../oci/digest.js';
import { repositoryScope } from './auth.js';
import type { RemoteRepository } from './repository.js';
import { sleep, type HttpResponse } from './transport.js';

/** How a blob ended up in the repository. */
export type UploadResult = 'exists' | 'mounted' | 'uploaded';

/** Options of one upload. */
export interface UploadOptions {
  /** Repositories of the same registry that hold the blob: a mount is tried from the first. */
  mountFrom?: string[];
  /** Called with the total bytes sent so far (for progress). */
  onProgress?: (sent: number) => void;
  /** Skip the initial HEAD (the caller knows the blob is missing). */
  skipExistsCheck?: boolean;
  monolithicMax?: number;
  chunkSize?: number;
  attempts?: number;
}

// Failures after which a fresh upload session can succeed.
const RESTARTABLE = new Set<ErrorCode>([
  'REGISTRY_CONNECTION',
  'REGISTRY_UNKNOWN',
  'REGISTRY_UNAVAILABLE',
  'REGISTRY_TOOMANYREQUESTS',
  'REGISTRY_BLOB_UPLOAD_UNKNOWN',
  'REGISTRY_BLOB_UPLOAD_INVALID',
  'REGISTRY_RANGE_INVALID',
  'REGISTRY_UNEXPECTED_STATUS',
]);

/** See RemoteRepository.uploadBlob. */
export async function uploadBlob(repo: RemoteRepository, digest: Digest, size: number, open: () => Readable | Promise<Readable>, opts: UploadOptions = {}): Promise<UploadResult> {
  if (!opts.skipExistsCheck && (await repo.blobExists(digest))) return 'exists';
  const object = `blob ${digest}`;
  let location: string | undefined;
  for (const from of opts.mountFrom ?? []) {
    if (from === repo.path) continue;
    const q = new URLSearchParams({ mount: digest, from });
    const r = await repo.request('POST', `blobs/uploads/?${q}`, { access: 'push', object, extraScopes: [repositoryScope(from, 'pull')], bufferBody: 1 << 20 });
    if (r.status === 201) return 'mounted';
    await repo.expect(r, [202], object);
    // 202: the registry could not mount but opened an ordinary session; use it.
    location = r.header('location');
    break;
  }
  const attempts = opts.attempts ?? 3;
  let authRestarted = false;
  for (let attempt = 1; ; attempt++) {
    let inSession = false;
    try {
      if (location === undefined) location = await startSession(repo, object);
      const loc = location;
      location = undefined;
      inSession = true;
      await sendBlob(repo, loc, digest, size, await open(), opts);
      return 'uploaded';
    } catch (err) {
      // A token that expired during a long streamed upload: one fresh session with a fresh token.
      const authExpired = inSession && !authRestarted && isDimgError(err, 'REGISTRY_UNAUTHORIZED');
      if (authExpired) authRestarted = true;
      if (!isDimgError(err) || !(RESTARTABLE.has(err.code) || authExpired) || attempt >= attempts) throw err;
      await sleep(Math.min(8000, 500 * 2 ** (attempt - 1)));
      // The failed attempt may have completed on the registry's side before the connection broke.
      if (await repo.blobExists(digest).catch(() => false)) return 'uploaded';
    }
  }
}

async function startSession(repo: RemoteRepository, object: string): Promise<string> {
  const r = await repo.request('POST', 'blobs/uploads/', { access: 'push', object, bufferBody: 1 << 20 });
  await repo.expect(r, [202], object);
  return sessionLocation(repo, r.header('location'), object);
}

function sessionLocation(repo: RemoteRepository, loc: string | undefined, object: string): string {
  if (!loc) throw new DimgError('REGISTRY_BLOB_UPLOAD_INVALID', `registry ${repo.domain}, repository ${repo.path}, ${object}: upload answer has no Location`, 'the registry does not follow the distribution API');
  return new URL(loc, repo.auth.baseUrl).toString();
}

function withDigest(loc: string, digest: Digest): string {
  const u = new URL(loc);
  u.searchParams.set('digest', digest);
  return u.toString();
}

async function sendBlob(repo: RemoteRepository, loc: string, digest: Digest, size: number, source: Readable, opts: UploadOptions): Promise<void> {
  const object = `blob ${digest}`;
  const verified = source.pipe(new VerifyingStream(digest, size, `blob ${digest} (local source)`));
  source.on('error', (e) => verified.destroy(e));
  let ok = false;
  try {
    if (size <= (opts.monolithicMax ?? 8 << 20)) {
      const parts: Buffer[] = [];
      for await (const b of verified as AsyncIterable<Buffer>) parts.push(b);
      // `verified` has checked digest and size by the end of the loop (it errors at its end otherwise).
      const body = Buffer.concat(parts);
      const r = await repo.request('PUT', withDigest(loc, digest), { access: 'push', object, headers: { 'content-type': 'application/octet-stream' }, body, bufferBody: 1 << 20 });
      await repo.expect(r, [201, 204], object);
      opts.onProgress?.(size);
      ok = true;
      return;
    }
    const chunkSize = opts.chunkSize ?? 64 << 20;
    const reader = new ChunkReader(verified);
    let sent = 0;
    while (sent < size) {
      const n = Math.min(chunkSize, size - sent);
      const r = await repo.request('PATCH', loc, {
        access: 'push',
        object,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(n), 'content-range': `${sent}-${sent + n - 1}` },
        body: reader.chunk(n, (k) => opts.onProgress?.(sent + k)),
        bufferBody: 1 << 20,
        noRetry: true,
      });
      sent += n;
      loc = await acceptedPatch(repo, r, sent, loc, object);
    }
    await reader.finish();
    await completeUpload(repo, loc, digest, object);
    ok = true;
  } finally {
    if (!ok) {
      source.destroy();
      // Cancel the session so the registry can drop the partial data; failure to cancel is harmless.
      await repo
        .request('DELETE', loc, { access: 'push', object, noRetry: true })
        .then((r) => r.discard())
        .catch(() => undefined);
    }
  }
}

/**
 * Checks a PATCH answer after `sent` bytes in all (status, and the `Range` the registry reports when
 * it reports one) and returns the session location for the next request.
 */
async function acceptedPatch(repo: RemoteRepository, r: HttpResponse, sent: number, loc: string, object: string): Promise<string> {
  await repo.expect(r, [202, 204], object);
  const end = parseRangeEnd(r.header('range'));
  if (end !== undefined && end !== sent - 1) {
    throw new DimgError('REGISTRY_BLOB_UPLOAD_INVALID', `registry ${repo.domain}, repository ${repo.path}, ${object}: registry has ${end + 1} bytes after sending ${sent}`, 'retry the push');
  }
  return sessionLocation(repo, r.header('location') ?? loc, object);
}

/** Closes an upload session as `digest` (the registry verifies digest and size before linking the blob). */
async function completeUpload(repo: RemoteRepository, loc: string, digest: Digest, object: string): Promise<void> {
  const r = await repo.request('PUT', withDigest(loc, digest), { access: 'push', object, bufferBody: 1 << 20 });
  await repo.expect(r, [201, 204], object);
}

/** The inclusive end of a `Range: 0-N` or `Range: bytes=0-N` upload answer. */
export function parseRangeEnd(range: string | undefined): number | undefined {
  if (!range) return undefined;
  const m = /^(?:bytes=)?\d+-(\d+)$/.exec(range.trim());
  return m ? Number(m[1]) : undefined;
}

/**
 * Splits one stream into consecutive sub-streams of given lengths without buffering more than one
 * source chunk, so a chunked upload's memory does not depend on the blob's size.
 */
export class ChunkReader {
  private readonly it: AsyncIterator<Buffer>;
  private pending: Buffer | undefined;

  constructor(src: Readable) {
    this.it = (src as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  /** The next `n` bytes as a stream; `progress` gets the bytes of this chunk delivered so far. */
  chunk(n: number, progress?: (k: number) => void): Readable {
    const self = this;
    async function* gen(): AsyncGenerator<Buffer> {
      let left = n;
      while (left > 0) {
        let b = self.pending;
        self.pending = undefined;
        if (!b) {
          const r = await self.it.next();
          if (r.done) throw new DimgError('SIZE_MISMATCH', `blob source ended ${left} bytes early`, 'the local copy is truncated');
          b = r.value;
        }
        if (b.length > left) {
          self.pending = b.subarray(left);
          b = b.subarray(0, left);
        }
        left -= b.length;
        progress?.(n - left);
        yield b;
      }
    }
    return Readable.from(gen(), { objectMode: false });
  }

  /** Reads to the end of the source, which makes its VerifyingStream check the digest and size. */
  async finish(): Promise<void> {
    if (this.pending && this.pending.length > 0) throw new DimgError('SIZE_MISMATCH', 'blob source is longer than its descriptor states', 'the local copy is corrupt');
    const r = await this.it.next();
    if (!r.done) throw new DimgError('SIZE_MISMATCH', 'blob source is longer than its descriptor states', 'the local copy is corrupt');
  }
}

/**
 * An upload whose bytes are produced while it runs, e.g. a layer being compressed: its digest is known
 * only at the end. Write the bytes to `body` and end it, then `commit` with the digest and size the
 * producer computed (the registry verifies both before it links the blob), or `cancel`. One PATCH
 * streams the whole body (chunked transfer encoding, the way `docker push` sends layers), so a failure
 * cannot be resumed: callers treat the streamed upload as an optimisation and fall back to an ordinary
 * upload (uploadBlob) from a stored copy when it fails.
 */
export interface StreamingUpload {
  readonly body: Writable;
  /** After `body` ended: completes the upload as `digest`; rejects with a DimgError when the registry refuses. */
  commit(digest: Digest, size: number): Promise<void>;
  /** Abandons the upload and deletes the session; never rejects. */
  cancel(): Promise<void>;
}

/** Opens an upload session in `repo` and starts streaming `body` into it (see StreamingUpload). */
export async function startStreamingUpload(repo: RemoteRepository): Promise<StreamingUpload> {
  const object = 'streamed blob';
  let loc = await startSession(repo, object);
  const body = new PassThrough({ highWaterMark: 1 << 20 });
  const patch = repo.request('PATCH', loc, { access: 'push', object, headers: { 'content-type': 'application/octet-stream' }, body, bufferBody: 1 << 20, noRetry: true });
  // A registry that answers (or a connection that fails) before the body ended will read no more:
  // fail the body so its producer stops writing instead of waiting for a drain that never comes.
  patch.then(
    () => {
      if (!body.writableFinished) body.destroy(new Error('the registry answered before the streamed upload ended'));
    },
    (e: unknown) => body.destroy(e instanceof Error ? e : new Error(String(e))),
  );
  let settled = false;
  return {
    body,
    async commit(digest, size) {
      const subject = `blob ${digest}`;
      loc = await acceptedPatch(repo, await patch, size, loc, subject);
      await completeUpload(repo, loc, digest, subject);
      settled = true; // a refused commit leaves the session to cancel()
    },
    async cancel() {
      if (settled) return;
      settled = true;
      body.destroy(new Error('streamed upload cancelled'));
      await patch.then((r) => r.discard()).catch(() => undefined);
      await repo
        .request('DELETE', loc, { access: 'push', object, noRetry: true })
        .then((r) => r.discard())
        .catch(() => undefined);
    },
  };
}
