/**
 * The builder end to end on real files, as root: a busybox rootfs base, real RUN steps in the overlay
 * sandbox, and umoci/skopeo as witnesses of what lands in the store.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs, readFileSync, writeFileSync, mkdirSync, existsSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Store } from '../../src/store/store.js';
import { storeOptions } from '../../src/store/defaults.js';
import { buildImage, type BuildEvent } from '../../src/builder/index.js';
import { isDimgError } from '../../src/errors.js';
import type { ImageSpec, Step } from '../../src/specfile/model.js';
import { ANNOTATION_INPUT_DIGEST, ANNOTATION_PROJECT, type ImageManifest } from '../../src/oci/types.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { imageSpec } from '../support/image-spec.js';
import { requireRoot, requireTool, run } from '../support/tools.js';
import { tempDir } from '../support/tmp.js';

type TestCtx = Parameters<typeof tempDir>[0];

function spec(key: string, rootfs: string, steps: Step[], extra: Partial<ImageSpec> = {}): ImageSpec {
  return imageSpec(key, { kind: 'rootfs', path: rootfs }, steps, extra);
}

const run_ = (cmd: string): Step => ({ kind: 'run', form: 'shell', command: [cmd], env: {}, network: 'none', secrets: [] });

async function openStore(t: TestCtx): Promise<Store> {
  return Store.open(join(tempDir(t), 'store'), storeOptions());
}

function collect(events: BuildEvent[]) {
  return (e: BuildEvent) => events.push(e);
}

function umociUnpack(t: TestCtx, store: Store, name: string): string {
  requireTool('umoci', 'umoci');
  const bundle = join(tempDir(t), 'bundle');
  run('umoci', ['unpack', '--image', `${store.layoutDir}:${name}`, bundle]);
  return join(bundle, 'rootfs');
}

function makeContext(dir: string, files: number, bigBytes: number): void {
  mkdirSync(join(dir, 'ctx', 'sub'), { recursive: true });
  for (let i = 0; i < files; i++) writeFileSync(join(dir, 'ctx', i % 2 ? 'sub' : '', `f${i}.txt`), `file ${i}\n`);
  writeFileSync(join(dir, 'ctx', 'big.bin'), randomBytes(bigBytes));
  writeFileSync(join(dir, '.dockerignore'), 'ctx/ignored.txt\n');
  writeFileSync(join(dir, 'ctx', 'ignored.txt'), 'never copied\n');
}

test('reference workload: builds, rebuilds fully cached, and reruns exactly from the changed COPY', async (t) => {
  requireRoot('building with RUN steps');
  const work = tempDir(t);
  const rootfs = makeBusyboxRootfs(join(work, 'rootfs'));
  makeContext(work, 200, 5 << 20);
  const store = await openStore(t);
  const s = spec('web', rootfs, [
    { kind: 'env', vars: { APP_HOME: '/app', APP_ENV: 'bench' } },
    { kind: 'workdir', path: '/app' },
    run_('for i in $(seq 1 100); do echo $i > /app/gen-$i; done'),
    run_('echo "env=$APP_ENV" > /app/config && ln -s /app/config /app/config.link'),
    { kind: 'copy', src: ['ctx/'], to: '/app/src/' },
    run_('find /app/src -type f | wc -l > /app/count'),
  ], { context: work, cmd: ['cat', '/app/count'] });
  const ev1: BuildEvent[] = [];
  const first = await buildImage(s, { store, project: 'shop', onEvent: collect(ev1) });
  const done1 = ev1.filter((e) => e.type === 'step-done');
  assert.equal(done1.length, 7);
  const ran1 = done1.filter((e) => e.type === 'step-done' && !e.cached).map((e) => (e as { index: number }).index);
  assert.deepEqual(ran1, [4, 5, 6, 7], 'a cold build runs every layer step');

  const rootDir = umociUnpack(t, store, 'docker.io/library/web:1');
  assert.equal(readFileSync(join(rootDir, 'app', 'count'), 'utf8').trim(), '201');
  assert.equal(readFileSync(join(rootDir, 'app', 'config'), 'utf8'), 'env=bench\n');
  assert.equal(readFileSync(join(rootDir, 'app', 'src', 'big.bin')).length, 5 << 20);
  assert.ok(!existsSync(join(rootDir, 'app', 'src', 'ignored.txt')), 'the ignore file is honoured');
  assert.ok(!existsSync(join(rootDir, 'proc', 'cpuinfo')));
  const manifest = JSON.parse(readFileSync(join(store.blobs.path(first.descriptor.digest)), 'utf8')) as ImageManifest;
  assert.equal(manifest.layers.length, 5);
  assert.equal(manifest.annotations?.[ANNOTATION_INPUT_DIGEST], first.inputDigest);
  assert.equal(manifest.annotations?.[ANNOTATION_PROJECT], 'shop');
  assert.deepEqual(first.config.config?.Cmd, ['cat', '/app/count']);
  assert.equal(first.config.config?.WorkingDir, '/app');
  assert.ok(first.config.config?.Env?.includes('APP_ENV=bench'));
  assert.equal(first.config.created, '1970-01-01T00:00:00Z');
  const hist = first.config.history!.map((h) => `${h.created_by}${h.empty_layer ? ' (empty)' : ''}`);
  assert.deepEqual(hist.slice(1), [
    'ENV APP_HOME=/app APP_ENV=bench (empty)',
    'WORKDIR /app (empty)',
    '/bin/sh -c for i in $(seq 1 100); do echo $i > /app/gen-$i; done',
    '/bin/sh -c echo "env=$APP_ENV" > /app/config && ln -s /app/config /app/config.link',
    'COPY ctx/ /app/src/',
    '/bin/sh -c find /app/src -type f | wc -l > /app/count',
    'CMD ["cat","/app/count"] (empty)',
  ].map((l) => (l.startsWith('/bin/sh') ? `RUN ${l}` : l)));
  const inspect = JSON.parse(run('skopeo', ['inspect', `oci:${store.layoutDir}:docker.io/library/web:1`])) as { Layers: string[] };
  assert.equal(inspect.Layers.length, 5);

  const ev2: BuildEvent[] = [];
  const second = await buildImage(s, { store, project: 'shop', onEvent: collect(ev2) });
  assert.equal(second.descriptor.digest, first.descriptor.digest);
  assert.ok(ev2.filter((e) => e.type === 'step-done').every((e) => e.type === 'step-done' && e.cached), 'an unchanged rebuild runs no step');
  assert.equal(ev2.filter((e) => e.type === 'step-output').length, 0);

  writeFileSync(join(work, 'ctx', 'f3.txt'), 'changed\n');
  const ev3: BuildEvent[] = [];
  const third = await buildImage(s, { store, project: 'shop', onEvent: collect(ev3) });
  assert.notEqual(third.descriptor.digest, first.descriptor.digest);
  const rerun = ev3.filter((e) => e.type === 'step-done' && !e.cached).map((e) => (e as { index: number }).index);
  assert.deepEqual(rerun, [6, 7], 'exactly the COPY and the steps after it rerun');
});

test('a RUN deleting a base file yields a whiteout; replacing a directory yields an opaque dir', async (t) => {
  requireRoot('building with RUN steps');
  const work = tempDir(t);
  const rootfs = makeBusyboxRootfs(join(work, 'rootfs'));
  writeFileSync(join(rootfs, 'etc', 'victim'), 'x');
  mkdirSync(join(rootfs, 'd'));
  writeFileSync(join(rootfs, 'd', 'old'), 'old');
  const store = await openStore(t);
  const built = await buildImage(spec('wh', rootfs, [run_('rm /etc/victim'), run_('rm -rf /d && mkdir /d && touch /d/new')]), { store, project: 'p' });
  const names = (digest: string) => run('tar', ['-tf', store.blobs.path(digest as `sha256:${string}`)]).split('\n').filter(Boolean);
  assert.ok(names(built.layers[1]!.digest).includes('etc/.wh.victim'), names(built.layers[1]!.digest).join(','));
  assert.ok(names(built.layers[2]!.digest).includes('d/.wh..wh..opq'), names(built.layers[2]!.digest).join(','));
  const rootDir = umociUnpack(t, store, 'docker.io/library/wh:1');
  assert.ok(!existsSync(join(rootDir, 'etc', 'victim')));
  assert.deepEqual(readdirSync(join(rootDir, 'd')), ['new']);
  assert.ok(lstatSync(join(rootDir, 'bin', 'sh')).isSymbolicLink());
});

test('a RUN-free image has the same manifest digest in two separate stores (golden)', async (t) => {
  const work = tempDir(t);
  mkdirSync(join(work, 'site', 'css'), { recursive: true });
  writeFileSync(join(work, 'site', 'index.html'), '<h1>hi</h1>\n');
  writeFileSync(join(work, 'site', 'css', 'a.css'), 'body{}\n');
  writeFileSync(join(work, 'motd'), 'hello\n');
  for (const d of ['site', 'site/css']) await fs.chmod(join(work, d), 0o755);
  for (const f of ['site/index.html', 'site/css/a.css', 'motd']) await fs.chmod(join(work, f), 0o644);
  const s = spec('site', '', [
    { kind: 'copy', src: ['motd'], to: '/etc/motd' },
    { kind: 'copy', src: ['site/'], to: '/srv/', chown: '1000:1000' },
    { kind: 'env', vars: { PORT: '8080' } },
    { kind: 'expose', ports: ['8080/tcp'] },
  ], { from: { kind: 'scratch' }, context: work, cmd: ['httpd'], platform: 'linux/amd64' });
  const a = await buildImage(s, { store: await openStore(t), project: 'shop', sourceDateEpoch: 0 });
  const b = await buildImage(s, { store: await openStore(t), project: 'shop', sourceDateEpoch: 0 });
  assert.equal(a.descriptor.digest, b.descriptor.digest);
  // Frozen: a change here means RUN-free builds are no longer bit-for-bit what they were.
  assert.equal(a.descriptor.digest, 'sha256:8f6192ee44ab947af6c3b34f71c3859ee135b9db879bf33007363b01c758dcac');
});

test('a failing RUN: exit code and last lines, no mount, no temp dir, no cache entry', async (t) => {
  requireRoot('building with RUN steps');
  const work = tempDir(t);
  const rootfs = makeBusyboxRootfs(join(work, 'rootfs'));
  const store = await openStore(t);
  const s = spec('bad', rootfs, [run_('echo ok > /ok'), run_('echo step-output-1; echo oops >&2; exit 7')]);
  await assert.rejects(buildImage(s, { store, project: 'p' }), (e: unknown) => {
    assert.ok(isDimgError(e, 'RUN_FAILED'));
    assert.match(e.message, /\[bad 3\/3\] RUN \/bin\/sh -c echo step-output-1.* exited with code 7/);
    assert.match(e.message, /oops/);
    return true;
  });
  assert.deepEqual(readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(store.root)), []);
  assert.deepEqual(readdirSync(store.overlay.dir).filter((n) => n.startsWith('.tmp')), []);
  assert.deepEqual(readdirSync(store.tmpDir), []);
  const entries = await store.cache.all();
  assert.deepEqual(entries.map((e) => e.step ?? 'rootfs layer').sort(), ['RUN /bin/sh -c echo ok > /ok', 'rootfs layer'].sort(), 'only the packed rootfs and the successful first RUN are cached');
});

test('a secret is readable in its RUN and in no layer or history; RUN has no network by default', async (t) => {
  requireRoot('building with RUN steps');
  const work = tempDir(t);
  const rootfs = makeBusyboxRootfs(join(work, 'rootfs'));
  const secretFile = join(work, 'token');
  const value = `tok-${randomBytes(8).toString('hex')}`;
  writeFileSync(secretFile, value);
  const store = await openStore(t);
  const out: string[] = [];
  const s = spec('sec', rootfs, [
    { kind: 'run', form: 'shell', command: ['cat /run/secrets/api > /dev/null && wc -c < /run/secrets/api > /len && cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " " > /ifaces'], env: {}, network: 'none', secrets: [{ id: 'api', target: '/run/secrets/api', required: true }] },
  ]);
  const built = await buildImage(s, { store, project: 'p', secrets: { api: secretFile }, onEvent: (e) => e.type === 'step-output' && out.push(e.chunk.toString()) });
  const rootDir = umociUnpack(t, store, 'docker.io/library/sec:1');
  assert.equal(readFileSync(join(rootDir, 'len'), 'utf8').trim(), String(value.length));
  assert.equal(readFileSync(join(rootDir, 'ifaces'), 'utf8').trim(), 'lo');
  for (const l of built.layers) assert.ok(!readFileSync(store.blobs.path(l.digest)).includes(value), `layer ${l.digest} holds the secret`);
  assert.ok(!JSON.stringify(built.config).includes(value));
  assert.ok(!existsSync(join(rootDir, 'run', 'secrets')));
});
