import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs, closeSync, createWriteStream, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { createServer } from 'node:net';
import tarStream from 'tar-stream';
import { packDirectory, packSources, hashTar, writeLayer } from '../../src/layer/index.js';
import type { PackOptions, LayerSource } from '../../src/layer/index.js';
import { OffsetRecorder, PreviousTarReader, type PackedFile } from '../../src/layer/index.js';
import type { PreviousPack } from '../../src/layer/previous-pack.js';
import { isDimgError } from '../../src/errors.js';
import { tempDir } from '../support/tmp.js';
import { requireTool, run } from '../support/tools.js';

/** A fixed tree whose bytes do not depend on umask, uid, or when it was made. */
async function goldenTree(dir: string, mtime: number): Promise<void> {
  const file = async (rel: string, data: string | Buffer, mode: number) => {
    await fs.mkdir(join(dir, rel, '..'), { recursive: true });
    await fs.writeFile(join(dir, rel), data);
    await fs.chmod(join(dir, rel), mode);
  };
  await file('bin/tool', '#!/bin/sh\necho tool\n', 0o755);
  await file('etc/app/config.yaml', 'key: value\n', 0o644);
  await file('etc/app/secret', 'hunter2\n', 0o600);
  await file('Zebra', 'capital letters sort first\n', 0o644);
  await file('a-b', 'dash sorts before slash\n', 0o644);
  await file(`deep/${'long-directory-name-'.repeat(8)}/${'f'.repeat(120)}`, 'needs PAX\n', 0o644);
  await file('unicode/été.txt', 'non-ASCII name\n', 0o644);
  await file('big.bin', Buffer.alloc(3 * 1024 * 1024 + 17, 0xab), 0o644);
  await fs.link(join(dir, 'etc/app/config.yaml'), join(dir, 'etc/app/config.hardlink'));
  await fs.symlink('../bin/tool', join(dir, 'etc/tool-link'));
  await fs.symlink(`/${'t'.repeat(150)}`, join(dir, 'long-symlink'));
  await fs.mkdir(join(dir, 'empty'));
  for (const d of ['', 'bin', 'etc', 'etc/app', 'empty', 'deep', `deep/${'long-directory-name-'.repeat(8)}`, 'unicode']) await fs.chmod(join(dir, d), 0o755);
  await fs.chmod(join(dir, 'etc/app'), 0o750);
  // Walk bottom-up so setting a child's time does not disturb its parent afterwards.
  const all = (run('find', [dir, '-depth']).trim().split('\n'));
  for (const p of all) await fs.lutimes(p, mtime, mtime);
  await fs.lutimes(join(dir, 'etc/app/secret'), 1_000_000_000, 1_000_000_000); // older than the epoch: kept
}


/** An earlier pack read from a plain file (in dimg it is a stored blob, opened by the store). */
function previousPackAt(tar: string, files: ReadonlyMap<string, PackedFile>): PreviousPack {
  return {
    tar,
    files,
    open: () => {
      const fd = openSync(tar, 'r');
      return { size: fstatSync(fd).size, read: (into, offset, length, position) => readSync(fd, into, offset, length, position), close: () => closeSync(fd) };
    },
  };
}

/** A pack's content source reusing the earlier pack `tar` (PackOptions.content). */
function previousAt(tar: string, files: ReadonlyMap<string, PackedFile>): PreviousTarReader {
  return new PreviousTarReader(previousPackAt(tar, files));
}

const GOLDEN_OPTS: PackOptions = { sourceDateEpoch: 1_700_000_000, owner: { uid: 0, gid: 0 } };
const GOLDEN_DIFF_ID = 'sha256:07c4652ebf4bfd97ce3b7e27db5d433ae28bd3199ce34dd34fc2f50238f0a69d';

async function diffIdOf(stream: Readable): Promise<{ diffId: string; size: number }> {
  return hashTar(stream, new Writable({ write: (_c, _e, cb) => cb() }));
}

/** Entries as tar-stream (an independent reader) sees them. */
async function listTar(tar: Buffer): Promise<Array<{ name: string; type: string; mode: number; uid: number; gid: number; mtime: number; linkname: string | null; size: number; data: Buffer; pax: unknown }>> {
  const ex = tarStream.extract();
  const out = [];
  const feed = Readable.from([tar]);
  feed.pipe(ex as unknown as Writable);
  for await (const e of ex) {
    const chunks: Buffer[] = [];
    for await (const c of e) chunks.push(c as Buffer);
    const h = e.header;
    out.push({ name: h.name, type: h.type, mode: h.mode, uid: h.uid, gid: h.gid, mtime: h.mtime.getTime() / 1000, linkname: h.linkname, size: h.size, data: Buffer.concat(chunks), pax: h.pax });
  }
  return out;
}

