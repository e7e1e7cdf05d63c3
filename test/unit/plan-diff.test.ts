import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diff } from '../../src/plan/diff.js';
import { renderPlanText } from '../../src/plan/render/text.js';
import type { ActualState, DesiredState, RemoteTag } from '../../src/plan/state.js';
import type { Digest } from '../../src/oci/digest.js';
import { sha256 } from '../../src/oci/digest.js';

const d = (s: string): Digest => sha256(s);
const R = '127.0.0.1:5000/shop';

function desired(prune = false): DesiredState {
  return {
    project: 'shop',
    prune,
    images: [
      { key: 'base', inputDigest: d('base-in'), dependsOn: [], localRefs: ['docker.io/library/base:1'], targets: [] },
      { key: 'web', inputDigest: d('web-in'), baseDigest: d('base-in'), dependsOn: ['base'], localRefs: ['docker.io/shop/web:1'], targets: [
        { registry: 'local', ref: `${R}/web:1` },
        { registry: 'local', ref: `${R}/web:latest` },
      ] },
    ],
  };
}

function actual(remote: Record<string, RemoteTag | null>, local: Digest[] = [], inventory: ActualState['inventory'] = []): ActualState {
  return {
    local: { byInputDigest: new Map(local.map((x) => [x, d(`m-${x}`)])), refs: new Map() },
    remote: new Map(Object.entries(remote)),
    inventory,
  };
}

const tag = (input: string, extra: Partial<RemoteTag> = {}): RemoteTag => ({ digest: d(`manifest-${input}`), inputDigest: d(input), project: 'shop', ...extra });

test('a clean registry and empty store: build everything, push every tag', () => {
  const r = diff(desired(), actual({ [`${R}/web:1`]: null, [`${R}/web:latest`]: null }));
  assert.deepEqual(r.actions.map((a) => a.id), ['build:base', 'build:web', `push:web:local:${R}/web:1`, `push:web:local:${R}/web:latest`]);
  assert.deepEqual(r.actions[1]!.dependsOn, ['build:base']);
  assert.deepEqual(r.actions[2]!.dependsOn, ['build:web']);
  assert.deepEqual(r.actions[3]!.dependsOn, ['build:web', r.actions[2]!.id], 'pushes into one repository are serialised');
  assert.match(renderPlanText(r), /Plan: 2 to build, 2 to push, 0 to retag, 0 to delete\./);
});

test('everything up to date with an empty local store: no changes, nothing built', () => {
  const r = diff(desired(), actual({ [`${R}/web:1`]: tag('web-in'), [`${R}/web:latest`]: tag('web-in') }, [d('base-in')]));
  assert.deepEqual(r.actions.map((a) => a.kind), ['unchanged', 'unchanged']);
  assert.match(renderPlanText(r), /^No changes\. Registries match images\.yaml\./m);
});

test('a tag deleted out of band is drift, restored by a retag from its sibling', () => {
  const r = diff(desired(), actual({ [`${R}/web:1`]: tag('web-in'), [`${R}/web:latest`]: null }, [d('base-in')]));
  const retag = r.actions.find((a) => a.kind === 'retag');
  assert.ok(retag && retag.kind === 'retag');
  assert.equal(retag.reason, 'drift');
  assert.equal(retag.source, `${R}/web:1`);
  assert.ok(!r.actions.some((a) => a.kind === 'build'));
});

test('a push to a newly added registry says "new registry"; an older build of the image is "outdated", not drift', () => {
  const P = '127.0.0.1:6000/prod';
  const spec = desired();
  spec.images[1]!.targets.push({ registry: 'prod', ref: `${P}/web:1` }, { registry: 'prod', ref: `${P}/web:latest` });
  // Current in `local`, absent from the new registry `prod`.
  const added = diff(spec, actual({ [`${R}/web:1`]: tag('web-in'), [`${R}/web:latest`]: tag('web-in'), [`${P}/web:1`]: null, [`${P}/web:latest`]: null }, [d('base-in'), d('web-in')]));
  const toProd = added.actions.filter((a) => (a.kind === 'push' || a.kind === 'retag') && a.target.registry === 'prod');
  assert.equal(toProd.length, 2);
  for (const a of toProd) assert.equal((a as { reason: string }).reason, 'new registry');
  // After a watch session pushed the new build to `local`, `prod` still holds the previous build.
  const behind = diff(spec, actual({ [`${R}/web:1`]: tag('web-in'), [`${R}/web:latest`]: tag('web-in'), [`${P}/web:1`]: tag('web-old'), [`${P}/web:latest`]: tag('web-old') }, [d('base-in'), d('web-in')]));
  const prod = behind.actions.filter((a) => (a.kind === 'push' || a.kind === 'retag') && a.target.registry === 'prod');
  assert.equal(prod.length, 2);
  for (const a of prod) assert.equal((a as { reason: string }).reason, 'outdated');
});

test('changed inputs: rebuild with reason, base changed is named', () => {
  const r = diff(desired(), actual({ [`${R}/web:1`]: tag('web-old', { baseDigest: d('base-old') }), [`${R}/web:latest`]: tag('web-old', { baseDigest: d('base-old') }) }, [d('base-in')]));
  const build = r.actions.find((a) => a.kind === 'build');
  assert.equal(build?.kind === 'build' && build.reason, 'base changed');
});

test('prune deletes only owned, undeclared tags and never a digest a kept tag uses', () => {
  const inv = [
    { registry: 'local', ref: `${R}/old:1`, ...tag('old-in') },
    { registry: 'local', ref: `${R}/web:foreign`, ...tag('x', { project: undefined, inputDigest: undefined }) },
    { registry: 'local', ref: `${R}/web:stale`, ...tag('web-in') },
    { registry: 'local', ref: `${R}/web:1`, ...tag('web-in') },
  ];
  const r = diff(desired(true), actual({ [`${R}/web:1`]: tag('web-in'), [`${R}/web:latest`]: tag('web-in') }, [], inv), {});
  const deletes = r.actions.filter((a) => a.kind === 'delete').map((a) => a.kind === 'delete' && a.target.ref);
  assert.deepEqual(deletes, [`${R}/old:1`]);
  assert.ok(r.warnings.some((w) => w.subject === `${R}/web:stale`));
});
