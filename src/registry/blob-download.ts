/**
 * Verified blob downloads that survive a dropped connection: the bytes are streamed through a
 * VerifyingStream, and when the connection breaks mid-body the rest is fetched with `Range: bytes=N-`
 * (or, if the registry ignores Range, by skipping the N bytes already delivered).
 */
import { Readable } from 'node:stream';
import { DimgError, isDimgError, messageOf } from '../errors.js';
import { VerifyingStream, type Digest } from '../oci/digest.js';
import type { RemoteRepository } from './repository.js';
import { sleep, type HttpResponse } from './transport.js';

/** Opens a blob of `repo`; see RemoteRepository.getBlob. The first response is awaited so a 404 rejects here. */
export async function openVerifiedBlob(repo: RemoteRepository, digest: Digest, size: number | undefined, attempts: number, signal?: AbortSignal): Promise<Readable> {
  const object = `blob ${digest}`;
  const open = async (offset: number): Promise<HttpResponse> => {
    const r = await repo.request('GET', `blobs/${digest}`, { access: 'pull', object, headers: offset > 0 ? { range: `bytes=${offset}-` } : undefined, signal });
    await repo.expect(r, offset > 0 ? [200, 206] : [200], object);
    return r;
  };
  const first = await open(0);
  async function* body(): AsyncGenerator<Buffer> {
    let delivered = 0;
    let resp: HttpResponse = first;
    for (let attempt = 1; ; attempt++) {
      // When a resumed request is answered 200 (Range ignored), skip what was already delivered.
      let skip = resp.status === 200 ? delivered : 0;
      try {
        for await (const chunk of resp.body as AsyncIterable<Buffer>) {
          let b = chunk;
          if (skip > 0) {
            const n = Math.min(skip, b.length);
            skip -= n;
            b = b.subarray(n);
            if (b.length === 0) continue;
          }
          delivered += b.length;
          yield b;
        }
        if (!resp.body.complete) throw Object.assign(new Error('connection closed mid-body'), { code: 'DIMG_TRUNCATED' });
        // A body can also end cleanly yet short: chunked or close-delimited (no Content-Length), as a
        // proxy cutting a response does. With the size known that is a truncation like any other, so
        // the rest is fetched with Range instead of failing the verification below.
        if (size !== undefined && delivered < size) throw Object.assign(new Error(`body ended after ${delivered} of ${size} bytes`), { code: 'DIMG_TRUNCATED' });
        return;
      } catch (err) {
        // Aborting the request also breaks its body: that is a cancellation, not a connection to resume.
        if (signal?.aborted) throw new DimgError('ABORTED', `${describe(repo, digest)}: download cancelled after ${delivered} bytes`, '');
        if (isDimgError(err) || attempt >= attempts || (size !== undefined && delivered >= size)) {
          if (isDimgError(err)) throw err;
          throw new DimgError('REGISTRY_CONNECTION', repo.auth.redact(`${describe(repo, digest)}: download failed after ${delivered} bytes: ${messageOf(err)}`), 'the connection to the registry failed; retry');
        }
        await sleep(Math.min(8000, 250 * 2 ** (attempt - 1)), signal);
        resp = await open(delivered);
      }
    }
  }
  const verify = new VerifyingStream(digest, size, describe(repo, digest));
  const src = Readable.from(body(), { objectMode: false });
  src.on('error', (e) => verify.destroy(e));
  return src.pipe(verify);
}

function describe(repo: RemoteRepository, digest: Digest): string {
  return `registry ${repo.domain}, repository ${repo.path}, blob ${digest}`;
}
