/**
 * Layer dirs the builder keeps instead of unpacking: a RUN step's upperdir and a COPY layer written
 * while it was packed must be exactly what unpacking the layer's tar gives (types, modes, owners,
 * mtimes, contents, symlink targets, hard links, whiteouts, opaque dirs), or later RUN steps would
 * see a different root than a machine that unpacks the same layers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync, linkSync, symlinkSync, chmodSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Store } from '../../src/store/store.js';
import { storeOptions } from '../../src/store/defaults.js';
import { buildImage } from '../../src/builder/index.js';
import { chainIds } from '../../src/store/overlay.js';
import { extractLayer, packSources, hashTar } from '../../src/layer/index.js';
import { LayerMirror, type LayerSource } from '../../src/layer/index.js';
import type { ImageSpec, Step } from '../../src/specfile/model.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { requireRoot } from '../support/tools.js';
import { tempDir } from '../support/tmp.js';
import { imageSpec } from '../support/image-spec.js';
import { closeSync, createWriteStream, openSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { packSourcesToFile } from '../../src/layer/tar-writer.js';

const run_ = (cmd: string): Step => ({ kind: 'run', form: 'shell', command: [cmd], env: {}, network: 'none', secrets: [] });

function spec(rootfs: string, context: string, steps: Step[]): ImageSpec {
  return imageSpec('dirs', { kind: 'rootfs', path: rootfs }, steps, { context });
}

/** One line per entry: path, type, mode, owner, mtime (not for whiteouts), size/content digest or link target, xattrs. */
function describeTree(root: string): string[] {
  const out: string[] = [];
  const inodes = new Map<number, string>();
  const visit = (dir: string, rel: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(p);
      const kind = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : st.isCharacterDevice() ? `chr ${st.rdev}` : 'other';
      let extra = '';
      if (st.isFile()) {
        extra = `${st.size} ${readFileSync(p).toString('base64').slice(0, 40)}`;
        const first = inodes.get(st.ino);
        if (st.nlink > 1) {
          if (first) extra += ` link-of ${first}`;
          else inodes.set(st.ino, r);
        }
      }
      if (st.isSymbolicLink()) extra = `-> ${readlinkSync(p)}`;
      const whiteout = st.isCharacterDevice() && st.rdev === 0;
      const xattrs = spawnSync('getfattr', ['-h', '-d', '-m', '^trusted\\.overlay\\.opaque$|^security\\.', '--absolute-names', p], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l && !l.startsWith('#')).join(',');
      // A whiteout's mode and times are never seen through the mount (overlayfs makes them 0000).
      if (whiteout) out.push(`${r} whiteout ${st.uid}:${st.gid}`);
      else out.push(`${r} ${kind} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${Math.floor(st.mtimeMs / 1000)} ${extra} ${xattrs}`);
      if (st.isDirectory()) visit(p, r);
    }
  };
  visit(root, '');
  return out;
}

