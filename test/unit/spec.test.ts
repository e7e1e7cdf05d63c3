import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { loadSpec, canonicalStepJson, SpecError, type Spec, type Step } from '../../src/specfile/index.js';
import { nodeSpecPorts } from '../../src/specfile/node-ports.js';
import { renderTemplate, sanitiseForTag } from '../../src/specfile/template.js';
import type { SpecPorts } from '../../src/specfile/ports.js';
import { tempDir } from '../support/tmp.js';
import { REPO_ROOT } from '../support/cli.js';
import { ParsedReference } from '../../src/oci/reference.js';
import type { TargetSpec } from '../../src/specfile/model.js';

const SHA = '0123456789abcdef0123456789abcdef01234567';
const NOW = new Date(Date.UTC(2026, 0, 9, 23, 59, 59));

/** Targets with their references in canonical string form, for deepEqual. */
const plain = (ts: readonly TargetSpec[]) => ts.map((t) => ({ registry: t.registry, ref: String(t.ref) }));

function ports(cwd: string, env: Record<string, string> = {}): SpecPorts {
  return nodeSpecPorts({ cwd, env, now: () => NOW, git: async () => ({ sha: SHA, short: SHA.slice(0, 7), branch: 'feature/x' }) });
}

/** The example of issue 4, byte for byte, with the directories it names created around it. */
function issue4(t: Parameters<typeof tempDir>[0]): string {
  const dir = tempDir(t);
  copyFileSync(join(REPO_ROOT, 'test/fixtures/specs/issue4/images.yaml'), join(dir, 'images.yaml'));
  mkdirSync(join(dir, 'base-rootfs/bin'), { recursive: true });
  mkdirSync(join(dir, 'web/site'), { recursive: true });
  writeFileSync(join(dir, 'web/site/index.html'), '<h1>shop</h1>\n');
  mkdirSync(join(dir, 'api'));
  writeFileSync(join(dir, 'api/package.json'), '{}\n');
  writeFileSync(
    join(dir, 'api/Dockerfile'),
    ['FROM docker.io/library/node:20-alpine AS deps', 'WORKDIR /app', 'COPY package.json ./', 'RUN npm ci --omit=dev', '', 'FROM docker.io/library/node:20-alpine', 'ARG NODE_ENV=development', 'ENV NODE_ENV=$NODE_ENV', 'COPY --from=deps /app /app', 'CMD ["node", "/app/index.js"]', ''].join('\n'),
  );
  return dir;
}

