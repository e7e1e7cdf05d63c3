/**
 * Ignore-file and COPY-source globs (issue #20, D6): matching takes time linear in the name, so a
 * hostile `.dockerignore` (`a*a*a*…*b` against a long name) cannot hang a build, and the semantics are
 * Go's filepath.Match as moby's patternmatcher applies it: `*` and `?` stay inside a segment, `[…]`
 * classes with ranges, negation and escapes, `**` across directories, `\` escapes, `!` exceptions.
 * The pathological cases run in a child process with a hard deadline: a hang fails the test instead
 * of blocking the suite.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { fileURLToPath } from 'node:url';
import { IgnoreMatcher } from '../../src/specfile/ignore.js';
import { Glob, IGNORE_SYNTAX, globSegmentMatcher } from '../../src/specfile/glob.js';

const IGNORE_MODULE = fileURLToPath(new URL('../../src/specfile/ignore.js', import.meta.url));
const GLOB_MODULE = fileURLToPath(new URL('../../src/specfile/glob.js', import.meta.url));

/** Runs `body` (an ES module script) in a child node, killed after `ms`; returns its status and output. */
function runBounded(body: string, ms: number): { status: number | null; signal: string | null; ms: number; out: string } {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', body], { timeout: ms, killSignal: 'SIGKILL', encoding: 'utf8' });
  return { status: r.status, signal: r.signal, ms: Date.now() - t0, out: `${r.stdout}${r.stderr}` };
}

test('a pathological ignore pattern against a long name finishes in well under 2 s', () => {
  const script = `
    const { IgnoreMatcher } = await import(${JSON.stringify(IGNORE_MODULE)});
    const stars = 'a*'.repeat(12) + 'b';
    const m = IgnoreMatcher.parse([stars, '**/' + stars, '!' + stars + '/keep', 'x/' + stars].join('\\n'));
    const long = 'a'.repeat(200);
    const deep = Array.from({ length: 50 }, () => long).join('/');
    const t0 = Date.now();
    const results = [m.ignores(long), m.ignores(deep), m.ignores('x/' + long), m.canSkipDir(long)];
    console.log(JSON.stringify({ results, ms: Date.now() - t0 }));
  `;
  const r = runBounded(script, 10_000);
  assert.equal(r.signal, null, `matching did not finish within 10 s (killed); output: ${r.out}`);
  assert.equal(r.status, 0, r.out);
  const { results, ms } = JSON.parse(r.out.trim().split('\n').pop()!) as { results: boolean[]; ms: number };
  assert.deepEqual(results, [false, false, false, false]);
  assert.ok(ms < 2000, `matching took ${ms} ms`);
});

test('a pathological COPY source wildcard against a long name finishes in well under 2 s', () => {
  const script = `
    const { globSegmentMatcher } = await import(${JSON.stringify(GLOB_MODULE)});
    const g = globSegmentMatcher('a*'.repeat(14) + 'b');
    const t0 = Date.now();
    const hit = g.test('a'.repeat(250));
    console.log(JSON.stringify({ hit, ms: Date.now() - t0 }));
  `;
  const r = runBounded(script, 10_000);
  assert.equal(r.signal, null, `matching did not finish within 10 s (killed); output: ${r.out}`);
  const { hit, ms } = JSON.parse(r.out.trim().split('\n').pop()!) as { hit: boolean; ms: number };
  assert.equal(hit, false);
  assert.ok(ms < 2000, `matching took ${ms} ms`);
});

test('wildcards: * and ? stay inside a segment, match code points, and backtrack correctly', () => {
  const m = (pattern: string, path: string) => IgnoreMatcher.parse(pattern).ignores(path);
  assert.equal(m('a*b', 'ab'), true);
  assert.equal(m('a*b', 'axxb'), true);
  assert.equal(m('a*b', 'axxbx'), false);
  assert.equal(m('a*b*c', 'abxbyc'), true);
  assert.equal(m('a*a*b', 'aaaaab'), true);
  assert.equal(m('a*b', 'a/b'), false);
  assert.equal(m('*', 'x'), true);
  assert.equal(m('*', 'dir/x'), true, 'the parent dir matches `*`');
  assert.equal(m('*/x', 'dir/x'), true);
  assert.equal(m('?', 'é'), true);
  assert.equal(m('?', '😀'), true, '? is one character (code point), as Go matches runes');
  assert.equal(m('??', '😀'), false);
  assert.equal(m('a?c', 'a/c'), false);
  assert.equal(m('a?c', 'abc'), true);
  assert.equal(m('', 'x'), false);
});

test('classes: ranges, negation with ! or ^, escapes, and malformed classes are invalid', () => {
  const m = (pattern: string, path: string) => IgnoreMatcher.parse(pattern).ignores(path);
  assert.equal(m('f[0-9]', 'f7'), true);
  assert.equal(m('f[0-9]', 'fa'), false);
  assert.equal(m('f[a-cx]', 'fx'), true);
  assert.equal(m('f[a-cx]', 'fd'), false);
  assert.equal(m('f[!0-9]', 'fa'), true);
  assert.equal(m('f[!0-9]', 'f1'), false);
  assert.equal(m('f[^0-9]', 'fa'), true);
  assert.equal(m('f[\\]]', 'f]'), true, 'an escaped ] inside a class');
  assert.equal(m('f[\\-]', 'f-'), true);
  assert.equal(m('f[a\\-c]', 'fb'), false, 'an escaped - is not a range');
  assert.equal(m('f[.]', 'f.'), true);
  assert.equal(m('f[.]', 'fx'), false, '. inside a class is a dot');
  for (const bad of ['f[', 'f[]', 'f[a-', 'f[-a]', 'f[a', 'x\\']) {
    assert.throws(() => IgnoreMatcher.parse(`ok\n${bad}\n`), (e: unknown) => (e as { code?: string }).code === 'IGNORE_PATTERN_INVALID' && /:2:/.test((e as Error).message), bad);
  }
});

