import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { dimg, REPO_ROOT } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

test('dimg validate: a valid spec prints a one-line summary and exits 0', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'site'));
  writeFileSync(join(dir, 'site', 'index.html'), 'hi\n');
  writeFileSync(
    join(dir, 'images.yaml'),
    'version: 1\nregistries:\n  local: { url: 127.0.0.1:5000 }\n  b: { url: example.com/x }\nimages:\n  web:\n    from: busybox:1.36\n    context: ./site\n    steps:\n      - copy: index.html\n        to: /www/\n    tags: ["1", "${env.V:-dev}"]\n    push: [local, b]\n',
  );
  const r = await dimg(['validate'], { cwd: dir, env: { V: '' } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'images.yaml: 1 image, 2 tags, 4 targets — valid\n');
  assert.equal(r.stderr, '');
});

test('dimg validate FILE: every problem with file:line:col, the source line and a caret; exit 1', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'spec.yaml'), 'version: 1\nimages:\n  web:\n    from: bsae\n    tgs: ["1"]\n  base:\n    from: scratch\n    push: [nowhere]\n');
  const r = await dimg(['validate', 'spec.yaml'], { cwd: dir });
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  const lines = r.stderr.split('\n');
  assert.ok(lines.includes('spec.yaml:5:5: images.web: unknown key "tgs"; did you mean "tags"?'), r.stderr);
  assert.ok(lines.includes('    5 |     tgs: ["1"]'), r.stderr);
  assert.ok(lines.includes('      |     ^^^'), r.stderr);
  assert.ok(lines.some((l) => l.startsWith('spec.yaml:8:12: registry "nowhere" is not declared')), r.stderr);
  assert.match(r.stderr, /spec\.yaml: 2 problems\n$/);
});

test('dimg validate: a missing file is a one-line error; the top-level demo validates', async (t) => {
  const r = await dimg(['validate', 'nope.yaml'], { cwd: tempDir(t) });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: spec file nope\.yaml does not exist\nhint: /);
  spawnSync(process.execPath, [join(REPO_ROOT, 'examples/demo/make-rootfs.mjs')], { stdio: 'ignore' });
  const demo = await dimg(['validate'], { cwd: REPO_ROOT });
  assert.equal(demo.code, 0, demo.stderr);
  assert.match(demo.stdout, /^images\.yaml: 2 images, 3 tags, 0 targets — valid\n$/);
});

test('dimg schema prints the JSON Schema', async () => {
  const r = await dimg(['schema']);
  assert.equal(r.code, 0);
  assert.deepEqual(JSON.parse(r.stdout), JSON.parse(readFileSync(join(REPO_ROOT, 'schemas/images.schema.json'), 'utf8')));
});
