/** The id mapping of rootless RUN steps: parsing the kernel's maps and translating host ids back. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostIdTranslation, insideId, parseIdMap, userNamespaceFlags } from '../../src/builder/rootless-ids.js';

test('uid_map text parses into ranges; host ids map back inside, unmapped ones to the overflow id', () => {
  const uids = parseIdMap('         0       1001          1\n         1     100000      65535\n');
  assert.deepEqual(uids, [
    { inside: 0, outside: 1001, count: 1 },
    { inside: 1, outside: 100000, count: 65535 },
  ]);
  assert.equal(insideId(uids, 1001), 0);
  assert.equal(insideId(uids, 100000), 1);
  assert.equal(insideId(uids, 100999), 1000);
  assert.equal(insideId(uids, 165534), 65535);
  assert.equal(insideId(uids, 165535), 65534, 'past the range: the overflow id');
  assert.equal(insideId(uids, 0), 65534, 'host root is not mapped');
  const gids = parseIdMap('0 2000 1\n1 300000 10\n');
  const t = hostIdTranslation({ mode: 'full', uids, gids, reason: '' });
  assert.deepEqual([t.uid(100999), t.gid(300004), t.gid(2000)], [1000, 5, 0]);
});

test('full mappings come from unshare --map-auto; single ones map only the caller to root', () => {
  assert.deepEqual(userNamespaceFlags({ mode: 'full' }), ['--map-root-user', '--map-auto']);
  assert.deepEqual(userNamespaceFlags({ mode: 'single' }), ['--user', '--map-root-user']);
});
