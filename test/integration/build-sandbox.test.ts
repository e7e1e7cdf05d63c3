/**
 * The RUN sandbox on its own: real overlay mounts and namespaces (as root), a busybox parent layer,
 * and checks of what lands in the upperdir and what never does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs, readFileSync, writeFileSync, existsSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Store } from '../../src/store/store.js';
import { sha256 } from '../../src/oci/digest.js';
import { runInSandbox, type ParentLayer } from '../../src/builder/sandbox.js';
import { isDimgError } from '../../src/errors.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { requireRoot, requireTool, run } from '../support/tools.js';
import { tempDir } from '../support/tmp.js';
import { storeWithTarUnpack } from '../support/tar-store.js';

function busyboxLayer(t: Parameters<typeof tempDir>[0]): ParentLayer {
  const dir = makeBusyboxRootfs(join(tempDir(t), 'rootfs'));
  writeFileSync(join(dir, 'etc', 'victim'), 'delete me\n');
  run('mkdir', ['-p', join(dir, 'd')]);
  writeFileSync(join(dir, 'd', 'old'), 'old\n');
  const tarFile = join(tempDir(t), 'layer.tar');
  run('tar', ['-C', dir, '--numeric-owner', '-cf', tarFile, '.']);
  const data = readFileSync(tarFile);
  const diffId = sha256(data);
  return { chainId: diffId, diffId, open: async () => Readable.from([data]) };
}

function storeMounts(store: Store): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(store.root));
}

test('RUN in the overlay sandbox: changes, whiteouts, opaque dirs; nothing else lands in the upperdir', async (t) => {
  requireRoot('the RUN sandbox test');
  requireTool('getfattr', 'attr');
  const store = await storeWithTarUnpack(join(tempDir(t), 'store'));
  const parent = busyboxLayer(t);
  let out = '';
  const seen = await runInSandbox(
    {
      store,
      parents: [parent],
      argv: ['/bin/sh', '-c', 'echo hello > /srv.txt; rm /etc/victim; rm -rf /d && mkdir /d && touch /d/new; hostname; cat /proc/net/dev | tail -n +3 | cut -d: -f1; id -u; pwd; ls /dev'],
      env: ['FOO=bar'],
      workdir: '/app/sub',
      label: '[t 1/1] RUN test',
      onOutput: (b) => (out += b.toString()),
    },
    async ({ diffDir, driver }) => {
      assert.equal(driver, 'overlay');
      assert.equal(readFileSync(join(diffDir, 'srv.txt'), 'utf8'), 'hello\n');
      const wh = lstatSync(join(diffDir, 'etc', 'victim'));
      assert.ok(wh.isCharacterDevice() && wh.rdev === 0, 'deleted file is a 0/0 whiteout');
      assert.equal(run('getfattr', ['--only-values', '-n', 'trusted.overlay.opaque', join(diffDir, 'd')]), 'y');
      assert.ok(existsSync(join(diffDir, 'app', 'sub')), 'the missing workdir is created in the layer');
      for (const p of ['proc', 'dev', 'etc/resolv.conf', 'etc/hosts', 'etc/hostname', 'run']) assert.ok(!existsSync(join(diffDir, p)), `${p} is not in the layer`);
      return (await fs.readdir(diffDir)).sort();
    },
  );
  assert.deepEqual(seen, ['app', 'd', 'etc', 'srv.txt']);
  const lines = out.trim().split('\n').map((l) => l.trim());
  assert.deepEqual(lines.slice(0, 4), ['dimg-build', 'lo', '0', '/app/sub']);
  assert.ok(lines.includes('null') && lines.includes('urandom'), out);
  assert.deepEqual(storeMounts(store), []);
  assert.deepEqual((await fs.readdir(store.overlay.dir)).filter((n) => n.startsWith('.tmp-')), []);
});

test('a failing RUN reports exit code and last lines, and leaves no mount or workspace', async (t) => {
  requireRoot('the RUN sandbox test');
  const store = await storeWithTarUnpack(join(tempDir(t), 'store'));
  const parent = busyboxLayer(t);
  await assert.rejects(
    runInSandbox({ store, parents: [parent], argv: ['/bin/sh', '-c', 'echo first; echo boom >&2; exit 3'], env: [], label: '[web 2/5] RUN false' }, async () => 1),
    (e: unknown) => {
      assert.ok(isDimgError(e, 'RUN_FAILED'));
      assert.match(e.message, /\[web 2\/5\] RUN false exited with code 3/);
      assert.match(e.message, /boom/);
      return true;
    },
  );
  assert.deepEqual(storeMounts(store), []);
  assert.deepEqual((await fs.readdir(store.overlay.dir)).filter((n) => n.startsWith('.tmp-')), []);
});

test('a secret is readable during its RUN, read-only, and absent from the layer', async (t) => {
  requireRoot('the RUN sandbox test');
  const store = await storeWithTarUnpack(join(tempDir(t), 'store'));
  const parent = busyboxLayer(t);
  const secret = join(tempDir(t), 'token');
  writeFileSync(secret, 's3cr3t-value\n');
  let out = '';
  await runInSandbox(
    {
      store,
      parents: [parent],
      argv: ['/bin/sh', '-c', 'cat /run/secrets/tok; echo x >> /run/secrets/tok || echo readonly; touch /made'],
      env: [],
      secrets: [{ id: 'tok', src: secret }],
      label: '[t 1/1] RUN secret',
      onOutput: (b) => (out += b.toString()),
    },
    async ({ diffDir }) => {
      assert.ok(!existsSync(join(diffDir, 'run')));
      assert.deepEqual((await fs.readdir(diffDir)).sort(), ['made']);
    },
  );
  assert.match(out, /s3cr3t-value/);
  assert.match(out, /readonly/);
  assert.equal(readFileSync(secret, 'utf8'), 's3cr3t-value\n');
});

test('the copy-based driver gives the same change: files, whiteouts, no mount points', async (t) => {
  requireRoot('the RUN sandbox test');
  const { storeOptions } = await import('../../src/store/defaults.js');
  const store = await Store.open(join(tempDir(t), 'store'), storeOptions());
  const parent = busyboxLayer(t);
  await runInSandbox(
    {
      store,
      parents: [parent],
      driver: 'copy',
      argv: ['/bin/sh', '-c', 'echo hi > /new.txt; rm /etc/victim; rm -rf /d && mkdir /d && touch /d/new'],
      env: [],
      label: '[t 1/1] RUN copy',
    },
    async ({ diffDir, driver }) => {
      assert.equal(driver, 'copy');
      assert.equal(readFileSync(join(diffDir, 'new.txt'), 'utf8'), 'hi\n');
      const wh = lstatSync(join(diffDir, 'etc', 'victim'));
      assert.ok(wh.isCharacterDevice() && wh.rdev === 0);
      const old = lstatSync(join(diffDir, 'd', 'old'));
      assert.ok(old.isCharacterDevice() && old.rdev === 0, 'a replaced dir whiteouts its old children');
      assert.ok(existsSync(join(diffDir, 'd', 'new')));
      for (const p of ['proc', 'dev', 'etc/resolv.conf', 'etc/hosts']) assert.ok(!existsSync(join(diffDir, p)), `${p} is not in the diff`);
    },
  );
  assert.deepEqual((await fs.readdir(store.overlay.dir)).filter((n) => n.startsWith('.tmp-')), []);
});

test('a RUN step costs little: 5 sequential RUNs of `true` on busybox', async (t) => {
  requireRoot('the RUN sandbox test');
  const store = await storeWithTarUnpack(join(tempDir(t), 'store'));
  const parent = busyboxLayer(t);
  await runInSandbox({ store, parents: [parent], argv: ['true'], env: [], label: 'warm' }, async () => undefined);
  const t0 = Date.now();
  for (let i = 0; i < 5; i++) await runInSandbox({ store, parents: [parent], argv: ['true'], env: [], label: `[t ${i}] RUN true` }, async () => undefined);
  const per = (Date.now() - t0) / 5;
  t.diagnostic(`per RUN: ${per.toFixed(0)} ms`);
  assert.ok(per < 1000, `a RUN of true took ${per} ms`);
});