test('layer dirs kept from RUN upperdirs and from packing COPY layers equal their unpacked tars', async (t) => {
  requireRoot('RUN steps and overlay layer dirs');
  const work = tempDir(t);
  const rootfs = makeBusyboxRootfs(join(work, 'rootfs'));
  mkdirSync(join(rootfs, 'var', 'lib', 'old'), { recursive: true });
  writeFileSync(join(rootfs, 'var', 'lib', 'old', 'a'), 'a\n');
  writeFileSync(join(rootfs, 'etc', 'motd'), 'hello\n');
  const ctx = join(work, 'ctx');
  mkdirSync(join(ctx, 'sub', 'deep'), { recursive: true });
  writeFileSync(join(ctx, 'a.txt'), 'alpha\n');
  writeFileSync(join(ctx, 'sub', 'deep', 'b.sh'), '#!/bin/sh\necho b\n');
  chmodSync(join(ctx, 'sub', 'deep', 'b.sh'), 0o4755);
  linkSync(join(ctx, 'a.txt'), join(ctx, 'sub', 'a-hard.txt'));
  symlinkSync('../a.txt', join(ctx, 'sub', 'a-link'));
  writeFileSync(join(ctx, 'big.bin'), Buffer.alloc(3 << 20, 7));
  utimesSync(join(ctx, 'a.txt'), 5, 5);
  // A pack records (for the next build to reuse) only files left alone for 2 s: a same-size rewrite
  // within the file system's timestamp tick would keep their stat key (git's racy-clean rule).
  await new Promise((r) => setTimeout(r, 2100));
  let unpacked = 0;
  const real = storeOptions().unpack!;
  const store = await Store.open(join(work, 'store'), { unpack: (tar, dir) => (unpacked++, real(tar, dir)) });
  const s = spec(rootfs, work, [
    { kind: 'workdir', path: '/app' },
    run_('mkdir -p gen && echo one > gen/1 && ln gen/1 gen/1.hard && ln -s gen/1 one.link && rm /etc/motd && rm -rf /var/lib/old && mkdir /var/lib/old && echo new > /var/lib/old/b && chown 65534:65534 gen/1'),
    { kind: 'copy', src: ['ctx/'], to: '/app/src/', chown: '1000:1000' },
    run_('find /app/src -type f | wc -l > /app/count'),
  ]);
  const built = await buildImage(s, { store, project: 'p', sourceDateEpoch: 1000 });
  const diffIds = built.config.rootfs.diff_ids;
  const chains = chainIds(diffIds);
  // Layers 1..3 (RUN, COPY, RUN) were kept rather than unpacked; each must equal its tar unpacked.
  for (let i = 1; i < diffIds.length; i++) {
    const kept = await store.overlay.get(chains[i]!);
    assert.ok(kept, `layer ${i} has a layer dir without unpacking`);
    const fresh = join(work, `unpacked-${i}`);
    await extractLayer(store.blobs.open(diffIds[i]!), fresh, { mode: 'overlay' });
    assert.deepEqual(describeTree(kept.diffDir), describeTree(fresh), `layer ${i}: kept dir and unpacked tar differ`);
  }
  const run1 = describeTree((await store.overlay.get(chains[1]!))!.diffDir).join('\n');
  assert.match(run1, /^etc\/motd whiteout /m, 'the deleted base file is a whiteout');
  assert.match(run1, /^var\/lib\/old dir .*trusted\.overlay\.opaque="y"/m, 'the replaced dir is opaque');
  assert.match(run1, /gen\/1\.hard file .* link-of app\/gen\/1|app\/gen\/1\.hard file .* link-of app\/gen\/1/);
  assert.match(readFileSync(join((await store.overlay.get(chains[3]!))!.diffDir, 'app', 'count'), 'utf8'), /^4\n$/);
  assert.equal(unpacked, 1, 'only the base layer was unpacked from its tar');

  // One context file changed: the new COPY layer dir hard-links the unchanged files from the old one
  // and writes the changed file; both kept dirs still equal their unpacked tars.
  writeFileSync(join(ctx, 'sub', 'deep', 'b.sh'), '#!/bin/sh\necho changed\n');
  const again = await buildImage(s, { store, project: 'p', sourceDateEpoch: 1000 });
  const chains2 = chainIds(again.config.rootfs.diff_ids);
  assert.equal(chains2[1], chains[1], 'the RUN before the COPY is cached');
  assert.notEqual(chains2[2], chains[2]);
  for (const i of [2, 3]) {
    const kept = (await store.overlay.get(chains2[i]!))!;
    const fresh = join(work, `unpacked-again-${i}`);
    await extractLayer(store.blobs.open(again.config.rootfs.diff_ids[i]!), fresh, { mode: 'overlay' });
    assert.deepEqual(describeTree(kept.diffDir), describeTree(fresh), `rebuilt layer ${i}: kept dir and unpacked tar differ`);
  }
  const oldCopy = (await store.overlay.get(chains[2]!))!.diffDir;
  const newCopy = (await store.overlay.get(chains2[2]!))!.diffDir;
  assert.equal(lstatSync(join(newCopy, 'app', 'src', 'big.bin')).ino, lstatSync(join(oldCopy, 'app', 'src', 'big.bin')).ino, 'an unchanged file is linked, not written again');
  assert.notEqual(lstatSync(join(newCopy, 'app', 'src', 'sub', 'deep', 'b.sh')).ino, lstatSync(join(oldCopy, 'app', 'src', 'sub', 'deep', 'b.sh')).ino);
  assert.match(readFileSync(join(newCopy, 'app', 'src', 'sub', 'deep', 'b.sh'), 'utf8'), /changed/);
  assert.match(readFileSync(join(oldCopy, 'app', 'src', 'sub', 'deep', 'b.sh'), 'utf8'), /echo b/, 'the old layer dir is untouched');
  assert.equal(unpacked, 1, 'still nothing unpacked');
  // The rebuilt COPY layer copied unchanged contents from the previous layer tar: it must be the very
  // layer a fresh store builds from the same files.
  const other = await Store.open(join(work, 'store-fresh'), storeOptions());
  const fresh = await buildImage(s, { store: other, project: 'p', sourceDateEpoch: 1000 });
  assert.deepEqual(fresh.config.rootfs.diff_ids, again.config.rootfs.diff_ids, 'an incremental rebuild equals a fresh build');
});

