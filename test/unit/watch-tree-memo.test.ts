/**
 * Watch reuses rootfs and context walks across cycles (WatchTreeMemo): the memo's rules on their own,
 * how the watch set classifies paths the watcher never watches, and the real pieces together — the
 * spec loader, resolveSpec (the keys the planner and builder share) and the chokidar FileWatcher on
 * real files — showing that a cycle re-walks exactly the trees that had a file event.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Digest } from '../../src/oci/digest.js';
import { ContextKeyer, type TreeDigestMemo } from '../../src/builder/keys.js';
import { FileDigests } from '../../src/builder/file-digests.js';
import { loadSpec } from '../../src/specfile/load.js';
import { nodeSpecPorts } from '../../src/specfile/node-ports.js';
import { Store } from '../../src/store/store.js';
import { BaseResolver } from '../../src/resolve/bases.js';
import { resolveSpec, type ResolvedSpec } from '../../src/resolve/desired.js';
import { FileWatcher, WatchTreeMemo, relevance, watchSetOf, type WatchSet } from '../../src/watch/index.js';
import { tempDir } from '../support/tmp.js';

const D1 = `sha256:${'1'.repeat(64)}` as Digest;
const D2 = `sha256:${'2'.repeat(64)}` as Digest;

/** A watch set with these tree roots (only what the memo reads of it). */
function setOf(...trees: string[]): WatchSet {
  return { files: new Map(), trees: trees.map((path) => ({ path, images: [] })), anchors: [...trees].sort(), storeRoot: '/nonexistent-store' };
}

/** A memo covering `trees` (announced twice, as the loop does at start and at its first evaluation). */
function coveringMemo(...trees: string[]): WatchTreeMemo {
  const m = new WatchTreeMemo();
  m.watching(setOf(...trees));
  m.watching(setOf(...trees));
  return m;
}

test('tree memo: a walk is reused until an event at, under or above one of its roots', async () => {
  const m = coveringMemo('/p/rootfs', '/p/web');
  let walks = 0;
  const walk = (d: Digest) => async () => (walks++, d);
  assert.equal(await m.digest('k', ['/p/rootfs'], walk(D1)), D1);
  assert.equal(await m.digest('k', ['/p/rootfs'], walk(D2)), D1, 'remembered');
  assert.equal(walks, 1);
  m.changed('/p/web/index.html'); // another tree
  m.changed('/p/rootfsX/file'); // a sibling whose name starts alike
  assert.equal(await m.digest('k', ['/p/rootfs'], walk(D2)), D1);
  m.changed('/p/rootfs/etc/passwd'); // under the root
  assert.equal(await m.digest('k', ['/p/rootfs'], walk(D2)), D2, 'walked again after an event under the root');
  m.changed('/p'); // above it (a parent renamed or removed)
  assert.equal(await m.digest('k', ['/p/rootfs'], walk(D1)), D1);
  m.changed('/p/rootfs'); // the root itself
  assert.equal(await m.digest('k', ['/p/rootfs'], walk(D2)), D2);
  assert.equal(walks, 4);
  // a file root (a copy source, an ignore file)
  await m.digest('c', ['/p/web/index.html', '/p/web/.dockerignore'], walk(D1));
  m.changed('/p/web/other.html');
  assert.equal(await m.digest('c', ['/p/web/index.html', '/p/web/.dockerignore'], walk(D2)), D1);
  m.changed('/p/web/.dockerignore');
  assert.equal(await m.digest('c', ['/p/web/index.html', '/p/web/.dockerignore'], walk(D2)), D2);
});

test('tree memo: a walk during which its root changed is used once but not remembered', async () => {
  const m = coveringMemo('/p/rootfs');
  const during = async () => {
    m.changed('/p/rootfs/bin/sh');
    return D1;
  };
  assert.equal(await m.digest('k', ['/p/rootfs'], during), D1);
  assert.equal(m.size, 0);
  let walked = false;
  await m.digest('k', ['/p/rootfs'], async () => ((walked = true), D2));
  assert.ok(walked, 'walked again');
  assert.equal(m.size, 1);
});

