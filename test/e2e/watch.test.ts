/**
 * `dimg watch` end to end: the real CLI as a long-running child process, real inotify events, the
 * real registry with skopeo as the witness. Waits on output lines, never on blind sleeps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync, readFileSync, readdirSync, utimesSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { DIMG_BIN, dimg } from '../support/cli.js';
import { startRegistry } from '../support/registry.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { tempDir } from '../support/tmp.js';
import { requireRoot, requireTool, run } from '../support/tools.js';
import { remoteDigest } from '../support/skopeo.js';

const TIMEOUT = 60_000;

function specText(host: string, opts: { tags?: string[]; slow?: boolean } = {}): string {
  return `version: 1
project: watch-e2e
registries:
  dev: { url: ${host}, insecure: true }
  prod: { url: prod.invalid:5000 }
images:
  base:
    from: { rootfs: ./rootfs }
  web:
    from: base
    context: ./web
    steps:
      - copy: index.html
        to: /srv/
    repository: w/web
    tags: ${JSON.stringify(opts.tags ?? ['1'])}
    push: [dev, prod]
    watchTags: ["*"]
${
  opts.slow
    ? `  slow:
    from: base
    context: ./slow
    steps:
      - copy: data.txt
        to: /data.txt
      - run: sleep 20
    repository: w/slow
    tags: ["1"]
    push: [dev]
    watchTags: ["*"]
`
    : ''
}`;
}

function project(t: Parameters<typeof tempDir>[0], host: string, opts: { slow?: boolean } = {}) {
  const dir = tempDir(t);
  makeBusyboxRootfs(join(dir, 'rootfs'));
  mkdirSync(join(dir, 'web', 'junk'), { recursive: true });
  writeFileSync(join(dir, 'web', 'index.html'), '<h1>one</h1>\n');
  writeFileSync(join(dir, 'web', '.dockerignore'), 'ignored.log\n');
  mkdirSync(join(dir, 'slow'));
  writeFileSync(join(dir, 'slow', 'data.txt'), 'one\n');
  writeFileSync(join(dir, 'images.yaml'), specText(host, opts));
  mkdirSync(join(dir, 'web', '.git'));
  // The store inside a context: it must never be watched (builds write to it: that would loop).
  return { dir, root: join(dir, 'web', '.dimg-store') };
}

/** A running `dimg watch` with its output, and waits on it. */
class Watch {
  readonly child: ChildProcess;
  out = '';
  err = '';
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;

  /** `dimg watch ARGS`, or with `wrap`, `WRAP... node dimg watch ARGS` (e.g. under unshare). */
  constructor(args: string[], cwd: string, root: string, wrap: string[] = []) {
    const argv = [...wrap, process.execPath, DIMG_BIN, 'watch', ...args];
    this.child = spawn(argv[0]!, argv.slice(1), { cwd, env: { ...process.env, DIMG_ROOT: root, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (b: Buffer) => (this.out += b.toString('utf8')));
    this.child.stderr!.on('data', (b: Buffer) => (this.err += b.toString('utf8')));
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal, at: Date.now() })));
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Output (stdout + stderr) after character offsets `from`. */
  since(from: { out: number; err: number }): string {
    return this.out.slice(from.out) + this.err.slice(from.err);
  }

  mark(): { out: number; err: number } {
    return { out: this.out.length, err: this.err.length };
  }

  /** Resolves with the text since `from` once it matches `re`; fails after TIMEOUT or if the process dies. */
  async waitFor(re: RegExp, from = { out: 0, err: 0 }): Promise<string> {
    const deadline = Date.now() + TIMEOUT;
    for (;;) {
      const text = this.since(from);
      if (re.test(text)) return text;
      if (!this.alive) assert.fail(`dimg watch exited while waiting for ${re}:\n${this.out}\n${this.err}`);
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${re}; output so far:\n${this.out}\n${this.err}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  kill(): void {
    if (this.alive) this.child.kill('SIGKILL');
  }
}

function storeMounts(root: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(root));
}

function count(text: string, re: RegExp): number {
  return text.match(new RegExp(re.source, 'g'))?.length ?? 0;
}

async function stopsCleanly(w: Watch, root: string): Promise<void> {
  const sent = Date.now();
  w.child.kill('SIGINT');
  const { code, signal, at } = await w.exited;
  assert.equal(signal, null, `exited by signal ${signal}`);
  assert.equal(code, 0, `exit code ${code}:\n${w.err}`);
  assert.ok(at - sent < 1000, `stopped ${at - sent} ms after SIGINT (must be under a second)`);
  assert.deepEqual(storeMounts(root), [], 'nothing of the store is left mounted');
  assert.deepEqual(readdirSync(join(root, 'tmp')), [], 'no temp file is left in $DIMG_ROOT/tmp');
  assert.ok(!existsSync(join(root, 'lock')), 'the store lock is not left held');
  const leases = existsSync(join(root, 'leases')) ? readdirSync(join(root, 'leases')) : [];
  assert.ok(!leases.includes(String(w.child.pid)), 'the lease of the watch process is released');
}

