/**
 * Push and pull between the local store and the REAL registry (docker-registry 2.8), skopeo and umoci
 * as witnesses, request counts taken by the fault proxy in front of the registry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync, rmSync } from 'node:fs';
import { writeArchive } from '../../src/archive/index.js';
import { isDimgError } from '../../src/errors.js';
import { loadImage } from '../../src/image/local-image.js';
import { sha256, type Digest } from '../../src/oci/digest.js';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { MediaType } from '../../src/oci/media-types.js';
import type { Descriptor, ImageManifest } from '../../src/oci/types.js';
import { RegistryClient } from '../../src/registry/index.js';
import { Store } from '../../src/store/store.js';
import { importImage } from '../../src/image/import.js';
import { commitImage } from '../../src/image/commit.js';
import { isComplete, pullImage, pushImage, pushManifest, type PushEvent } from '../../src/transfer/index.js';
import { compressBlock, adaptiveGzip, BLOCK_SIZE } from '../../src/layer/adaptive-gzip.js';
import { startRegistry } from '../support/registry.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { requireTool, run } from '../support/tools.js';
import { tempDir } from '../support/tmp.js';
import { gunzipSync } from 'node:zlib';
import { remoteDigest as skopeoDigest, remoteManifest } from '../support/skopeo.js';

const EPOCH = 1_700_000_000;

async function busyboxImage(t: Parameters<typeof tempDir>[0], store: Store): Promise<Descriptor> {
  const rootfs = makeBusyboxRootfs(join(tempDir(t), 'rootfs'));
  const img = await importImage(store, { source: rootfs, sourceLabel: 'busybox', sourceDateEpoch: EPOCH, platform: { os: 'linux', architecture: 'amd64' } });
  return img.descriptor;
}

test('push: skopeo sees the digest, umoci unpacks the files; re-push is one HEAD; another repository mounts; digests are deterministic across stores', async (t) => {
  requireTool('umoci', 'umoci');
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const proxy = await startFaultProxy(reg.url);
  t.after(() => proxy.stop());
  const store = await Store.open(tempDir(t));
  const desc = await busyboxImage(t, store);
  const local = await store.blobs.readJson<ImageManifest>(desc.digest);
  assert.equal(local.layers[0]!.mediaType, MediaType.ociLayer, 'dimg stores its layers uncompressed');

  const events: PushEvent[] = [];
  let client = new RegistryClient();
  const r = await pushImage(store, client, desc, `${proxy.host}/shop/web:1`, { onEvent: (e) => events.push(e) });
  client.close();
  assert.equal(skopeoDigest(`${reg.host}/shop/web:1`), r.digest);
  const pushed = remoteManifest<ImageManifest>(`${reg.host}/shop/web:1`);
  assert.equal(pushed.layers[0]!.mediaType, MediaType.ociLayerGzip, 'busybox compresses: pushed as gzip');
  assert.equal(pushed.config.digest, local.config.digest, 'config unchanged');
  assert.ok(events.some((e) => e.kind === 'layer-form' && e.compressed));
  assert.equal(events.filter((e) => e.kind === 'blob' && e.outcome === 'uploaded').length, 2);
  // skopeo pulls it and umoci unpacks a usable busybox tree.
  const dir = tempDir(t);
  run('skopeo', ['copy', '--src-tls-verify=false', `docker://${reg.host}/shop/web:1`, `oci:${join(dir, 'layout')}:x`]);
  run('umoci', ['unpack', '--image', `${join(dir, 'layout')}:x`, join(dir, 'bundle')]);
  assert.ok(existsSync(join(dir, 'bundle', 'rootfs', 'bin', 'busybox')));
  assert.equal(readFileSync(join(dir, 'bundle', 'rootfs', 'etc', 'passwd'), 'utf8').split('\n')[0], 'root:x:0:0:root:/root:/bin/sh');

  // Second push: the tag HEAD matches, nothing else (the ping GET aside) and no write at all.
  proxy.reset();
  events.length = 0;
  client = new RegistryClient();
  const again = await pushImage(store, client, desc, `${proxy.host}/shop/web:1`, { onEvent: (e) => events.push(e) });
  client.close();
  assert.equal(again.digest, r.digest);
  assert.equal(proxy.writes(), 0);
  assert.equal(proxy.counts.HEAD, 1);
  assert.ok(events.some((e) => e.kind === 'layer-form' && !e.compressed), 'the layer form is remembered, not recompressed');

  // Another repository of the same registry: every blob mounted from shop/web, no upload.
  proxy.reset();
  events.length = 0;
  client = new RegistryClient();
  const other = await pushImage(store, client, desc, `${proxy.host}/team/other:2`, { onEvent: (e) => events.push(e) });
  client.close();
  assert.equal(other.digest, r.digest);
  const blobs = events.filter((e): e is Extract<PushEvent, { kind: 'blob' }> => e.kind === 'blob');
  assert.deepEqual(blobs.map((e) => [e.outcome, e.from]), [['mounted', 'shop/web'], ['mounted', 'shop/web']]);
  assert.equal(proxy.counts.PATCH ?? 0, 0);
  assert.equal(proxy.counts.PUT, 1, 'only the manifest PUT');

  // A second store importing the same tree gets the same push manifest, hence the same digest.
  const store2 = await Store.open(tempDir(t));
  const desc2 = await busyboxImage(t, store2);
  assert.equal(desc2.digest, desc.digest);
  assert.equal((await pushManifest(store2, desc2)).digest, r.digest);
  client = new RegistryClient();
  t.after(() => client.close());
  assert.equal((await pushImage(store2, client, desc2, `${reg.host}/second/store:1`)).digest, r.digest);

  // The catalog lists every repository, also one page at a time.
  const all = ['second/store', 'shop/web', 'team/other'];
  assert.deepEqual((await client.catalog(reg.host)).sort(), all);
  assert.deepEqual((await client.catalog(reg.host, 1)).sort(), all);
});

test('pull: a skopeo-pushed image keeps its digest, is usable, and a second pull transfers no blob; mirrors fall back to the origin', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const store = await Store.open(tempDir(t));
  const desc = await busyboxImage(t, store);
  // skopeo pushes it (with its own gzip) from a `dimg image save` archive.
  const archive = join(tempDir(t), 'bb.tar');
  await writeArchive(store, [{ image: await loadImage(store, desc), names: ['docker.io/library/bb:1.36'] }], createWriteStream(archive));
  run('skopeo', ['copy', '--dest-tls-verify=false', `docker-archive:${archive}`, `docker://${reg.host}/lib/bb:1.36`]);
  const want = skopeoDigest(`${reg.host}/lib/bb:1.36`) as Digest;

  const target = await Store.open(tempDir(t));
  const mirrorLog: string[] = [];
  const client = new RegistryClient({ mirrors: { [reg.host]: ['127.0.0.1:9'] }, log: (m) => mirrorLog.push(m) }); // the mirror is down
  t.after(() => client.close());
  const outcomes: string[] = [];
  const got = await pullImage(target, client, `${reg.host}/lib/bb:1.36`, { onEvent: (e) => e.kind === 'blob' && outcomes.push(e.outcome) });
  assert.equal(got.descriptor.digest, want);
  assert.equal(got.name, `${reg.host}/lib/bb:1.36`);
  assert.deepEqual(outcomes.sort(), ['uploaded', 'uploaded']);
  assert.ok(await isComplete(target, want));
  const entry = (await target.entries()).find((e) => e.name === `${reg.host}/lib/bb:1.36`);
  assert.equal(entry?.descriptor.digest, want);
  assert.deepEqual(entry?.descriptor.platform, { os: 'linux', architecture: 'amd64' });
  // The layer is recorded under its diff_id (from the config).
  const m = await target.blobs.readJson<ImageManifest>(want);
  const config = await target.blobs.readJson<{ rootfs: { diff_ids: string[] } }>(m.config.digest);
  const rec = await target.layers.get(config.rootfs.diff_ids[0] as Digest);
  assert.ok(rec?.blobs.some((b) => b.digest === m.layers[0]!.digest));

  outcomes.length = 0;
  const again = await pullImage(target, client, `${reg.host}/lib/bb:1.36`, { onEvent: (e) => e.kind === 'blob' && outcomes.push(e.outcome) });
  assert.equal(again.descriptor.digest, want);
  assert.deepEqual(outcomes, [], 'an image complete in the store transfers no blob');
  // The down mirror was tried once (the first manifest request), not again for each blob or pull.
  // (Each round of the transport's retries takes ~3 s against a refused port: once, not per request.)
  const gaveUp = mirrorLog.filter((l) => l.startsWith('mirror '));
  assert.equal(gaveUp.length, 1, mirrorLog.join('\n'));
  assert.match(gaveUp[0]!, /mirror 127\.0\.0\.1:9 failed .*not using it again in this run/);
  assert.equal(mirrorLog.filter((l) => l.startsWith('retrying')).length, 4, 'one round of retries');

  // Pushing the pulled image elsewhere keeps its digest (its layers are already compressed).
  assert.equal((await pushImage(target, client, got.descriptor, `${reg.host}/copy/bb:1`)).digest, want);
});

/** A stream of `size` bytes alternating 4 MiB of random data and 4 MiB of text (compressible). */
function mixedStream(size: number): Readable {
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16));
  const text = Buffer.from('the quick brown fox jumps over the lazy dog 0123456789\n'.repeat(1200));
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= size) return void this.push(null);
      const n = Math.min(65536, size - sent);
      const randomPart = Math.floor(sent / (4 << 20)) % 2 === 0;
      const chunk = randomPart ? cipher.update(Buffer.alloc(n)) : text.subarray(0, n);
      sent += n;
      this.push(chunk);
    },
  });
}

