/**
 * The CLI: `dimg image import` → `dimg push` / `dimg image pull` / `dimg image ls --remote` /
 * `dimg image copy` with `oci:` and `docker-archive:` endpoints, against the REAL registry (plain and
 * with htpasswd Basic auth read from DOCKER_CONFIG), skopeo and umoci as witnesses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dimg, type CliResult } from '../support/cli.js';
import { startRegistry } from '../support/registry.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { requireTool, run } from '../support/tools.js';
import { tempDir } from '../support/tmp.js';
import { assertNoSecrets, basicForm } from '../integration/registry-fixtures.js';
import { remoteDigest, remoteManifest } from '../support/skopeo.js';

const env = { SOURCE_DATE_EPOCH: '1700000000' };

function ok(r: CliResult): CliResult {
  assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

function skopeo(args: string[]): string {
  return run(requireTool('skopeo', 'skopeo'), args);
}

function digestOf(r: CliResult): string {
  const m = /digest: (sha256:[a-f0-9]{64}) size: \d+\n$/.exec(r.stdout);
  assert.ok(m, r.stdout);
  return m[1]!;
}

test('CLI push/pull/ls --remote/copy (oci:, docker-archive:) with skopeo and umoci as witnesses', async (t) => {
  requireTool('umoci', 'umoci');
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const root = tempDir(t);
  const work = tempDir(t);
  const rootfs = makeBusyboxRootfs(join(work, 'rootfs'));
  const name = `${reg.host}/shop/web:1`;
  ok(await dimg(['image', 'import', rootfs, name], { root, env }));

  const first = ok(await dimg(['push', name], { root }));
  assert.match(first.stdout, /^The push refers to repository \[127\.0\.0\.1:\d+\/shop\/web\]\n/);
  assert.match(first.stdout, /^[a-f0-9]{12}: Pushed$/m);
  const digest = digestOf(first);
  assert.ok(first.stdout.endsWith(`1: digest: ${digest} size: `.concat(/size: (\d+)\n$/.exec(first.stdout)![1]!, '\n')));
  assert.equal(remoteDigest(name), digest);

  const again = ok(await dimg(['image', 'push', name], { root }));
  assert.equal(digestOf(again), digest);
  assert.doesNotMatch(again.stdout, /Pushed/);

  const mounted = ok(await dimg(['image', 'push', name, `${reg.host}/team/web`], { root }));
  assert.equal(digestOf(mounted), digest);
  assert.equal((mounted.stdout.match(/: Mounted from shop\/web$/gm) ?? []).length, 2, mounted.stdout);

  const quiet = ok(await dimg(['push', '-q', name, `${reg.host}/quiet/web:q`], { root }));
  assert.equal(quiet.stdout, `q: digest: ${digest} size: ${/size: (\d+)/.exec(first.stdout)![1]}\n`);

  // ls --remote lists the registry's tags, not local images.
  const remote = ok(await dimg(['image', 'ls', '--remote', `${reg.host}/team/web`], { root }));
  assert.match(remote.stdout, /^REPOSITORY\s+TAG\n127\.0\.0\.1:\d+\/team\/web\s+1\n$/);

  // Pull into a fresh store: same digest, usable by inspect and save (skopeo reads the archive).
  const root2 = tempDir(t);
  const pulled = ok(await dimg(['image', 'pull', `${reg.host}/team/web:1`], { root: root2 }));
  assert.match(pulled.stdout, new RegExp(`Digest: ${digest}\\nStatus: Downloaded newer image for 127\\.0\\.0\\.1:\\d+/team/web:1\\n`));
  const up = ok(await dimg(['pull', `${reg.host}/team/web:1`], { root: root2 }));
  assert.match(up.stdout, /Status: Image is up to date for/);
  assert.doesNotMatch(up.stdout, /Pull complete/);
  const inspect = JSON.parse(ok(await dimg(['image', 'inspect', `${reg.host}/team/web:1`], { root: root2 })).stdout) as { RepoDigests?: string[]; Os: string }[];
  assert.equal(inspect[0]!.Os, 'linux');
  const saved = join(work, 'saved.tar');
  ok(await dimg(['image', 'save', '-o', saved, `${reg.host}/team/web:1`], { root: root2 }));
  const fromArchive = JSON.parse(skopeo(['inspect', `docker-archive:${saved}`])) as { Os: string; Layers: string[] };
  assert.equal(fromArchive.Layers.length, 1);

  // copy registry → oci: keeps the digest; umoci unpacks it.
  const layout = join(work, 'layout');
  const toOci = ok(await dimg(['image', 'copy', '-q', name, `oci:${layout}:v1`], { root }));
  assert.equal(digestOf(toOci), digest);
  assert.match(skopeo(['inspect', `oci:${layout}:v1`]), new RegExp(`"Digest": "${digest}"`));
  run('umoci', ['unpack', '--image', `${layout}:v1`, join(work, 'bundle')]);
  assert.ok(existsSync(join(work, 'bundle', 'rootfs', 'bin', 'busybox')));
  // oci: → registry keeps it too.
  assert.equal(digestOf(ok(await dimg(['image', 'copy', '-q', `oci:${layout}:v1`, `${reg.host}/from/oci:v1`], { root }))), digest);

  // registry → docker-archive: skopeo reads it; docker-archive → registry is a deterministic push again.
  const archive = join(work, 'web.tar');
  const toArchive = ok(await dimg(['image', 'copy', '-q', name, `docker-archive:${archive}:shop/web:1`], { root }));
  assert.match(toArchive.stdout, /: id: sha256:[a-f0-9]{64}\n$/);
  const ai = JSON.parse(skopeo(['inspect', `docker-archive:${archive}`])) as { RepoTags: string[]; Layers: string[] };
  assert.equal(ai.Layers.length, 1);
  assert.equal(digestOf(ok(await dimg(['image', 'copy', '-q', `docker-archive:${archive}`, `${reg.host}/from/archive:1`], { root }))), digest);
  // A skopeo-written docker-archive works as a source too.
  const skArchive = join(work, 'sk.tar');
  skopeo(['copy', '--src-tls-verify=false', `docker://${name}`, `docker-archive:${skArchive}:sk/web:2`]);
  assert.equal(digestOf(ok(await dimg(['image', 'copy', '-q', `docker-archive:${skArchive}`, `oci:${layout}:sk`], { root }))).length, 71);
  assert.match(skopeo(['inspect', `oci:${layout}:sk`]), /"Layers"/);
});

test('CLI push and pull with Basic auth from DOCKER_CONFIG; the password never appears', async (t) => {
  const USER = 'pusher';
  const PASS = 'Pu5h-secret-never-shown';
  const reg = await startRegistry({ auth: { username: USER, password: PASS } });
  t.after(() => reg.stop());
  const cfg = tempDir(t);
  const root = tempDir(t);
  const work = tempDir(t);
  const rootfs = makeBusyboxRootfs(join(work, 'rootfs'));
  const name = `${reg.host}/private/app:1`;
  const runs: CliResult[] = [];
  const go = async (args: string[], r = root) => {
    const res = await dimg(args, { root: r, env: { ...env, DOCKER_CONFIG: cfg } });
    runs.push(res);
    return res;
  };
  ok(await go(['image', 'import', rootfs, name]));
  const denied = await go(['push', name]);
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /error: .*registry 127\.0\.0\.1:\d+.*\nhint: /);
  writeFileSync(join(cfg, 'config.json'), JSON.stringify({ auths: { [reg.host]: { auth: basicForm(USER, PASS) } } }));
  const pushed = ok(await go(['push', name]));
  const digest = digestOf(pushed);
  const inspected = JSON.parse(skopeo(['inspect', '--tls-verify=false', '--creds', `${USER}:${PASS}`, `docker://${name}`])) as { Digest: string };
  assert.equal(inspected.Digest, digest);
  const pulled = ok(await go(['pull', name], tempDir(t)));
  assert.match(pulled.stdout, new RegExp(`Digest: ${digest}`));
  assertNoSecrets(runs.flatMap((r) => [r.stdout, r.stderr]), [PASS, basicForm(USER, PASS)]);
});

test('push of a store blob that no longer matches its digest fails naming the blob, and no manifest is written', async (t) => {
  const regA = await startRegistry();
  t.after(() => regA.stop());
  const regB = await startRegistry();
  t.after(() => regB.stop());
  const root = tempDir(t);
  const work = tempDir(t);
  const rootfs = makeBusyboxRootfs(join(work, 'rootfs'));
  const name = `${regA.host}/src/bb:1`;
  ok(await dimg(['image', 'import', rootfs, name], { root, env }));
  ok(await dimg(['push', '-q', name], { root }));
  // Now the store holds the gzip form the push made; damage it in place (same size, other bytes).
  const manifest = remoteManifest<{ layers: { digest: string; size: number }[] }>(name);
  const layer = manifest.layers[0]!;
  const file = join(root, 'oci', 'blobs', 'sha256', layer.digest.slice('sha256:'.length));
  assert.ok(existsSync(file), `the pushed gzip layer ${layer.digest} is in the store`);
  writeFileSync(file, Buffer.alloc(layer.size, 0x5a));
  const r = await dimg(['push', name, `${regB.host}/dst/bb:1`], { root });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stderr, new RegExp(`error: .*blob ${layer.digest}.*`));
  assert.doesNotMatch(r.stderr, /internal error|\n\s+at /);
  const tags = await fetch(`http://${regB.host}/v2/dst/bb/tags/list`);
  assert.notEqual(tags.status, 200, 'no tag was written to the second registry');
});