test('tree memo: nothing is remembered outside the watched trees, across a blind path, a reset or a new watch set', async () => {
  let walks = 0;
  const walk = async () => (walks++, D1);
  const twice = async (m: WatchTreeMemo, roots: string[]) => {
    walks = 0;
    await m.digest('k', roots, walk);
    await m.digest('k', roots, walk);
    return walks;
  };
  assert.equal(await twice(coveringMemo('/p/rootfs'), ['/p/other']), 2, 'a root outside every tree');
  assert.equal(await twice(new WatchTreeMemo(), ['/p/rootfs']), 2, 'no watch set announced (watch --once)');
  const once = new WatchTreeMemo();
  once.watching(setOf('/p/rootfs'));
  assert.equal(await twice(once, ['/p/rootfs']), 2, 'a watch set seen at one evaluation only');

  const blind = coveringMemo('/p/ctx');
  blind.unwatched('/p/ctx/.git');
  assert.equal(await twice(blind, ['/p/ctx']), 2, 'a walk reading an unwatched .git');
  assert.equal(await twice(blind, ['/p/ctx/src']), 1, 'a walk beside it is fine');

  const reset = coveringMemo('/p/rootfs');
  await reset.digest('k', ['/p/rootfs'], walk);
  reset.reset();
  assert.equal(reset.size, 0);
  reset.watching(setOf('/p/rootfs'));
  assert.equal(await twice(reset, ['/p/rootfs']), 2, 'not at the first evaluation after a reset');
  reset.watching(setOf('/p/rootfs'));
  assert.equal(await twice(reset, ['/p/rootfs']), 1, 'again from the second');

  const moved = coveringMemo('/p/rootfs');
  await moved.digest('k', ['/p/rootfs'], walk);
  moved.watching(setOf('/p/rootfs', '/p/web'));
  assert.equal(moved.size, 0, 'a new watch set forgets everything');
});

test('watch set: the store and .git are "unwatched" where a walk would read them, "ignored" where the ignore file excludes them', async (t) => {
  const dir = tempDir(t);
  for (const d of ['ctx', 'ctx-ign', 'rootfs']) mkdirSync(join(dir, d));
  writeFileSync(join(dir, 'ctx-ign', '.dockerignore'), '.git\n');
  writeFileSync(join(dir, 'images.yaml'), `version: 1
project: rel
images:
  a:
    from: { rootfs: ./rootfs }
    context: ./ctx
    steps: [{ copy: ".", to: /a/ }]
  b:
    from: scratch
    context: ./ctx-ign
    steps: [{ copy: ".", to: /b/ }]
`);
  const spec = await loadSpec(join(dir, 'images.yaml'), nodeSpecPorts({ env: {} }));
  const set = await watchSetOf(spec, join(dir, 'ctx', '.store'));
  assert.equal(relevance(set, join(dir, 'ctx', 'main.c')), 'watched');
  assert.equal(relevance(set, join(dir, 'ctx', '.git')), 'unwatched');
  assert.equal(relevance(set, join(dir, 'ctx', '.store')), 'unwatched');
  assert.equal(relevance(set, join(dir, 'rootfs', '.git')), 'unwatched');
  assert.equal(relevance(set, join(dir, 'ctx-ign', '.git')), 'ignored');
  assert.equal(relevance(set, join(dir, 'elsewhere', '.git')), 'ignored');
});

test('watch set: a directory that is both a context with an ignore file and a rootfs is watched whole', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'tree'));
  writeFileSync(join(dir, 'tree', '.dockerignore'), '*.log\n');
  writeFileSync(join(dir, 'images.yaml'), `version: 1
project: both
images:
  c:
    from: scratch
    context: ./tree
    steps: [{ copy: ".", to: /c/ }]
  r:
    from: { rootfs: ./tree }
`);
  const spec = await loadSpec(join(dir, 'images.yaml'), nodeSpecPorts({ env: {} }));
  const set = await watchSetOf(spec, join(dir, 'store'));
  const st = { isDirectory: () => false } as import('node:fs').Stats;
  assert.equal(relevance(set, join(dir, 'tree', 'x.log'), st), 'watched', 'the rootfs reads x.log even though the context ignores it');
});

/** Resolves after the next watcher event for which `pred` holds (fails after 10 s). */
function nextEvent(events: string[], pred: (p: string) => boolean): Promise<void> {
  const start = events.length;
  return new Promise((resolve, reject) => {
    const end = Date.now() + 10_000;
    const poll = () => {
      if (events.slice(start).some(pred)) resolve();
      else if (Date.now() > end) reject(new Error(`no watcher event; saw ${JSON.stringify(events.slice(start))}`));
      else setTimeout(poll, 10);
    };
    poll();
  });
}

