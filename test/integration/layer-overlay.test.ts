import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs, existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import tarStream from 'tar-stream';
import { packDirectory, extractLayer } from '../../src/layer/index.js';
import { tempDir } from '../support/tmp.js';
import { requireRoot, requireTool, run } from '../support/tools.js';
import { packWithTarStream } from '../support/nasty-tars.js';

async function toBuffer(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function names(tar: Buffer): Promise<Array<[string, string, number]>> {
  const ex = tarStream.extract();
  Readable.from([tar]).pipe(ex as unknown as NodeJS.WritableStream);
  const out: Array<[string, string, number]> = [];
  for await (const e of ex) {
    for await (const _ of e) { /* drain */ }
    out.push([e.header.name, e.header.type, e.header.mode]);
  }
  return out;
}

function getfattr(path: string, name: string): string | undefined {
  const out = run('getfattr', ['-h', '--absolute-names', '-d', '-e', 'text', '-m', `^${name.replace(/\./g, '\\.')}$`, path]);
  const m = out.match(new RegExp(`${name.replace(/\./g, '\\.')}="(.*)"`));
  return m?.[1];
}

/** cap_setfcap=ep: its permitted word ends in 0x80, which is not valid UTF-8 on its own. */
const CAP = '0x0100000200000080000000000000000000000000';

function getfattrHex(path: string, name: string): string | undefined {
  const out = run('getfattr', ['-h', '--absolute-names', '-d', '-e', 'hex', '-m', `^${name.replace(/\./g, '\\.')}$`, path]);
  return out.match(new RegExp(`${name.replace(/\./g, '\\.')}=(0x[0-9a-f]+)`))?.[1];
}

/** A lower tree as a base image would have it. */
async function lowerTree(dir: string): Promise<void> {
  await fs.mkdir(join(dir, 'etc/conf.d'), { recursive: true });
  await fs.writeFile(join(dir, 'etc/keep'), 'keep');
  await fs.writeFile(join(dir, 'etc/remove-me'), 'old');
  await fs.writeFile(join(dir, 'etc/conf.d/old-1'), 'old');
  await fs.writeFile(join(dir, 'etc/conf.d/old-2'), 'old');
  await fs.mkdir(join(dir, 'var/cache'), { recursive: true });
  await fs.writeFile(join(dir, 'var/cache/blob'), 'old');
}

test('overlay upper dir → layer → overlay lowerdir and flattened rootfs: whiteouts round trip through a real mount', async (t) => {
  requireRoot('the overlay whiteout round trip');
  requireTool('setfattr', 'attr');
  requireTool('mount', 'mount');
  const work = tempDir(t);
  const [lower, upper, wd, merged] = ['lower', 'upper', 'work', 'merged'].map((d) => join(work, d)) as [string, string, string, string];
  for (const d of [lower, upper, wd, merged]) await fs.mkdir(d);
  await lowerTree(lower);

  // What a RUN would do: delete a file, replace a directory wholesale, delete a directory, add a file.
  run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${wd},redirect_dir=off,metacopy=off`, merged]);
  try {
    await fs.rm(join(merged, 'etc/remove-me'));
    await fs.rm(join(merged, 'etc/conf.d'), { recursive: true });
    await fs.mkdir(join(merged, 'etc/conf.d'));
    await fs.writeFile(join(merged, 'etc/conf.d/new'), 'new');
    await fs.rm(join(merged, 'var/cache'), { recursive: true });
    await fs.writeFile(join(merged, 'added'), 'added');
    await fs.writeFile(join(merged, 'captool'), 'binary');
    run('setfattr', ['-n', 'security.capability', '-v', CAP, join(merged, 'captool')]);
  } finally {
    run('umount', [merged]);
  }
  assert.ok(lstatSync(join(upper, 'etc/remove-me')).isCharacterDevice(), 'the kernel recorded the deletion as a 0/0 device');
  assert.equal(getfattr(join(upper, 'etc/conf.d'), 'trusted.overlay.opaque'), 'y');

  const tar = await toBuffer(packDirectory(upper, { overlay: true }));
  const entries = await names(tar);
  assert.deepEqual(entries.map(([n, ty]) => `${n} ${ty}`), [
    'added file',
    'captool file',
    'etc/ directory',
    'etc/.wh.remove-me file',
    'etc/conf.d/ directory',
    'etc/conf.d/.wh..wh..opq file',
    'etc/conf.d/new file',
    'var/ directory',
    'var/.wh.cache file',
  ]);
  assert.equal(entries.find(([n]) => n === 'etc/.wh.remove-me')![2], 0o600);

  // GNU tar reads the recorded capability (binary, with a byte that is not UTF-8) back unchanged.
  const gnu = join(work, 'gnu');
  await fs.mkdir(gnu);
  await fs.writeFile(join(work, 'layer.tar'), tar);
  run('tar', ['--xattrs', '--xattrs-include=security.capability', '-xpf', join(work, 'layer.tar'), '-C', gnu, 'captool']);
  assert.equal(getfattrHex(join(gnu, 'captool'), 'security.capability'), CAP);

  // Overlay mode: a fresh lowerdir with the kernel's own representation, and no marker files.
  const layerDir = join(work, 'layer');
  const r = await extractLayer(Readable.from([tar]), layerDir, { mode: 'overlay' });
  assert.equal(r.whiteouts, 3);
  const dev = lstatSync(join(layerDir, 'etc/remove-me'));
  assert.ok(dev.isCharacterDevice());
  assert.equal(dev.rdev, 0);
  assert.ok(lstatSync(join(layerDir, 'var/cache')).isCharacterDevice());
  assert.equal(getfattr(join(layerDir, 'etc/conf.d'), 'trusted.overlay.opaque'), 'y');
  assert.deepEqual(readdirSync(join(layerDir, 'etc')).sort(), ['conf.d', 'remove-me']);
  assert.deepEqual(readdirSync(join(layerDir, 'etc/conf.d')), ['new']);
  assert.equal(getfattrHex(join(layerDir, 'captool'), 'security.capability'), CAP, 'binary xattr survives extraction');

  // The kernel agrees: stacking the extracted layer on the lower tree hides exactly what was deleted.
  const view = join(work, 'view');
  await fs.mkdir(view);
  run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${layerDir}:${lower}`, view]);
  try {
    assert.deepEqual(readdirSync(join(view, 'etc')).sort(), ['conf.d', 'keep']);
    assert.deepEqual(readdirSync(join(view, 'etc/conf.d')), ['new']);
    assert.deepEqual(readdirSync(join(view, 'var')), []);
    assert.equal(readFileSync(join(view, 'added'), 'utf8'), 'added');
  } finally {
    run('umount', [view]);
  }

  // Flatten mode over a copy of the lower tree gives the same view as plain files.
  const flat = join(work, 'flat');
  await lowerTree(flat);
  await extractLayer(Readable.from([tar]), flat, { mode: 'flatten' });
  assert.deepEqual(readdirSync(join(flat, 'etc')).sort(), ['conf.d', 'keep']);
  assert.deepEqual(readdirSync(join(flat, 'etc/conf.d')), ['new']);
  assert.deepEqual(readdirSync(join(flat, 'var')), []);
  assert.ok(!existsSync(join(flat, 'etc/.wh.remove-me')));
});

