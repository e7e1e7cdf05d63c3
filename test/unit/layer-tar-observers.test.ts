/**
 * The tar writer's seam (layer/tar-entry.ts): observers and a content source attach to a pack without
 * changing one byte of it, and each sees what it needs — offsets that are where the tar puts the
 * contents, a mirror directory holding the files, contents reused from the previous tar.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, fstatSync, linkSync, lstatSync, mkdirSync, openSync, readFileSync, readSync } from 'node:fs';
import { readlinkSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { LayerMirror, OffsetRecorder, PreviousTarReader } from '../../src/layer/index.js';
import { packSources, packSourcesToFile } from '../../src/layer/index.js';
import type { LayerSource, PackOptions, PackedFile, TarEntry, TarObserver } from '../../src/layer/index.js';
import { isDimgError } from '../../src/errors.js';
import { tempDir } from '../support/tmp.js';

/** A tree with every kind of entry the writer hands to observers: small, empty and big files, links. */
function sourceTree(dir: string): void {
  mkdirSync(join(dir, 'etc', 'app'), { recursive: true });
  for (let i = 0; i < 40; i++) {
    writeFileSync(join(dir, 'etc', `f${String(i).padStart(2, '0')}`), `file ${i}\n`.repeat(1 + i * 13));
  }
  writeFileSync(join(dir, 'etc', 'app', 'empty'), '');
  writeFileSync(join(dir, 'big.bin'), Buffer.alloc(2 * 1024 * 1024 + 333, 0x5a));
  writeFileSync(join(dir, 'mid.bin'), Buffer.alloc(200 * 1024, 0x33));
  writeFileSync(join(dir, `${'long-name-'.repeat(12)}.txt`), 'needs a PAX header\n');
  linkSync(join(dir, 'etc', 'f01'), join(dir, 'etc', 'app', 'f01.hard'));
  symlinkSync('../big.bin', join(dir, 'etc', 'big-link'));
}

const OPTS: PackOptions = { sourceDateEpoch: 1_700_000_000, owner: { uid: 0, gid: 0 } };

function sourcesOf(dir: string): LayerSource[] {
  return [
    { from: dir, to: 'srv' },
    { entry: { path: 'etc/explicit', type: 'file', data: Buffer.from('explicit\n'), mode: 0o640, mtime: 5 } },
  ];
}