test('a pack with a mirror writes the tree extractLayer would unpack, and refuses what it cannot reproduce', async (t) => {
  const work = tempDir(t);
  const src = join(work, 'src');
  mkdirSync(join(src, 'd', 'e'), { recursive: true });
  writeFileSync(join(src, 'd', 'small'), 'x'.repeat(1000));
  writeFileSync(join(src, 'big'), Buffer.alloc((1 << 20) + 17, 3));
  linkSync(join(src, 'd', 'small'), join(src, 'd', 'e', 'hard'));
  symlinkSync('/nowhere', join(src, 'dangling'));
  // A setgid directory of another group: its files must still end up with their own group (0).
  writeFileSync(join(src, 'd', 'plain'), 'p');
  chownSync(join(src, 'd'), 0, 50);
  chmodSync(join(src, 'd'), 0o2750);
  const mirror = new LayerMirror({ dir: join(work, 'mirror') });
  mkdirSync(mirror.dir);
  const tarPath = join(work, 'layer.tar');
  await hashTar(packSources([{ from: src, to: 'opt/x' }, { entry: { path: 'etc/explicit', type: 'file', data: Buffer.from('e'), mode: 0o600, uid: 7, gid: 8, mtime: 99 } }], { sourceDateEpoch: 50, parentAttrs: () => ({ mode: 0o711, uid: 0, gid: 0, mtime: 3 }) }), createWriteStream(join(work, 'plain.tar')));
  const sources: LayerSource[] = [
    { from: src, to: 'opt/x' },
    { entry: { path: 'etc/explicit', type: 'file', data: Buffer.from('e'), mode: 0o600, uid: 7, gid: 8, mtime: 99 } },
  ];
  const packOpts = { sourceDateEpoch: 50, parentAttrs: () => ({ mode: 0o711, uid: 0, gid: 0, mtime: 3 }) };
  await hashTar(packSources(sources, { ...packOpts, observers: [mirror] }), createWriteStream(tarPath));
  assert.equal(mirror.complete, true);
  assert.deepEqual(readFileSync(tarPath), readFileSync(join(work, 'plain.tar')), 'mirroring does not change the tar');
  // Packing straight into a file gives the same bytes and digest as the stream.
  const direct = join(work, 'direct.tar');
  const fd = openSync(direct, 'w');
  const got = await packSourcesToFile([{ from: src, to: 'opt/x' }, { entry: { path: 'etc/explicit', type: 'file', data: Buffer.from('e'), mode: 0o600, uid: 7, gid: 8, mtime: 99 } }], { sourceDateEpoch: 50, parentAttrs: () => ({ mode: 0o711, uid: 0, gid: 0, mtime: 3 }) }, fd);
  closeSync(fd);
  assert.deepEqual(readFileSync(direct), readFileSync(tarPath));
  assert.equal(got.size, readFileSync(tarPath).length);
  assert.equal(got.diffId, `sha256:${createHash('sha256').update(readFileSync(tarPath)).digest('hex')}`);
  const fresh = join(work, 'fresh');
  await extractLayer((await import('node:fs')).createReadStream(tarPath), fresh, { mode: 'overlay' });
  assert.deepEqual(describeTree(mirror.dir), describeTree(fresh));

  // A FIFO cannot be created without mknod: the mirror says it is incomplete, the tar is still right.
  spawnSync('mkfifo', [join(src, 'fifo')]);
  const m2 = new LayerMirror({ dir: join(work, 'mirror2') });
  mkdirSync(m2.dir);
  await hashTar(packSources([{ from: src, to: '' }], { observers: [m2] }), createWriteStream(join(work, 'fifo.tar')));
  assert.equal(m2.complete, false);
});

test('a name that is not UTF-8 is refused, a real U+FFFD in a name is not', async (t) => {
  const work = tempDir(t);
  const bad = join(work, 'bad');
  mkdirSync(bad);
  writeFileSync(Buffer.concat([Buffer.from(`${bad}/name-`), Buffer.from([0xff])]), 'x');
  await assert.rejects(hashTar(packSources([{ from: bad, to: '' }]), createWriteStream(join(work, 'bad.tar'))), (e: Error & { code?: string }) => e.code === 'LAYER_NAME_ENCODING');
  const good = join(work, 'good');
  mkdirSync(good);
  writeFileSync(join(good, 'ok\ufffd'), 'y');
  writeFileSync(join(good, 'é'), 'z');
  await hashTar(packSources([{ from: good, to: '' }]), createWriteStream(join(work, 'good.tar')));
});

test('a RUN upperdir with a device node is not kept (unpacking would refuse it); whiteouts are fine', async (t) => {
  requireRoot('mknod');
  const { settleRunDiff } = await import('../../src/builder/layer-dirs.js');
  const work = tempDir(t);
  mkdirSync(join(work, 'ok', 'd'), { recursive: true });
  spawnSync('mknod', [join(work, 'ok', 'd', 'gone'), 'c', '0', '0']);
  writeFileSync(join(work, 'ok', 'd', 'f'), 'x');
  settleRunDiff(join(work, 'ok'), 0);
  assert.equal(Math.floor(lstatSync(join(work, 'ok', 'd', 'f')).mtimeMs), 0, 'mtimes are clamped to the epoch');
  mkdirSync(join(work, 'dev'));
  spawnSync('mknod', [join(work, 'dev', 'null'), 'c', '1', '3']);
  assert.throws(() => settleRunDiff(join(work, 'dev'), 0), /device node/);
});