test('push of a 256 MiB layer streams: RSS does not grow with the layer', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const store = await Store.open(tempDir(t));
  const size = 256 << 20;
  const layer = await store.blobs.write(mixedStream(size));
  const { descriptor } = await commitImage(store, {
    config: { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.digest] }, config: {} },
    layers: [{ mediaType: MediaType.ociLayer, digest: layer.digest, size: layer.size }],
  });
  global.gc?.();
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const client = new RegistryClient();
  t.after(() => client.close());
  const r = await pushImage(store, client, descriptor, `${reg.host}/big/layer:1`);
  clearInterval(timer);
  const growth = (peak - base) / 2 ** 20;
  process.stderr.write(`# 256 MiB layer push: RSS base ${(base / 2 ** 20).toFixed(0)} MiB, peak ${(peak / 2 ** 20).toFixed(0)} MiB\n`);
  assert.ok(growth < 160, `RSS grew by ${growth.toFixed(0)} MiB while pushing a 256 MiB layer`);
  const m = remoteManifest<ImageManifest>(`${reg.host}/big/layer:1`);
  assert.equal(m.layers[0]!.mediaType, MediaType.ociLayerGzip);
  assert.ok(m.layers[0]!.size < size * 0.6, 'the text half compresses');
  assert.equal(skopeoDigest(`${reg.host}/big/layer:1`), r.digest);
});

