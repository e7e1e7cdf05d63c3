/**
 * The registry form of an uncompressed layer: which blob carries it in a push.
 *
 * Decided once per layer and remembered (PushState), in this order:
 *  1. the form recorded by an earlier push;
 *  2. a gzip variant the store already has for the diff_id (e.g. a layer first pulled compressed),
 *     which keeps the registry digests of that layer;
 *  3. otherwise the tar is compressed now with adaptiveGzip (all cores, incompressible blocks stored)
 *     into the store and recorded in `store.layers`. When gzip does not shrink the layer by at least
 *     KEEP_GZIP_BELOW (3 %), the uncompressed tar itself is pushed (`application/vnd.oci.image.layer.v1.tar`,
 *     allowed by OCI): pulling it then needs no decompression and the store keeps no useless copy.
 * Concurrent requests for the same layer in this process share one compression.
 *
 * A push may pass `earlyUpload`: a large layer compressed now is then also streamed to the registry
 * while it is compressed (as `docker push` does), instead of being read back from the store afterwards.
 * That upload is an optimisation only: if it fails, or gzip is not kept, it is cancelled, and the push
 * uploads the stored blob the ordinary way.
 */
import { closeSync, openSync, promises as fs, readSync } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HashingStream, type Digest } from '../oci/digest.js';
import { MediaType } from '../oci/media-types.js';
import type { Descriptor } from '../oci/types.js';
import { tempPath } from '../store/fsutil.js';
import { createWriteBehindStream } from '../store/write-behind.js';
import type { Store } from '../store/store.js';
import { abortable } from './abort.js';
import { adaptiveGzip, BLOCK_SIZE, sampleDeflate } from '../layer/adaptive-gzip.js';
import { PushState } from './push-state.js';
import type { StreamingUpload } from '../registry/index.js';

/** gzip is used only when the compressed blob is at most this fraction of the tar. */
export const KEEP_GZIP_BELOW = 0.97;

/** Reported once per uncompressed layer of a push: its form, and whether it was compressed just now. */
export interface LayerFormEvent {
  kind: 'layer-form';
  diffId: Digest;
  rawSize: number;
  digest: Digest;
  mediaType: string;
  size: number;
  /** True when the layer was compressed during this call (false: a remembered form). */
  compressed: boolean;
  /** Seconds spent compressing (0 when remembered). */
  seconds: number;
}

type Form = Pick<Descriptor, 'mediaType' | 'digest' | 'size'>;

/** Layers at least this large (uncompressed) are streamed to the registry while compressed. */
export const EARLY_UPLOAD_MIN = 8 << 20;

/** Options of layerForm. */
export interface LayerFormOptions {
  onEvent?: (e: LayerFormEvent) => void;
  signal?: AbortSignal;
  /** Opens a streaming upload to the push's repository (see the module comment). */
  earlyUpload?: () => Promise<StreamingUpload>;
  /** Called once a streamed upload was committed as `digest` (the registry has verified it). */
  onEarlyUploaded?: (digest: Digest) => void | Promise<void>;
}
const inflight = new Map<string, Promise<Form>>();

/** The registry form of the uncompressed layer `diffId` (`rawSize` bytes) of `store`; see the module comment. */
export function layerForm(store: Store, diffId: Digest, rawSize: number, opts: LayerFormOptions = {}): Promise<Form> {
  const key = `${store.root}\0${diffId}`;
  let p = inflight.get(key);
  if (!p) {
    p = decide(store, diffId, rawSize, opts).finally(() => inflight.delete(key));
    inflight.set(key, p);
  }
  return p;
}

