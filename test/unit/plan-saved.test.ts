/**
 * Saved plans: the stale-plan fingerprint and the list of what changed come from one snapshot, so a
 * plan refused as stale always says why (an ownership record that moved included).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sha256 } from '../../src/oci/digest.js';
import { describeChanges, observedFingerprint } from '../../src/plan/saved.js';
import type { ObservedSnapshot } from '../../src/plan/types.js';

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