test('cold push streams a big layer to the registry while compressing it (one PATCH, nothing read back); a failed streamed upload falls back to an ordinary upload', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const proxy = await startFaultProxy(reg.url);
  t.after(() => proxy.stop());
  const size = 24 << 20;
  const image = async (): Promise<{ store: Store; descriptor: Descriptor }> => {
    const store = await Store.open(tempDir(t));
    const layer = await store.blobs.write(mixedStream(size));
    const { descriptor } = await commitImage(store, {
      config: { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.digest] }, config: {} },
      layers: [{ mediaType: MediaType.ociLayer, digest: layer.digest, size: layer.size }],
    });
    return { store, descriptor };
  };
  const push = async (store: Store, descriptor: Descriptor, ref: string) => {
    const events: PushEvent[] = [];
    const client = new RegistryClient({ retry: { baseDelayMs: 10, maxDelayMs: 50 } });
    try {
      const r = await pushImage(store, client, descriptor, `${proxy.host}/${ref}`, { onEvent: (e) => events.push(e) });
      return { r, events };
    } finally {
      client.close();
    }
  };
  const layerOf = (ref: string) => remoteManifest<ImageManifest>(`${reg.host}/${ref}`).layers[0]!;

  // Healthy: the compressed layer goes up in one streamed PATCH while it is made; the transfer then
  // has nothing left to send for it, and the registry holds exactly the blob the store kept.
  const a = await image();
  proxy.reset();
  const healthy = await push(a.store, a.descriptor, 'stream/ok:1');
  assert.equal(proxy.counts.PATCH, 1, `requests ${JSON.stringify(proxy.counts)}`);
  assert.equal(skopeoDigest(`${reg.host}/stream/ok:1`), healthy.r.digest);
  const sent = layerOf('stream/ok:1');
  assert.equal(sent.mediaType, MediaType.ociLayerGzip);
  assert.equal(await a.store.blobs.stat(sent.digest as Digest), sent.size, 'the store kept the same gzip blob');
  assert.ok(healthy.events.some((e) => e.kind === 'blob' && e.digest === sent.digest && e.outcome === 'uploaded'), 'reported as pushed');

  // The streamed PATCH dropped mid-body, then its session answering 500: the push still converges
  // through the ordinary upload of the stored blob, and the registry verifies what it got.
  for (const fault of [{ kind: 'drop-request' as const }, { kind: 'status' as const, status: 500 as const }]) {
    const b = await image();
    proxy.reset();
    proxy.inject({ ...fault, match: (method) => method === 'PATCH', count: 1 });
    const ref = `stream/${fault.kind}:1`;
    const faulted = await push(b.store, b.descriptor, ref);
    assert.equal(proxy.fired[fault.kind], 1, `the fault fired (${JSON.stringify(proxy.counts)})`);
    assert.ok((proxy.counts.PATCH ?? 0) >= 2, `the layer was uploaded again after the failed stream (${JSON.stringify(proxy.counts)})`);
    assert.equal(skopeoDigest(`${reg.host}/${ref}`), faulted.r.digest);
    const l = layerOf(ref);
    const blob = await fetch(`${reg.url}/v2/stream/${fault.kind}/blobs/${l.digest}`);
    assert.equal(sha256(Buffer.from(await blob.arrayBuffer())), l.digest, 'the registry serves the blob its manifest names');
  }
});

