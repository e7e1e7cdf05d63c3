/**
 * Saved plans: the stale-plan fingerprint and the list of what changed come from one snapshot, so a
 * plan refused as stale always says why (an ownership record that moved included).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sha256 } from '../../src/oci/digest.js';
import { describeChanges, observedFingerprint } from '../../src/plan/saved.js';
import { PLAN_FORMAT_VERSION, targetReference, type ObservedSnapshot } from '../../src/plan/types.js';
import { parsePlanJson, renderPlanJson } from '../../src/plan/render/json.js';
import { isDimgError } from '../../src/errors.js';

const snap = (over: Partial<ObservedSnapshot> = {}): ObservedSnapshot => ({
  remote: { 'r.test/shop/web:1': sha256('web-1') },
  inventory: {},
  recorded: { 'r.test/shop/web:1': sha256('web-1') },
  local: [],
  inputs: { web: sha256('in') },
  ...over,
});

test('every change the fingerprint sees is also described', () => {
  const cases: [string, Partial<ObservedSnapshot>, RegExp][] = [
    ['a tag moved', { remote: { 'r.test/shop/web:1': sha256('other') } }, /tag r\.test\/shop\/web:1 moved from sha256:/],
    ['a record entry added by another apply', { recorded: { 'r.test/shop/web:1': sha256('web-1'), 'r.test/shop/web:2': sha256('web-2') } }, /ownership record now lists r\.test\/shop\/web:2/],
    ['a record entry dropped', { recorded: {} }, /ownership record no longer lists r\.test\/shop\/web:1/],
    ['a recorded tag prune looked at was deleted', { inventory: { 'r.test/shop/web:old': null } }, /tag r\.test\/shop\/web:old was deleted/],
    ['the local store', { local: [sha256('in')] }, /local store now holds 1 more image/],
  ];
  const base = snap({ inventory: { 'r.test/shop/web:old': sha256('old') } });
  const snapFrom = (change: Partial<ObservedSnapshot>) => ({ ...base, ...change });
  for (const [what, change, said] of cases) {
    const now = snapFrom(change);
    assert.notEqual(observedFingerprint(now), observedFingerprint(base), `${what}: the fingerprint sees it`);
    const lines = describeChanges(base, now);
    assert.ok(lines.some((l) => said.test(l)), `${what}: ${JSON.stringify(lines)}`);
  }
  assert.equal(observedFingerprint(snapFrom({ inputs: { web: sha256('other') } })), observedFingerprint(base), 'desired inputs are the spec digest\'s business');
  assert.deepEqual(describeChanges(base, snapFrom({})), []);
});

/** A saved plan as an older dimg wrote it (no `observed`, `ownership`, `warnings` or `options`). */
function oldPlanFile(ref: string): string {
  return JSON.stringify({
    formatVersion: PLAN_FORMAT_VERSION,
    specDigest: sha256('spec'),
    observedFingerprint: sha256('observed'),
    specFile: 'images.yaml',
    createdAt: '2026-01-01T00:00:00.000Z',
    actions: [
      { kind: 'build', id: 'build:web', dependsOn: [], image: 'web', inputDigest: sha256('in'), reason: 'new' },
      {
        kind: 'push',
        id: `push:web:r:${ref}`,
        dependsOn: ['build:web'],
        image: 'web',
        target: { registry: 'r', ref },
        inputDigest: sha256('in'),
        reason: 'new tag',
      },
    ],
  });
}

test('a saved plan loads with its targets parsed once, and keeps their string form', () => {
  const plan = parsePlanJson(oldPlanFile('127.0.0.1:5000/shop/web:1'), 'plan.json');
  const push = plan.actions[1]!;
  assert.ok(push.kind === 'push');
  assert.equal(push.target.ref, '127.0.0.1:5000/shop/web:1', 'the plan data keeps the canonical string');
  const ref = targetReference(push.target);
  assert.deepEqual([ref.domain, ref.path, ref.tag], ['127.0.0.1:5000', 'shop/web', '1']);
  assert.equal(targetReference(push.target), ref, 'read twice, parsed once');
  assert.deepEqual(plan.ownership, []);
  // Written back, the plan is the same plain JSON.
  assert.equal(JSON.parse(renderPlanJson(plan)).actions[1].target.ref, '127.0.0.1:5000/shop/web:1');
});

test('a saved plan whose target is not a reference is refused with PLAN_INVALID naming the action', () => {
  assert.throws(
    () => parsePlanJson(oldPlanFile('127.0.0.1:5000/Shop/web:1'), 'plan.json'),
    (e) => isDimgError(e, 'PLAN_INVALID') && /plan\.json: the target of push:web:r:\S+ is not a/.test(e.message),
  );
});
