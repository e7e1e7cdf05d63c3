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
 */
import { createWriteStream, promises as fs } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { HashingStream, type Digest } from '../oci/digest.js';
import { MediaType } from '../oci/media-types.js';
import type { Descriptor } from '../oci/types.js';
import { tempPath } from '../store/fsutil.js';
import type { Store } from '../store/store.js';
import { abortable } from './abort.js';
import { adaptiveGzip } from '../layer/adaptive-gzip.js';
import { PushState } from './push-state.js';

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
const inflight = new Map<string, Promise<Form>>();

/** The registry form of the uncompressed layer `diffId` (`rawSize` bytes) of `store`; see the module comment. */
export function layerForm(store: Store, diffId: Digest, rawSize: number, opts: { onEvent?: (e: LayerFormEvent) => void; signal?: AbortSignal } = {}): Promise<Form> {
  const key = `${store.root}\0${diffId}`;
  let p = inflight.get(key);
  if (!p) {
    p = decide(store, diffId, rawSize, opts).finally(() => inflight.delete(key));
    inflight.set(key, p);
  }
  return p;
}

async function decide(store: Store, diffId: Digest, rawSize: number, opts: { onEvent?: (e: LayerFormEvent) => void; signal?: AbortSignal }): Promise<Form> {
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
    if ((await store.blobs.stat(b.digest)) !== b.size) continue;
    const form = { mediaType: MediaType.ociLayerGzip, digest: b.digest, size: b.size };
    await state.setChoice({ diffId, blob: form, rawSize });
    report(form, false, 0);
    return form;
  }
  const started = Date.now();
  const tmp = tempPath(store.tmpDir, 'gzip');
  const hash = new HashingStream();
  try {
    const src = abortable(store.blobs.open(diffId, rawSize), opts.signal, `compression of layer ${diffId}`);
    await pipeline(adaptiveGzip(src), hash, createWriteStream(tmp, { flags: 'wx', mode: 0o644 }));
    let form: Form;
    if (hash.size <= rawSize * KEEP_GZIP_BELOW) {
      form = { mediaType: MediaType.ociLayerGzip, digest: hash.digest(), size: hash.size };
      await store.blobs.adopt(tmp, form.digest);
      await store.layers.add(diffId, { digest: form.digest, mediaType: form.mediaType, size: form.size }, rawSize);
    } else {
      form = { mediaType: MediaType.ociLayer, digest: diffId, size: rawSize };
    }
    await state.setChoice({ diffId, blob: form, rawSize });
    report(form, true, (Date.now() - started) / 1000);
    return form;
  } finally {
    await fs.rm(tmp, { force: true });
  }
}