test('watch cycles re-walk only the rootfs and context copies that had file events (real watcher, real keys)', async (t) => {
  const dir = tempDir(t);
  for (const r of ['ra', 'rb']) {
    mkdirSync(join(dir, r, 'etc'), { recursive: true });
    writeFileSync(join(dir, r, 'etc', 'hostname'), `${r}\n`);
  }
  mkdirSync(join(dir, 'web'));
  writeFileSync(join(dir, 'web', 'index.html'), 'one\n');
  writeFileSync(join(dir, 'web', 'other.html'), 'other\n');
  writeFileSync(join(dir, 'images.yaml'), `version: 1
project: memo
images:
  a:
    from: { rootfs: ./ra }
    repository: t/a
    tags: ["1"]
  b:
    from: { rootfs: ./rb }
    repository: t/b
    tags: ["1"]
  web:
    from: a
    context: ./web
    steps: [{ copy: index.html, to: /srv/ }]
    repository: t/web
    tags: ["1"]
`);
  const storeRoot = join(dir, 'store');
  const store = await Store.open(storeRoot);
  const spec = await loadSpec(join(dir, 'images.yaml'), nodeSpecPorts({ env: {} }));
  const set = await watchSetOf(spec, storeRoot);
  const memo = new WatchTreeMemo();
  // What the walks are run for, by their first root (a rootfs dir, or a copy's first source).
  let walked: string[] = [];
  const counting: TreeDigestMemo = { digest: (key, roots, walk) => memo.digest(key, roots, () => (walked.push(roots[0]!), walk())) };
  const events: string[] = [];
  const watcher = await FileWatcher.start(set, {
    onChange: (p) => {
      memo.changed(p);
      events.push(p);
    },
    onNotice: () => undefined,
    onUnwatched: (p) => memo.unwatched(p),
    onReset: () => memo.reset(),
  });
  t.after(() => watcher.close());
  memo.watching(set);
  const digests = FileDigests.inMemory();
  const bases = new BaseResolver({ store });
  const cycle = async (): Promise<{ walked: string[]; inputs: Record<string, string> }> => {
    walked = [];
    memo.watching(set);
    const keyer = new ContextKeyer(spec.project, digests, counting);
    const r: ResolvedSpec = await resolveSpec(spec, { bases, keyer, prune: false });
    return { walked: walked.sort(), inputs: Object.fromEntries(r.desired.images.map((i) => [i.key, i.inputDigest])) };
  };
  const ra = join(dir, 'ra');
  const rb = join(dir, 'rb');
  const index = join(dir, 'web', 'index.html');

  const first = await cycle();
  assert.deepEqual(first.walked, [ra, rb, index].sort(), 'the first cycle walks everything');
  const second = await cycle();
  assert.deepEqual(second.walked, [], 'no event: nothing is walked again');
  assert.deepEqual(second.inputs, first.inputs);

  // A touch (mtime only) inside ra: ra is walked again (and its digest, content-only, is unchanged).
  let ev = nextEvent(events, (p) => p.startsWith(ra));
  const later = new Date(Date.now() + 5000);
  utimesSync(join(ra, 'etc', 'hostname'), later, later);
  await ev;
  const third = await cycle();
  assert.deepEqual(third.walked, [ra], 'only the touched rootfs is walked again');
  assert.deepEqual(third.inputs, first.inputs);

  // New content in rb: rb alone is walked, and b's input digest changes (a's and web's do not).
  ev = nextEvent(events, (p) => p.startsWith(rb));
  writeFileSync(join(rb, 'etc', 'hostname'), 'changed\n');
  await ev;
  const fourth = await cycle();
  assert.deepEqual(fourth.walked, [rb]);
  assert.notEqual(fourth.inputs.b, first.inputs.b);
  assert.equal(fourth.inputs.a, first.inputs.a);
  assert.equal(fourth.inputs.web, first.inputs.web);

  // A file of the context the copy does not read: nothing walked; the copied file: that copy.
  ev = nextEvent(events, (p) => p.endsWith('other.html'));
  writeFileSync(join(dir, 'web', 'other.html'), 'other 2\n');
  await ev;
  assert.deepEqual((await cycle()).walked, []);
  ev = nextEvent(events, (p) => p === index);
  writeFileSync(index, 'two\n');
  await ev;
  const sixth = await cycle();
  assert.deepEqual(sixth.walked, [index]);
  assert.notEqual(sixth.inputs.web, first.inputs.web);

  // A new ignore file in the context changes the copy's filter: walked again.
  ev = nextEvent(events, (p) => p.endsWith('.dockerignore'));
  writeFileSync(join(dir, 'web', '.dockerignore'), 'nothing-matches\n');
  await ev;
  assert.deepEqual((await cycle()).walked, [index]);
  assert.ok(memo.counts.hits > 0);
});
