import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { promises as fs, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { Store } from '../../src/store/store.js';
import { collectGarbage } from '../../src/store/gc.js';
import { commitImage } from '../../src/image/commit.js';
import { findImage } from '../../src/image/find.js';
import { sha256 } from '../../src/oci/digest.js';
import { MediaType } from '../../src/oci/media-types.js';
import { isDimgError } from '../../src/errors.js';
import { tempDir } from '../support/tmp.js';
import { run, requireTool } from '../support/tools.js';

async function smallImage(store: Store, content: string) {
  const layer = await store.blobs.writeBytes(Buffer.from(content));
  return commitImage(store, {
    config: { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.digest] }, config: {} },
    layers: [{ mediaType: MediaType.ociLayer, digest: layer.digest, size: layer.size }],
  });
}

test('blob writes are verified and atomic: a wrong digest stores nothing', async (t) => {
  const store = await Store.open(tempDir(t));
  const good = await store.blobs.write(Readable.from([Buffer.from('hello')]), { digest: sha256('hello'), size: 5 });
  assert.equal(good.digest, sha256('hello'));
  await assert.rejects(store.blobs.write(Readable.from([Buffer.from('evil')]), { digest: sha256('hello2') }), (e) => isDimgError(e, 'DIGEST_MISMATCH'));
  assert.equal(await store.blobs.has(sha256('hello2')), false);
  assert.equal(await store.blobs.has(sha256('evil')), false);
  assert.deepEqual(readdirSync(store.tmpDir), []);
});

test('a corrupted blob is detected on read', async (t) => {
  const store = await Store.open(tempDir(t));
  const b = await store.blobs.writeBytes(Buffer.from('{"a":1}'));
  await fs.writeFile(store.blobs.path(b.digest), '{"a":2}');
  await assert.rejects(store.blobs.read(b.digest), (e) => isDimgError(e, 'DIGEST_MISMATCH'));
  const chunks: Buffer[] = [];
  await assert.rejects(async () => {
    for await (const c of store.blobs.open(b.digest, b.size)) chunks.push(c as Buffer);
  }, (e) => isDimgError(e, 'DIGEST_MISMATCH'));
});

test('tags move, the old image becomes dangling, GC keeps what is named', async (t) => {
  const store = await Store.open(tempDir(t));
  const a = await smallImage(store, 'layer-a');
  const b = await smallImage(store, 'layer-b');
  await store.tag('docker.io/library/app:latest', a.descriptor);
  await store.tag('docker.io/library/app:latest', b.descriptor);
  const entries = await store.entries();
  assert.equal(entries.length, 2);
  assert.equal(entries.find((e) => e.name === 'docker.io/library/app:latest')?.descriptor.digest, b.descriptor.digest);
  assert.ok(entries.some((e) => e.name === undefined && e.descriptor.digest === a.descriptor.digest));
  const found = await findImage(store, 'app');
  assert.equal(found.entry.descriptor.digest, b.descriptor.digest);
  const byId = await findImage(store, found.image.id.slice(7, 19));
  assert.equal(byId.image.id, found.image.id);
  await assert.rejects(findImage(store, 'nope:1'), (e) => isDimgError(e, 'IMAGE_NOT_FOUND') && e.message.includes('nope:1'));

  await store.removeEntries((e) => e.name === undefined);
  const gc = await collectGarbage(store);
  assert.equal(gc.blobsRemoved, 3); // manifest, config and layer of the dangling image
  assert.equal(await store.blobs.has(sha256('layer-a')), false);
  assert.equal(await store.blobs.has(sha256('layer-b')), true);
});

test('the store is an OCI layout that skopeo reads', async (t) => {
  requireTool('skopeo', 'skopeo');
  const root = tempDir(t);
  const store = await Store.open(root);
  const a = await smallImage(store, 'x');
  await store.tag('127.0.0.1:5000/shop/web:1.0', a.descriptor);
  const out = JSON.parse(run('skopeo', ['inspect', '--raw', `oci:${join(root, 'oci')}:127.0.0.1:5000/shop/web:1.0`]));
  assert.equal(out.config.digest, a.manifest.config.digest);
});

test('a stale lock of a dead process is recovered; a live one gives STORE_LOCKED', async (t) => {
  const root = tempDir(t);
  const store = await Store.open(root, { lockTimeoutMs: 300 });
  await fs.writeFile(join(root, 'lock'), JSON.stringify({ pid: 999999, host: (await import('node:os')).hostname(), command: 'x', since: 'then' }));
  await store.tag('docker.io/library/a:1', (await smallImage(store, 'q')).descriptor);
  assert.equal(existsSync(join(root, 'lock')), false);
  // Made first: writing blobs claims them in this process's lease, under the lock too.
  const image = await smallImage(store, 'r');
  const sleeper = spawn('sleep', ['30']);
  t.after(() => sleeper.kill());
  await fs.writeFile(join(root, 'lock'), JSON.stringify({ pid: sleeper.pid, host: (await import('node:os')).hostname(), command: 'apply', since: 'now' }));
  await assert.rejects(store.tag('docker.io/library/a:2', image.descriptor), (e) => isDimgError(e, 'STORE_LOCKED') && e.message.includes(String(sleeper.pid)));
});
