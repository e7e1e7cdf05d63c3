import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { sha256, type Digest } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/media-types.js';
import { parseReference } from '../../src/oci/reference.js';
import { isDimgError } from '../../src/errors.js';
import { RegistryClient } from '../../src/registry/index.js';
import { startRegistry } from '../support/registry.js';
import { startFaultProxy } from '../support/fault-proxy.js';
import { requireTool, run } from '../support/tools.js';
import { tempDir } from '../support/tmp.js';
import { makeImage, makeIndex, pushImage, randomBlob, readAllStream } from './registry-fixtures.js';
import { remoteDigest as skopeoDigest } from '../support/skopeo.js';

/** V8's full collection, reached without --expose-gc on the command line. */
function exposedGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/** A deterministic pseudo-random stream of `size` bytes (AES-CTR keystream; never held in memory whole). */
function patternStream(size: number, seed: string): Readable {
  const cipher = createCipheriv('aes-128-ctr', createHash('md5').update(seed).digest(), Buffer.alloc(16));
  const zeros = Buffer.alloc(65536);
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= size) {
        this.push(null);
        return;
      }
      const n = Math.min(zeros.length, size - sent);
      sent += n;
      this.push(cipher.update(zeros.subarray(0, n)));
    },
  });
}

async function digestOfStream(s: Readable): Promise<Digest> {
  const h = createHash('sha256');
  for await (const b of s as AsyncIterable<Buffer>) h.update(b);
  return `sha256:${h.digest('hex')}`;
}

test('blobs: monolithic upload, HEAD skips existing, verified download, mount across repositories', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const proxy = await startFaultProxy(reg.url);
  t.after(() => proxy.stop());
  const client = new RegistryClient();
  t.after(() => client.close());
  const a = client.repository({ domain: proxy.host, path: 'blobs/a' });
  const b = client.repository({ domain: proxy.host, path: 'blobs/b' });
  const blob = randomBlob(300_000);

  assert.equal(await a.blobExists(blob.desc.digest), false);
  assert.equal(await a.uploadBlob(blob.desc.digest, blob.desc.size, () => Readable.from([blob.bytes])), 'uploaded');
  assert.equal(await a.blobExists(blob.desc.digest), true);
  const got = await readAllStream(await a.getBlob(blob.desc.digest, blob.desc.size));
  assert.ok(got.equals(blob.bytes));

  proxy.reset();
  assert.equal(await a.uploadBlob(blob.desc.digest, blob.desc.size, () => { throw new Error('source must not be opened for an existing blob'); }), 'exists');
  assert.equal(proxy.writes(), 0, 'an existing blob costs no write request');
  assert.equal(proxy.counts.HEAD, 1);

  proxy.reset();
  assert.equal(await b.uploadBlob(blob.desc.digest, blob.desc.size, () => { throw new Error('a mount sends no data'); }, { mountFrom: ['blobs/a'] }), 'mounted');
  assert.equal(proxy.counts.POST, 1);
  assert.equal(proxy.counts.PUT ?? 0, 0);
  assert.equal(proxy.counts.PATCH ?? 0, 0);
  assert.equal(await b.blobExists(blob.desc.digest), true);

  // A mount from a repository that lacks the blob falls back to a normal upload in the same session.
  const other = randomBlob(1000);
  assert.equal(await b.uploadBlob(other.desc.digest, other.desc.size, () => Readable.from([other.bytes]), { mountFrom: ['blobs/a'] }), 'uploaded');

  // A wrong digest on download is caught by verification.
  await assert.rejects(
    async () => readAllStream(await a.getBlob(blob.desc.digest, blob.desc.size - 1)),
    (e: unknown) => isDimgError(e, 'SIZE_MISMATCH'),
  );
  await assert.rejects(a.getBlob(sha256('absent'), 6), (e: unknown) => isDimgError(e) && e.code.startsWith('REGISTRY_BLOB_UNKNOWN') && e.message.includes(proxy.host) && e.message.includes('blobs/a'));
});