test('push of several big layers: one compressed at a time; after a failure no further layer starts and the error names the layer', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const store = await Store.open(tempDir(t));
  const a = await store.blobs.write(mixedStream(10 << 20));
  const b = await store.blobs.write(new Readable({ read() { this.push(Buffer.from('second layer text '.repeat(700_000))); this.push(null); } }));
  const { descriptor } = await commitImage(store, {
    config: { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [a.digest, b.digest] }, config: {} },
    layers: [
      { mediaType: MediaType.ociLayer, digest: a.digest, size: a.size },
      { mediaType: MediaType.ociLayer, digest: b.digest, size: b.size },
    ],
  });
  // The first layer's tar goes missing from the store.
  rmSync(store.blobs.path(a.digest));
  const client = new RegistryClient();
  t.after(() => client.close());
  await assert.rejects(pushImage(store, client, descriptor, `${reg.host}/two/layers:1`), (e: unknown) => isDimgError(e) && e.message.includes(a.digest));
  const rec = await store.layers.get(b.digest).catch(() => undefined);
  assert.ok(!rec?.blobs.some((x) => x.mediaType === MediaType.ociLayerGzip), 'the second big layer was not compressed after the first failed');
  const tags = await fetch(`${reg.url}/v2/two/layers/tags/list`);
  assert.notEqual(tags.status, 200, 'nothing was tagged');
});

test('adaptive gzip: deterministic, valid, stores random blocks and compresses text', async () => {
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, 1), Buffer.alloc(16));
  const random = cipher.update(Buffer.alloc(BLOCK_SIZE));
  const text = Buffer.from('hello world, hello layers\n'.repeat(Math.ceil(BLOCK_SIZE / 26))).subarray(0, BLOCK_SIZE);
  const r = compressBlock(random);
  assert.ok(r.length > random.length && r.length < random.length * 1.001, 'random data is stored, not inflated');
  assert.ok(compressBlock(text).length < text.length / 50);
  const input = Buffer.concat([text, random, text.subarray(0, 1000)]);
  const collect = async (s: Readable) => Buffer.concat(await s.toArray());
  const one = await collect(adaptiveGzip(Readable.from([input]), { workers: 1 }));
  const chunks: Buffer[] = [];
  for (let i = 0; i < input.length; i += 77_777) chunks.push(input.subarray(i, i + 77_777));
  const two = await collect(adaptiveGzip(Readable.from(chunks), { workers: 3 }));
  assert.ok(one.equals(two), 'output independent of workers and chunking');
  assert.ok(gunzipSync(one).equals(input));
  assert.ok(one.equals(Buffer.concat([compressBlock(text), compressBlock(random), compressBlock(text.subarray(0, 1000))])), 'worker and main-thread decisions agree');
});
