/**
 * Rootless RUN (issue #18 part 3): `dimg build` run by an unprivileged user through `runuser`, with
 * subordinate ids (the rootless driver: chown works, the layers equal a root build's) and without
 * them (the copy driver in a single-ID namespace: builds that do not chown work, a chown says why).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chownSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIMG_BIN, dimg } from '../support/cli.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { ensureRootlessUser, ensureSingleIdUser, asUser, type TestUser } from '../support/rootless-user.js';
import { run } from '../support/tools.js';
import { tempDir } from '../support/tmp.js';

/** Runs `dimg ARGS` as `user` against the store at `root`. */
function dimgAs(user: TestUser, root: string, cwd: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const [cmd, ...argv] = asUser(user, { DIMG_ROOT: root, NO_COLOR: '1' }, [process.execPath, DIMG_BIN, ...args]);
  const r = spawnSync(cmd!, argv, { cwd, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A work dir the user owns, holding a busybox rootfs (root's files, readable by all). */
function workFor(t: Parameters<typeof tempDir>[0], user: TestUser): string {
  const work = tempDir(t, 'dimg-rootless-');
  chownSync(work, user.uid, user.gid);
  makeBusyboxRootfs(join(work, 'rootfs'));
  return work;
}

/** The layer digests of the image tagged `ref` in the store at `root`. */
function layersOf(root: string, ref: string): string[] {
  const blob = (d: string) => readFileSync(join(root, 'oci', 'blobs', ...d.split(':')), 'utf8');
  const index = JSON.parse(readFileSync(join(root, 'oci', 'index.json'), 'utf8')) as { manifests: { digest: string; annotations?: Record<string, string> }[] };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name']?.endsWith(ref));
  assert.ok(entry, `${ref} is in the store at ${root}`);
  return (JSON.parse(blob(entry.digest)) as { layers: { digest: string }[] }).layers.map((l) => l.digest);
}

const SPEC = (steps: string) => `version: 1
project: rootless
images:
  bb:
    from: { rootfs: ./rootfs }
  web:
    from: bb
    steps:
${steps}
    tags: ["1"]
`;

test('rootless RUN with subordinate ids: chown and hostname work, no host file is reachable, layers equal a root build', async (t) => {
  const user = ensureRootlessUser();
  const work = workFor(t, user);
  // A host file the steps look for: it must not be visible inside.
  const marker = join(work, 'host-marker');
  writeFileSync(marker, 'host\n');
  chownSync(marker, user.uid, user.gid);
  const steps = [
    `      - run: mkdir -p /data && echo hi > /data/f && ln -s f /data/l && chown -R 1000:1000 /data && chown -h 1001:1002 /data/l`,
    `      - run: hostname > /hostname.txt && (cat ${marker} /etc/shadow 2>/dev/null; ls ${work} 2>&1 | head -1) > /host.txt; true`,
    `      - run: touch /data/g && chmod 4755 /data/f && rm /bin/true && ls -ln /data > /listing`,
  ].join('\n');
  writeFileSync(join(work, 'images.yaml'), SPEC(steps));

  const info = dimgAs(user, join(work, 'store'), work, ['info', '--format', 'json']);
  assert.equal(info.code, 0, info.stderr);
  const report = JSON.parse(info.stdout) as { runDriver: { driver: string; rootless?: { mapping: string; uids: { count: number }[] } } };
  assert.equal(report.runDriver.driver, 'rootless', info.stdout);
  assert.equal(report.runDriver.rootless?.mapping, 'full');
  assert.ok(report.runDriver.rootless!.uids.reduce((n, r) => n + r.count, 0) > 1000);

  const rootless = dimgAs(user, join(work, 'store'), work, ['build', 'images.yaml']);
  assert.equal(rootless.code, 0, rootless.stderr + rootless.stdout);
  const asRoot = await dimg(['build', 'images.yaml'], { root: join(work, 'root-store'), cwd: work });
  assert.equal(asRoot.code, 0, asRoot.stderr + asRoot.stdout);

  const mine = layersOf(join(work, 'store'), 'web:1');
  assert.equal(mine.length, 4, 'the base layer and one per RUN step');
  assert.deepEqual(mine, layersOf(join(work, 'root-store'), 'web:1'), 'rootless layers are byte-identical to root-built ones');

  const blob = (d: string) => join(work, 'store', 'oci', 'blobs', ...d.split(':'));
  const listing = run('tar', ['-tvf', blob(mine[1]!), '--numeric-owner']);
  assert.match(listing, /^-rw-r--r-- 1000\/1000 .* data\/f$/m, 'chown 1000 inside is recorded as 1000');
  assert.match(listing, /^lrwxrwxrwx 1001\/1002 .* data\/l -> f$/m);
  assert.match(run('tar', ['-xOf', blob(mine[2]!), 'hostname.txt']), /^dimg-build\n$/);
  assert.equal(run('tar', ['-xOf', blob(mine[2]!), 'host.txt']), `ls: ${work}: No such file or directory\n`, 'no host file is reachable');
  const third = run('tar', ['-tvf', blob(mine[3]!), '--numeric-owner']);
  assert.match(third, /^-rwsr-xr-x 1000\/1000 .* data\/f$/m, 'a parent file owned by 1000 stays 1000 when changed');
  assert.match(third, /^-rw------- 0\/0 .* bin\/\.wh\.true$/m);
  // Nothing in the user's store belongs to a subordinate id: the user can remove all of it.
  assert.equal(run('find', [join(work, 'store'), '!', '-user', user.name]), '');
});

test('rootless RUN without subordinate ids: single-ID mapping reported; builds that chown fail saying why, others work', async (t) => {
  const user = ensureSingleIdUser();
  const work = workFor(t, user);
  writeFileSync(join(work, 'images.yaml'), SPEC('      - run: echo hi > /f && hostname > /h'));
  const info = dimgAs(user, join(work, 'store'), work, ['info', '--format', 'json']);
  assert.equal(info.code, 0, info.stderr);
  const report = JSON.parse(info.stdout) as { runDriver: { driver: string; reason: string; rootless?: { mapping: string } } };
  assert.equal(report.runDriver.driver, 'copy', info.stdout);
  assert.equal(report.runDriver.rootless?.mapping, 'single');
  assert.match(report.runDriver.reason, /single-ID mapping: .*usermod --add-subuids/);
  const text = dimgAs(user, join(work, 'store'), work, ['info']);
  assert.match(text.stdout, /^RUN Driver: copy \(.*single-ID mapping/m);

  const ok = dimgAs(user, join(work, 'store'), work, ['build', 'images.yaml']);
  assert.equal(ok.code, 0, ok.stderr + ok.stdout);

  writeFileSync(join(work, 'images.yaml'), SPEC('      - run: touch /f && chown 1000 /f'));
  const bad = dimgAs(user, join(work, 'store'), work, ['build', 'images.yaml']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /chown/);
  assert.match(bad.stderr, /maps only one user id/);
  assert.match(bad.stderr, /subuid/);
});
