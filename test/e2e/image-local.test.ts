/**
 * End-to-end tests of `dimg image import|ls|inspect|history|tag|rm|prune` through the real CLI, each
 * test with its own store. The busybox rootfs comes from Debian's busybox-static.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, writeFileSync, symlinkSync, readdirSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { dimg } from '../support/cli.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { tempDir } from '../support/tmp.js';
import { requireTool, run } from '../support/tools.js';
import { assertStoreSound, digestOf, fails, importBusybox, makeTar, ok } from './image-helpers.js';

const EPOCH = { SOURCE_DATE_EPOCH: '1700000000' };

test('import of a busybox rootfs: ls, inspect, history and the layer content', async (t) => {
  const root = tempDir(t);
  const id = await importBusybox(t, root, 'busybox');
  assert.match(id, /^sha256:[a-f0-9]{64}$/);

  const ls = await ok(['image', 'ls'], { root });
  const lines = ls.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/);
  assert.match(lines[1]!, new RegExp(`^busybox\\s+latest\\s+${id.slice(7, 19)}\\s+(Less than a second|\\d+ seconds?) ago\\s+\\d+(\\.\\d+)?MB$`));
  assert.equal((await ok(['images', '-q'], { root })).stdout, `${id.slice(7, 19)}\n`);
  assert.equal((await ok(['images', '-q', '--no-trunc'], { root })).stdout, `${id}\n`);

  const json = (await ok(['image', 'ls', '--format', 'json'], { root })).stdout.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(json.length, 1);
  assert.equal(json[0].Repository, 'busybox');
  assert.equal(json[0].Tag, 'latest');
  assert.equal(json[0].ID, id.slice(7, 19));
  assert.match(json[0].Digest, /^sha256:/);
  assert.equal((await ok(['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}'], { root })).stdout, `busybox:latest ${id.slice(7, 19)}\n`);

  const [info] = JSON.parse((await ok(['image', 'inspect', 'busybox'], { root })).stdout);
  assert.equal(info.Id, id);
  assert.deepEqual(info.RepoTags, ['busybox:latest']);
  assert.equal(info.RepoDigests.length, 1);
  assert.equal(info.Parent, '');
  assert.equal(info.Comment, 'Imported from rootfs');
  assert.equal(info.Os, 'linux');
  assert.equal(info.RootFS.Type, 'layers');
  assert.equal(info.RootFS.Layers.length, 1);
  assert.ok(info.Size > 1_000_000);
  assert.equal((await ok(['image', 'inspect', '-f', '{{.Id}} {{json .RootFS.Layers}}', id.slice(7, 19)], { root })).stdout, `${id} ${JSON.stringify(info.RootFS.Layers)}\n`);

  const hist = (await ok(['image', 'history', 'busybox'], { root })).stdout.trimEnd().split('\n');
  assert.match(hist[0]!, /^IMAGE\s+CREATED\s+CREATED BY\s+SIZE\s+COMMENT$/);
  assert.equal(hist.length, 2);
  assert.match(hist[1]!, new RegExp(`^${id.slice(7, 19)}\\s+.* ago\\s+\\d+(\\.\\d+)?MB\\s+Imported from rootfs$`));

  // The layer is an uncompressed tar stored under its diff_id, holding the rootfs.
  const layer = join(root, 'oci', 'blobs', 'sha256', info.RootFS.Layers[0].slice(7));
  const listing = run('tar', ['-tvf', layer]);
  assert.match(listing, /^-rwxr-xr-x 0\/0 .* bin\/busybox$/m);
  assert.match(listing, /^lrwxrwxrwx 0\/0 .* bin\/sh -> /m);
  assert.match(listing, /etc\/passwd$/m);
  assertStoreSound(root);
});

test('a tarball (gzip), stdin and a directory of the same tree give the same layer', async (t) => {
  requireTool('tar', 'tar');
  const root = tempDir(t);
  const work = tempDir(t);
  const dir = makeBusyboxRootfs(join(work, 'rootfs'));
  run('tar', ['-C', dir, '-czf', join(work, 'rootfs.tar.gz'), '.']);
  run('tar', ['-C', dir, '-cf', join(work, 'rootfs.tar'), '.']);
  const fromDir = (await ok(['image', 'import', '-m', 'same', dir, 'a'], { root, env: EPOCH })).stdout.trim();
  const fromGz = (await ok(['image', 'import', '-m', 'same', join(work, 'rootfs.tar.gz'), 'b'], { root, env: EPOCH })).stdout.trim();
  const fromStdin = (await ok(['image', 'import', '-m', 'same', '-', 'c:stdin'], { root, env: EPOCH, input: readFileSync(join(work, 'rootfs.tar')) })).stdout.trim();
  assert.equal(fromGz, fromDir);
  assert.equal(fromStdin, fromDir);
  const names = (await ok(['images', '--format', '{{.Repository}}:{{.Tag}}'], { root })).stdout.trim().split('\n').sort();
  assert.deepEqual(names, ['a:latest', 'b:latest', 'c:stdin']);
  const [img] = JSON.parse((await ok(['image', 'inspect', 'c:stdin'], { root })).stdout);
  assert.equal(img.Comment, 'same');
  assert.equal(img.Created, '2023-11-14T22:13:20Z');

  // Without a message the comment names the source as the user gave it: - for stdin.
  const anon = (await ok(['image', 'import', '-'], { root, input: readFileSync(join(work, 'rootfs.tar')) })).stdout.trim();
  const [a] = JSON.parse((await ok(['image', 'inspect', anon], { root })).stdout);
  assert.equal(a.Comment, 'Imported from -');
  assert.deepEqual(a.RepoTags, []);
  assert.match((await ok(['images'], { root })).stdout, /^<none>\s+<none>\s+/m);
});

test('import --change, --platform and bad inputs', async (t) => {
  const root = tempDir(t);
  const dir = makeBusyboxRootfs(join(tempDir(t), 'rootfs'));
  const changes = [
    'CMD ["/bin/sh", "-c", "echo hi"]',
    'ENTRYPOINT /bin/busybox',
    'ENV A=1 B="two words"',
    'ENV C 3',
    'WORKDIR /srv',
    'WORKDIR app',
    'USER 1000:1000',
    'EXPOSE 80 53/udp',
    'LABEL org.example.team=web "x y"=z',
    'VOLUME ["/data"]',
    'STOPSIGNAL SIGINT',
  ];
  await ok(['image', 'import', '--platform', 'linux/arm64/v8', ...changes.flatMap((c) => ['--change', c]), dir, 'changed:1'], { root });
  const [img] = JSON.parse((await ok(['image', 'inspect', 'changed:1'], { root })).stdout);
  assert.deepEqual(img.Config.Cmd, ['/bin/sh', '-c', 'echo hi']);
  assert.deepEqual(img.Config.Entrypoint, ['/bin/sh', '-c', '/bin/busybox']);
  assert.deepEqual(img.Config.Env, ['A=1', 'B=two words', 'C=3']);
  assert.equal(img.Config.WorkingDir, '/srv/app');
  assert.equal(img.Config.User, '1000:1000');
  assert.deepEqual(img.Config.ExposedPorts, { '80/tcp': {}, '53/udp': {} });
  assert.deepEqual(img.Config.Labels, { 'org.example.team': 'web', 'x y': 'z' });
  assert.deepEqual(img.Config.Volumes, { '/data': {} });
  assert.equal(img.Config.StopSignal, 'SIGINT');
  assert.equal(img.Architecture, 'arm64');
  assert.equal(img.Variant, 'v8');

  await fails(['image', 'import', '--change', 'RUN echo no', dir, 'x'], { root }, /invalid --change "RUN echo no": RUN is not supported/);
  await fails(['image', 'import', '--change', 'EXPOSE http', dir, 'x'], { root }, /"http" is not a port/);
  await fails(['image', 'import', join(dir, 'nope'), 'x'], { root }, /cannot read import source .*nope: no such file or directory/);
  await fails(['image', 'import', '--platform', 'linux', dir, 'x'], { root }, /invalid platform "linux"/);
  await fails(['image', 'import', dir, 'Bad:Name'], { root }, /invalid reference "Bad:Name"/);
  const evil = join(tempDir(t), 'evil.tar');
  writeFileSync(evil, await makeTar([{ name: '../escape', data: 'x' }]));
  await fails(['image', 'import', evil, 'evil'], { root }, /escape/);
  assert.deepEqual(readdirSync(join(root, 'tmp')), [], 'no temp files left after failed imports');
  assert.equal((await ok(['images', '-q'], { root })).stdout.trim().split('\n').length, 1);
});

test('golden digest: the same import gives the same manifest digest anywhere', async (t) => {
  const root = tempDir(t);
  const tree = join(tempDir(t), 'golden-tree');
  mkdirSync(join(tree, 'etc'), { recursive: true });
  mkdirSync(join(tree, 'usr', 'bin'), { recursive: true });
  writeFileSync(join(tree, 'etc', 'hostname'), 'golden\n');
  writeFileSync(join(tree, 'usr', 'bin', 'hello'), '#!/bin/sh\necho hello\n');
  symlinkSync('usr/bin', join(tree, 'bin'));
  chmodSync(join(tree, 'usr', 'bin', 'hello'), 0o755);
  chmodSync(join(tree, 'etc', 'hostname'), 0o644);
  for (const d of ['', 'etc', 'usr', 'usr/bin']) chmodSync(join(tree, d), 0o755);
  // Old and new mtimes alike end up at SOURCE_DATE_EPOCH or below: set one file before it.
  utimesSync(join(tree, 'etc', 'hostname'), 1600000000, 1600000000);
  const args = ['image', 'import', '--platform', 'linux/amd64', '--change', 'CMD ["/usr/bin/hello"]', tree, 'golden:1'];
  await ok(args, { root, env: EPOCH });
  const digest = (await ok(['images', '--format', '{{.Digest}}'], { root })).stdout.trim();
  // Frozen: a change here means imports are no longer reproducible across versions.
  assert.equal(digest, GOLDEN_MANIFEST);
  const again = tempDir(t);
  await ok(args, { root: again, env: EPOCH });
  assert.equal((await ok(['images', '--format', '{{.Digest}}'], { root: again })).stdout.trim(), digest);
});
const GOLDEN_MANIFEST = 'sha256:832eaa55defd6862f33e0782ac96e784ce448e3ddc0ed01249f8c5f2e20efd7d';

test('tag, rm and prune follow docker rules', async (t) => {
  const root = tempDir(t);
  const id = await importBusybox(t, root, 'busybox');
  const short = id.slice(7, 19);
  await ok(['image', 'tag', 'busybox', 'busybox:1.36'], { root });
  await ok(['image', 'tag', short, 'localhost:5000/tools/bb:v1'], { root });
  const rows = (await ok(['images', '--format', '{{.Repository}}:{{.Tag}}={{.ID}}'], { root })).stdout.trim().split('\n').sort();
  assert.deepEqual(rows, [`busybox:1.36=${short}`, `busybox:latest=${short}`, `localhost:5000/tools/bb:v1=${short}`]);
  assert.equal((await ok(['images', '-q'], { root })).stdout, `${short}\n`, '-q lists each image once');
  assert.deepEqual((await ok(['images', 'busybox'], { root })).stdout.trim().split('\n').length, 3);

  await fails(['image', 'rm', short], { root }, /unable to delete [a-f0-9]{12} \(must be forced\): image is referenced in multiple repositories/);
  assert.equal((await ok(['image', 'rm', 'busybox:1.36'], { root })).stdout, 'Untagged: busybox:1.36\n');
  await fails(['rmi', 'nope:1', 'busybox'], { root }, /no such image in the local store: nope:1/);
  assert.deepEqual((await ok(['images', '--format', '{{.Repository}}'], { root })).stdout.trim().split('\n'), ['localhost:5000/tools/bb']);
  const out = (await ok(['rmi', 'localhost:5000/tools/bb:v1'], { root })).stdout;
  assert.equal(out, `Untagged: localhost:5000/tools/bb:v1\nDeleted: ${id}\n`);
  assert.equal((await ok(['images', '-q'], { root })).stdout, '');
  assert.deepEqual(readdirSync(join(root, 'oci', 'blobs', 'sha256')), [], 'rm reclaims the blobs');

  // rm -f by ID removes every name.
  const id2 = await importBusybox(t, root, 'one');
  await ok(['image', 'tag', 'one', 'two/x'], { root });
  const forced = (await ok(['rmi', '-f', id2.slice(7, 15)], { root })).stdout.trim().split('\n').sort();
  assert.deepEqual(forced, [`Deleted: ${id2}`, 'Untagged: one:latest', 'Untagged: two/x:latest']);
});

test('dangling images and prune; the build cache protects an image from rm', async (t) => {
  const root = tempDir(t);
  const old = await importBusybox(t, root, 'app:1');
  const dir = makeBusyboxRootfs(join(tempDir(t), 'rootfs2'));
  writeFileSync(join(dir, 'etc', 'extra'), 'x');
  const fresh = (await ok(['image', 'import', dir, 'app:1'], { root })).stdout.trim();
  assert.notEqual(fresh, old);
  const ls = (await ok(['images'], { root })).stdout;
  assert.match(ls, new RegExp(`^<none>\\s+<none>\\s+${old.slice(7, 19)}`, 'm'));
  assert.match(ls, new RegExp(`^app\\s+1\\s+${fresh.slice(7, 19)}`, 'm'));

  const pruned = (await ok(['image', 'prune', '-f'], { root })).stdout;
  assert.match(pruned, new RegExp(`^Deleted Images:\\ndeleted: ${old}\\n\\nTotal reclaimed space: \\d+(\\.\\d+)?[kM]B\\n$`));
  assert.doesNotMatch((await ok(['images'], { root })).stdout, /<none>/);
  assert.equal((await ok(['image', 'prune'], { root })).stdout, 'Total reclaimed space: 0B\n');

  // A build-cache entry that records the image's config keeps it from rm (unless -f) and from prune -a.
  const cacheKey = digestOf('some step');
  writeFileSync(join(root, 'cache', `${cacheKey.slice(7)}.json`), JSON.stringify({ key: cacheKey, blobs: [fresh], created: new Date().toISOString() }));
  await fails(['rmi', 'app:1'], { root }, /unable to delete image app:1 .*the build cache still records it \(1 entry\)/);
  assert.equal((await ok(['image', 'prune', '-a', '-f'], { root })).stdout, 'Total reclaimed space: 0B\n');
  assert.match((await ok(['images', '-q'], { root })).stdout, new RegExp(fresh.slice(7, 19)));
  const all = (await ok(['image', 'prune', '-a', '--cache', '-f'], { root })).stdout;
  assert.match(all, /^Deleted Images:\nuntagged: app:1\ndeleted: sha256:[a-f0-9]{64}\n\nBuild cache entries removed: 1\nTotal reclaimed space: \d+(\.\d+)?MB\n$/);
  assert.deepEqual(readdirSync(join(root, 'oci', 'blobs', 'sha256')), []);
});

test('inspect prints what it found, then fails for the missing name', async (t) => {
  const root = tempDir(t);
  await importBusybox(t, root, 'here');
  const r = await dimg(['image', 'inspect', 'here', 'missing:9'], { root });
  assert.equal(r.code, 1);
  const arr = JSON.parse(r.stdout);
  assert.equal(arr.length, 1);
  assert.deepEqual(arr[0].RepoTags, ['here:latest']);
  assert.match(r.stderr, /^error: no such image in the local store: missing:9$/m);
  const none = await dimg(['image', 'inspect', 'missing:9'], { root });
  assert.equal(none.code, 1);
  assert.equal(none.stdout, '[]\n');
});
