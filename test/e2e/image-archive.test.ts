/**
 * End-to-end tests of `dimg image save|load` with skopeo and umoci as independent witnesses, the OCI
 * schemas as the judge of what dimg writes, and damaged archives that must fail cleanly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync, mkdirSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { DIMG_BIN, dimg } from '../support/cli.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { tempDir } from '../support/tmp.js';
import { requireTool, run } from '../support/tools.js';
import { assertStoreSound, digestOf, fails, fileDigest, importBusybox, makeTar, ociValidator, ok } from './image-helpers.js';

function tarJson(archive: string, member: string): any {
  return JSON.parse(run('tar', ['-xOf', archive, member]));
}

test('save writes a Docker 25+ archive that skopeo reads and copies and umoci unpacks', async (t) => {
  const skopeo = requireTool('skopeo', 'skopeo');
  const umoci = requireTool('umoci', 'umoci');
  const root = tempDir(t);
  const work = tempDir(t);
  const id = await importBusybox(t, root, 'busybox', ['--change', 'CMD ["sh"]']);
  const [img] = JSON.parse((await ok(['image', 'inspect', 'busybox'], { root })).stdout);
  const archive = join(work, 'busybox.tar');
  await ok(['image', 'save', '-o', archive, 'busybox'], { root });

  // The Docker 25+ shape.
  const members = run('tar', ['-tf', archive]).trim().split('\n');
  for (const m of ['oci-layout', 'index.json', 'manifest.json', 'repositories', `blobs/sha256/${id.slice(7)}`, `blobs/sha256/${img.RootFS.Layers[0].slice(7)}`]) assert.ok(members.includes(m), `archive lacks ${m}`);
  const manifestJson = tarJson(archive, 'manifest.json');
  assert.deepEqual(manifestJson, [{ Config: `blobs/sha256/${id.slice(7)}`, RepoTags: ['busybox:latest'], Layers: [`blobs/sha256/${img.RootFS.Layers[0].slice(7)}`] }]);
  const index = tarJson(archive, 'index.json');
  assert.equal(index.manifests.length, 1);
  assert.deepEqual(index.manifests[0].annotations, { 'io.containerd.image.name': 'docker.io/library/busybox:latest', 'org.opencontainers.image.ref.name': 'latest' });
  assert.deepEqual(tarJson(archive, 'repositories'), { busybox: { latest: img.RootFS.Layers[0].slice(7) } });
  const validate = ociValidator();
  validate('image-index-schema.json', index);
  validate('image-layout-schema.json', tarJson(archive, 'oci-layout'));
  const manifest = tarJson(archive, `blobs/sha256/${index.manifests[0].digest.slice(7)}`);
  validate('image-manifest-schema.json', manifest);
  assert.equal(manifest.layers[0].mediaType, 'application/vnd.oci.image.layer.v1.tar');
  validate('config-schema.json', tarJson(archive, `blobs/sha256/${id.slice(7)}`));

  // The same images give a byte-identical archive.
  const again = join(work, 'again.tar');
  await ok(['image', 'save', '--output', again, 'busybox:latest'], { root });
  assert.equal(fileDigest(again), fileDigest(archive));

  // skopeo reads it and copies it; umoci unpacks the copy.
  const seen = JSON.parse(run(skopeo, ['inspect', `docker-archive:${archive}:busybox:latest`]));
  assert.deepEqual(seen.Layers, img.RootFS.Layers);
  assert.equal(seen.Os, 'linux');
  const raw = JSON.parse(run(skopeo, ['inspect', '--config', `docker-archive:${archive}:busybox:latest`]));
  assert.deepEqual(raw.config.Cmd, ['sh']);
  const oci = join(work, 'oci');
  run(skopeo, ['copy', '-q', `docker-archive:${archive}:busybox:latest`, `oci:${oci}:x`]);
  const copiedIndex = JSON.parse(readFileSync(join(oci, 'index.json'), 'utf8'));
  const copied = JSON.parse(readFileSync(join(oci, 'blobs', 'sha256', copiedIndex.manifests[0].digest.slice(7)), 'utf8'));
  // skopeo re-encodes the config when it converts to OCI (dropping Docker's `comment`), so compare content.
  const copiedConfig = JSON.parse(readFileSync(join(oci, 'blobs', 'sha256', copied.config.digest.slice(7)), 'utf8'));
  assert.deepEqual(copiedConfig.rootfs.diff_ids, img.RootFS.Layers);
  assert.equal(Date.parse(copiedConfig.created), Date.parse(img.Created));
  const bundle = join(work, 'bundle');
  run(umoci, ['unpack', '--image', `${oci}:x`, bundle]);
  assert.ok(statSync(join(bundle, 'rootfs', 'bin', 'busybox')).mode & 0o111);
  assert.match(readFileSync(join(bundle, 'rootfs', 'etc', 'passwd'), 'utf8'), /^root:x:0:0:/);
  const runtime = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
  assert.deepEqual(runtime.process.args, ['sh']);

  // The store itself is an OCI layout skopeo reads, at the path `dimg info` prints.
  const info = (await ok(['info'], { root })).stdout;
  const cmd = /Read it with: (skopeo inspect oci:(\S+))/.exec(info);
  assert.ok(cmd, info);
  assert.equal(cmd[2], `${join(root, 'oci')}:docker.io/library/busybox:latest`);
  const viaStore = JSON.parse(run(skopeo, ['inspect', `oci:${cmd[2]}`]));
  assert.deepEqual(viaStore.Layers, img.RootFS.Layers);
  // What dimg writes into its store validates too.
  const storeIndex = JSON.parse(readFileSync(join(root, 'oci', 'index.json'), 'utf8'));
  validate('image-index-schema.json', storeIndex);
  validate('image-manifest-schema.json', JSON.parse(readFileSync(join(root, 'oci', 'blobs', 'sha256', storeIndex.manifests[0].digest.slice(7)), 'utf8')));
});

test('two images in one archive round-trip, plain and gzip, by file and by stdin', async (t) => {
  const root = tempDir(t);
  const work = tempDir(t);
  const a = await importBusybox(t, root, 'a');
  const dir = makeBusyboxRootfs(join(tempDir(t), 'rootfs'));
  writeFileSync(join(dir, 'etc', 'motd'), 'image b\n');
  const b = (await ok(['image', 'import', dir, 'registry.example:5000/team/b:1'], { root })).stdout.trim();
  const digests = (await ok(['images', '--format', '{{.Repository}}:{{.Tag}} {{.Digest}}'], { root })).stdout;

  const plain = join(work, 'two.tar');
  await ok(['image', 'save', '-o', plain, 'a', 'registry.example:5000/team/b:1'], { root });
  const gz = join(work, 'two.tgz');
  await ok(['image', 'save', '-o', gz, 'a', 'registry.example:5000/team/b:1'], { root });
  assert.deepEqual([...readFileSync(gz).subarray(0, 2)], [0x1f, 0x8b]);
  const streamed = await ok(['image', 'save', '--gzip', '--all'], { root });
  assert.deepEqual([...streamed.stdoutBytes.subarray(0, 2)], [0x1f, 0x8b]);

  for (const [how, args, input] of [
    ['file', ['image', 'load', '-i', plain], undefined],
    ['gzip file', ['image', 'load', '--input', gz], undefined],
    ['stdin', ['image', 'load'], streamed.stdoutBytes],
  ] as const) {
    const fresh = tempDir(t);
    const r = await ok([...args], { root: fresh, input });
    assert.deepEqual(r.stdout.trim().split('\n').sort(), ['Loaded image: a:latest', 'Loaded image: registry.example:5000/team/b:1'], how);
    assert.equal((await ok(['images', '--format', '{{.Repository}}:{{.Tag}} {{.Digest}}'], { root: fresh })).stdout.split('\n').sort().join('\n'), digests.split('\n').sort().join('\n'), `${how}: manifest digests survive the round trip`);
    const ids = (await ok(['images', '-q', '--no-trunc'], { root: fresh })).stdout.trim().split('\n').sort();
    assert.deepEqual(ids, [a, b].sort());
    assertStoreSound(fresh);
    await ok(['store', 'verify'], { root: fresh });
  }
});

test('an archive written by skopeo (docker-archive, legacy dirs, symlinked layers) loads with the same IDs', async (t) => {
  const skopeo = requireTool('skopeo', 'skopeo');
  const root = tempDir(t);
  const work = tempDir(t);
  const id = await importBusybox(t, root, 'src:1');
  const oci = join(work, 'oci');
  // From the store (an OCI layout) to a docker-archive, compressed layers in between.
  run(skopeo, ['copy', '-q', '--dest-compress', `oci:${join(root, 'oci')}:docker.io/library/src:1`, `oci:${oci}:src`]);
  const skopeoArchive = join(work, 'skopeo.tar');
  run(skopeo, ['copy', '-q', `oci:${oci}:src`, `docker-archive:${skopeoArchive}:example.com/skopeo/img:7`]);
  assert.match(run('tar', ['-tvf', skopeoArchive]), /layer\.tar -> \.\.\//, 'skopeo writes symlinked legacy layers');
  const fresh = tempDir(t);
  assert.equal((await ok(['image', 'load', '-i', skopeoArchive], { root: fresh })).stdout, 'Loaded image: example.com/skopeo/img:7\n');
  // The image ID is the digest of the config file skopeo wrote: dimg keeps config bytes as they are.
  const configPath = tarJson(skopeoArchive, 'manifest.json')[0].Config;
  const unpackedSkopeo = tempDir(t);
  run('tar', ['-C', unpackedSkopeo, '-xf', skopeoArchive]);
  const skopeoId = fileDigest(join(unpackedSkopeo, configPath));
  assert.equal((await ok(['images', '-q', '--no-trunc'], { root: fresh })).stdout.trim(), skopeoId);
  const [loadedImg] = JSON.parse((await ok(['image', 'inspect', 'example.com/skopeo/img:7'], { root: fresh })).stdout);
  const [srcImg] = JSON.parse((await ok(['image', 'inspect', 'src:1'], { root })).stdout);
  assert.deepEqual(loadedImg.RootFS.Layers, srcImg.RootFS.Layers);
  assert.equal(id, srcImg.Id);

  // A plain OCI layout archive (index.json only) with gzip layers: names come from full ref.names.
  const gzLayout = join(work, 'gz');
  run(skopeo, ['copy', '-q', '--dest-compress', `oci:${join(root, 'oci')}:docker.io/library/src:1`, `oci:${gzLayout}:docker.io/library/gz:1`]);
  run(skopeo, ['copy', '-q', '--dest-compress', `oci:${join(root, 'oci')}:docker.io/library/src:1`, `oci:${gzLayout}:bare`]);
  const ociTar = join(work, 'oci.tar');
  run('tar', ['-C', gzLayout, '-cf', ociTar, '.']);
  const loaded = (await ok(['image', 'load', '-i', ociTar], { root: fresh })).stdout;
  assert.equal(loaded, 'Loaded image: gz:1\n');
  const [gzImg] = JSON.parse((await ok(['image', 'inspect', 'gz:1'], { root: fresh })).stdout);
  assert.deepEqual(gzImg.RootFS.Layers, srcImg.RootFS.Layers);
  const m = JSON.parse(readFileSync(join(fresh, 'oci', 'blobs', 'sha256', gzImg.Descriptor.digest.slice(7)), 'utf8'));
  assert.equal(m.layers[0].mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip', 'OCI layouts are kept as they are');

  // Saving that compressed image decompresses its layer on the way: the archive layer is the diff_id.
  const out = join(work, 'resaved.tar');
  await ok(['image', 'save', '-o', out, 'gz:1'], { root: fresh });
  const layerPath = tarJson(out, 'manifest.json')[0].Layers[0];
  assert.equal(layerPath, `blobs/sha256/${gzImg.RootFS.Layers[0].slice(7)}`);
  const x = tempDir(t);
  run('tar', ['-C', x, '-xf', out, layerPath]);
  assert.equal(fileDigest(join(x, layerPath)), gzImg.RootFS.Layers[0]);
  assert.deepEqual(JSON.parse(run(skopeo, ['inspect', `docker-archive:${out}:gz:1`])).Layers, gzImg.RootFS.Layers);
});

test('save to a terminal is refused; save of a missing image fails and leaves no file', async (t) => {
  const scriptTool = requireTool('script', 'bsdutils');
  const root = tempDir(t);
  await importBusybox(t, root, 'bb');
  const r = spawnSyncTerminal(scriptTool, `${process.execPath} ${DIMG_BIN} image save bb`, root);
  assert.match(r, /error: refusing to write an image archive to a terminal/);
  assert.match(r, /hint: use -o FILE/);
  const out = join(tempDir(t), 'x.tar');
  await fails(['image', 'save', '-o', out, 'bb', 'nope'], { root }, /no such image in the local store: nope/);
  assert.equal(existsSync(out), false);
  assert.deepEqual(readdirSync(join(out, '..')), []);
  await fails(['image', 'save', '-o', out], { root }, /no images to save/);
});

/** Runs `command` with stdout on a real pseudo-terminal (util-linux `script`); returns what it printed. */
function spawnSyncTerminal(script: string, command: string, root: string): string {
  const r = spawnSync(script, ['-qec', command, '/dev/null'], { env: { ...process.env, DIMG_ROOT: root }, encoding: 'utf8' });
  assert.equal(r.status, 1, `expected exit 1 on a terminal, got ${r.status}: ${r.stdout}${r.stderr}`);
  return r.stdout + r.stderr;
}

