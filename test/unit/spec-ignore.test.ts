import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IgnoreMatcher } from '../../src/specfile/ignore.js';

test('Docker ignore semantics: *, **, ?, leading /, comments, parent dirs, last match wins', () => {
  const m = IgnoreMatcher.parse(['# comment', '', '*.log', '/tmp', 'build/', '**/*.bak', 'docs/?.md', '!docs/keep.md', 'node_modules', '!important.log', 'a/**/z'].join('\n'));
  const cases: [string, boolean][] = [
    ['x.log', true],
    ['sub/x.log', false], // `*` does not cross `/`
    ['important.log', false],
    ['tmp', true],
    ['tmp/deep/file', true], // a matched directory excludes its contents
    ['src/tmp', false],
    ['build/out.js', true],
    ['a.bak', true],
    ['deep/er/a.bak', true],
    ['docs/a.md', true],
    ['docs/ab.md', false],
    ['node_modules/x/y.js', true],
    ['a/z', true],
    ['a/b/c/z', true],
    ['a/b/c/zz', false],
    ['src/main.ts', false],
  ];
  for (const [p, want] of cases) assert.equal(m.ignores(p), want, p);
  assert.equal(m.ignores('./tmp/x'), true);
  assert.equal(m.ignores('.'), false);
});

test('exceptions re-include, and a later pattern can exclude again', () => {
  const m = IgnoreMatcher.parse('*.md\n!README*.md\nREADME-secret.md\n');
  assert.equal(m.ignores('a.md'), true);
  assert.equal(m.ignores('README.md'), false);
  assert.equal(m.ignores('README-secret.md'), true);
});

test('canSkipDir: only when ignored and no exception could reach inside', () => {
  const plain = IgnoreMatcher.parse('node_modules\n.git\n');
  assert.equal(plain.canSkipDir('node_modules'), true);
  assert.equal(plain.canSkipDir('src'), false);
  const withException = IgnoreMatcher.parse('vendor\n!vendor/keep/**\nlogs\n!**/*.keep\n');
  assert.equal(withException.canSkipDir('vendor'), false, 'vendor/keep may be re-included');
  assert.equal(withException.ignores('vendor/keep/a'), false);
  assert.equal(withException.ignores('vendor/other/a'), true);
  assert.equal(withException.canSkipDir('logs'), false, '**/*.keep may match inside logs');
  const narrow = IgnoreMatcher.parse('cache\ntmp\n!tmp/keep.txt\n');
  assert.equal(narrow.canSkipDir('cache'), true, 'the exception is about tmp, not cache');
  assert.equal(narrow.canSkipDir('tmp'), false);
  assert.equal(IgnoreMatcher.parse('').empty, true);
});

test('character classes and escapes; invalid patterns are IGNORE_PATTERN_INVALID', () => {
  const m = IgnoreMatcher.parse('file[0-9].txt\nweird\\*name\n');
  assert.equal(m.ignores('file3.txt'), true);
  assert.equal(m.ignores('filex.txt'), false);
  assert.equal(m.ignores('weird*name'), true);
  assert.equal(m.ignores('weirdXname'), false);
  assert.throws(() => IgnoreMatcher.parse('ok\n!\n'), (e: unknown) => (e as { code?: string }).code === 'IGNORE_PATTERN_INVALID' && /:2:/.test((e as Error).message));
  assert.throws(() => IgnoreMatcher.parse('bad[\n'), (e: unknown) => (e as { code?: string }).code === 'IGNORE_PATTERN_INVALID');
});
