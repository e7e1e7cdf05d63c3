import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { promises as fs, readdirSync, readFileSync, lstatSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { extractLayer } from '../../src/layer/index.js';
import { isDimgError } from '../../src/errors.js';
import { nastyTars, packWithTarStream } from '../support/nasty-tars.js';
import { tempDir } from '../support/tmp.js';

/** A parent dir holding `target/` (empty) and `sentinel/secret`, the thing attacks aim at. */
async function arena(t: Parameters<typeof tempDir>[0]) {
  const parent = tempDir(t);
  const target = join(parent, 'target');
  const sentinel = join(parent, 'sentinel');
  await fs.mkdir(target);
  await fs.mkdir(sentinel);
  await fs.writeFile(join(sentinel, 'secret'), 'original');
  return { parent, target, sentinel };
}

function assertOutsideUntouched(a: { parent: string; sentinel: string }) {
  assert.deepEqual(readdirSync(a.parent).sort(), ['sentinel', 'target']);
  assert.deepEqual(readdirSync(a.sentinel), ['secret']);
  assert.equal(readFileSync(join(a.sentinel, 'secret'), 'utf8'), 'original');
}

test('every nasty tarball is refused with a DimgError naming the entry, and nothing outside the target changes', async (t) => {
  const probe = await arena(t);
  const cases = await nastyTars(probe.sentinel);
  assert.ok(cases.length >= 18);
  for (const c of cases) {
    const a = await arena(t);
    const tars = await nastyTars(a.sentinel); // archives that aim at this arena's own sentinel
    const tar = tars.find((x) => x.label === c.label)!.tar;
    for (const mode of ['flatten', 'overlay'] as const) {
      await fs.rm(a.target, { recursive: true, force: true });
      await fs.mkdir(a.target);
      await assert.rejects(
        extractLayer(Readable.from([tar]), a.target, { mode, limits: c.limits }),
        (err: unknown) => {
          assert.ok(isDimgError(err, c.code), `${c.label} (${mode}): expected ${c.code}, got ${String(err)}`);
          assert.match((err as Error).message, c.message, c.label);
          return true;
        },
      );
      assertOutsideUntouched(a);
    }
  }
});

test('absolute entry names are re-rooted inside the target', async (t) => {
  const a = await arena(t);
  const tar = await packWithTarStream([{ header: { name: `${a.sentinel}/pwned`, type: 'file', mode: 0o644 }, data: 'inside' }]);
  await extractLayer(Readable.from([tar]), a.target, { mode: 'flatten' });
  assertOutsideUntouched(a);
  assert.equal(readFileSync(join(a.target, a.sentinel, 'pwned'), 'utf8'), 'inside');
});

test('a planted symlink is replaced, never followed, when a later entry has its name', async (t) => {
  const a = await arena(t);
  const tar = await packWithTarStream([
    { header: { name: 'link', type: 'symlink', linkname: join(a.sentinel, 'secret') } },
    { header: { name: 'link', type: 'file', mode: 0o600 }, data: 'replaced' },
    { header: { name: 'dirlink', type: 'symlink', linkname: a.sentinel } },
    { header: { name: 'dirlink/', type: 'directory', mode: 0o755 } },
    { header: { name: 'dirlink/x', type: 'file' }, data: 'in a real dir' },
  ]);
  await extractLayer(Readable.from([tar]), a.target, { mode: 'flatten' });
  assertOutsideUntouched(a);
  assert.equal(readFileSync(join(a.target, 'link'), 'utf8'), 'replaced');
  assert.ok(lstatSync(join(a.target, 'dirlink')).isDirectory());
  assert.equal(readFileSync(join(a.target, 'dirlink/x'), 'utf8'), 'in a real dir');
});

test('flatten mode follows symlinks of lower layers inside the root only (chroot semantics)', async (t) => {
  const a = await arena(t);
  await fs.mkdir(join(a.target, 'usr/lib'), { recursive: true });
  await fs.symlink('usr/lib', join(a.target, 'lib'));
  await fs.symlink('/../../../sentinel', join(a.target, 'evil')); // lexically clamped at the root
  const tar = await packWithTarStream([
    { header: { name: 'lib/libx.so', type: 'file' }, data: 'lib' },
    { header: { name: 'evil/pwned', type: 'file' }, data: 'x' },
  ]);
  await extractLayer(Readable.from([tar]), a.target, { mode: 'flatten' });
  assertOutsideUntouched(a);
  assert.equal(readFileSync(join(a.target, 'usr/lib/libx.so'), 'utf8'), 'lib');
  assert.equal(readFileSync(join(a.target, 'sentinel/pwned'), 'utf8'), 'x');
  assert.equal(readlinkSync(join(a.target, 'lib')), 'usr/lib');
});

test('gzip input is detected and extracted; modes, mtimes, ownership and hard links are applied', async (t) => {
  const a = await arena(t);
  const tar = await packWithTarStream([
    { header: { name: 'etc/', type: 'directory', mode: 0o750, uid: 12, gid: 34, mtime: new Date(1_000_000_000 * 1000) } },
    { header: { name: 'etc/app.conf', type: 'file', mode: 0o4755, uid: 12, gid: 34, mtime: new Date(1_500_000_000 * 1000) }, data: 'k=v\n' },
    { header: { name: 'etc/hard', type: 'link', linkname: 'etc/app.conf' } },
    { header: { name: 'etc/soft', type: 'symlink', linkname: 'app.conf', uid: 5, gid: 6, mtime: new Date(1_200_000_000 * 1000) } },
    { header: { name: 'fifo', type: 'fifo', mode: 0o640 } },
  ]);
  const r = await extractLayer(Readable.from([gzipSync(tar)]), a.target, { mode: 'flatten' });
  assert.deepEqual(r, { entries: 5, bytes: 4, whiteouts: 0 });
  const etc = lstatSync(join(a.target, 'etc'));
  assert.equal(etc.mode & 0o7777, 0o750);
  assert.equal(etc.mtimeMs, 1_000_000_000_000, 'directory mtime set after its children were written');
  const conf = lstatSync(join(a.target, 'etc/app.conf'));
  assert.equal(conf.mode & 0o7777, 0o4755, 'setuid survives chown');
  assert.equal(conf.mtimeMs, 1_500_000_000_000);
  assert.equal(lstatSync(join(a.target, 'etc/hard')).ino, conf.ino);
  const soft = lstatSync(join(a.target, 'etc/soft'));
  assert.ok(soft.isSymbolicLink());
  assert.equal(soft.mtimeMs, 1_200_000_000_000);
  assert.ok(lstatSync(join(a.target, 'fifo')).isFIFO());
  if (process.getuid?.() === 0) {
    assert.equal(conf.uid, 12);
    assert.equal(conf.gid, 34);
    assert.equal(soft.uid, 5, 'symlinks are lchowned');
  }
});

test('a corrupt or truncated archive fails with LAYER_CORRUPT naming the subject', async (t) => {
  const a = await arena(t);
  const tar = await packWithTarStream([{ header: { name: 'f', type: 'file' }, data: 'x'.repeat(2000) }]);
  await assert.rejects(extractLayer(Readable.from([tar.subarray(0, 1024)]), a.target, { mode: 'flatten', subject: 'layer sha256:abc' }), (e: unknown) => isDimgError(e, 'LAYER_CORRUPT') && /layer sha256:abc/.test((e as Error).message));
  const gz = gzipSync(tar);
  await assert.rejects(extractLayer(Readable.from([gz.subarray(0, gz.length - 10)]), a.target, { mode: 'flatten', subject: 'layer sha256:def' }), (e: unknown) => isDimgError(e, 'LAYER_CORRUPT') && /sha256:def/.test((e as Error).message));
});

test('devices are created only with allowDevices', async (t) => {
  const a = await arena(t);
  const tar = await packWithTarStream([{ header: { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 } }]);
  await extractLayer(Readable.from([tar]), a.target, { mode: 'flatten', allowDevices: true });
  const st = lstatSync(join(a.target, 'dev/null'));
  assert.ok(st.isCharacterDevice());
  assert.equal(st.rdev, (1 << 8) | 3);
});