test('watch: edit rebuilds and pushes, a touch or an ignored file does nothing, a burst is one cycle, a broken spec keeps the loop alive, SIGINT exits 0 cleanly', async (t) => {
  requireRoot('watch builds into a root-owned store');
  requireTool('skopeo', 'skopeo');
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const p = project(t, reg.host);
  const ref = `${reg.host}/w/web:1`;
  const w = new Watch(['--push', 'dev'], p.dir, p.root);
  t.after(() => w.kill());

  let text = await w.waitFor(/ready in \d+\.\d\ds/);
  assert.match(text, /pushing to dev/);
  assert.match(text, /rebuild web: new/);
  assert.doesNotMatch(text, /prod\.invalid/, 'registries not named with --push are never contacted');
  const first = remoteDigest(ref);

  // Edit a file of a COPY-only image: rebuilt, pushed, the registry tag moves.
  let m = w.mark();
  writeFileSync(join(p.dir, 'web', 'index.html'), '<h1>two</h1>\n');
  text = await w.waitFor(/ready in \d+\.\d\ds/, m);
  assert.match(text, /changed: web\/index\.html \[1 file\]/);
  assert.match(text, /rebuild web: input changed: index\.html changed/);
  assert.doesNotMatch(text, /rebuild base/, 'only the image whose inputs changed is rebuilt');
  const second = remoteDigest(ref);
  assert.notEqual(second, first, 'the tag in the registry holds the new image');
  assert.match(text, new RegExp(`${ref.replace(/[.:/]/g, '\\$&')} -> ${second}`), 'the new pushed digest is printed');
  m = w.mark();
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(w.since(m), '', 'the build writing into the store (inside the context) triggers nothing');

  // Touch without a content change: the event arrives, nothing is rebuilt.
  m = w.mark();
  const later = new Date(Date.now() + 5000);
  utimesSync(join(p.dir, 'web', 'index.html'), later, later);
  text = await w.waitFor(/no input changed; nothing to rebuild/, m);
  assert.match(text, /changed: web\/index\.html/);
  assert.doesNotMatch(text, /rebuild \w+:|push /);
  assert.equal(remoteDigest(ref), second);

  // A file excluded by .dockerignore is not even an event; a burst of 500 files is one cycle.
  m = w.mark();
  writeFileSync(join(p.dir, 'web', 'ignored.log'), 'noise\n');
  writeFileSync(join(p.dir, 'web', '.git', 'HEAD'), 'ref: refs/heads/main\n');
  for (let i = 0; i < 500; i++) writeFileSync(join(p.dir, 'web', 'junk', `f${i}.txt`), `${i}\n`);
  text = await w.waitFor(/no input changed; nothing to rebuild/, m);
  await new Promise((r) => setTimeout(r, 2500));
  text = w.since(m);
  assert.equal(count(text, /changed: /), 1, `one cycle for the burst:\n${text}`);
  assert.match(text, /\[500 files\]/);
  assert.doesNotMatch(text, /ignored\.log|\.git/);

  // Invalid YAML: the problem with line:col on stderr, the process stays up.
  m = w.mark();
  writeFileSync(join(p.dir, 'images.yaml'), 'version: 1\nimages:\n  web: [\n');
  text = await w.waitFor(/images\.yaml:\d+:\d+: /, m);
  assert.match(text, /keeping the last good state/);
  assert.ok(w.alive, 'the loop survives an invalid spec');

  // Fixed (with a new tag): the next cycle runs and pushes the new tag.
  m = w.mark();
  writeFileSync(join(p.dir, 'images.yaml'), specText(reg.host, { tags: ['1', '2'] }));
  text = await w.waitFor(/ready in \d+\.\d\ds/, m);
  assert.equal(remoteDigest(`${reg.host}/w/web:2`), second, 'the fixed spec is applied');

  await stopsCleanly(w, p.root);
});

