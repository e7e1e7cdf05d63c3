/**
 * The two RootfsDriver implementations on their own (no RUN): what `prepare` gives (root, parents'
 * view, mount points kept out of the change) and what `diff` reads back after the root was changed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { sha256 } from '../../src/oci/digest.js';
import { copyRootfs, overlayRootfs } from '../../src/builder/rootfs-driver.js';
import type { ParentLayer } from '../../src/builder/sandbox.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { requireRoot, run } from '../support/tools.js';
import { tempDir } from '../support/tmp.js';
import { storeWithTarUnpack } from '../support/tar-store.js';

function parentOf(t: Parameters<typeof tempDir>[0]): ParentLayer {
  const dir = makeBusyboxRootfs(join(tempDir(t), 'rootfs'));
  const tarFile = join(tempDir(t), 'layer.tar');
  run('tar', ['-C', dir, '--numeric-owner', '-cf', tarFile, '.']);
  const data = readFileSync(tarFile);
  return { chainId: sha256(data), diffId: sha256(data), open: async () => Readable.from([data]) };
}

const points = [
  { rel: 'proc', kind: 'dir' as const },
  { rel: 'etc/hosts', kind: 'file' as const },
];

test('copy driver: a flattened root; the diff holds what changed after prepare, and no mount point', async (t) => {
  const ws = tempDir(t);
  const prepared = await copyRootfs().prepare(ws, [parentOf(t)], points);
  assert.ok(existsSync(join(prepared.root, 'bin', 'busybox')));
  assert.match((await prepared.view.readFile('etc/passwd')) ?? '', /^root:/);
  assert.deepEqual(prepared.usable.map((p) => p.rel), ['proc', 'etc/hosts']);
  assert.equal(prepared.mount, undefined);
  await fs.writeFile(join(prepared.root, 'made.txt'), 'x');
  await fs.rm(join(prepared.root, 'etc', 'group'));
  const diff = await prepared.diff();
  assert.deepEqual((await fs.readdir(diff)).sort(), ['etc', 'made.txt']);
  assert.deepEqual(await fs.readdir(join(diff, 'etc')), ['group'], 'only the whiteout of the removed file, not the hosts mount point');
  assert.ok((await fs.lstat(join(diff, 'etc', 'group'))).isCharacterDevice());
});

test('overlay driver: the parents stay shared in the store; mount points live in the init dir, the upperdir starts empty', async (t) => {
  requireRoot('the overlay driver test (unpacked layer dirs keep owners)');
  const store = await storeWithTarUnpack(join(tempDir(t), 'store'));
  const ws = join(store.overlay.dir, '.tmp-test-ws');
  await fs.mkdir(ws);
  t.after(() => fs.rm(ws, { recursive: true, force: true }));
  const prepared = await overlayRootfs(store).prepare(ws, [parentOf(t)], points);
  assert.equal(prepared.root, join(ws, 'merged'));
  assert.ok(prepared.mount && prepared.mount.cwd === store.overlay.dir);
  assert.equal(prepared.mount.lowers[0], '.tmp-test-ws/init', 'the init dir is the topmost lower dir');
  assert.ok(existsSync(join(ws, 'init', 'proc')) && existsSync(join(ws, 'init', 'etc', 'hosts')));
  assert.deepEqual(await fs.readdir(await prepared.diff()), []);
  assert.match((await prepared.view.readFile('etc/passwd')) ?? '', /^root:/);
});
