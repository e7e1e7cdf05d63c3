/**
 * `dimg info` reports what really works on this machine (checked against our own probes with the
 * same tools), and `dimg store verify [--repair]` finds and repairs damage done on purpose.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { dimg } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';
import { requireTool } from '../support/tools.js';
import { assertStoreSound, digestOf, importBusybox, ok } from './image-helpers.js';

function overlayWorksIn(dir: string): boolean {
  if (process.getuid?.() !== 0) return false;
  const d = mkdtempSync(join(dir, 'witness-'));
  for (const n of ['l', 'u', 'w', 'm']) mkdirSync(join(d, n));
  writeFileSync(join(d, 'l', 'f'), 'x');
  const m = spawnSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${d}/l,upperdir=${d}/u,workdir=${d}/w`, join(d, 'm')]);
  const ok = m.status === 0 && existsSync(join(d, 'm', 'f'));
  if (m.status === 0) spawnSync('umount', [join(d, 'm')]);
  rmSync(d, { recursive: true, force: true });
  return ok;
}

test('dimg info: store, driver, file system, counts and namespaces match what this machine can do', async (t) => {
  requireTool('unshare', 'util-linux');
  const root = tempDir(t);
  await importBusybox(t, root, 'busybox');
  const text = (await ok(['info'], { root })).stdout;
  const r = JSON.parse((await ok(['info', '--format', 'json'], { root })).stdout);
  assert.match(text, new RegExp(`^Store Root: ${root}$`, 'm'));
  assert.match(text, new RegExp(`^ Read it with: skopeo inspect oci:${join(root, 'oci')}:docker.io/library/busybox:latest$`, 'm'));
  const overlay = overlayWorksIn(join(root, 'tmp'));
  assert.equal(r.overlay.available, overlay);
  assert.match(text, overlay ? /^Storage Driver: overlay$/m : /^Storage Driver: vfs \(copy-based; overlay unavailable: .+\)$/m);
  const statType = spawnSync('stat', ['-f', '-c', '%T', root], { encoding: 'utf8' }).stdout.trim();
  if (statType === 'ext2/ext3') assert.match(r.backingFilesystem, /^extfs \(ext[234]\)$/);
  else assert.ok(r.backingFilesystem.length > 0);
  assert.equal(r.images, 1);
  assert.equal(r.tags, 1);
  assert.equal(r.layers, 1);
  assert.equal(r.blobs, 3);
  const blobDir = join(root, 'oci', 'blobs', 'sha256');
  const total = readdirSync(blobDir).reduce((n, f) => n + readFileSync(join(blobDir, f)).length, 0);
  assert.equal(r.totalSize, total);
  const ns = (args: string[]) => spawnSync('unshare', args).status === 0;
  assert.equal(r.namespaces.mount.available, ns(['--mount', 'true']));
  assert.equal(r.namespaces.pid.available, ns(['--mount', '--pid', '--fork', 'true']));
  assert.equal(r.namespaces.user.available, ns(['--user', 'true']));
  const crunVersion = spawnSync('crun', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0];
  assert.deepEqual(r.runRuntime, { available: true, version: crunVersion });
  assert.deepEqual(readdirSync(join(root, 'tmp')), [], 'the overlay probe cleans up');
});

test('store verify finds a corrupted blob, a broken name and bad records; --repair fixes them', async (t) => {
  const root = tempDir(t);
  await importBusybox(t, root, 'busybox');
  await importBusybox(t, root, 'other', ['-m', 'different']);
  const clean = await ok(['store', 'verify'], { root });
  assert.match(clean.stdout, /store OK/);

  const [bb] = JSON.parse((await ok(['image', 'inspect', 'busybox'], { root })).stdout);
  const [other] = JSON.parse((await ok(['image', 'inspect', 'other'], { root })).stdout);
  // Damage: the busybox config (the layer is shared with `other`), a cache entry, an overlay dir.
  const cfg = join(root, 'oci', 'blobs', 'sha256', bb.Id.slice(7));
  writeFileSync(cfg, readFileSync(cfg, 'utf8').replace('Imported', 'Imp0rted'));
  const key = digestOf('step');
  writeFileSync(join(root, 'cache', `${key.slice(7)}.json`), JSON.stringify({ key, blobs: [digestOf('gone')], created: 'now' }));
  writeFileSync(join(root, 'cache', `${digestOf('junk').slice(7)}.json`), '{not json');
  mkdirSync(join(root, 'overlay', digestOf('chain').slice(7), 'diff'), { recursive: true });

  const found = await dimg(['store', 'verify'], { root });
  assert.equal(found.code, 1);
  assert.match(found.stdout, new RegExp(`^problem: blob ${bb.Id} is corrupt: its content hashes to sha256:[a-f0-9]{64}$`, 'm'));
  assert.match(found.stdout, new RegExp(`^problem: image docker.io/library/busybox:latest is broken: config ${bb.Id} is missing or corrupt$`, 'm'));
  assert.match(found.stdout, new RegExp(`^problem: build-cache entry ${key} needs missing blob\\(s\\) ${digestOf('gone')}$`, 'm'));
  assert.match(found.stdout, /^problem: build-cache entry .* is unreadable$/m);
  assert.match(found.stdout, /^problem: layer dir .* has no link file$/m);
  assert.match(found.stdout, /5 problem\(s\) found; run `dimg store verify --repair`/);

  const repaired = await ok(['store', 'verify', '--repair'], { root });
  assert.match(repaired.stdout, /^repaired: blob .* is corrupt.* \(removed\)$/m);
  assert.match(repaired.stdout, /^repaired: image docker.io\/library\/busybox:latest is broken.* \(name removed\)$/m);
  assert.match(repaired.stdout, /5 problem\(s\) repaired/);
  assert.match((await ok(['store', 'verify'], { root })).stdout, /store OK/);
  assert.equal((await ok(['images', '--format', '{{.Repository}} {{.ID}}'], { root })).stdout, `other ${other.Id.slice(7, 19)}\n`);
  assertStoreSound(root);
});

test('store verify --repair rebuilds an unreadable index from the stored manifests', async (t) => {
  const root = tempDir(t);
  const id = await importBusybox(t, root, 'busybox');
  writeFileSync(join(root, 'oci', 'index.json'), '{"schemaVersion":2,"manifests":[');
  const broken = await dimg(['store', 'verify'], { root });
  assert.equal(broken.code, 1);
  assert.match(broken.stdout, /^problem: the store index .*index.json is unreadable/m);
  const fixed = await ok(['store', 'verify', '--repair'], { root });
  assert.match(fixed.stdout, /rebuilt with 1 dangling image\(s\); names are lost/);
  assert.equal((await ok(['images', '-q', '--no-trunc'], { root })).stdout, `${id}\n`);
  await ok(['image', 'tag', id.slice(7, 19), 'busybox'], { root });
  assert.match((await ok(['store', 'verify'], { root })).stdout, /store OK/);
});