test('watch: a change during a build cancels it and starts over; SIGINT during a RUN step exits 0 within a second, leaving nothing mounted', async (t) => {
  requireRoot('RUN steps');
  requireTool('skopeo', 'skopeo');
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const p = project(t, reg.host, { slow: true });
  const w = new Watch(['--push', 'dev'], p.dir, p.root);
  t.after(() => w.kill());

  // The first cycle reaches the 20 s RUN step; a change to its context cancels it.
  await w.waitFor(/\[slow 2\/3\] COPY data\.txt/);
  await new Promise((r) => setTimeout(r, 300));
  const m = w.mark();
  writeFileSync(join(p.dir, 'slow', 'data.txt'), 'two\n');
  const text = await w.waitFor(/rebuild slow/, m);
  assert.match(text, /inputs changed during the cycle: cancelling it and starting over/);
  assert.match(text, /cycle cancelled/);
  assert.doesNotMatch(text, /ready in/);

  // The restarted build is in its RUN step again: SIGINT now.
  await w.waitFor(/\[slow 2\/3\] COPY data\.txt/, m);
  await new Promise((r) => setTimeout(r, 500));
  await stopsCleanly(w, p.root);
  assert.doesNotMatch(w.out, /ready in/, 'the slow image never finished');
});

test('watch --once: one cycle then exit; an invalid spec exits 1 with line:col', async (t) => {
  requireRoot('watch builds into a root-owned store');
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const p = project(t, reg.host);
  const r = await dimg(['watch', '--once'], { root: p.root, cwd: p.dir, timeoutMs: 120_000, env: { CI: 'true' } });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /pushing to|rebuild web: new/);
  assert.match(r.stdout, /ready in/);
  assert.doesNotMatch(r.stdout, /push /, 'without --push nothing is pushed');
  const images = await dimg(['image', 'ls'], { root: p.root });
  assert.match(images.stdout, /w\/web/);

  const again = await dimg(['watch', '--once'], { root: p.root, cwd: p.dir, env: { CI: 'true' } });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /ready in \d+\.\d\ds \(up to date\)/);

  writeFileSync(join(p.dir, 'images.yaml'), 'version: 1\nimages:\n  web: [\n');
  const bad = await dimg(['watch', '--once'], { root: p.root, cwd: p.dir });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /images\.yaml:\d+:\d+: /);

  writeFileSync(join(p.dir, 'images.yaml'), specText(reg.host));
  const unknown = await dimg(['watch', '--once', '--push', 'stage'], { root: p.root, cwd: p.dir });
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /--push stage: this registry is not declared/);
});

test('watch: hitting the inotify watch limit falls back to polling with a message, and still sees edits', async (t) => {
  requireRoot('watch builds into a root-owned store');
  requireTool('unshare', 'util-linux');
  // No registry is contacted without --push; the host only has to parse.
  const p = project(t, '127.0.0.1:9');
  // A user namespace of our own with room for only 3 inotify watches (the limit is per namespace).
  const wrap = ['unshare', '--user', '--map-root-user', 'sh', '-c', 'echo 3 > /proc/sys/user/max_inotify_watches && exec "$@"', 'sh'];
  const w = new Watch([], p.dir, p.root, wrap);
  t.after(() => w.kill());
  let text = await w.waitFor(/ready in \d+\.\d\ds/);
  assert.match(text, /inotify watch limit is reached \(fs\.inotify\.max_user_watches\); falling back to polling/);
  assert.match(text, /\(polling\); pushing to the local store only/);
  const m = w.mark();
  writeFileSync(join(p.dir, 'web', 'index.html'), '<h1>polled</h1>\n');
  text = await w.waitFor(/ready in \d+\.\d\ds/, m);
  assert.match(text, /rebuild web: input changed: index\.html changed/);
  await stopsCleanly(w, p.root);
});

test('watch --poll: polling from the start', async (t) => {
  requireRoot('watch builds into a root-owned store');
  const p = project(t, '127.0.0.1:9');
  const w = new Watch(['--poll'], p.dir, p.root);
  t.after(() => w.kill());
  let text = await w.waitFor(/ready in \d+\.\d\ds/);
  assert.match(text, /\(polling\)/);
  assert.doesNotMatch(text, /falling back/);
  const m = w.mark();
  writeFileSync(join(p.dir, 'web', 'index.html'), '<h1>polled</h1>\n');
  text = await w.waitFor(/ready in \d+\.\d\ds/, m);
  assert.match(text, /rebuild web: input changed/);
  await stopsCleanly(w, p.root);
});

