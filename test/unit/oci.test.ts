import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseReference, formatReference, familiarString, ParsedReference } from '../../src/oci/reference.js';
import { canonicalJson } from '../../src/oci/canonical-json.js';
import { sha256, parseDigest } from '../../src/oci/digest.js';
import { isDimgError } from '../../src/errors.js';

test('reference normalisation follows the Docker CLI', () => {
  const cases: [string, string, string][] = [
    ['busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['library/busybox:1.36', 'docker.io/library/busybox:1.36', 'busybox:1.36'],
    ['user/app', 'docker.io/user/app:latest', 'user/app:latest'],
    ['index.docker.io/user/app:v1', 'docker.io/user/app:v1', 'user/app:v1'],
    ['localhost/app', 'localhost/app:latest', 'localhost/app:latest'],
    ['127.0.0.1:5000/shop/web:1.4.2', '127.0.0.1:5000/shop/web:1.4.2', '127.0.0.1:5000/shop/web:1.4.2'],
    [`host:5000/a/b@sha256:${'a'.repeat(64)}`, `host:5000/a/b@sha256:${'a'.repeat(64)}`, `host:5000/a/b@sha256:${'a'.repeat(64)}`],
    [`host:5000/a/b:t@sha256:${'b'.repeat(64)}`, `host:5000/a/b:t@sha256:${'b'.repeat(64)}`, `host:5000/a/b:t@sha256:${'b'.repeat(64)}`],
    ['[::1]:5000/x', '[::1]:5000/x:latest', '[::1]:5000/x:latest'],
  ];
  for (const [input, full, familiar] of cases) {
    const ref = parseReference(input);
    assert.equal(formatReference(ref), full, input);
    assert.equal(familiarString(ref), familiar, input);
  }
});

test('a parsed reference is immutable, prints its canonical and familiar forms, and reparses to itself', () => {
  const ref = parseReference('shop/web:1.4');
  assert.ok(ref instanceof ParsedReference);
  assert.ok(Object.isFrozen(ref));
  assert.throws(() => {
    (ref as { tag?: string }).tag = 'other';
  }, TypeError);
  assert.equal(String(ref), 'docker.io/shop/web:1.4');
  assert.equal(`${ref}`, 'docker.io/shop/web:1.4');
  assert.equal(JSON.stringify({ ref }), '{"ref":"docker.io/shop/web:1.4"}');
  assert.equal(ref.familiar(), 'shop/web:1.4');
  assert.equal(ref.familiarName(), 'shop/web');
  assert.equal(ref.repository, 'docker.io/shop/web');
  assert.ok(parseReference(ref.toString()).equals(ref));
  assert.equal(parseReference(ref), ref, 'parsing a parsed reference is the identity');
  const digest = `sha256:${'c'.repeat(64)}` as const;
  const pinned = ref.withDigest(digest);
  assert.equal(pinned.toString(), `docker.io/shop/web:1.4@${digest}`);
  assert.equal(pinned.withTag('2').toString(), 'docker.io/shop/web:2', 'withTag drops the digest');
  assert.equal(ref.repositoryOnly().toString(), 'docker.io/shop/web');
  assert.equal(ref.tag, '1.4', 'the copies leave the original alone');
  assert.throws(() => ref.withTag('-bad'), (e) => isDimgError(e, 'TAG_INVALID'));
  assert.ok(!ref.equals(ref.withTag('1.5')));
});

test('bad references are refused with REFERENCE_INVALID and the reason', () => {
  for (const bad of ['', 'app/UPPER', 'a:b:c', 'app:-bad', 'app@sha256:short', 'x/../y', 'a'.repeat(64), `a:${'t'.repeat(129)}`]) {
    assert.throws(() => parseReference(bad), (e) => isDimgError(e, 'REFERENCE_INVALID') && e.message.includes('invalid reference'), bad);
  }
});

test('canonical JSON sorts keys and drops undefined', () => {
  assert.equal(canonicalJson({ b: 1, a: [true, null, 'x'], c: undefined, d: { z: 1, y: 2 } }), '{"a":[true,null,"x"],"b":1,"d":{"y":2,"z":1}}');
});

test('digests', () => {
  assert.equal(sha256('{}'), 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a');
  assert.throws(() => parseDigest('sha256:XYZ'), (e) => isDimgError(e, 'DIGEST_INVALID'));
  assert.throws(() => parseDigest('sha512:abcd'), (e) => isDimgError(e, 'DIGEST_UNSUPPORTED'));
});
