/**
 * What a build may read from the host (issue #20):
 *  - D1: a symlink in the build context never leads a copy out of it. Symlinks in a source's parent
 *    components resolve inside the context as in a chroot (`..` and absolute targets stop at the
 *    context root); a source that is itself a symlink is copied as a symlink; glob expansion, the
 *    ignore file, ADD's archive detection and `copy --from` (inside the image's own root) follow the
 *    same rule. Checked through images.yaml, `dockerfile:`, `dimg image build` and the builder API.
 *  - D2: a copied symlink keeps its target in the layer (read back by umoci, an independent tool,
 *    and used by a RUN step), and a symlink copied into a destination directory never replaces it.
 *  - D3: `from: { rootfs: FILE }` goes through `dimg image import`'s checks: a tar escaping its root
 *    or a file that is not a tar is refused naming the file, and a good tar gives import's layer.
 * Every test also scans the whole store for a sentinel secret kept outside the context.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Store } from '../../src/store/store.js';
import { storeOptions } from '../../src/store/defaults.js';
import { buildImage } from '../../src/builder/index.js';
import { isDimgError } from '../../src/errors.js';
import { readDirScoped, readTextScoped, resolveScoped } from '../../src/layer/scoped-path.js';
import type { Step } from '../../src/specfile/model.js';
import { dimg, type CliResult } from '../support/cli.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { imageSpec } from '../support/image-spec.js';
import { packWithTarStream } from '../support/nasty-tars.js';
import { requireRoot, requireTool, run } from '../support/tools.js';
import { tempDir } from '../support/tmp.js';

type TestCtx = Parameters<typeof tempDir>[0];

const SECRET = `dimg-host-secret-${randomBytes(12).toString('hex')}`;

/**
 * A work dir with `outside/` (the host's files: a secret, a tar holding the secret, an ignore file)
 * and `ctx/` (the build context) holding links out of it and a few harmless files.
 */
async function makeWork(t: TestCtx): Promise<{ work: string; ctx: string; outside: string }> {
  const work = tempDir(t, 'dimg-secctx-');
  const outside = join(work, 'outside');
  const ctx = join(work, 'ctx');
  mkdirSync(outside);
  mkdirSync(join(ctx, 'sub'), { recursive: true });
  writeFileSync(join(outside, 'secret'), `${SECRET}\n`);
  writeFileSync(join(outside, 'secret.tar'), await packWithTarStream([{ header: { name: 'leaked' }, data: `${SECRET}\n` }]));
  writeFileSync(join(ctx, 'sub', 'file'), 'inside\n');
  symlinkSync(outside, join(ctx, 'abs')); // absolute target out of the context
  symlinkSync('../outside', join(ctx, 'rel')); // relative target out of the context
  symlinkSync('/etc', join(ctx, 'hostetc')); // the probe's own example
  symlinkSync('/sub', join(ctx, 'inroot')); // absolute, meaning the context's /sub
  symlinkSync('../../../../sub', join(ctx, 'clamp')); // `..` stops at the context root
  return { work, ctx, outside };
}

/** Every regular file under `dir` that contains `needle` (the store: blobs, cache, overlay, tmp). */
function filesContaining(dir: string, needle: string): string[] {
  const hits: string[] = [];
  const walk = (d: string): void => {
    if (!existsSync(d)) return; // a run that failed before opening the store
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && readFileSync(p).includes(needle)) hits.push(p);
    }
  };
  walk(dir);
  return hits;
}

function assertNoSecret(store: string): void {
  assert.deepEqual(filesContaining(store, SECRET), [], 'the secret from outside the context reached the store');
}

function failed(r: CliResult, ...patterns: RegExp[]): void {
  assert.equal(r.code, 1, `expected a failure:\n${r.stderr}\n${r.stdout}`);
  assert.match(r.stderr, /^error: /m);
  for (const p of patterns) assert.match(r.stderr, p);
}

function umociUnpack(t: TestCtx, layout: string, name: string): string {
  requireTool('umoci', 'umoci');
  const bundle = join(tempDir(t), 'bundle');
  run('umoci', ['unpack', '--image', `${layout}:${name}`, bundle]);
  return join(bundle, 'rootfs');
}


