/**
 * The step operations and the pure graph-and-key module: every step kind of the model has one
 * operation in the table, config steps key on the step alone and change only the config, `copy
 * --from` keys on the identity of the image it copies from, and the dependency graph selects what a
 * build needs in the spec's order.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256, type Digest } from '../../src/oci/digest.js';
import { isDimgError } from '../../src/errors.js';
import { STEP_KINDS, type ImageSpec, type Spec, type Step } from '../../src/specfile/model.js';
import { stepOp } from '../../src/builder/step-ops.js';
import type { StepKeying } from '../../src/builder/step-op.js';
import { dependenciesOf, selectImages, stepKey } from '../../src/builder/dependencies.js';
import { ContextKeyer } from '../../src/builder/keys.js';
import { FileDigests } from '../../src/builder/file-digests.js';
import { imageSpec } from '../support/image-spec.js';
import { tempDir } from '../support/tmp.js';

const PARENT = sha256('parent') as Digest;
const OTHER = sha256('other parent') as Digest;

/** One sample step of every kind. */
const SAMPLES: Record<(typeof STEP_KINDS)[number], Step> = {
  run: { kind: 'run', form: 'shell', command: ['true'], env: {}, network: 'none', secrets: [] },
  copy: { kind: 'copy', src: ['a'], to: '/a' },
  add: { kind: 'add', src: ['a'], to: '/a' },
  env: { kind: 'env', vars: { A: '1' } },
  workdir: { kind: 'workdir', path: 'srv' },
  user: { kind: 'user', user: 'app' },
  label: { kind: 'label', labels: { l: 'v' } },
  expose: { kind: 'expose', ports: ['80'] },
  volume: { kind: 'volume', paths: ['/data'] },
  shell: { kind: 'shell', argv: ['/bin/bash', '-c'] },
  stopsignal: { kind: 'stopsignal', signal: 'SIGQUIT' },
  healthcheck: {
    kind: 'healthcheck',
    test: ['CMD', 'true'],
    interval: 0,
    timeout: 0,
    startPeriod: 0,
    startInterval: 0,
    retries: 0,
  },
};

function keying(spec: ImageSpec, parent: Digest, fromIdentity = async () => sha256('from') as Digest): StepKeying {
  const digests = FileDigests.inMemory();
  return { spec, position: 0, parent, config: { WorkingDir: '/w' }, matcher: undefined, fromIdentity, digests };
}

test('step ops: every step kind has its operation; run, copy and add make layers, the rest only config', () => {
  for (const kind of STEP_KINDS) {
    const op = stepOp(SAMPLES[kind]);
    assert.ok(op, `no operation for ${kind}`);
    assert.equal(op.kind, ['run', 'copy', 'add'].includes(kind) ? 'layer' : 'config', kind);
  }
});

test('step ops: config steps key on their parent and the step alone, and change a copy of the config', async () => {
  const spec = imageSpec('c', { kind: 'scratch' }, []);
  for (const kind of STEP_KINDS) {
    const step = SAMPLES[kind];
    const op = stepOp(step);
    if (op.kind !== 'config') continue;
    const k = await op.cacheKey(step, keying(spec, PARENT));
    assert.equal(k.key, stepKey(PARENT, step, null), kind);
    const other = await op.cacheKey(step, keying(spec, OTHER));
    assert.notEqual(other.key, k.key, `${kind}: the parent is part of the key`);
    const before = { WorkingDir: '/w', Env: ['Z=0'] };
    const after = op.configure(before, step);
    assert.deepEqual(before, { WorkingDir: '/w', Env: ['Z=0'] }, `${kind}: the input config is left alone`);
    assert.notDeepEqual(after, before, `${kind}: the step changes the config`);
  }
  const workdir = stepOp(SAMPLES.workdir);
  const moved = workdir.kind === 'config' && workdir.configure({ WorkingDir: '/w' }, SAMPLES.workdir);
  assert.equal(moved && moved.WorkingDir, '/w/srv');
});

test('step ops: run keys on the step; copy --from keys on the identity of the image it copies from', async () => {
  const spec = imageSpec('c', { kind: 'scratch' }, []);
  const run = SAMPLES.run;
  assert.equal((await stepOp(run).cacheKey(run, keying(spec, PARENT))).key, stepKey(PARENT, run, null));
  const copy: Step = { kind: 'copy', src: ['/bin'], to: '/bin', from: { kind: 'image', key: 'tools' } };
  const one = await stepOp(copy).cacheKey(copy, keying(spec, PARENT, async () => sha256('tools 1') as Digest));
  const two = await stepOp(copy).cacheKey(copy, keying(spec, PARENT, async () => sha256('tools 2') as Digest));
  assert.equal(one.fromIdentity, sha256('tools 1'));
  assert.equal(one.key, stepKey(PARENT, copy, { from: sha256('tools 1') }));
  assert.notEqual(one.key, two.key);
});

test('step ops: a context copy keys on the content sent and hands the resolved sources to the builder', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'ctx'));
  writeFileSync(join(dir, 'ctx', 'a'), 'one\n');
  const copy: Step = { kind: 'copy', src: ['a'], to: 'a' };
  const spec = imageSpec('c', { kind: 'scratch' }, [copy], { context: join(dir, 'ctx') });
  const from = async (): Promise<Digest> => assert.fail('no copy --from here');
  const base = { key: PARENT, config: { WorkingDir: '/w' } };
  const keys = () => new ContextKeyer('p', FileDigests.inMemory()).imageKeys(spec, base, from);
  const first = await keys();
  const sources = [{ from: join(dir, 'ctx', 'a'), to: 'w/a' }];
  assert.deepEqual(first.copyPlans[0]?.sources, sources, 'resolved against WORKDIR');
  assert.equal((await keys()).inputDigest, first.inputDigest);
  writeFileSync(join(dir, 'ctx', 'a'), 'two\n');
  const edited = await keys();
  assert.notEqual(edited.stepKeys[0], first.stepKeys[0], 'new content, new key');
});

test('dependencies: an image needs its from image and its copy --from images; selection keeps spec order', () => {
  const base = imageSpec('base', { kind: 'scratch' }, []);
  const tools = imageSpec('tools', { kind: 'scratch' }, []);
  const web = imageSpec('web', { kind: 'image', key: 'base' }, [
    { kind: 'copy', src: ['/bin'], to: '/bin', from: { kind: 'image', key: 'tools' } },
    { kind: 'copy', src: ['/etc'], to: '/etc', from: { kind: 'ref', ref: 'busybox:1' } },
  ]);
  const lone = imageSpec('lone', { kind: 'scratch' }, []);
  assert.deepEqual(dependenciesOf(web), ['base', 'tools']);
  const spec = { file: '/x/images.yaml', images: [base, tools, web, lone] } as unknown as Spec;
  assert.deepEqual(selectImages(spec, ['web']).map((i) => i.key), ['base', 'tools', 'web']);
  assert.deepEqual(selectImages(spec, []).map((i) => i.key), ['base', 'tools', 'web', 'lone']);
  const unknown = (e: unknown) => isDimgError(e, 'IMAGE_NOT_IN_SPEC') && /base, tools, web, lone/.test(e.hint);
  assert.throws(() => selectImages(spec, ['nope']), unknown);
});