test('flatten: an opaque marker keeps what the same layer put there before it; overlay xattrs in PAX are never applied', async (t) => {
  requireRoot('overlay xattr checks');
  const dir = tempDir(t);
  await fs.mkdir(join(dir, 'd'));
  await fs.writeFile(join(dir, 'd/lower'), 'lower');
  const tar = await packWithTarStream([
    { header: { name: 'd/', type: 'directory', mode: 0o755 } },
    { header: { name: 'd/early', type: 'file' }, data: 'same layer, before the marker' },
    { header: { name: 'd/.wh..wh..opq', type: 'file' } },
    { header: { name: 'd/.wh..wh.plnk', type: 'file' } },
    { header: { name: 'forged/', type: 'directory', pax: { 'SCHILY.xattr.trusted.overlay.opaque': 'y', 'SCHILY.xattr.user.note': 'hello' } } },
  ]);
  await extractLayer(Readable.from([tar]), dir, { mode: 'flatten' });
  assert.deepEqual(readdirSync(join(dir, 'd')), ['early']);
  assert.equal(getfattr(join(dir, 'forged'), 'trusted.overlay.opaque'), undefined, 'a layer cannot forge an opaque directory');
  assert.equal(getfattr(join(dir, 'forged'), 'user.note'), 'hello', 'other PAX xattrs are applied');

  const lowerdir = join(tempDir(t), 'l');
  await extractLayer(Readable.from([tar]), lowerdir, { mode: 'overlay' });
  assert.equal(getfattr(join(lowerdir, 'd'), 'trusted.overlay.opaque'), 'y');
  assert.equal(getfattr(join(lowerdir, 'forged'), 'trusted.overlay.opaque'), undefined);
  assert.deepEqual(readdirSync(join(lowerdir, 'd')), ['early']);
});
