import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diff } from '../../src/plan/diff.js';
import { renderPlanText } from '../../src/plan/render/text.js';
import type { ActualState, DesiredState, RemoteTag } from '../../src/plan/state.js';
import type { Digest } from '../../src/oci/digest.js';
import { sha256 } from '../../src/oci/digest.js';
import { throwAwayManifest } from '../../src/registry/throwaway-manifest.js';

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

function actual(remote: Record<string, RemoteTag | null>, local: Digest[] = [], records: ActualState['records'] = []): ActualState {
  return {
    local: { byInputDigest: new Map(local.map((x) => [x, d(`m-${x}`)])), refs: new Map() },
    remote: new Map(Object.entries(remote)),
    records,
  };
}

/** A record of repository `repo` (under R): tag → [recorded digest, digest the tag holds now (null: gone)]. */
function record(repo: string, tags: Record<string, [Digest, Digest | null | undefined]>): ActualState['records'][number] {
  const entries = Object.entries(tags);
  return {
    registry: 'local',
    repository: `${R}/${repo}`,
    tags: new Map(entries.map(([t, [rec]]) => [t, rec])),
    now: new Map(entries.filter(([, [, now]]) => now !== undefined).map(([t, [, now]]) => [t, now as Digest | null])),
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

test('a tag this project wrote and someone deleted is drift, restored by a retag from its sibling; a tag never written is a new tag', () => {
  const written = record('web', { '1': [tag('web-in').digest, undefined], latest: [tag('web-in').digest, undefined] });
  const r = diff(desired(), actual({ [`${R}/web:1`]: tag('web-in'), [`${R}/web:latest`]: null }, [d('base-in')], [written]));
  const retag = r.actions.find((a) => a.kind === 'retag');
  assert.ok(retag && retag.kind === 'retag');
  assert.equal(retag.reason, 'drift');
  assert.equal(retag.source, `${R}/web:1`);
  assert.ok(!r.actions.some((a) => a.kind === 'build'));
  // The same registry state, but `latest` was just added to the spec: nothing was moved behind dimg's back.
  const added = diff(desired(), actual({ [`${R}/web:1`]: tag('web-in'), [`${R}/web:latest`]: null }, [d('base-in')], [record('web', { '1': [tag('web-in').digest, undefined] })]));
  const retagNew = added.actions.find((a) => a.kind === 'retag');
  assert.equal(retagNew && retagNew.kind === 'retag' && retagNew.reason, 'new tag');
  // Written by this project, then overwritten with an older build by another tool: drift, not outdated.
  const moved = diff(desired(), actual({ [`${R}/web:1`]: tag('web-in'), [`${R}/web:latest`]: tag('web-old') }, [d('base-in')], [written]));
  const back = moved.actions.find((a) => (a.kind === 'retag' || a.kind === 'push') && a.target.ref.endsWith(':latest'));
  assert.equal(back && 'reason' in back && back.reason, 'drift');
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

test('prune deletes only recorded, undeclared tags still holding the recorded digest; copies and other tags are never candidates', () => {
  const web = tag('web-in');
  const records = [
    record('old', { '1': [d('manifest-old-in'), d('manifest-old-in')] }),
    // `stale` shares web:1's manifest (a renamed tag): deleted alone; `moved` was overwritten by someone else.
    record('web', { '1': [web.digest, web.digest], latest: [web.digest, web.digest], stale: [web.digest, web.digest], moved: [web.digest, d('theirs')], gone: [web.digest, null] }),
  ];
  const r = diff(desired(true), actual({ [`${R}/web:1`]: web, [`${R}/web:latest`]: web }, [], records), {});
  const deletes = r.actions.filter((a) => a.kind === 'delete').map((a) => a.kind === 'delete' && [a.target.ref, a.digest, a.recorded]);
  assert.deepEqual(deletes, [[`${R}/old:1`, d('manifest-old-in'), d('manifest-old-in')], [`${R}/web:stale`, web.digest, web.digest]]);
  assert.deepEqual(r.ownership.map((o) => [o.kind, o.target.ref]), [['forget', `${R}/web:gone`], ['forget', `${R}/web:moved`]]);
  assert.deepEqual(r.warnings, []);
  assert.match(renderPlanText(r), /Plan: 0 to build, 0 to push, 0 to retag, 2 to delete, 2 ownership record entries to update\./);
});

test('a tag left on the throw-away manifest of an interrupted prune is recognised from the record and deleted', () => {
  const recorded = d('manifest-old-in');
  const leftover = throwAwayManifest('shop', `${R}/old:1`, recorded).digest;
  const r = diff(desired(true), actual({ [`${R}/web:1`]: tag('web-in'), [`${R}/web:latest`]: tag('web-in') }, [], [record('old', { '1': [recorded, leftover] })]));
  const del = r.actions.find((a) => a.kind === 'delete');
  assert.ok(del && del.kind === 'delete' && del.leftover === true && del.digest === leftover && del.recorded === recorded);
  // Another project's throw-away manifest (or anything else) is not recognised: kept, forgotten.
  const other = throwAwayManifest('other', `${R}/old:1`, recorded).digest;
  const r2 = diff(desired(true), actual({ [`${R}/web:1`]: tag('web-in'), [`${R}/web:latest`]: tag('web-in') }, [], [record('old', { '1': [recorded, other] })]));
  assert.ok(!r2.actions.some((a) => a.kind === 'delete'));
});

test('adoption: declared up-to-date tags with this project\'s image but not in the record are recorded, and that is a change', () => {
  const web = tag('web-in');
  const foreign = tag('web-in', { project: 'other' });
  const r = diff(desired(), actual({ [`${R}/web:1`]: web, [`${R}/web:latest`]: foreign }, [d('base-in')], [record('web', {})]));
  assert.deepEqual(r.ownership.map((o) => [o.kind, o.target.ref, o.digest]), [['adopt', `${R}/web:1`, web.digest]]);
  assert.doesNotMatch(renderPlanText(r), /No changes/);
  const done = diff(desired(), actual({ [`${R}/web:1`]: web, [`${R}/web:latest`]: web }, [d('base-in')], [record('web', { '1': [web.digest, undefined], latest: [web.digest, undefined] })]));
  assert.deepEqual(done.ownership, []);
  assert.match(renderPlanText(done), /^No changes\./m);
});