test('escapes and regular-expression characters are literal', () => {
  const m = (pattern: string, path: string) => IgnoreMatcher.parse(pattern).ignores(path);
  assert.equal(m('a\\*b', 'a*b'), true);
  assert.equal(m('a\\*b', 'axb'), false);
  assert.equal(m('a\\?b', 'a?b'), true);
  assert.equal(m('a\\?b', 'axb'), false);
  assert.equal(m('a\\[b', 'a[b'), true);
  assert.equal(m('a.b', 'a.b'), true);
  assert.equal(m('a.b', 'axb'), false);
  assert.equal(m('a+(b)|c$^{2}', 'a+(b)|c$^{2}'), true);
});

test('** spans directories: **/ is zero or more directories, a trailing ** everything below', () => {
  const m = (pattern: string, path: string) => IgnoreMatcher.parse(pattern).ignores(path);
  assert.equal(m('**/x', 'x'), true);
  assert.equal(m('**/x', 'a/b/x'), true);
  assert.equal(m('**/x', 'a/bx'), false);
  assert.equal(m('a/**/x', 'a/x'), true);
  assert.equal(m('a/**/x', 'a/b/c/x'), true);
  assert.equal(m('a/**/x', 'ab/x'), false);
  assert.equal(m('a/**', 'a/b/c'), true);
  assert.equal(m('**', 'a/b/c'), true);
  assert.equal(m('a**', 'ab/c'), true, '** not followed by / matches anything, / included');
  assert.equal(m('**/*.go', 'a/b/c.go'), true);
  assert.equal(m('**/*.go', 'c.go'), true);
  assert.equal(m('**/*.go', 'a/b/c.go/d'), true, 'a matched directory excludes its contents');
  assert.equal(m('**/*.go', 'a/b/c.gox'), false);
});

test('parent directories, exceptions and canSkipDir keep Docker semantics', () => {
  const m = IgnoreMatcher.parse('build\n!build/keep*\nbuild/keep-not\n**/tmp/*.o\n!**/tmp/main.o\n');
  assert.equal(m.ignores('build'), true);
  assert.equal(m.ignores('build/x/y'), true);
  assert.equal(m.ignores('build/keep-me'), false);
  assert.equal(m.ignores('build/keep-me/inner'), false, 'the exception matches the parent dir');
  assert.equal(m.ignores('build/keep-not'), true);
  assert.equal(m.ignores('src/tmp/a.o'), true);
  assert.equal(m.ignores('src/tmp/main.o'), false);
  assert.equal(m.canSkipDir('build'), false);
  const plain = IgnoreMatcher.parse('[a-c]*\n!b[!x]/keep\n');
  assert.equal(plain.canSkipDir('abc'), true, 'no exception can reach inside abc');
  assert.equal(plain.canSkipDir('by'), false, 'b[!x]/keep may re-include by/keep');
  assert.equal(plain.canSkipDir('bx'), true);
});

test('COPY source wildcards keep their own syntax: no escapes, and a lone [ is literal', () => {
  assert.equal(globSegmentMatcher('*.txt').test('a.txt'), true);
  assert.equal(globSegmentMatcher('*.txt').test('a.txt.bak'), false);
  assert.equal(globSegmentMatcher('file?.[ch]').test('file1.c'), true);
  assert.equal(globSegmentMatcher('file?.[ch]').test('file1.o'), false);
  assert.equal(globSegmentMatcher('[!a]*').test('ba'), true);
  assert.equal(globSegmentMatcher('[!a]*').test('ab'), false);
  assert.equal(globSegmentMatcher('a[b').test('a[b'), true);
  assert.equal(globSegmentMatcher('a\\b*').test('a\\bc'), true, 'a backslash is an ordinary character');
  assert.equal(globSegmentMatcher('a.b').test('axb'), false);
  assert.equal(globSegmentMatcher('**').test('x'), true);
});

/** Pattern pieces with the regular expression each means in moby's translation (Go's RE2 there). */
const PIECES: readonly (readonly [string, string])[] = [
  ['a', 'a'],
  ['b', 'b'],
  ['.', '\\.'],
  ['/', '/'],
  ['*', '[^/]*'],
  ['?', '[^/]'],
  ['**/', '(?:.*/)?'],
  ['**', '.*'],
  ['[ab]', '[ab]'],
  ['[!a]', '[^a]'],
  ['[a-b]', '[a-b]'],
  ['\\*', '\\*'],
];

test('the matcher agrees with the regular-expression translation on random short patterns and names', () => {
  const pattern = fc.array(fc.constantFrom(...PIECES), { minLength: 1, maxLength: 7 });
  const name = fc.array(fc.constantFrom('a', 'b', '.', '/', '*'), { maxLength: 10 }).map((cs) => cs.join(''));
  fc.assert(
    fc.property(pattern, name, (pieces, n) => {
      const text = pieces.map(([p]) => p).join('');
      // `*` or `**` glued to a following `*` (or `**` to a `/`) reads differently as text than as pieces.
      fc.pre(!pieces.some(([p], i) => ((p === '*' || p === '**') && pieces[i + 1]?.[0].startsWith('*')) || (p === '**' && pieces[i + 1]?.[0] === '/')));
      const re = new RegExp(`^${pieces.map(([, r]) => r).join('')}$`, 'u');
      assert.equal(Glob.compile(text, IGNORE_SYNTAX).test(n), re.test(n), `pattern ${text} against ${JSON.stringify(n)}`);
    }),
    { numRuns: 3000 },
  );
});
