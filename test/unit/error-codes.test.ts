/**
 * The closed set of error codes stays honest: every code in `ErrorCode` is raised somewhere in src/
 * (no dead codes), every registry wire code can come out of `registryError`, and the docs name no
 * code that does not exist. tsc already proves the other direction (every raised code is in the set).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { DIMG_ERROR_CODES, ERROR_CODES, REGISTRY_WIRE_CODES, type ErrorCode } from '../../src/errors.js';
import { registryError } from '../../src/registry/errors.js';
import { REPO_ROOT } from '../support/cli.js';

function files(dir: string, ext: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) files(p, ext, out);
    else if (name.endsWith(ext)) out.push(p);
  }
  return out;
}

/** Codes given literally to `new DimgError('…'` or to a DimgError subclass's `super('…'`, per file. */
function raisedInSrc(): Map<string, string[]> {
  const raised = new Map<string, string[]>();
  for (const f of files(join(REPO_ROOT, 'src'), '.ts')) {
    if (relative(REPO_ROOT, f) === join('src', 'errors.ts')) continue; // the definition, not a use
    const text = readFileSync(f, 'utf8');
    const subclass = /extends DimgError\b/.test(text);
    for (const m of text.matchAll(/\b(new DimgError|super)\(\s*'([A-Z][A-Z0-9_]*)'/g)) {
      if (m[1] === 'super' && !subclass) continue;
      const where = raised.get(m[2]!) ?? [];
      where.push(relative(REPO_ROOT, f));
      raised.set(m[2]!, where);
    }
  }
  return raised;
}

// The error codes of the distribution spec's error table (plus distribution's MANIFEST_UNVERIFIED and
// PAGINATION_NUMBER_INVALID), which registries send in a body; written out here as the oracle that
// the wire list is checked against.
const DISTRIBUTION_BODY_CODES = new Set([
  'BLOB_UNKNOWN', 'BLOB_UPLOAD_INVALID', 'BLOB_UPLOAD_UNKNOWN', 'DIGEST_INVALID', 'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID', 'MANIFEST_UNKNOWN', 'MANIFEST_UNVERIFIED', 'NAME_INVALID', 'NAME_UNKNOWN', 'SIZE_INVALID',
  'TAG_INVALID', 'UNAUTHORIZED', 'DENIED', 'UNSUPPORTED', 'TOOMANYREQUESTS', 'PAGINATION_NUMBER_INVALID',
  'UNAVAILABLE', 'UNKNOWN', 'RANGE_INVALID',
]);

const subject = { registry: 'r.example', repository: 'app' };

test('every code dimg raises itself is raised by some new DimgError / super call in src', () => {
  assert.equal(new Set(ERROR_CODES).size, ERROR_CODES.length, 'a code is listed twice');
  const raised = raisedInSrc();
  const dead = DIMG_ERROR_CODES.filter((c) => !raised.has(c));
  assert.deepEqual(dead, [], `codes in ErrorCode that nothing in src raises: ${dead.join(', ')}`);
  // And the scan itself sees what tsc checks: nothing raised literally is outside the union.
  const known = new Set<string>(ERROR_CODES);
  const unknown = [...raised.keys()].filter((c) => !known.has(c));
  assert.deepEqual(unknown, []);
});

test('every registry wire code comes out of registryError, from a body or a bare status', () => {
  const fromStatus = new Set<ErrorCode>();
  for (let status = 400; status < 600; status++) fromStatus.add(registryError(status, '', subject).code);
  for (const wire of REGISTRY_WIRE_CODES) {
    const code = `REGISTRY_${wire}` as const;
    if (DISTRIBUTION_BODY_CODES.has(wire)) {
      const body = JSON.stringify({ errors: [{ code: wire, message: 'from the body' }] });
      const e = registryError(400, body, subject);
      assert.equal(e.code, code);
      assert.match(e.message, /registry r\.example, repository app: from the body/);
    } else {
      assert.ok(fromStatus.has(code), `${code} is neither a distribution body code nor produced by any status`);
    }
  }
  // Every status answer is a member of the closed set.
  const known = new Set<string>(ERROR_CODES);
  for (const c of fromStatus) assert.ok(known.has(c), c);
});

test('a body code outside the known set falls back to the status code and stays in the message', () => {
  const body = JSON.stringify({ errors: [{ code: 'PROJECT_POLICY_VIOLATION', message: 'blocked by policy' }] });
  const e = registryError(412, body, subject);
  assert.equal(e.code, 'REGISTRY_UNEXPECTED_STATUS');
  assert.match(e.message, /PROJECT_POLICY_VIOLATION: blocked by policy/);
  assert.equal(registryError(403, body, subject).code, 'REGISTRY_DENIED');
  assert.equal(registryError(503, body, subject).code, 'REGISTRY_UNAVAILABLE');
});

// Upper-case words in the docs that are not error codes: environment variables, capabilities and the
// registry's own configuration. A new such word must be added here, so a mistyped code cannot hide.
const NOT_ERROR_CODES = [
  /^CAP_[A-Z_]+$/,
  /^DIMG_[A-Z_]+$/,
  /^(SOURCE_DATE_EPOCH|XDG_DATA_HOME|DOCKER_CONFIG|DOCKER_AUTH_CONFIG|DOCKER_BUILDKIT)$/,
  /^(REGISTRY_PASSWORD|REGISTRY_STORAGE_DELETE_ENABLED|PROD_TOKEN|PROD_USER)$/,
];

/**
 * The code-shaped words of a markdown text (two or more upper-case words joined by _), with the
 * shorthand `LAYER_UNSAFE/LIMIT/INVALID` expanded to LAYER_UNSAFE, LAYER_LIMIT, LAYER_INVALID.
 */
function codeWords(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)((?:\/[A-Z][A-Z0-9_]*)*)\b/g)) {
    out.push(m[1]!);
    const area = m[1]!.slice(0, m[1]!.indexOf('_') + 1);
    for (const tail of (m[2] ?? '').split('/').filter(Boolean)) out.push(area + tail);
  }
  return out;
}

test('codeWords finds codes and expands the slash shorthand', () => {
  assert.deepEqual(codeWords('a `STORE_UNSAFE` and LAYER_UNSAFE/LIMIT, not Foo_Bar'), [
    'STORE_UNSAFE',
    'LAYER_UNSAFE',
    'LAYER_LIMIT',
  ]);
});

test('the docs name no error code that does not exist', () => {
  const known = new Set<string>(ERROR_CODES);
  const docs = [join(REPO_ROOT, 'README.md'), ...files(join(REPO_ROOT, 'docs'), '.md')];
  const bad: string[] = [];
  let seen = 0;
  for (const f of docs) {
    for (const word of codeWords(readFileSync(f, 'utf8'))) {
      if (NOT_ERROR_CODES.some((re) => re.test(word))) continue;
      seen++;
      if (!known.has(word)) bad.push(`${relative(REPO_ROOT, f)}: ${word}`);
    }
  }
  assert.deepEqual(bad, [], 'the docs name error codes dimg does not have');
  assert.ok(seen >= 5, `only ${seen} error codes found in the docs: is the scan still reading them?`);
});
