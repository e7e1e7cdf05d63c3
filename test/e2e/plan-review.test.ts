/**
 * Plans a reviewer can trust (issue #14, part 4), end to end against the real registry: an unknown
 * --target is an error, --prune with --target says what it does, a saved plan applies from another
 * checkout path and a stale one names what moved, and apply reports the digests it wrote
 * (--metadata-file, NDJSON events) as the registry holds them (skopeo is the witness).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dimg, dimgOk, type CliOptions } from '../support/cli.js';
import { startRegistry } from '../support/registry.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { tempDir } from '../support/tmp.js';
import { remoteDigest } from '../support/skopeo.js';
import { run } from '../support/tools.js';

function project(dir: string, host: string): string {
  makeBusyboxRootfs(join(dir, 'rootfs'));
  mkdirSync(join(dir, 'web'));
  writeFileSync(join(dir, 'web', 'index.html'), '<h1>hello</h1>\n');
  const file = join(dir, 'images.yaml');
  writeFileSync(
    file,
    `version: 1
project: review
registries:
  local: { url: ${host}, insecure: true }
images:
  base:
    from: { rootfs: ./rootfs }
    tags: ["1"]
  web:
    from: base
    context: ./web
    steps:
      - copy: index.html
        to: /srv/
    repository: review/web
    tags: ["1.0", "latest"]
    push: [local]
`,
  );
  return file;
}

const ok = (args: string[], opts: CliOptions) => dimgOk(args, { timeoutMs: 300_000, ...opts });

test('an unknown --target is an error with did-you-mean; --prune with --target says it does not prune', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const dir = tempDir(t);
  const file = project(dir, reg.host);
  const opts = { root: join(dir, 'store'), cwd: dir };
  const typo = await dimg(['plan', file, '--target', 'wbe'], opts);
  assert.equal(typo.code, 1, typo.stdout + typo.stderr);
  assert.match(typo.stderr, /--target wbe: .*has no image "wbe"; did you mean "web"\?/);
  assert.doesNotMatch(typo.stdout, /No changes/);
  const pruning = await ok(['plan', file, '--prune', '--target', 'web'], opts);
  assert.match(pruning.stdout + pruning.stderr, /prune is not done with --target \(web\)/);
});

test('a saved plan applies from another checkout path; a stale one names the tag that moved', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const first = join(tempDir(t), 'checkout-a');
  mkdirSync(first);
  project(first, reg.host);
  const store = join(tempDir(t), 'store');
  await ok(['plan', 'images.yaml', '-o', 'plan.json'], { root: store, cwd: first });
  const saved = JSON.parse(readFileSync(join(first, 'plan.json'), 'utf8')) as { specFile: string };
  assert.equal(saved.specFile, 'images.yaml', 'the spec file is stored relative to the plan file');
  // The same repository checked out elsewhere (CI: plan in one job, apply in another).
  const second = join(tempDir(t), 'checkout-b');
  run('cp', ['-a', first, second]);
  await ok(['apply', join(second, 'plan.json')], { root: store, cwd: tempDir(t) });
  const web = `${reg.host}/review/web:latest`;
  assert.match(remoteDigest(web), /^sha256:/);

  // A plan, then somebody moves a tag: the refusal says which tag moved, from what to what.
  await ok(['plan', 'images.yaml', '-o', 'plan.json'], { root: store, cwd: second });
  const before = remoteDigest(web);
  await ok(['image', 'push', '--insecure', 'base:1', web], { root: store, cwd: second });
  const after = remoteDigest(web);
  const stale = await dimg(['apply', 'plan.json'], { root: store, cwd: second });
  assert.equal(stale.code, 1, stale.stdout + stale.stderr);
  assert.match(stale.stderr, /stale/);
  assert.ok(stale.stderr.includes(`tag ${web} moved from ${before.slice(0, 19)} to ${after.slice(0, 19)}`), stale.stderr);
});

test('apply --metadata-file and the NDJSON events carry the digests the registry holds', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const dir = tempDir(t);
  const file = project(dir, reg.host);
  const opts = { root: join(dir, 'store'), cwd: dir };
  const meta = join(dir, 'out', 'metadata.json');
  mkdirSync(join(dir, 'out'));
  const r = await ok(['apply', file, '--progress=json', '--metadata-file', meta], opts);
  const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; kind?: string; ref?: string; digest?: string });
  const pushed = events.filter((e) => e.type === 'action-done' && (e.kind === 'push' || e.kind === 'retag'));
  assert.ok(pushed.length >= 2, r.stdout);
  for (const e of pushed) assert.equal(e.digest, remoteDigest(e.ref!), `event for ${e.ref}`);
  const built = events.filter((e) => e.type === 'action-done' && e.kind === 'build');
  assert.ok(built.every((e) => /^sha256:/.test(e.digest ?? '')), r.stdout);

  type Meta = { images: Record<string, { digest?: string; built: boolean; tags: { ref: string; digest?: string; status: string }[] }> };
  const m = JSON.parse(readFileSync(meta, 'utf8')) as Meta;
  const web = m.images.web!;
  assert.equal(web.built, true);
  assert.match(web.digest ?? '', /^sha256:/);
  assert.deepEqual(web.tags.map((x) => x.ref).sort(), [`${reg.host}/review/web:1.0`, `${reg.host}/review/web:latest`]);
  for (const tag of web.tags) {
    assert.equal(tag.digest, remoteDigest(tag.ref), tag.ref);
    assert.match(tag.status, /^(pushed|retagged)$/);
  }
  // A second apply changes nothing and still writes the file, every tag unchanged with its digest.
  await ok(['apply', file, '--metadata-file', meta], opts);
  const again = JSON.parse(readFileSync(meta, 'utf8')) as Meta;
  for (const tag of again.images.web!.tags) {
    assert.equal(tag.status, 'unchanged');
    assert.equal(tag.digest, remoteDigest(tag.ref));
  }
});

test('prune needs a declared project: a directory name could be another checkout\'s', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const dir = join(tempDir(t), 'api');
  mkdirSync(dir);
  const file = project(dir, reg.host);
  writeFileSync(file, readFileSync(file, 'utf8').replace('project: review\n', ''));
  const opts = { root: join(dir, 'store'), cwd: dir };
  const pruning = await dimg(['plan', '--prune'], opts);
  assert.equal(pruning.code, 1, pruning.stdout + pruning.stderr);
  assert.match(pruning.stderr, /--prune: .*images\.yaml does not name its project, and the directory name "api" could be another checkout's too/);
  assert.match(pruning.stderr, /add `project: api`/);
  await ok(['plan'], opts); // without prune the default project is fine
});