test('blobs: a 64 MiB blob is streamed in PATCH chunks with bounded memory; a corrupt source is refused', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const proxy = await startFaultProxy(reg.url);
  t.after(() => proxy.stop());
  const client = new RegistryClient({ monolithicMax: 1 << 20, chunkSize: 16 << 20 });
  t.after(() => client.close());
  const repo = client.repository({ domain: proxy.host, path: 'big/blob' });
  const size = 64 * 1024 * 1024 + 123;
  const digest = await digestOfStream(patternStream(size, 'big'));
  let progress = 0;
  // Live buffer memory (arrayBuffers right after a full collection) sampled during the upload: it must
  // stay far below the blob's size. Without the collection the figure counted dead chunks still
  // waiting for V8 and varied with GC timing (25-35 MiB); live memory is what a bound is about.
  const gc = exposedGc();
  let peak = 0;
  gc();
  const base = process.memoryUsage().arrayBuffers;
  const sampler = setInterval(() => {
    gc();
    peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
  }, 20);
  try {
    assert.equal(await repo.uploadBlob(digest, size, () => patternStream(size, 'big'), { onProgress: (n) => (progress = n) }), 'uploaded');
  } finally {
    clearInterval(sampler);
  }
  // Half the blob: buffering it would hold all 64 MiB. (The in-process fault proxy's buffers count
  // too, and dead buffers wait for V8's next collection, so the peak varies by a few MiB run to run.)
  assert.ok(peak < 32 << 20, `upload held ${peak} bytes of buffers`);
  assert.equal(proxy.counts.PATCH, 5, 'four 16 MiB chunks and the rest');
  assert.equal(progress, size);
  assert.equal(await digestOfStream(await repo.getBlob(digest, size)), digest);

  // A source whose bytes do not match the digest fails locally with DIGEST_MISMATCH, and nothing is stored.
  const small = 3 * 1024 * 1024;
  const bad = await digestOfStream(patternStream(small, 'other'));
  await assert.rejects(repo.uploadBlob(bad, small, () => patternStream(small, 'big')), (e: unknown) => isDimgError(e, 'DIGEST_MISMATCH'));
  assert.equal(await repo.blobExists(bad), false);
});

test('mirrors: pulls read from the mirror first and fall back to the origin', async (t) => {
  const origin = await startRegistry();
  t.after(() => origin.stop());
  const mirrorReg = await startRegistry();
  t.after(() => mirrorReg.stop());
  const mirror = await startFaultProxy(mirrorReg.url);
  t.after(() => mirror.stop());
  const direct = new RegistryClient();
  t.after(() => direct.close());
  const img = makeImage();
  await pushImage(direct.repository({ domain: origin.host, path: 'lib/app' }), img, 'v1');
  await pushImage(direct.repository({ domain: mirrorReg.host, path: 'lib/app' }), img, 'v1');
  const only = makeImage();
  await pushImage(direct.repository({ domain: origin.host, path: 'lib/app' }), only, 'origin-only');

  const logs: string[] = [];
  const client = new RegistryClient({ mirrors: { [origin.host]: [mirror.host] }, log: (l) => logs.push(l) });
  t.after(() => client.close());
  const src = client.pullSource(parseReference(`${origin.host}/lib/app:v1`));
  assert.equal((await src.manifest('v1')).digest, img.digest);
  assert.equal(sha256(await readAllStream(await src.blob(img.layers[0]!.desc))), img.layers[0]!.desc.digest);
  assert.ok((mirror.counts.GET ?? 0) >= 2, 'served by the mirror');

  // Absent on the mirror: the origin answers.
  assert.equal((await src.manifest('origin-only')).digest, only.digest);
  assert.ok(logs.some((l) => l.includes(`mirror ${mirror.host} failed`)));
  // Mirror down: the origin answers.
  mirror.inject({ kind: 'status', status: 503, count: 1000 });
  const noRetry = new RegistryClient({ mirrors: { [origin.host]: [mirror.host] }, retry: { attempts: 1 } });
  t.after(() => noRetry.close());
  const copied = await noRetry.copyImage(parseReference(`${origin.host}/lib/app:v1`), parseReference(`${mirrorReg.host}/copied/app:v1`));
  assert.equal(copied.digest, img.digest);
});