test('watch: a cycle reuses the digest of a rootfs that had no file event, and walks a touched one again', async (t) => {
  requireRoot('bind mounts and a root-owned store');
  const p = project(t, '127.0.0.1:9');
  makeBusyboxRootfs(join(p.dir, 'rootfs2'));
  writeFileSync(join(p.dir, 'images.yaml'), `${specText('127.0.0.1:9')}  two:\n    from: { rootfs: ./rootfs2 }\n    repository: w/two\n    tags: ["1"]\n`);
  const w = new Watch([], p.dir, p.root);
  t.after(() => w.kill());
  let text = await w.waitFor(/ready in \d+\.\d\ds/);
  assert.match(text, /rebuild two: new/);
  // One more cycle before the mount, so that no walk of rootfs2 (the first cycle's, or one after the
  // watcher became ready) can overlap the mount below and remember a tree half before, half after it.
  const m0 = w.mark();
  writeFileSync(join(p.dir, 'web', 'index.html'), '<h1>settled</h1>\n');
  await w.waitFor(/ready in \d+\.\d\ds/, m0);

  // Change what rootfs2 holds without any file event: a bind mount over its etc/ (mounts are not
  // inotify events). Only a walk of rootfs2 can notice it.
  const hidden = join(tempDir(t), 'etc');
  mkdirSync(hidden);
  writeFileSync(join(hidden, 'only-under-the-mount'), 'x\n');
  const mountpoint = join(p.dir, 'rootfs2', 'etc');
  run('mount', ['--bind', hidden, mountpoint]);
  let passed = false;
  try {
    // An edit in another tree: rootfs2 is not walked again, so `two` keeps its digest and is not rebuilt.
    let m = w.mark();
    writeFileSync(join(p.dir, 'web', 'index.html'), '<h1>two</h1>\n');
    text = await w.waitFor(/ready in \d+\.\d\ds/, m);
    assert.match(text, /rebuild web: input changed/);
    assert.doesNotMatch(text, /rebuild two/, 'the untouched rootfs was walked again');

    // A touch inside rootfs2 (no content change by itself): the walk runs, sees the mount, and `two` is rebuilt.
    m = w.mark();
    const later = new Date(Date.now() + 5000);
    utimesSync(join(p.dir, 'rootfs2', 'bin', 'busybox'), later, later);
    text = await w.waitFor(/ready in \d+\.\d\ds|nothing to rebuild/, m);
    assert.match(text, /rebuild two: input changed: busybox changed/, 'the touched rootfs was not walked again');
    assert.doesNotMatch(text, /rebuild web/);
    passed = true;
  } finally {
    // Before the temp dirs are removed, also on failure (the after hooks would trip on the mount).
    run('umount', [mountpoint]);
    if (!passed) w.kill();
  }
  await stopsCleanly(w, p.root);
});

test('watch --push writes development tags only: release tags in the same registry are left to apply, and it says so', async (t) => {
  requireTool('skopeo', 'skopeo');
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const dir = tempDir(t);
  makeBusyboxRootfs(join(dir, 'rootfs'));
  mkdirSync(join(dir, 'web'));
  writeFileSync(join(dir, 'web', 'index.html'), '<h1>release</h1>\n');
  const spec = (extra = '') => `version: 1
project: watch-tags
registries:
  dev: { url: ${reg.host}, insecure: true }
images:
  base:
    from: { rootfs: ./rootfs }
  web:
    from: base
    context: ./web
    steps:
      - copy: index.html
        to: /srv/
    repository: w/web
    tags: ["0.2.0", "stable", "pr-7-dev"]
    push: [dev]
${extra}`;
  writeFileSync(join(dir, 'images.yaml'), spec());
  const root = join(dir, 'store');
  // The release: apply writes every tag.
  const applied = await dimg(['apply'], { root, cwd: dir });
  assert.equal(applied.code, 0, applied.stderr);
  const release = remoteDigest(`${reg.host}/w/web:0.2.0`);
  assert.equal(remoteDigest(`${reg.host}/w/web:stable`), release);

  // Work in progress: watch pushes the dev tag and nothing else.
  writeFileSync(join(dir, 'web', 'index.html'), '<h1>work in progress</h1>\n');
  const once = await dimg(['watch', '--once', '--push', 'dev'], { root, cwd: dir, env: { CI: 'true' } });
  assert.equal(once.code, 0, once.stderr + once.stdout);
  const text = once.stdout + once.stderr;
  assert.match(text, /web: leaves some tags in dev alone: 0\.2\.0, stable are not watch tags \(watchTags: dev, \*-dev, dev-\*\)/);
  assert.equal(remoteDigest(`${reg.host}/w/web:0.2.0`), release, 'a release tag was overwritten by watch');
  assert.equal(remoteDigest(`${reg.host}/w/web:stable`), release, 'a release tag was overwritten by watch');
  assert.notEqual(remoteDigest(`${reg.host}/w/web:pr-7-dev`), release, 'the dev tag got the work in progress');

  // watchTags in the spec widen it explicitly.
  writeFileSync(join(dir, 'images.yaml'), spec().replace('    push: [dev]\n', '    push: [dev]\n    watchTags: ["stable"]\n'));
  const widened = await dimg(['watch', '--once', '--push', 'dev'], { root, cwd: dir, env: { CI: 'true' } });
  assert.equal(widened.code, 0, widened.stderr + widened.stdout);
  assert.notEqual(remoteDigest(`${reg.host}/w/web:stable`), release);
  assert.equal(remoteDigest(`${reg.host}/w/web:0.2.0`), release);
});