test('damaged archives fail with a clear message and leave the store as it was', async (t) => {
  const root = tempDir(t);
  const work = tempDir(t);
  const id = await importBusybox(t, root, 'good');
  const archive = join(work, 'good.tar');
  await ok(['image', 'save', '-o', archive, 'good'], { root });
  const [img] = JSON.parse((await ok(['image', 'inspect', 'good'], { root })).stdout);
  const layerHex = img.RootFS.Layers[0].slice(7);
  const target = tempDir(t);
  await ok(['image', 'import', makeBusyboxRootfs(join(tempDir(t), 'r')), 'already:here'], { root: target });
  const before = readFileSync(join(target, 'oci', 'index.json'), 'utf8');
  const check = async (file: string, message: RegExp) => {
    await fails(['image', 'load', '-i', file], { root: target }, message);
    assert.equal(readFileSync(join(target, 'oci', 'index.json'), 'utf8'), before, 'no name changed');
    assertStoreSound(target);
    await ok(['store', 'verify'], { root: target });
  };

  // A layer whose content does not match its blob name.
  const unpacked = join(work, 'unpacked');
  mkdirSync(unpacked);
  run('tar', ['-C', unpacked, '-xf', archive]);
  const layerFile = join(unpacked, 'blobs', 'sha256', layerHex);
  const original = readFileSync(layerFile);
  const damaged = Buffer.from(original);
  damaged[damaged.length - 2048] ^= 0xff;
  writeFileSync(layerFile, damaged);
  const bad1 = join(work, 'digest.tar');
  run('tar', ['-C', unpacked, '-cf', bad1, '.']);
  await check(bad1, new RegExp(`entry blobs/sha256/${layerHex}: content has digest sha256:[a-f0-9]{64}, expected sha256:${layerHex}`));
  writeFileSync(layerFile, original);

  // A docker-archive (manifest.json only) whose layer is not what the config's diff_ids say.
  const config = readFileSync(join(unpacked, 'blobs', 'sha256', id.slice(7)));
  const otherLayer = await makeTar([{ name: 'etc/', type: 'directory' }, { name: 'etc/evil', data: 'x' }]);
  const bad2 = join(work, 'diffid.tar');
  writeFileSync(bad2, await makeTar([
    { name: 'manifest.json', data: JSON.stringify([{ Config: 'cfg.json', RepoTags: ['broken:1'], Layers: ['abc/layer.tar'] }]) },
    { name: 'cfg.json', data: config },
    { name: 'abc/layer.tar', data: otherLayer },
  ]));
  await check(bad2, new RegExp(`layer abc/layer.tar of image 1 of manifest.json \\(broken:1\\) has diff_id ${digestOf(otherLayer)}, but the image config says ${img.RootFS.Layers[0]}`));

  // A manifest that points outside the archive.
  const bad3 = join(work, 'outside.tar');
  writeFileSync(bad3, await makeTar([
    { name: 'manifest.json', data: JSON.stringify([{ Config: 'cfg.json', RepoTags: ['evil:1'], Layers: ['../../../etc/passwd'] }]) },
    { name: 'cfg.json', data: config },
  ]));
  await check(bad3, /layer 1 of image 1 of manifest.json \(evil:1\) refers to "..\/..\/..\/etc\/passwd", which is not a file in the archive/);

  // A truncated archive, and something that is not an archive at all.
  const bad4 = join(work, 'truncated.tar');
  writeFileSync(bad4, readFileSync(archive).subarray(0, Math.floor(statSync(archive).size / 2)));
  await check(bad4, /archive .*truncated\.tar is not a readable image archive/);
  const bad5 = join(work, 'gz-truncated.tar.gz');
  await ok(['image', 'save', '-o', bad5, 'good'], { root });
  truncateSync(bad5, Math.floor(statSync(bad5).size / 2));
  await check(bad5, /is not a readable image archive/);
  const bad6 = join(work, 'text.tar');
  writeFileSync(bad6, 'hello, this is not a tar file at all\n'.repeat(40));
  await check(bad6, /is not a readable image archive/);

  // A manifest.json over the 1 MiB cap.
  const bad7 = join(work, 'huge.tar');
  writeFileSync(bad7, await makeTar([{ name: 'manifest.json', data: `[${' '.repeat(1 << 20)}]` }]));
  await check(bad7, /manifest.json is \d+ bytes, more than the 1048576-byte limit/);

  await fails(['image', 'load', '-i', join(work, 'missing.tar')], { root: target }, /cannot read archive .*missing\.tar/);
  assert.deepEqual((await ok(['images', '--format', '{{.Repository}}'], { root: target })).stdout, 'already\n');
});