test('manifests: put/get/head/delete by tag and digest, tags listed, errors name registry and repository', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const client = new RegistryClient();
  t.after(() => client.close());
  const repo = client.repository({ domain: reg.host, path: 'man/app' });
  const img = makeImage();
  await pushImage(repo, img, 'v1');
  assert.equal(await repo.putManifest('v2', img.manifest, img.mediaType), img.digest);
  assert.equal(await repo.putManifest(img.digest, img.manifest, img.mediaType), img.digest);

  for (const ref of ['v1', img.digest]) {
    const m = await repo.getManifest(ref);
    assert.ok(m.bytes.equals(img.manifest), 'exact bytes');
    assert.equal(m.digest, img.digest);
    assert.equal(m.mediaType, MediaType.ociManifest);
    assert.deepEqual(await repo.headManifest(ref), { digest: img.digest, mediaType: MediaType.ociManifest, size: img.manifest.length });
  }
  assert.equal(await repo.headManifest('nope'), undefined);
  await assert.rejects(repo.getManifest('nope'), (e: unknown) => {
    assert.ok(isDimgError(e, 'REGISTRY_MANIFEST_UNKNOWN'), String(e));
    assert.match(e.message, new RegExp(`registry ${reg.host}, repository man/app, manifest nope`));
    assert.ok(e.hint.length > 0);
    return true;
  });

  // An index of two platforms; the Docker manifest list type round-trips too.
  const arm = makeImage({ arch: 'arm64' });
  await pushImage(repo, arm, 'arm');
  const idx = makeIndex([{ img, arch: 'amd64' }, { img: arm, arch: 'arm64' }]);
  await repo.putManifest('multi', idx.bytes, MediaType.ociIndex);
  const got = await repo.getManifest('multi');
  assert.equal(got.mediaType, MediaType.ociIndex);
  assert.equal(got.digest, idx.digest);

  for (const tag of ['b', 'a', 'c']) await repo.putManifest(tag, img.manifest, img.mediaType);
  assert.deepEqual((await repo.listTags()).sort(), ['a', 'arm', 'b', 'c', 'multi', 'v1', 'v2']);
  assert.deepEqual(await repo.listTags(2).then((t2) => t2.length), 7, 'all tags even with a page size (2.8 ignores n)');

  // Delete by tag resolves the digest; 2.8 removes every tag pointing at it.
  assert.equal(await repo.deleteManifest('v1'), img.digest);
  assert.equal(await repo.headManifest('v2'), undefined);
  assert.equal(await repo.headManifest(img.digest), undefined);
  await assert.rejects(repo.deleteManifest(img.digest), (e: unknown) => isDimgError(e) && e.code.startsWith('REGISTRY_MANIFEST_UNKNOWN'));
  await assert.rejects(client.repository({ domain: reg.host, path: 'never/pushed' }).listTags(), (e: unknown) => isDimgError(e, 'REGISTRY_NAME_UNKNOWN') && e.message.includes('never/pushed'));

  // A manifest whose blobs are missing is refused with the registry's code.
  const orphan = makeImage();
  await assert.rejects(repo.putManifest('orphan', orphan.manifest, orphan.mediaType), (e: unknown) => isDimgError(e, 'REGISTRY_MANIFEST_BLOB_UNKNOWN'));
});