async function streamed(s: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function toFile(work: string, sources: LayerSource[], opts: PackOptions): Promise<Buffer> {
  const path = join(work, `pack-${Math.random().toString(36).slice(2)}.tar`);
  const fd = openSync(path, 'w');
  try {
    await packSourcesToFile(sources, opts, fd);
  } finally {
    closeSync(fd);
  }
  return readFileSync(path);
}

/** Both ways of packing, which must agree with each other too. */
async function packBoth(work: string, sources: LayerSource[], opts: () => PackOptions): Promise<Buffer> {
  const a = await streamed(packSources(sources, opts()));
  const b = await toFile(work, sources, opts());
  assert.ok(a.equals(b), 'packSources and packSourcesToFile give the same bytes');
  return a;
}

/** Keeps what an observer is told, copying the buffers it is lent. */
class Spy implements TarObserver {
  readonly entries: Array<{ entry: TarEntry; encoded: Buffer; content: Buffer | undefined; chunks: Buffer[] }> = [];
  finished = 0;
  aborted = 0;
  entry(entry: TarEntry, content: Buffer | undefined): void {
    const copy = content && Buffer.from(content);
    this.entries.push({ entry, encoded: Buffer.from(entry.encoded), content: copy, chunks: [] });
  }
  chunk(data: Buffer): void {
    this.entries[this.entries.length - 1]!.chunks.push(Buffer.from(data));
  }
  finish(): void {
    this.finished++;
  }
  abort(): void {
    this.aborted++;
  }
}

function previousAt(tar: string, files: ReadonlyMap<string, PackedFile>): PreviousTarReader {
  return new PreviousTarReader({
    tar,
    files,
    open: () => {
      const fd = openSync(tar, 'r');
      return {
        size: fstatSync(fd).size,
        read: (into, offset, length, position) => readSync(fd, into, offset, length, position),
        close: () => closeSync(fd),
      };
    },
  });
}

test('observers and a content source leave the tar byte-identical; each sees what it needs', async (t) => {
  const work = tempDir(t);
  const src = join(work, 'src');
  sourceTree(src);
  const sources = sourcesOf(src);
  const plain = await packBoth(work, sources, () => OPTS);

  // Every entry is told with the header bytes the tar holds right before its offset, and its content
  // (whole or in chunks) is what the tar holds at that offset.
  const spy = new Spy();
  const observed = await streamed(packSources(sources, { ...OPTS, observers: [spy] }));
  assert.ok(observed.equals(plain), 'an observer does not change the tar');
  assert.equal(spy.finished, 1);
  assert.equal(spy.aborted, 0);
  assert.ok(spy.entries.length > 45);
  let end = 0;
  for (const { entry, encoded, content, chunks } of spy.entries) {
    const before = plain.subarray(entry.offset - encoded.length, entry.offset);
    assert.ok(before.equals(encoded), `${entry.header.name}: header right before its offset`);
    assert.ok(entry.offset - encoded.length >= end, 'entries come in archive order');
    const size = entry.header.size;
    const got = content ?? (chunks.length > 0 ? Buffer.concat(chunks) : undefined);
    const at = plain.subarray(entry.offset, entry.offset + size);
    if (size > 0) assert.ok(got?.equals(at), `${entry.header.name}: content at its offset`);
    if (entry.header.type === 'file') assert.equal(got?.length ?? 0, size);
    assert.equal(entry.reused, false, 'nothing is reused without a content source');
    end = entry.offset + size;
  }
  const big = spy.entries.find((e) => e.entry.header.name === 'srv/big.bin')!;
  assert.equal(big.content, undefined, 'a big file comes in chunks');
  assert.ok(big.chunks.length >= 3);
  assert.equal(big.entry.source?.path, join(src, 'big.bin'));
  const explicit = spy.entries.find((e) => e.entry.header.name === 'etc/explicit')!;
  assert.equal(explicit.entry.source, undefined, 'explicit data has no source');

  // OffsetRecorder: every regular file read from disk, at the offset its content really has.
  const recorder = new OffsetRecorder({ changedBefore: Date.now() + 3_600_000 });
  assert.ok((await packBoth(work, sources, () => ({ ...OPTS, observers: [recorder] }))).equals(plain));
  // 40 small files, the empty one, big and mid, the PAX-named one; not the hard link or explicit data.
  assert.equal(recorder.files.size, 40 + 1 + 2 + 1);
  for (const [name, f] of recorder.files) {
    const path = join(src, name.slice('srv/'.length));
    const bytes = readFileSync(path);
    assert.ok(plain.subarray(f.offset, f.offset + bytes.length).equals(bytes), `${name}: content at its offset`);
    assert.ok(f.origin.startsWith(`${path}\0`));
  }
  const racy = new OffsetRecorder();
  await streamed(packSources(sources, { ...OPTS, observers: [racy] }));
  assert.equal(racy.files.size, 0, 'files written within the last 2 s are not recorded');

  // LayerMirror: the directory holds the files with the tar's contents, modes and clamped mtimes.
  const mirror = new LayerMirror({ dir: join(work, 'mirror') });
  mkdirSync(mirror.dir);
  const mirrored = await toFile(work, sources, { ...OPTS, observers: [mirror] });
  assert.ok(mirrored.equals(plain), 'mirroring does not change the tar');
  assert.equal(mirror.complete, true);
  for (const { entry } of spy.entries) {
    const at = join(mirror.dir, entry.header.name);
    const st = lstatSync(at);
    if (entry.header.type !== 'symlink') assert.equal(st.mode & 0o7777, entry.header.mode & 0o7777, entry.header.name);
    if (entry.header.type === 'file') {
      const content = plain.subarray(entry.offset, entry.offset + entry.header.size);
      assert.ok(readFileSync(at).equals(content), `${entry.header.name} in the mirror`);
      assert.equal(Math.floor(st.mtimeMs / 1000), entry.header.mtime);
    }
    if (entry.header.type === 'symlink') assert.equal(readlinkSync(at), entry.header.linkname);
    if (entry.header.type === 'link') assert.equal(st.ino, lstatSync(join(mirror.dir, entry.header.linkname!)).ino);
  }

  // PreviousTarReader: unchanged files come from the previous tar (reused), a changed one from disk.
  writeFileSync(join(work, 'first.tar'), plain);
  writeFileSync(join(src, 'etc', 'f07'), 'changed\n');
  utimesSync(join(src, 'etc', 'f07'), 1, 1);
  const fresh = await packBoth(work, sources, () => OPTS);
  assert.ok(!fresh.equals(plain));
  const settled = { changedBefore: Date.now() + 3_600_000 };
  const all = [new Spy(), new OffsetRecorder(settled), new LayerMirror({ dir: join(work, 'mirror2') })] as const;
  mkdirSync(all[2].dir);
  const content = previousAt(join(work, 'first.tar'), recorder.files);
  const reused = await toFile(work, sources, { ...OPTS, content, observers: all });
  assert.ok(reused.equals(fresh), 'reusing the previous tar, with every observer attached, gives the fresh bytes');
  const reusedNames = all[0].entries.filter((e) => e.entry.reused).map((e) => e.entry.header.name);
  assert.equal(reusedNames.length, recorder.files.size - 1, 'every recorded file but the changed one is reused');
  assert.ok(reusedNames.includes('srv/big.bin') && reusedNames.includes('srv/etc/f08'));
  assert.ok(!reusedNames.includes('srv/etc/f07'));
  assert.equal(all[2].complete, true);
  assert.equal(readFileSync(join(all[2].dir, 'srv', 'etc', 'f07'), 'utf8'), 'changed\n');
  // Offsets are recorded alike for reused contents: where the new tar holds them.
  assert.equal(all[1].files.size, recorder.files.size);
  for (const [name, f] of all[1].files) {
    const bytes = readFileSync(join(src, name.slice('srv/'.length)));
    assert.ok(reused.subarray(f.offset, f.offset + bytes.length).equals(bytes), `${name}: offset in the new tar`);
  }
});

test('a pack that fails aborts its observers and closes its content source; the mirror is incomplete', async (t) => {
  const work = tempDir(t);
  const src = join(work, 'src');
  sourceTree(src);
  // An observer that removes a file the writer has walked but not read yet: the pack must fail.
  const saboteur: TarObserver = {
    entry: (e) => {
      if (e.header.name === 'srv/etc/f01') rmSync(join(src, 'etc', 'f02'));
    },
  };
  const spy = new Spy();
  const mirror = new LayerMirror({ dir: join(work, 'mirror') });
  mkdirSync(mirror.dir);
  let closed = 0;
  const content = { small: () => undefined, large: () => undefined, close: () => void closed++ };
  await assert.rejects(
    streamed(packSources(sourcesOf(src), { ...OPTS, observers: [saboteur, spy, mirror], content })),
    (e: unknown) => isDimgError(e, 'LAYER_BAD_SOURCE') && /f02/.test((e as Error).message),
  );
  assert.equal(spy.aborted, 1);
  assert.equal(spy.finished, 0);
  assert.equal(mirror.complete, false);
  assert.equal(closed, 1);
});