test('the example of issue 4 loads as written and normalises to the expected model', async (t) => {
  const dir = issue4(t);
  const spec = await loadSpec('images.yaml', ports(dir, { VERSION: '2.0.1' }));
  assert.equal(spec.project, 'shop');
  assert.equal(spec.file, join(dir, 'images.yaml'));
  assert.deepEqual(spec.registries.prod, {
    name: 'prod',
    url: 'registry.example.com/shop',
    host: 'registry.example.com',
    prefix: 'shop',
    insecure: false,
    auth: { usernameEnv: 'PROD_USER', passwordEnv: 'PROD_TOKEN' },
    mirrors: ['mirror.example.com/shop'],
    ca: undefined,
  });
  assert.equal(spec.registries.local!.insecure, true);
  // Dependency order: base before web; the api's Dockerfile stage before api.
  const keys = spec.images.map((i) => i.key);
  assert.deepEqual(keys, ['base', 'web', 'api~deps', 'api', 'busybox-mirror']);
  const [base, web, deps, api, mirror] = spec.images;
  assert.deepEqual(base!.from, { kind: 'rootfs', path: join(dir, 'base-rootfs') });
  assert.deepEqual(base!.localRefs, ['docker.io/library/base:1']);
  assert.deepEqual(web!.from, { kind: 'image', key: 'base' });
  assert.equal(web!.context, join(dir, 'web'));
  assert.deepEqual(web!.tags, ['1.4.2', 'latest', `git-${SHA}`]);
  assert.equal(web!.targets.length, 6);
  assert.deepEqual(plain(web!.targets)[0], { registry: 'local', ref: '127.0.0.1:5000/shop/web:1.4.2' });
  assert.deepEqual(plain(web!.targets)[3], { registry: 'prod', ref: 'registry.example.com/shop/shop/web:1.4.2' });
  // Targets are parsed once, at load.
  assert.ok(web!.targets[3]!.ref instanceof ParsedReference);
  const prod = web!.targets[3]!.ref;
  assert.deepEqual([prod.domain, prod.path, prod.tag], ['registry.example.com', 'shop/shop/web', '1.4.2']);
  assert.deepEqual(web!.localRefs[0], 'docker.io/shop/web:1.4.2');
  assert.deepEqual(web!.labels, { 'org.opencontainers.image.vendor': 'Shop' });
  assert.equal(web!.platform, 'linux/amd64');
  assert.deepEqual(web!.entrypoint, ['/bin/httpd', '-f']);
  assert.deepEqual(web!.cmd, ['-p', '8080']);
  assert.deepEqual(
    web!.steps.map((s) => s.kind),
    ['run', 'copy', 'env', 'workdir', 'user', 'label', 'expose'],
  );
  assert.deepEqual(web!.steps[0], { kind: 'run', form: 'shell', command: ['mkdir -p /srv && echo ok > /srv/health'], env: {}, network: 'none', secrets: [] });
  assert.deepEqual(web!.steps[1], { kind: 'copy', src: ['site/'], to: '/srv/', chown: '1000:1000', chmod: undefined, from: undefined });
  assert.deepEqual(web!.steps[6], { kind: 'expose', ports: ['8080/tcp'] });
  assert.equal(web!.location.line, 19);
  assert.equal(web!.location.col, 3);
  assert.equal(deps!.intermediate, true);
  assert.deepEqual(deps!.targets, []);
  assert.equal(api!.dockerfile, join(dir, 'api/Dockerfile'));
  assert.deepEqual(api!.tags, ['2.0.1']);
  assert.deepEqual(plain(api!.targets), [{ registry: 'local', ref: '127.0.0.1:5000/api:2.0.1' }]);
  assert.deepEqual(api!.steps[0], { kind: 'env', vars: { NODE_ENV: 'production' } });
  assert.deepEqual(api!.steps[1], { kind: 'copy', src: ['/app'], to: '/app', chown: undefined, chmod: undefined, from: { kind: 'image', key: 'api~deps' } });
  assert.deepEqual(mirror!.from, { kind: 'ref', ref: 'docker.io/library/busybox:1.36' });
  assert.deepEqual(mirror!.steps, []);
  assert.deepEqual(plain(mirror!.targets), [{ registry: 'local', ref: '127.0.0.1:5000/busybox-mirror:1.36' }]);
  assert.equal(spec.prune, false);
  assert.deepEqual(spec.notify, []);
});

test('the model is deeply frozen', async (t) => {
  const spec = await loadSpec('images.yaml', ports(issue4(t)));
  assert.ok(Object.isFrozen(spec) && Object.isFrozen(spec.images) && Object.isFrozen(spec.images[1]!.steps[0]) && Object.isFrozen(spec.images[1]!.tags));
  assert.throws(() => {
    (spec.images[1]!.tags as string[]).push('x');
  });
});

test('unset VERSION falls back to the template default; git comes from the port, lazily', async (t) => {
  const dir = issue4(t);
  let gitCalls = 0;
  const p = { ...ports(dir), git: async () => (gitCalls++, { sha: SHA, short: 'abc1234' }) };
  const spec = await loadSpec('images.yaml', p);
  assert.deepEqual(spec.images.find((i) => i.key === 'api')!.tags, ['dev']);
  assert.equal(gitCalls, 1);
});

test('without a git checkout, ${git.sha} is a located problem', async (t) => {
  const dir = issue4(t);
  await assert.rejects(
    loadSpec('images.yaml', { ...ports(dir), git: async () => undefined }),
    (e: unknown) => e instanceof SpecError && e.problems.length === 1 && e.problems[0]!.line === 35 && /git checkout/.test(e.problems[0]!.message),
  );
});