async function toBuffer(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

test('golden diff_id: a fixed tree packs to the same bytes whatever the umask, mtimes and file owner', async (t) => {
  const results = new Set<string>();
  for (const [mtime, umask] of [[1_800_000_000, 0o022], [1_750_000_000, 0o077]] as const) {
    const dir = tempDir(t);
    const old = process.umask(umask);
    try {
      await goldenTree(dir, mtime);
    } finally {
      process.umask(old);
    }
    if (process.getuid?.() === 0) await fs.lchown(join(dir, 'bin/tool'), 4242, 4242); // owner override hides it
    results.add((await diffIdOf(packDirectory(dir, GOLDEN_OPTS))).diffId);
  }
  assert.equal(results.size, 1, 'two differently-made copies of the tree pack identically');
  assert.equal([...results][0], GOLDEN_DIFF_ID);
});

test('entry order, attributes, PAX and hard links of a packed tree', async (t) => {
  const dir = tempDir(t);
  await goldenTree(dir, 1_800_000_000);
  const tar = await toBuffer(packDirectory(dir, GOLDEN_OPTS));
  const entries = await listTar(tar);
  const long = 'long-directory-name-'.repeat(8);
  assert.deepEqual(entries.map((e) => e.name), [
    'Zebra', 'a-b', 'big.bin', 'bin/', 'bin/tool', `deep/`, `deep/${long}/`, `deep/${long}/${'f'.repeat(120)}`, 'empty/',
    'etc/', 'etc/app/', 'etc/app/config.hardlink', 'etc/app/config.yaml', 'etc/app/secret', 'etc/tool-link', 'long-symlink',
    'unicode/', 'unicode/été.txt',
  ]);
  const by = new Map(entries.map((e) => [e.name, e]));
  assert.equal(by.get('etc/app/config.hardlink')!.type, 'file', 'first occurrence in archive order carries the content');
  assert.equal(by.get('etc/app/config.yaml')!.type, 'link');
  assert.equal(by.get('etc/app/config.yaml')!.linkname, 'etc/app/config.hardlink');
  assert.equal(by.get('etc/app/secret')!.mtime, 1_000_000_000, 'older mtimes are kept');
  assert.equal(by.get('bin/tool')!.mtime, 1_700_000_000, 'newer mtimes are clamped');
  assert.equal(by.get('etc/app/')!.mode, 0o750);
  assert.equal(by.get('etc/app/secret')!.mode, 0o600);
  assert.equal(by.get('long-symlink')!.linkname, `/${'t'.repeat(150)}`);
  assert.equal(by.get('big.bin')!.data.length, 3 * 1024 * 1024 + 17);
  assert.ok(by.get('big.bin')!.data.every((b) => b === 0xab));
  // PAX only where needed, never uname/gname.
  assert.ok(by.get(`deep/${long}/${'f'.repeat(120)}`)!.pax);
  assert.ok(by.get('unicode/été.txt')!.pax);
  assert.equal(by.get('bin/tool')!.pax, null);
  assert.equal(tar.length % 512, 0);
  assert.ok(tar.subarray(tar.length - 1024).every((b) => b === 0), 'ends with two zero blocks');
});

test('GNU tar agrees with the entry list and extracts identical content', async (t) => {
  requireTool('tar', 'tar');
  const dir = tempDir(t);
  await goldenTree(dir, 1_800_000_000);
  await fs.mkdir(join(dir, 'dev'));
  run('mkfifo', [join(dir, 'dev/pipe')]);
  const work = tempDir(t);
  const tarPath = join(work, 'layer.tar');
  const { diffId, size } = await hashTar(packDirectory(dir, GOLDEN_OPTS), createWriteStream(tarPath));
  assert.equal(diffId, `sha256:${createHash('sha256').update(readFileSync(tarPath)).digest('hex')}`);
  assert.equal(size, readFileSync(tarPath).length);
  const ours = (await listTar(readFileSync(tarPath))).map((e) => e.name);
  const listing = run('tar', ['--numeric-owner', '-tvf', tarPath], { env: { ...process.env, TZ: 'UTC', LC_ALL: 'C.UTF-8' } }).trim().split('\n');
  const gnuNames = listing.map((l) => l.replace(/^\S+\s+\S+\s+\d+\s+\S+\s+\S+\s+/, '').replace(/ (->|link to) .*$/, ''));
  assert.deepEqual(gnuNames, ours);
  const line = (name: string) => listing.find((l) => l.endsWith(` ${name}`) || l.includes(` ${name} `))!;
  assert.match(line('etc/app/secret'), /^-rw------- 0\/0 +8 2001-09-09 01:46 /);
  assert.match(line('dev/pipe'), /^prw-r--r-- 0\/0 /);
  assert.match(line('etc/tool-link'), /^lrwxrwxrwx 0\/0 .* -> \.\.\/bin\/tool$/);
  assert.match(line('etc/app/config.yaml'), /^hrw-r--r-- 0\/0 .* link to etc\/app\/config.hardlink$/);
  const out = join(work, 'x');
  await fs.mkdir(out);
  run('tar', ['-xf', tarPath, '-C', out]);
  assert.ok((await fs.lstat(join(out, 'dev/pipe'))).isFIFO());
  for (const d of [dir, out]) await fs.rm(join(d, 'dev/pipe')); // diff cannot compare FIFOs
  run('diff', ['-r', '--no-dereference', dir, out]);
});

test('prefix, chown, chmod and filter', async (t) => {
  const dir = tempDir(t);
  await fs.mkdir(join(dir, 'keep/sub'), { recursive: true });
  await fs.mkdir(join(dir, 'node_modules'));
  await fs.writeFile(join(dir, 'keep/sub/a'), 'a');
  await fs.writeFile(join(dir, 'node_modules/x'), 'x');
  await fs.writeFile(join(dir, 'skip.log'), 'log');
  const seen: string[] = [];
  const tar = await toBuffer(packDirectory(dir, {
    prefix: '/srv/app/',
    owner: { uid: 1000, gid: 1001 },
    mode: 0o640,
    dirMode: 0o711,
    filter: (rel, isDir) => {
      seen.push(`${rel}${isDir ? '/' : ''}`);
      return rel !== 'node_modules' && !rel.endsWith('.log');
    },
  }));
  assert.ok(!seen.includes('node_modules/x'), 'an excluded directory is not walked');
  const entries = await listTar(tar);
  assert.deepEqual(entries.map((e) => [e.name, e.mode.toString(8), e.uid, e.gid]), [
    ['srv/', '755', 0, 0],
    ['srv/app/', '711', 1000, 1001],
    ['srv/app/keep/', '711', 1000, 1001],
    ['srv/app/keep/sub/', '711', 1000, 1001],
    ['srv/app/keep/sub/a', '640', 1000, 1001],
  ]);
  assert.ok(entries.every((e) => e.mtime === 0), 'reproducible by default: SOURCE_DATE_EPOCH 0');
});

test('several sources into one layer: later sources win, explicit entries, parent attributes', async (t) => {
  const a = tempDir(t);
  const b = tempDir(t);
  await fs.writeFile(join(a, 'same'), 'from a');
  await fs.writeFile(join(a, 'only-a'), 'a');
  await fs.mkdir(join(a, 'turns-into-file'));
  await fs.writeFile(join(a, 'turns-into-file/child'), 'gone');
  await fs.writeFile(join(b, 'same'), 'from b');
  await fs.writeFile(join(b, 'turns-into-file'), 'file now');
  await fs.writeFile(join(b, 'single.txt'), 'single');
  const sources: LayerSource[] = [
    { from: a, to: '/dest' },
    { from: b, to: '/dest/' },
    { from: join(b, 'single.txt'), to: 'opt/renamed.txt' },
    { entry: { path: '/etc/generated', type: 'file', data: Buffer.from('gen'), mode: 0o600, uid: 7, gid: 8, mtime: 5 } },
    { entry: { path: 'etc/link', type: 'symlink', linkname: 'generated' } },
  ];
  const tar = await toBuffer(packSources(sources, { sourceDateEpoch: 100, owner: { uid: 0, gid: 0 }, parentAttrs: (p) => (p === 'opt' ? { mode: 0o700, uid: 0, gid: 0, mtime: 0 } : undefined) }));
  const entries = await listTar(tar);
  assert.deepEqual(entries.map((e) => e.name), ['dest/', 'dest/only-a', 'dest/same', 'dest/single.txt', 'dest/turns-into-file', 'etc/', 'etc/generated', 'etc/link', 'opt/', 'opt/renamed.txt']);
  const by = new Map(entries.map((e) => [e.name, e]));
  assert.equal(by.get('dest/same')!.data.toString(), 'from b');
  assert.equal(by.get('dest/turns-into-file')!.data.toString(), 'file now');
  assert.deepEqual([by.get('etc/generated')!.mode, by.get('etc/generated')!.uid, by.get('etc/generated')!.mtime], [0o600, 7, 5]);
  assert.equal(by.get('opt/')!.mode, 0o700);
  assert.equal(by.get('etc/')!.mode, 0o755);
});

test('writeLayer hashes the tar and the gzip blob in one pass; compression is deterministic', async (t) => {
  const dir = tempDir(t);
  await goldenTree(dir, 1_800_000_000);
  const chunks: Buffer[] = [];
  const sink = new Writable({ write: (c: Buffer, _e, cb) => { chunks.push(c); cb(); } });
  const w = await writeLayer(packDirectory(dir, GOLDEN_OPTS), sink, { compression: 'gzip', level: 6 });
  const blob = Buffer.concat(chunks);
  assert.equal(w.digest, `sha256:${createHash('sha256').update(blob).digest('hex')}`);
  assert.equal(w.blobSize, blob.length);
  const tar = gunzipSync(blob);
  assert.equal(w.diffId, `sha256:${createHash('sha256').update(tar).digest('hex')}`);
  assert.equal(w.diffId, GOLDEN_DIFF_ID);
  assert.equal(w.size, tar.length);
  const again = await writeLayer(packDirectory(dir, GOLDEN_OPTS), new Writable({ write: (_c, _e, cb) => cb() }), { compression: 'gzip', level: 6 });
  assert.equal(again.digest, w.digest);
});

test('pack failures are DimgErrors: missing source, whiteout-named file; sockets are skipped', async (t) => {
  const dir = tempDir(t);
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(join(dir, 'daemon.sock'), resolve));
  t.after(() => server.close());
  await fs.writeFile(join(dir, 'plain'), 'p');
  assert.deepEqual((await listTar(await toBuffer(packDirectory(dir)))).map((e) => e.name), ['plain']);
  await assert.rejects(toBuffer(packDirectory(join(dir, 'missing'))), (e: unknown) => isDimgError(e, 'LAYER_BAD_SOURCE') && /missing/.test((e as Error).message));
  await fs.writeFile(join(dir, '.wh.trick'), '');
  await assert.rejects(toBuffer(packDirectory(dir)), (e: unknown) => isDimgError(e, 'LAYER_BAD_SOURCE') && /\.wh\.trick.*whiteout/.test((e as Error).message));
});

