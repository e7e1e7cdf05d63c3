import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startRegistry } from '../support/registry.js';

test('the real registry starts on loopback and answers /v2/', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const r = await fetch(`${reg.url}/v2/`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('docker-distribution-api-version'), 'registry/2.0');
});