test('the real git port reads sha, short sha and branch', async (t) => {
  const dir = tempDir(t);
  const git = (...a: string[]) => spawnSync('git', ['-C', dir, '-c', 'user.email=t@e', '-c', 'user.name=t', ...a], { encoding: 'utf8' });
  git('init', '-q', '-b', 'release/1.x');
  git('commit', '-q', '--allow-empty', '-m', 'x');
  const sha = git('rev-parse', 'HEAD').stdout.trim();
  writeFileSync(join(dir, 'images.yaml'), 'version: 1\nimages:\n  a:\n    from: scratch\n    tags: ["${git.sha}", "s-${git.short}", "${git.branch}"]\n');
  const spec = await loadSpec('images.yaml', nodeSpecPorts({ cwd: dir }));
  assert.deepEqual(spec.images[0]!.tags, [sha, `s-${sha.slice(0, 7)}`, 'release-1.x']);
});

test('tag templates: env with defaults, date in UTC, branch made tag-safe', () => {
  const ctx = { env: { A: 'x', EMPTY: '' }, now: NOW, git: { sha: SHA, short: 'abc', branch: 'feat/Y_1' } };
  assert.deepEqual(renderTemplate('v${env.A}-${date}', ctx), { ok: true, value: 'vx-20260109' });
  assert.deepEqual(renderTemplate('${env.EMPTY:-d}', ctx), { ok: true, value: 'd' });
  assert.deepEqual(renderTemplate('${ git.branch }', ctx), { ok: true, value: 'feat-Y_1' });
  assert.equal(sanitiseForTag('.hidden/x'), 'hidden-x');
  const r = renderTemplate('a-${env.NOPE}', ctx);
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.offset, 2);
  assert.equal(renderTemplate('a${', ctx).ok, false);
});

test('canonical steps are stable and exclude where secret values come from', () => {
  const a: Step = { kind: 'run', form: 'shell', command: ['make'], env: { B: '2', A: '1' }, network: 'none', secrets: [{ id: 'npm', src: '/home/me/.npmrc', target: '/run/secrets/npm', required: true }] };
  const b: Step = { kind: 'run', form: 'shell', command: ['make'], env: { A: '1', B: '2' }, network: 'none', secrets: [{ id: 'npm', env: 'NPM_TOKEN', target: '/run/secrets/npm', required: true }] };
  assert.equal(canonicalStepJson(a), canonicalStepJson(b));
  assert.notEqual(canonicalStepJson(a), canonicalStepJson({ ...a, network: 'host' }));
  const copy: Step = { kind: 'copy', src: ['a'], to: '/x' };
  assert.equal(canonicalStepJson(copy), '{"chmod":null,"chown":null,"from":null,"kind":"copy","src":["a"],"to":"/x"}');
});

test('every example and the top-level demo validate', async () => {
  spawnSync(process.execPath, [join(REPO_ROOT, 'examples/demo/make-rootfs.mjs')], { stdio: 'ignore' });
  const files = ['images.yaml', ...readdirSync(join(REPO_ROOT, 'examples'), { withFileTypes: true }).filter((d) => d.isDirectory() && readdirSync(join(REPO_ROOT, 'examples', d.name)).includes('images.yaml')).map((d) => `examples/${d.name}/images.yaml`)];
  assert.ok(files.length >= 5, `examples found: ${files.join(', ')}`);
  const loaded: Spec[] = [];
  for (const f of files) {
    try {
      loaded.push(await loadSpec(f, ports(REPO_ROOT)));
    } catch (e) {
      assert.fail(`${f} does not validate:\n${(e as Error).message}`);
    }
  }
  const demo = loaded[0]!;
  assert.deepEqual(demo.images[0]!.from, { kind: 'rootfs', path: join(REPO_ROOT, 'examples/demo/rootfs') });
  // The offline demo pushes nowhere: a fresh machine has no registry.
  assert.ok(demo.images.every((i) => i.targets.length === 0));
});

test('a missing spec file is SPEC_NOT_FOUND', async (t) => {
  await assert.rejects(loadSpec('nope.yaml', ports(tempDir(t))), (e: unknown) => (e as { code?: string }).code === 'SPEC_NOT_FOUND');
});