test('an earlier pack\'s bytes are reused only for files unchanged since it was recorded, giving the same tar', async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, 'src');
  await goldenTree(src, 1_800_000_000);
  for (let i = 0; i < 300; i++) await fs.writeFile(join(src, 'etc', `f${String(i).padStart(3, '0')}`), `small file ${i}\n`.repeat(1 + (i % 7)));
  const packFile = async (opts: PackOptions, name: string): Promise<Buffer> => {
    const path = join(dir, name);
    const fh = await fs.open(path, 'w');
    try {
      const { packSourcesToFile } = await import('../../src/layer/tar-writer.js');
      await packSourcesToFile([{ from: src, to: 'app' }], opts, fh.fd);
    } finally {
      await fh.close();
    }
    return readFileSync(path);
  };
  // Every file here was written a moment ago: a pack records none of them (git's racy-clean rule),
  // since a same-size rewrite within the file system's timestamp tick would keep its stat key.
  const racy = new OffsetRecorder();
  await packFile({ ...GOLDEN_OPTS, observers: [racy] }, 'racy.tar');
  assert.equal(racy.files.size, 0, 'files changed within the last 2 s are not recorded');
  // The rest of this test records them anyway, as if they had been left alone long enough.
  const settled = { changedBefore: Date.now() + 3_600_000 };
  const recorder = new OffsetRecorder(settled);
  const record = recorder.files;
  const first = await packFile({ ...GOLDEN_OPTS, observers: [recorder] }, 'first.tar');
  assert.equal(record.size, 308, 'every regular file read from disk is recorded once (the hard link is not)');
  for (const [name, f] of record) {
    // The recorded offset is where the content starts: the header block before it names the file.
    // (Long and non-ASCII names are in a PAX header before it, the USTAR name is a stand-in.)
    if (/^[ -~]{1,100}$/.test(name)) assert.equal(first.subarray(f.offset - 512, f.offset - 412).toString('latin1').replace(/\0+$/, ''), name);
  }

  // Edits: one small file changed, one added, one removed, `secret` rewritten with the same size (its
  // old mtime was below the epoch: the header changes too), and f001 rewritten with the same size
  // and, its mtime being clamped to the epoch either way, the same header: only its stat key differs.
  await fs.writeFile(join(src, 'etc', 'f001'), 'SMALL FILE 1\nSMALL FILE 1\n');
  await fs.writeFile(join(src, 'etc', 'f007'), 'changed\n');
  await fs.writeFile(join(src, 'etc', 'new-file'), 'added\n');
  await fs.rm(join(src, 'etc', 'f100'));
  await fs.writeFile(join(src, 'etc', 'app', 'secret'), 'hunter3\n');
  const fresh = (opts: PackOptions) => packFile(opts, 'fresh.tar');
  const again = new OffsetRecorder(settled);
  /** Options that reuse the earlier pack `tar` of this directory. */
  const reusing = (tar: string, files = record): PackOptions => ({
    ...GOLDEN_OPTS,
    content: previousAt(join(dir, tar), files),
  });
  const reused = await packFile({ ...reusing('first.tar'), observers: [again] }, 'again.tar');
  assert.ok(reused.equals(await fresh(GOLDEN_OPTS)), 'reusing the earlier tar gives the bytes of a fresh pack');
  assert.equal(again.files.size, 308);

  // The reuse is real: a forged earlier tar (same headers, other content) shows through for unchanged
  // files only. Changed files, and files whose header differs, are read from disk.
  const forged = Buffer.from(first);
  for (const f of record.values()) forged.fill(0x2a, f.offset, f.offset + 3);
  await fs.writeFile(join(dir, 'forged.tar'), forged);
  const fromForged = await packFile(reusing('forged.tar'), 'from-forged.tar');
  const entries = new Map((await listTar(fromForged)).map((e) => [e.name, e.data.toString('latin1')]));
  assert.match(entries.get('app/etc/f002')!, /^\*\*\*ll file 2/, 'an unchanged small file comes from the earlier tar');
  assert.equal(entries.get('app/etc/f001'), 'SMALL FILE 1\nSMALL FILE 1\n', 'a same-size rewrite with the same header is read from disk (stat key)');
  assert.match(entries.get('app/big.bin')!, /^\*\*\*/, 'an unchanged big file comes from the earlier tar');
  assert.equal(entries.get('app/etc/f007'), 'changed\n', 'a changed file is read from disk');
  assert.equal(entries.get('app/etc/app/secret'), 'hunter3\n');
  const chmodded = await packFile({ ...reusing('forged.tar'), mode: 0o640 }, 'chmod.tar');
  assert.ok(chmodded.equals(await fresh({ ...GOLDEN_OPTS, mode: 0o640 })), 'another mode changes every header: nothing is reused');

  // A recorded offset that points elsewhere, an earlier tar cut short or gone: read from disk instead.
  const shifted = new Map([...record].map(([k, v]) => [k, { ...v, offset: v.offset + 512 }]));
  assert.ok((await packFile(reusing('forged.tar', shifted), 'x.tar')).equals(await fresh(GOLDEN_OPTS)));
  await fs.writeFile(join(dir, 'short.tar'), first.subarray(0, first.length >> 1));
  const fromShort = await packFile(reusing('short.tar'), 'y.tar');
  assert.ok(fromShort.equals(await fresh(GOLDEN_OPTS)), 'contents beyond a truncated tar are read from disk');
  assert.ok((await packFile(reusing('gone.tar'), 'z.tar')).equals(await fresh(GOLDEN_OPTS)));
  // The streaming packer reuses the same way.
  const streamedReuse = await toBuffer(packSources([{ from: src, to: 'app' }], reusing('first.tar')));
  assert.ok(streamedReuse.equals(await fresh(GOLDEN_OPTS)));
});