async function decide(store: Store, diffId: Digest, rawSize: number, opts: LayerFormOptions): Promise<Form> {
  const state = new PushState(store);
  const report = (f: Form, compressed: boolean, seconds: number) => opts.onEvent?.({ kind: 'layer-form', diffId, rawSize, ...f, compressed, seconds });
  const known = await state.choice(diffId);
  if (known) {
    report(known.blob, false, 0);
    return known.blob;
  }
  const rec = await store.layers.get(diffId).catch(() => undefined);
  for (const b of rec?.blobs ?? []) {
    if (b.mediaType !== MediaType.ociLayerGzip && b.mediaType !== MediaType.dockerLayerGzip) continue;
    await store.claim({ blobs: [b.digest] }); // before the check: the push uploads it
    if ((await store.blobs.stat(b.digest)) !== b.size) continue;
    const form = { mediaType: MediaType.ociLayerGzip, digest: b.digest, size: b.size };
    await state.setChoice({ diffId, blob: form, rawSize });
    report(form, false, 0);
    return form;
  }
  const started = Date.now();
  const tmp = tempPath(store.tmpDir, 'gzip');
  const hash = new HashingStream();
  const early = opts.earlyUpload && rawSize >= EARLY_UPLOAD_MIN && !looksIncompressible(store, diffId, rawSize) ? await opts.earlyUpload().catch(() => undefined) : undefined;
  const tee = early ? new UploadTee(early.body) : undefined;
  try {
    // Read in whole gzip blocks: each chunk goes to a compression worker as it is, without a copy.
    const src = abortable(store.blobs.open(diffId, rawSize, BLOCK_SIZE), opts.signal, `compression of layer ${diffId}`);
    const gz = adaptiveGzip(src);
    if (tee) await pipeline(gz, hash, tee, createWriteBehindStream(tmp));
    else await pipeline(gz, hash, createWriteBehindStream(tmp));
    let form: Form;
    if (hash.size <= rawSize * KEEP_GZIP_BELOW) {
      const gz: Form = { mediaType: MediaType.ociLayerGzip, digest: hash.digest(), size: hash.size };
      form = gz;
      // The registry finishing the streamed upload and the store making its copy durable (an fsync of
      // the whole blob) do not depend on each other: wait for both at once.
      const kept = (async () => {
        await store.blobs.adopt(tmp, gz.digest);
        await store.layers.add(diffId, { digest: gz.digest, mediaType: gz.mediaType, size: gz.size }, rawSize);
      })();
      const committed = early && tee!.intact ? commitEarly(early, gz, opts) : undefined;
      // Both settle before anything else happens; then the store's error, else the commit's, fails it.
      await Promise.allSettled([kept, committed]);
      await kept;
      await committed;
    } else {
      form = { mediaType: MediaType.ociLayer, digest: diffId, size: rawSize };
    }
    await state.setChoice({ diffId, blob: form, rawSize });
    report(form, true, (Date.now() - started) / 1000);
    return form;
  } finally {
    await early?.cancel();
    await fs.rm(tmp, { force: true });
  }
}

/**
 * True when samples spread over the layer tar barely shrink under fast deflate, so gzip will almost
 * surely not be kept (KEEP_GZIP_BELOW) and a streamed gzip upload would be sent for nothing before the
 * uncompressed tar is uploaded after all. Costs 16 reads of 16 KiB (the push compressor's own
 * sampling, over the whole layer); any read error says no.
 */
function looksIncompressible(store: Store, diffId: Digest, size: number): boolean {
  let file: ReturnType<Store['blobs']['openRandomAccess']> | undefined;
  try {
    file = store.blobs.openRandomAccess(diffId);
    const f = file;
    const buf = Buffer.alloc(1 << 16);
    const { raw, packed } = sampleDeflate((offset, length) => buf.subarray(0, f.read(buf, 0, Math.min(length, buf.length), offset)), size, 16);
    return raw > 0 && packed > raw * 0.99;
  } catch {
    return false;
  } finally {
    file?.close();
  }
}

/**
 * Completes a streamed upload; a refusal leaves the blob to the ordinary upload (see the module
 * comment). Throws only what recording the upload (`onEarlyUploaded`) throws.
 */
async function commitEarly(early: StreamingUpload, form: Form, opts: LayerFormOptions): Promise<void> {
  try {
    await early.commit(form.digest, form.size);
  } catch {
    return;
  }
  await opts.onEarlyUploaded?.(form.digest);
}

/**
 * Passes the compressed bytes on to the store file and copies them to a streaming upload, waiting for
 * the upload to take them (its backpressure paces compression, bounding memory). An upload that fails
 * is dropped without failing the compression; `intact` then says false, and the body is ended only
 * when every byte went in.
 */
class UploadTee extends Transform {
  private failed = false;
  private ended = false;

  constructor(private readonly body: NodeJS.WritableStream & { destroyed?: boolean }) {
    super();
    body.on('error', () => {
      this.failed = true;
    });
  }

  /** True when the upload received every byte and its body was ended. */
  get intact(): boolean {
    return this.ended && !this.failed;
  }

  /** Whether the upload still takes bytes (a body destroyed before it was ended has failed). */
  private open(): boolean {
    if (!this.failed && this.body.destroyed) this.failed = true;
    return !this.failed;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.open() || this.body.write(chunk)) {
      cb(null, chunk);
      return;
    }
    const go = (): void => {
      this.body.removeListener('drain', go);
      this.body.removeListener('close', go);
      cb(null, chunk);
    };
    this.body.on('drain', go);
    this.body.on('close', go);
  }

  override _flush(cb: TransformCallback): void {
    if (this.open()) {
      this.body.end();
      this.ended = true;
    }
    cb();
  }
}