test('copy registry→registry keeps digests (skopeo agrees), mounts within one registry; dimg reads what skopeo pushed', async (t) => {
  requireTool('skopeo', 'skopeo');
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const reg2 = await startRegistry();
  t.after(() => reg2.stop());
  const proxy = await startFaultProxy(reg.url);
  t.after(() => proxy.stop());
  const client = new RegistryClient();
  t.after(() => client.close());
  const src = client.repository({ domain: proxy.host, path: 'src/app' });
  const amd = makeImage({ arch: 'amd64' });
  const arm = makeImage({ arch: 'arm64' });
  await pushImage(src, amd, 'amd');
  await pushImage(src, arm, 'arm');
  const idx = makeIndex([{ img: amd, arch: 'amd64' }, { img: arm, arch: 'arm64' }]);
  await src.putManifest('multi', idx.bytes, MediaType.ociIndex);

  // Same registry: blobs are mounted, not re-sent.
  proxy.reset();
  const events: string[] = [];
  const r1 = await client.copyImage(parseReference(`${proxy.host}/src/app:multi`), parseReference(`${proxy.host}/dst/app:copied`), { allPlatforms: true, onEvent: (e) => e.kind === 'blob' && events.push(e.outcome) });
  assert.equal(r1.digest, idx.digest);
  assert.equal(proxy.counts.PATCH ?? 0, 0);
  assert.deepEqual([...new Set(events)], ['mounted']);
  const skopeoRaw = (ref: string) => sha256(Buffer.from(run('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${ref}`]).replace(/\n$/, '')));
  assert.equal(skopeoRaw(`${reg.host}/dst/app:copied`), idx.digest);

  // Another registry: blobs uploaded; the whole index and each child keep their digests.
  await client.copyImage(parseReference(`${proxy.host}/src/app:multi`), parseReference(`${reg2.host}/mirror/app:multi`), { allPlatforms: true });
  assert.equal(skopeoRaw(`${reg2.host}/mirror/app:multi`), idx.digest);
  assert.equal(skopeoDigest(`${reg2.host}/mirror/app@${arm.digest}`), arm.digest);

  // One platform out of the index.
  const one = await client.copyImage(parseReference(`${reg.host}/src/app:multi`), parseReference(`${reg2.host}/single/app:arm`), { platform: { os: 'linux', architecture: 'arm64' } });
  assert.equal(one.digest, arm.digest);
  assert.equal(skopeoDigest(`${reg2.host}/single/app:arm`), arm.digest);
  await assert.rejects(client.copyImage(parseReference(`${reg.host}/src/app:multi`), parseReference(`${reg2.host}/single/app:s390x`), { platform: { os: 'linux', architecture: 's390x' } }), (e: unknown) => isDimgError(e, 'PLATFORM_NOT_FOUND') && /linux\/amd64, linux\/arm64/.test(e.message));

  // skopeo pushes an image from an OCI layout we wrote; dimg fetches it with the same digest.
  const dir = tempDir(t);
  const layout = join(dir, 'layout');
  mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
  const img = makeImage({ layerCount: 3 });
  for (const b of [...img.blobs, { bytes: img.manifest, desc: { digest: img.digest } }]) writeFileSync(join(layout, 'blobs', 'sha256', b.desc.digest.slice(7)), b.bytes);
  writeFileSync(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: img.mediaType, digest: img.digest, size: img.manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }] }));
  run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${reg2.host}/from/skopeo:v1`]);
  const pushed = skopeoDigest(`${reg2.host}/from/skopeo:v1`);
  const viaDimg = await client.repository({ domain: reg2.host, path: 'from/skopeo' }).getManifest('v1');
  assert.equal(viaDimg.digest, pushed);
  const man = JSON.parse(viaDimg.bytes.toString('utf8')) as { layers: { digest: Digest; size: number }[] };
  for (const l of man.layers) {
    const bytes = await readAllStream(await client.repository({ domain: reg2.host, path: 'from/skopeo' }).getBlob(l.digest, l.size));
    assert.equal(sha256(bytes), l.digest);
  }
  // And dimg copies it on with the digest skopeo sees.
  const again = await client.copyImage(parseReference(`${reg2.host}/from/skopeo:v1`), parseReference(`${reg.host}/back/skopeo:v1`));
  assert.equal(again.digest, pushed);
  assert.equal(skopeoDigest(`${reg.host}/back/skopeo:v1`), pushed);
  void randomBytes;
});