test('SIGKILL during load leaves no half-written blob and no broken name', async (t) => {
  const root = tempDir(t);
  const work = tempDir(t);
  const dir = makeBusyboxRootfs(join(work, 'rootfs'));
  // A big layer: 48 MiB that do not compress.
  const { randomBytes } = await import('node:crypto');
  const big = Buffer.alloc(48 << 20);
  for (let off = 0; off < big.length; off += 1 << 20) randomBytes(1 << 20).copy(big, off);
  writeFileSync(join(dir, 'big.bin'), big);
  await ok(['image', 'import', dir, 'big:1'], { root });
  const archive = join(work, 'big.tar');
  await ok(['image', 'save', '-o', archive, 'big:1'], { root });
  const data = readFileSync(archive);

  const target = tempDir(t);
  await ok(['info'], { root: target }); // create the store
  const child = spawn(process.execPath, [DIMG_BIN, 'image', 'load'], { env: { ...process.env, DIMG_ROOT: target }, stdio: ['pipe', 'ignore', 'pipe'] });
  child.stdin.on('error', () => {}); // the kill may close the pipe while we write
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_c, s) => resolve(s)));
  // Feed 60% of the archive, wait until a blob is being written, then kill.
  child.stdin.write(data.subarray(0, Math.floor(data.length * 0.6)));
  const tmp = join(target, 'tmp');
  const deadline = Date.now() + 30_000;
  let partial = false;
  while (!partial && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    partial = readdirSync(tmp).some((f) => f.startsWith(`blob-${child.pid}-`) && statSync(join(tmp, f)).size > 1 << 20);
  }
  assert.ok(partial, 'the load was writing a blob when killed');
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');

  const index = assertStoreSound(target);
  assert.deepEqual(index.manifests, [], 'no name was set');
  assert.ok(readdirSync(tmp).some((f) => f.startsWith(`blob-${child.pid}-`)), 'the partial blob stayed in tmp/, outside blobs/');
  await ok(['store', 'verify'], { root: target });
  assert.ok(!readdirSync(tmp).some((f) => f.startsWith(`blob-${child.pid}-`)), 'the next dimg run removed the dead process\'s temp file');
  // And a complete load afterwards works.
  assert.equal((await ok(['image', 'load', '-i', archive], { root: target })).stdout, 'Loaded image: big:1\n');
  assertStoreSound(target);
});