test('resolveScoped looks a path up as a process chrooted to the root would, never leaving it', (t) => {
  const work = tempDir(t, 'dimg-secctx-');
  const root = join(work, 'root');
  const outside = join(work, 'outside');
  mkdirSync(join(root, 'sub'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(outside, 'secret'), `${SECRET}\n`);
  writeFileSync(join(root, 'sub', 'file'), 'inside\n');
  writeFileSync(join(root, 'plain'), 'plain\n');
  symlinkSync(outside, join(root, 'abs'));
  symlinkSync('../outside', join(root, 'rel'));
  symlinkSync('/sub', join(root, 'inroot'));
  symlinkSync('../../../sub', join(root, 'clamp'));
  symlinkSync('loop', join(root, 'loop'));
  symlinkSync(join(outside, 'secret'), join(root, 'ign'));
  symlinkSync('sub/file', join(root, 'ign2'));

  // Out of the root: the host's files are never reached.
  assert.equal(resolveScoped(root, 'abs/secret'), undefined);
  assert.equal(resolveScoped(root, 'rel/secret'), undefined);
  assert.equal(resolveScoped(root, 'abs', true), undefined);
  assert.equal(readDirScoped(root, 'abs'), undefined);
  assert.equal(readDirScoped(root, 'rel'), undefined);
  assert.equal(readTextScoped(root, 'ign'), undefined);
  assert.equal(readTextScoped(root, 'rel/secret'), undefined);
  // Inside: absolute targets start at the root, `..` stops there; the last component stays a link.
  assert.equal(resolveScoped(root, 'inroot/file')?.rel, 'sub/file');
  assert.equal(resolveScoped(root, '/clamp/file')?.abs, join(root, 'sub', 'file'));
  assert.equal(resolveScoped(root, 'inroot/')?.rel, 'sub');
  assert.equal(resolveScoped(root, 'inroot', true)?.rel, 'sub');
  assert.ok(resolveScoped(root, 'abs')?.stats.isSymbolicLink());
  assert.equal(resolveScoped(root, 'abs')?.rel, 'abs');
  assert.deepEqual(readDirScoped(root, 'clamp'), ['file']);
  assert.equal(readTextScoped(root, 'ign2'), 'inside\n');
  assert.equal(resolveScoped(root, '')?.abs, root);
  assert.equal(resolveScoped(root, 'plain/x'), undefined, 'a file is not a directory');
  assert.throws(() => resolveScoped(root, 'loop/x'), (e: unknown) => isDimgError(e, 'SYMLINK_LOOP'));
  // The outside path re-rooted: a copy of it inside the root is what `abs` names.
  mkdirSync(join(root, outside), { recursive: true });
  writeFileSync(join(root, outside, 'secret'), 'decoy\n');
  assert.equal(resolveScoped(root, 'abs/secret')?.abs, join(root, outside, 'secret'));
  assert.equal(readTextScoped(root, 'ign'), 'decoy\n');
});

test('D1: copy steps of images.yaml resolve context symlinks inside the context and never leave it', async (t) => {
  const { work } = await makeWork(t);
  const store = join(work, 'store');
  const escaping = ['abs/secret', 'rel/secret', 'hostetc/shadow', 'abs/*', 'rel/sec*', 'hostetc/sha*'];
  writeFileSync(
    join(work, 'images.yaml'),
    `version: 1
images:
${escaping.map((src, i) => `  leak${i}:\n    from: scratch\n    context: ./ctx\n    steps:\n      - copy: "${src}"\n        to: /x/\n`).join('')}`,
  );
  const r = await dimg(['build', 'images.yaml'], { root: store, cwd: work });
  failed(r);
  for (const [i, src] of escaping.entries()) {
    assert.match(r.stderr, new RegExp(`images\\.yaml:${6 * i + 7}:\\d+: copy source "${src.replace('*', '\\*')}" (does not exist|matches no file) in the context`), `leak${i}`);
  }

  // Symlinks that stay inside: an absolute target means the context root, `..` stops at it.
  writeFileSync(
    join(work, 'images.yaml'),
    `version: 1
images:
  inside:
    from: scratch
    context: ./ctx
    steps:
      - copy: inroot/file
        to: /in1
      - copy: clamp/file
        to: /in2
`,
  );
  const ok = await dimg(['build', 'images.yaml'], { root: store, cwd: work });
  assert.equal(ok.code, 0, ok.stderr);
  const rootfs = umociUnpack(t, join(store, 'oci'), 'docker.io/library/inside:latest');
  assert.equal(readFileSync(join(rootfs, 'in1'), 'utf8'), 'inside\n');
  assert.equal(readFileSync(join(rootfs, 'in2'), 'utf8'), 'inside\n');
  assertNoSecret(store);
});

test('D1: Dockerfile COPY, through `dockerfile:` and `dimg image build`, stays inside the context', async (t) => {
  const { work, ctx } = await makeWork(t);
  const store = join(work, 'store');
  writeFileSync(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY sub/file /ok\nCOPY abs/secret /leak1\nCOPY rel/* /leak2/\nCOPY hostetc/shadow /leak3\n');
  const ib = await dimg(['image', 'build', '-t', 'leak:1', ctx], { root: store, cwd: work });
  failed(ib, /Dockerfile:3:1: copy source "abs\/secret" does not exist/, /Dockerfile:4:1: copy source "rel\/\*" matches no file/, /Dockerfile:5:1: copy source "hostetc\/shadow" does not exist/);
  writeFileSync(join(work, 'images.yaml'), 'version: 1\nimages:\n  leak:\n    dockerfile: ./ctx/Dockerfile\n');
  const b = await dimg(['build', 'images.yaml'], { root: store, cwd: work });
  failed(b, /Dockerfile:3:1: copy source "abs\/secret" does not exist/);
  assertNoSecret(store);
});

test('D1: the builder itself (keys, globs, ADD, the ignore file) never reads through a symlink out of the context', async (t) => {
  const { work, ctx, outside } = await makeWork(t);
  const store = await Store.open(join(work, 'store'), storeOptions());
  const build = (steps: Step[]) => buildImage(imageSpec('b', { kind: 'scratch' }, steps, { context: ctx }), { store, project: 'sec' });
  // The builder refuses on its own, whatever checked the spec before (watch and plan key through it).
  for (const src of ['abs/secret', 'rel/secret', 'hostetc/passwd', 'abs/*', 'hostetc/pass*']) {
    await assert.rejects(build([{ kind: 'copy', src: [src], to: '/x/' }]), (e: unknown) => isDimgError(e, 'COPY_SOURCE_NOT_FOUND'), src);
  }
  // An ignore file that is a symlink out of the context is not read from the host.
  writeFileSync(join(outside, 'ignore'), 'keep.txt\n');
  symlinkSync(join(outside, 'ignore'), join(ctx, '.dockerignore'));
  writeFileSync(join(ctx, 'keep.txt'), 'kept\n');
  // ADD of a symlink to a host tar copies the link; it never opens (or unpacks) the host's tar.
  symlinkSync(join(outside, 'secret.tar'), join(ctx, 'host.tar'));
  await build([
    { kind: 'copy', src: ['keep.txt'], to: '/keep.txt' },
    { kind: 'add', src: ['host.tar'], to: '/add/' },
    { kind: 'copy', src: ['*'], to: '/all/' },
  ]);
  const rootfs = umociUnpack(t, store.layoutDir, 'docker.io/library/b:1');
  assert.equal(readFileSync(join(rootfs, 'keep.txt'), 'utf8'), 'kept\n');
  assert.equal(readlinkSync(join(rootfs, 'add', 'host.tar')), join(outside, 'secret.tar'));
  for (const [name, target] of [['abs', outside], ['rel', '../outside'], ['hostetc', '/etc']] as const) {
    assert.equal(readlinkSync(join(rootfs, 'all', name)), target, `/all/${name} is the context's symlink`);
  }
  assertNoSecret(store.root);
});

test('D1: copy --from resolves symlinks inside the source image, never on the host', async (t) => {
  const { work, outside } = await makeWork(t);
  const store = join(work, 'store');
  const base = join(work, 'rootfs');
  mkdirSync(join(base, 'data'), { recursive: true });
  writeFileSync(join(base, 'data', 'real'), 'in-image\n');
  symlinkSync('/data', join(base, 'alias'));
  symlinkSync(outside, join(base, 'leak')); // a host path, meaningless inside the image
  writeFileSync(
    join(work, 'images.yaml'),
    `version: 1
images:
  src:
    from: { rootfs: ./rootfs }
  good:
    from: scratch
    steps:
      - copy: alias/real
        from: src
        to: /real
  bad:
    from: scratch
    steps:
      - copy: leak/secret
        from: src
        to: /leak
`,
  );
  const good = await dimg(['build', 'images.yaml', 'good'], { root: store, cwd: work });
  assert.equal(good.code, 0, good.stderr);
  const rootfs = umociUnpack(t, join(store, 'oci'), 'docker.io/library/good:latest');
  assert.equal(readFileSync(join(rootfs, 'real'), 'utf8'), 'in-image\n');
  failed(await dimg(['build', 'images.yaml', 'bad'], { root: store, cwd: work }), /COPY --from=src leak\/secret \/leak: source leak\/secret not found/);
  assertNoSecret(store);
});

test('D2: a copied symlink keeps its target, and never replaces the destination directory', async (t) => {
  requireRoot('building with RUN steps');
  const work = tempDir(t, 'dimg-secctx-');
  makeBusyboxRootfs(join(work, 'rootfs'));
  const ctx = join(work, 'ctx');
  mkdirSync(join(ctx, 'd'), { recursive: true });
  writeFileSync(join(ctx, 'a.txt'), 'a\n');
  writeFileSync(join(ctx, 'd', 'b.txt'), 'b\n');
  symlinkSync('d', join(ctx, 'dlink'));
  symlinkSync('a.txt', join(ctx, 'flink'));
  symlinkSync('/etc/passwd', join(ctx, 'abslink'));
  // `copy: "*"` brings a.txt, d's contents (Docker copies a directory's contents), and the three
  // links as links; the RUN after it reads through them (the layer dir a RUN mounts is written
  // while packing, see layer/mirror.ts, so both writers are covered).
  writeFileSync(
    join(work, 'images.yaml'),
    `version: 1
images:
  links:
    from: { rootfs: ./rootfs }
    context: ./ctx
    steps:
      - run: mkdir -p /dst && echo keep > /dst/keep
      - copy: "*"
        to: /dst/
      - copy: flink
        to: /single
      - copy: dlink
        to: /dst2/
      - run: cat /dst/flink /dst/b.txt > /out && readlink /single >> /out && readlink /dst/dlink >> /out
`,
  );
  const store = join(work, 'store');
  const r = await dimg(['build', 'images.yaml'], { root: store, cwd: work });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const rootfs = umociUnpack(t, join(store, 'oci'), 'docker.io/library/links:latest');
  assert.equal(readFileSync(join(rootfs, 'out'), 'utf8'), 'a\nb\na.txt\nd\n', 'the RUN step read the copied links');
  assert.ok(lstatSync(join(rootfs, 'dst')).isDirectory(), '/dst is still a directory');
  assert.equal(readFileSync(join(rootfs, 'dst', 'keep'), 'utf8'), 'keep\n', 'the destination directory kept its content');
  assert.equal(readFileSync(join(rootfs, 'dst', 'b.txt'), 'utf8'), 'b\n');
  assert.equal(readlinkSync(join(rootfs, 'dst', 'dlink')), 'd');
  assert.equal(readlinkSync(join(rootfs, 'dst', 'flink')), 'a.txt');
  assert.equal(readlinkSync(join(rootfs, 'dst', 'abslink')), '/etc/passwd');
  assert.equal(readlinkSync(join(rootfs, 'single')), 'a.txt');
  assert.equal(readlinkSync(join(rootfs, 'dst2', 'dlink')), 'd', 'dest/ + a symlink X = dest/X, a symlink');
  assert.ok(lstatSync(join(rootfs, 'dst2')).isDirectory());
});

test('D3: from: { rootfs: FILE } is checked like `dimg image import`', async (t) => {
  const work = tempDir(t, 'dimg-secctx-');
  const store = join(work, 'store');
  const env = { SOURCE_DATE_EPOCH: '0' };
  writeFileSync(join(work, 'escape.tar'), await packWithTarStream([{ header: { name: '../escape' }, data: 'x' }]));
  writeFileSync(
    join(work, 'link-escape.tar'),
    await packWithTarStream([{ header: { name: 'l', type: 'symlink', linkname: '/tmp' } }, { header: { name: 'l/planted' }, data: 'x' }]),
  );
  writeFileSync(join(work, 'shadow'), `root:$6$${SECRET}:19000:0:99999:7:::\n`);
  const spec = (file: string) => `version: 1\nimages:\n  base:\n    from: { rootfs: ./${file} }\n`;
  for (const [file, pattern] of [
    ['escape.tar', /layer entry "\.\.\/escape"/],
    ['link-escape.tar', /layer entry "l\/planted"/],
    ['shadow', /cannot read the tar/],
  ] as const) {
    writeFileSync(join(work, 'images.yaml'), spec(file));
    const b = await dimg(['build', 'images.yaml'], { root: store, cwd: work, env });
    failed(b, new RegExp(`image base \\(images\\.yaml:3:\\d+\\): rootfs \\S*${file.replace('.', '\\.')}`), pattern, /^hint: .*tar/m);
    const imp = await dimg(['image', 'import', join(work, file), 'imported'], { root: store, cwd: work, env });
    failed(imp, pattern);
  }
  assert.equal((await dimg(['images', '-q'], { root: store })).stdout.trim(), '', 'nothing was named');
  assertNoSecret(store);

  // A good tar gives the very layer `dimg image import` makes of it.
  writeFileSync(
    join(work, 'good.tar'),
    await packWithTarStream([
      { header: { name: 'etc/', type: 'directory', mode: 0o755 } },
      { header: { name: 'etc/motd', mode: 0o644 }, data: 'hi\n' },
      { header: { name: 'motd', type: 'symlink', linkname: 'etc/motd' } },
    ]),
  );
  writeFileSync(join(work, 'images.yaml'), spec('good.tar'));
  const b = await dimg(['build', 'images.yaml'], { root: store, cwd: work, env });
  assert.equal(b.code, 0, b.stderr);
  const imp = await dimg(['image', 'import', join(work, 'good.tar'), 'imported:1'], { root: store, cwd: work, env });
  assert.equal(imp.code, 0, imp.stderr);
  const layers = async (name: string) => (JSON.parse((await dimg(['image', 'inspect', name], { root: store })).stdout) as { RootFS: { Layers: string[] } }[])[0]!.RootFS.Layers;
  assert.deepEqual(await layers('base:latest'), await layers('imported:1'));
});
