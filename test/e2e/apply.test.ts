/**
 * plan/apply end to end against the real registry, with skopeo as the witness: converge from empty,
 * idempotence (no write requests), an empty store, one changed file, drift, prune safety, stale plans.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { dimg, dimgOk, type CliOptions } from '../support/cli.js';
import { startRegistry, type TestRegistry } from '../support/registry.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { tempDir } from '../support/tmp.js';
import { requireRoot, requireTool, run } from '../support/tools.js';
import { remoteDigest } from '../support/skopeo.js';
import { throwAwayManifest } from '../../src/registry/throwaway-manifest.js';
import type { Digest } from '../../src/oci/digest.js';

function writeSpec(dir: string, host: string, extra = ''): string {
  const file = join(dir, 'images.yaml');
  writeFileSync(
    file,
    `version: 1
project: e2e
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
      - run: echo built > /srv/built
    cmd: ["httpd", "-f"]
    repository: e2e/web
    tags: ["1.0", "latest"]
    push: [local]
  api:
    from: base
    context: ./api
    steps:
      - copy: app.sh
        to: /app/
    repository: e2e/api
    tags: ["1"]
    push: [local]
${extra}`,
  );
  return file;
}

function project(t: Parameters<typeof tempDir>[0], host: string) {
  const dir = tempDir(t);
  makeBusyboxRootfs(join(dir, 'rootfs'));
  mkdirSync(join(dir, 'web'));
  mkdirSync(join(dir, 'api'));
  writeFileSync(join(dir, 'web', 'index.html'), '<h1>hello</h1>\n');
  writeFileSync(join(dir, 'api', 'app.sh'), '#!/bin/sh\necho api\n');
  const file = writeSpec(dir, host);
  return { dir, file, root: join(dir, 'store') };
}

function writes(reg: TestRegistry): number {
  return reg.log.filter((l) => /"(PUT|POST|PATCH|DELETE) \/v2\//.test(l)).length;
}

function ok(args: string[], opts: CliOptions) {
  return dimgOk(args, { timeoutMs: 300_000, ...opts });
}

test('apply converges, is idempotent, survives an empty store, rebuilds only what changed, and restores drift', async (t) => {
  requireRoot('apply with RUN steps');
  requireTool('skopeo', 'skopeo');
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const p = project(t, reg.host);
  const opts = { root: p.root, cwd: p.dir };

  const first = await ok(['apply'], opts);
  assert.match(first.stdout, /Plan: 3 to build, 3 to push, 0 to retag, 0 to delete\./);
  const digests = Object.fromEntries(['e2e/web:1.0', 'e2e/web:latest', 'e2e/api:1'].map((r) => [r, remoteDigest(`${reg.host}/${r}`)]));
  assert.equal(digests['e2e/web:1.0'], digests['e2e/web:latest']);
  const planJson = JSON.parse((await ok(['plan', '--json', '--show-unchanged'], opts)).stdout);
  for (const a of planJson.actions) {
    assert.equal(a.kind, 'unchanged');
    assert.equal(a.digest, digests[a.target.ref.slice(reg.host.length + 1)], `skopeo and dimg agree on ${a.target.ref}`);
  }

  const before = writes(reg);
  const second = await ok(['apply'], opts);
  assert.match(second.stdout, /No changes\. Registries match images\.yaml\./);
  assert.equal(writes(reg), before, 'a second apply makes no write request');

  rmSync(p.root, { recursive: true, force: true });
  const fresh = await ok(['plan', '--detailed-exitcode'], opts);
  assert.match(fresh.stdout, /No changes\./);
  assert.doesNotMatch(fresh.stdout, /build/);

  writeFileSync(join(p.dir, 'api', 'app.sh'), '#!/bin/sh\necho api v2\n');
  const plan = await dimg(['plan', '--detailed-exitcode'], opts);
  assert.equal(plan.code, 2, plan.stderr);
  assert.match(plan.stdout, /build\s+api\s+\(input changed\)/);
  assert.doesNotMatch(plan.stdout, /build\s+web/);
  await ok(['apply'], opts);
  assert.notEqual(remoteDigest(`${reg.host}/e2e/api:1`), digests['e2e/api:1']);
  assert.equal(remoteDigest(`${reg.host}/e2e/web:1.0`), digests['e2e/web:1.0'], 'other tags untouched');

  // Out of band: move web:latest to the api image with skopeo.
  run('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${reg.host}/e2e/api:1`, `docker://${reg.host}/e2e/web:latest`]);
  const drift = await dimg(['plan', '--detailed-exitcode'], opts);
  assert.equal(drift.code, 2, drift.stderr);
  assert.match(drift.stdout, /retag\s+\S+e2e\/web:latest.*drift/);
  await ok(['apply'], opts);
  assert.equal(remoteDigest(`${reg.host}/e2e/web:latest`), digests['e2e/web:1.0']);
});

test('prune deletes the tags of a removed image, never a tag another tool pushed; a stale saved plan is refused', async (t) => {
  requireRoot('apply with RUN steps');
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const p = project(t, reg.host);
  const opts = { root: p.root, cwd: p.dir };
  writeSpec(p.dir, reg.host, `  old:\n    from: base\n    repository: e2e/old\n    tags: ["1"]\n    push: [local]\n`);
  await ok(['apply'], opts);
  run('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${reg.host}/e2e/web:1.0`, `docker://${reg.host}/e2e/web:foreign`]);
  // skopeo copies the manifest as is: the copy carries our annotations, but this project did not
  // write that tag (it is not in the ownership record), so prune leaves it alone. A truly foreign image:
  const foreign = join(tempDir(t), 'foreign');
  makeBusyboxRootfs(foreign);
  await ok(['image', 'import', foreign, `${reg.host}/e2e/api:foreign`], opts);
  await ok(['image', 'push', `${reg.host}/e2e/api:foreign`], opts);

  writeSpec(p.dir, reg.host);
  const plan = await ok(['plan', '--prune', '-o', join(p.dir, 'plan.json')], opts);
  assert.match(plan.stdout, /delete\s+\S+e2e\/old:1/);
  assert.doesNotMatch(plan.stdout, /delete\s+\S+:foreign/);
  assert.doesNotMatch(plan.stdout, /Warning/);

  // The state moves: the saved plan is stale.
  run('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${reg.host}/e2e/web:1.0`, `docker://${reg.host}/e2e/api:1`]);
  const stale = await dimg(['apply', join(p.dir, 'plan.json')], opts);
  assert.equal(stale.code, 1);
  assert.match(stale.stderr, /stale/);

  await ok(['apply', '--prune'], opts);
  const tags = (repo: string) => JSON.parse(run('skopeo', ['list-tags', '--tls-verify=false', `docker://${reg.host}/${repo}`])).Tags as string[];
  assert.deepEqual(tags('e2e/old'), ['dimg-state-e2e']);
  assert.deepEqual(tags('e2e/web').sort(), ['1.0', 'dimg-state-e2e', 'foreign', 'latest']);
  assert.deepEqual(tags('e2e/api').sort(), ['1', 'dimg-state-e2e', 'foreign']);

  // Rename latest → stable: one apply --prune removes latest alone (its manifest stays under stable
  // and 1.0), and the next plan has nothing left to do.
  const latest = remoteDigest(`${reg.host}/e2e/web:latest`);
  writeFileSync(p.file, readFileSync(p.file, 'utf8').replace('tags: ["1.0", "latest"]', 'tags: ["1.0", "stable"]'));
  await ok(['apply', '--prune'], opts);
  assert.deepEqual(tags('e2e/web').sort(), ['1.0', 'dimg-state-e2e', 'foreign', 'stable']);
  assert.equal(remoteDigest(`${reg.host}/e2e/web:stable`), latest);
  assert.equal(remoteDigest(`${reg.host}/e2e/web:foreign`), latest);
  const clean = await dimg(['plan', '--prune', '--detailed-exitcode'], opts);
  assert.equal(clean.code, 0, clean.stdout + clean.stderr);
  assert.match(clean.stdout, /^No changes\./m);

  // An interrupted prune (the tag already on its throw-away manifest, never deleted) is finished by
  // the next apply --prune, recognised from the record.
  const api1 = remoteDigest(`${reg.host}/e2e/api:1`);
  const throwAway = throwAwayManifest('e2e', `${reg.host}/e2e/api:1`, api1 as Digest);
  const put = await fetch(`${reg.url}/v2/e2e/api/manifests/1`, { method: 'PUT', headers: { 'content-type': throwAway.mediaType }, body: throwAway.bytes });
  assert.equal(put.status, 201);
  writeFileSync(p.file, readFileSync(p.file, 'utf8').replace(/  api:\n[\s\S]*?push: \[local\]\n/, ''));
  const leftover = await ok(['plan', '--prune'], opts);
  assert.match(leftover.stdout, /delete\s+\S+e2e\/api:1 .*left over by an interrupted prune/);
  await ok(['apply', '--prune'], opts);
  assert.deepEqual(tags('e2e/api').sort(), ['dimg-state-e2e', 'foreign']);
  assert.equal((await dimg(['plan', '--prune', '--detailed-exitcode'], opts)).code, 0);
});

test('webhooks: each tag written is POSTed to the notify URLs; a failing hook is only a warning', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const { createServer } = await import('node:http');
  const received: { ref: string; digest: string; project: string; event: string }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push(JSON.parse(body));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const port = (server.address() as { port: number }).port;
  const dir = tempDir(t);
  mkdirSync(join(dir, 'site'));
  writeFileSync(join(dir, 'site', 'index.html'), 'hi\n');
  writeFileSync(
    join(dir, 'images.yaml'),
    `version: 1
project: hooks
notify: ["http://127.0.0.1:${port}/hook", "http://127.0.0.1:1/unreachable"]
registries:
  local: { url: ${reg.host}, insecure: true }
images:
  site:
    from: scratch
    context: ./site
    steps:
      - copy: index.html
        to: /www/
    tags: ["a", "b"]
    push: [local]
`,
  );
  const r = await ok(['apply', '--progress=plain'], { root: join(dir, 'store'), cwd: dir });
  assert.match(r.stdout, /Warning: webhook http:\/\/127\.0\.0\.1:1\/unreachable/);
  assert.deepEqual(received.map((x) => x.ref).sort(), [`${reg.host}/site:a`, `${reg.host}/site:b`]);
  for (const x of received) {
    assert.equal(x.event, 'push');
    assert.equal(x.project, 'hooks');
    assert.equal(x.digest, remoteDigest(x.ref));
  }
});
