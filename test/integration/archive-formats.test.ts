/**
 * The archive reader and writer against the shapes other tools write: Docker ≤ 24 legacy archives
 * (with a gzip layer and history that has metadata-only steps), go-containerregistry tarballs,
 * hard-linked layers, untagged entries, Docker 25 index entries named only by a bare tag. The
 * written archives are checked with skopeo.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { createWriteStream, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { loadArchive } from '../../src/archive/load.js';
import { resolveSaveSet, writeArchive } from '../../src/archive/save.js';
import { findImage } from '../../src/image/find.js';
import { imageHistory } from '../../src/image/history.js';
import { MediaType } from '../../src/oci/media-types.js';
import { isDimgError } from '../../src/errors.js';
import { tempDir } from '../support/tmp.js';
import { requireTool, run } from '../support/tools.js';
import { digestOf, makeTar } from '../e2e/image-helpers.js';

async function layers() {
  const base = await makeTar([{ name: 'etc/', type: 'directory' }, { name: 'etc/os-release', data: 'ID=test\n' }, { name: 'bin/', type: 'directory' }, { name: 'bin/tool', data: '#!/bin/sh\n', mode: 0o755 }]);
  const top = await makeTar([{ name: 'srv/', type: 'directory' }, { name: 'srv/app.txt', data: 'app\n'.repeat(100) }]);
  return { base, top, topGz: gzipSync(top) };
}

function legacyConfig(diffIds: string[]) {
  return Buffer.from(JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    created: '2024-01-02T03:04:05Z',
    docker_version: '24.0.7',
    config: { Cmd: ['/bin/tool'], Env: ['PATH=/bin'] },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: [
      { created: '2024-01-01T00:00:00Z', created_by: '/bin/sh -c #(nop) ADD file:abc in / ' },
      { created: '2024-01-01T00:00:01Z', created_by: '/bin/sh -c #(nop)  CMD ["/bin/tool"]', empty_layer: true },
      { created: '2024-01-02T03:04:05Z', created_by: '/bin/sh -c echo app > /srv/app.txt', comment: 'second' },
      { created: '2024-01-02T03:04:05Z', created_by: '/bin/sh -c #(nop)  ENV PATH=/bin', empty_layer: true },
    ],
  }));
}

test('a Docker <= 24 archive (legacy dirs, a gzip layer) loads; history follows docker rules; save re-exports it', async (t) => {
  const skopeo = requireTool('skopeo', 'skopeo');
  const store = await Store.open(tempDir(t));
  const { base, top, topGz } = await layers();
  const config = legacyConfig([digestOf(base), digestOf(top)]);
  const configName = `${digestOf(config).slice(7)}.json`;
  const archive = await makeTar([
    { name: 'aaa/', type: 'directory' },
    { name: 'aaa/VERSION', data: '1.0' },
    { name: 'aaa/json', data: '{"id":"aaa"}' },
    { name: 'aaa/layer.tar', data: base },
    { name: 'bbb/', type: 'directory' },
    { name: 'bbb/VERSION', data: '1.0' },
    { name: 'bbb/json', data: '{"id":"bbb","parent":"aaa"}' },
    { name: 'bbb/layer.tar', data: topGz },
    { name: configName, data: config },
    { name: 'repositories', data: JSON.stringify({ 'example.com/legacy': { v1: 'bbb' } }) },
    { name: 'manifest.json', data: JSON.stringify([{ Config: configName, RepoTags: ['example.com/legacy:v1'], Layers: ['aaa/layer.tar', 'bbb/layer.tar'] }]) },
  ]);
  const loaded = await loadArchive(store, Readable.from([archive]), 'legacy.tar');
  assert.deepEqual(loaded.map((l) => [l.id, l.names]), [[digestOf(config), ['example.com/legacy:v1']]]);
  const found = await findImage(store, 'example.com/legacy:v1');
  assert.equal(found.image.id, digestOf(config), 'the config bytes are kept: same image ID as Docker');
  assert.deepEqual(found.image.manifest.layers.map((l) => l.mediaType), [MediaType.ociLayer, MediaType.ociLayerGzip]);
  assert.equal(found.image.manifest.layers[1]!.digest, digestOf(topGz), 'a compressed layer is kept as it came');
  assert.equal((await store.layers.get(digestOf(top) as `sha256:${string}`))?.size, top.length, 'its uncompressed size is recorded');

  const rows = await imageHistory(store, found.image);
  assert.deepEqual(rows.map((r) => [r.id, r.createdBy, r.size, r.comment]), [
    [found.image.id, '/bin/sh -c #(nop)  ENV PATH=/bin', 0, ''],
    ['<missing>', '/bin/sh -c echo app > /srv/app.txt', top.length, 'second'],
    ['<missing>', '/bin/sh -c #(nop)  CMD ["/bin/tool"]', 0, ''],
    ['<missing>', '/bin/sh -c #(nop) ADD file:abc in / ', base.length, ''],
  ]);

  // Saving it decompresses the gzip layer into the archive, which skopeo reads.
  const out = join(tempDir(t), 'resaved.tar');
  await writeArchive(store, await resolveSaveSet(store, ['example.com/legacy']), createWriteStream(out));
  const seen = JSON.parse(run(skopeo, ['inspect', `docker-archive:${out}:example.com/legacy:v1`]));
  assert.deepEqual(seen.Layers, [digestOf(base), digestOf(top)]);
  const manifest = JSON.parse(run('tar', ['-xOf', out, 'manifest.json']));
  assert.deepEqual(manifest[0].Layers, [`blobs/sha256/${digestOf(base).slice(7)}`, `blobs/sha256/${digestOf(top).slice(7)}`]);
  const x = tempDir(t);
  run('tar', ['-C', x, '-xf', out, manifest[0].Layers[1]]);
  assert.equal(digestOf(readFileSync(join(x, manifest[0].Layers[1]))), digestOf(top));
});

test('go-containerregistry tarballs, hard-linked layers and untagged entries', async (t) => {
  const store = await Store.open(tempDir(t));
  const { base, top, topGz } = await layers();
  const config = legacyConfig([digestOf(base), digestOf(top)]);
  const archive = await makeTar([
    { name: digestOf(config), data: config }, // GGCR names the config `sha256:<hex>`
    { name: `${digestOf(base).slice(7)}.tar`, data: base },
    { name: `${digestOf(topGz).slice(7)}.tar.gz`, data: topGz },
    { name: 'dup/layer.tar', type: 'link', linkname: `${digestOf(base).slice(7)}.tar` },
    {
      name: 'manifest.json',
      data: JSON.stringify([
        { Config: digestOf(config), RepoTags: ['ggcr:1'], Layers: [`${digestOf(base).slice(7)}.tar`, `${digestOf(topGz).slice(7)}.tar.gz`] },
        { Config: digestOf(config), RepoTags: null, Layers: ['dup/layer.tar', `${digestOf(topGz).slice(7)}.tar.gz`] },
      ]),
    },
  ]);
  const loaded = await loadArchive(store, Readable.from([archive]), 'ggcr.tar');
  assert.deepEqual(loaded.map((l) => l.names), [['docker.io/library/ggcr:1'], []]);
  assert.equal(loaded[0]!.id, loaded[1]!.id);
  const entries = await store.entries();
  assert.deepEqual(entries.map((e) => e.name), ['docker.io/library/ggcr:1'], 'the untagged twin does not add a dangling entry');
});

test('Docker 25 index entries named by a bare tag take their names from manifest.json; bad oci-layout versions fail', async (t) => {
  const store = await Store.open(tempDir(t));
  const { base } = await layers();
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [digestOf(base)] } }));
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: MediaType.ociConfig, digest: digestOf(config), size: config.length }, layers: [{ mediaType: MediaType.ociLayer, digest: digestOf(base), size: base.length }] }));
  const files = (layout: string) => [
    { name: 'oci-layout', data: layout },
    { name: `blobs/sha256/${digestOf(base).slice(7)}`, data: base },
    { name: `blobs/sha256/${digestOf(config).slice(7)}`, data: config },
    { name: `blobs/sha256/${digestOf(manifest).slice(7)}`, data: manifest },
    { name: 'index.json', data: JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MediaType.ociManifest, digest: digestOf(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }] }) },
    { name: 'manifest.json', data: JSON.stringify([{ Config: `blobs/sha256/${digestOf(config).slice(7)}`, RepoTags: ['named:here'], Layers: [`blobs/sha256/${digestOf(base).slice(7)}`] }]) },
  ];
  const loaded = await loadArchive(store, Readable.from([await makeTar(files('{"imageLayoutVersion":"1.0.0"}'))]), 'd25.tar');
  assert.deepEqual(loaded.map((l) => [l.descriptor.digest, l.names]), [[digestOf(manifest), ['docker.io/library/named:here']]]);
  await assert.rejects(loadArchive(store, Readable.from([await makeTar(files('{"imageLayoutVersion":"9.9"}'))]), 'future.tar'), (e) => isDimgError(e, 'ARCHIVE_INVALID') && /future.tar: oci-layout has version "9.9"/.test(e.message));
  assert.equal(readFileSync(join(store.root, 'oci', 'oci-layout'), 'utf8'), '{"imageLayoutVersion":"1.0.0"}');
});
