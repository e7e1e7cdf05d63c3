/**
 * The build commands as users run them: `dimg build` of an images.yaml with a busybox rootfs base,
 * then `dimg image build` of a multi-stage Dockerfile on top of it, and `dimg image history`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dimg } from '../support/cli.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { requireRoot, requireTool, run } from '../support/tools.js';
import { tempDir } from '../support/tmp.js';

test('dimg build, then dimg image build of a multi-stage Dockerfile; history reads like Docker', async (t) => {
  requireRoot('building with RUN steps');
  requireTool('umoci', 'umoci');
  const work = tempDir(t);
  const root = join(work, 'store');
  makeBusyboxRootfs(join(work, 'rootfs'));
  mkdirSync(join(work, 'web'));
  writeFileSync(join(work, 'web', 'index.html'), 'hello\n');
  writeFileSync(
    join(work, 'images.yaml'),
    `version: 1
project: demo
images:
  bb:
    from: { rootfs: ./rootfs }
    tags: ["test"]
  web:
    from: bb
    context: ./web
    steps:
      - run: mkdir -p /srv && echo ok > /srv/health
      - copy: index.html
        to: /srv/
      - workdir: /srv
    cmd: ["cat", "/srv/index.html"]
    tags: ["1"]
`,
  );
  const b1 = await dimg(['build', join(work, 'images.yaml')], { root, cwd: work });
  assert.equal(b1.code, 0, b1.stderr + b1.stdout);
  assert.match(b1.stdout, /\[web 2\/4\] RUN \/bin\/sh -c mkdir -p \/srv && echo ok > \/srv\/health  \d+\.\ds/);
  assert.match(b1.stdout, /naming to web:1/);
  const b2 = await dimg(['build', join(work, 'images.yaml'), 'web'], { root, cwd: work });
  assert.equal(b2.code, 0, b2.stderr);
  assert.match(b2.stdout, /\[web 2\/4\] RUN .* CACHED/);
  assert.doesNotMatch(b2.stdout, /\d\.\ds\n/, 'a rebuild with nothing changed runs no step');

  const app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'main.txt'), 'source\n');
  writeFileSync(
    join(app, 'Dockerfile'),
    `FROM bb:test AS build
ARG FLAVOUR=plain
WORKDIR /src
COPY main.txt .
RUN cat main.txt > out.txt && echo "$FLAVOUR" >> out.txt

FROM bb:test
COPY --from=build /src/out.txt /app/out.txt
ENV MODE=prod
CMD ["cat", "/app/out.txt"]
`,
  );
  const ib = await dimg(['image', 'build', '-t', 'app:2', '--build-arg', 'FLAVOUR=spicy', app], { root, cwd: work });
  assert.equal(ib.code, 0, ib.stderr + ib.stdout);
  assert.match(ib.stdout, /naming to app:2/);
  const bundle = join(work, 'bundle');
  run('umoci', ['unpack', '--image', `${join(root, 'oci')}:docker.io/library/app:2`, bundle]);
  assert.equal(readFileSync(join(bundle, 'rootfs', 'app', 'out.txt'), 'utf8'), 'source\nspicy\n');

  const h = await dimg(['image', 'history', '--no-trunc', 'app:2'], { root });
  assert.equal(h.code, 0, h.stderr);
  const lines = h.stdout.trim().split('\n');
  assert.match(lines[0]!, /^IMAGE\s+CREATED\s+CREATED BY\s+SIZE\s+COMMENT/);
  assert.match(lines[1]!, /CMD \["cat","\/app\/out.txt"\]\s+0B/);
  assert.match(lines[2]!, /ENV MODE=prod\s+0B/);
  assert.match(lines[3]!, /COPY --from=\S+ \/src\/out.txt \/app\/out.txt\s+\d/);
  assert.match(lines[4]!, /Imported from rootfs/);
});

test('image build: RUN --network=host is refused at its line unless the builder passes --allow network.host', async (t) => {
  requireRoot('building with RUN steps');
  const work = tempDir(t);
  const root = join(work, 'store');
  makeBusyboxRootfs(join(work, 'rootfs'));
  writeFileSync(join(work, 'images.yaml'), 'version: 1\nproject: net\nimages:\n  bb:\n    from: { rootfs: ./rootfs }\n    tags: ["test"]\n');
  assert.equal((await dimg(['build', join(work, 'images.yaml')], { root, cwd: work })).code, 0);
  const app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'Dockerfile'), 'FROM bb:test\nRUN --network=host ip link show lo > /links\n');
  const refused = await dimg(['image', 'build', '-t', 'net:1', app], { root, cwd: work });
  assert.equal(refused.code, 1, refused.stdout + refused.stderr);
  assert.match(refused.stderr, /Dockerfile:2:1.*--network=host needs the network\.host entitlement/s);
  const bad = await dimg(['image', 'build', '--allow', 'everything', '-t', 'net:1', app], { root, cwd: work });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--allow everything: unknown entitlement/);
  const granted = await dimg(['image', 'build', '--allow', 'network.host', '-t', 'net:1', app], { root, cwd: work });
  assert.equal(granted.code, 0, granted.stdout + granted.stderr);
});
