/**
 * `node test/run.mjs` with tools missing: it names each missing tool and its Debian package and
 * exits 1, without running a test and without printing pass/fail counts it did not measure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/cli.js';

test('test/run.mjs says which tools are missing and exits 1, with no made-up counts', () => {
  // A PATH with only node and sh: skopeo, umoci, crun, … are all missing.
  const bin = mkdtempSync(join(tmpdir(), 'dimg-run-path-'));
  try {
    symlinkSync(process.execPath, join(bin, 'node'));
    symlinkSync('/bin/sh', join(bin, 'sh'));
    const r = spawnSync(process.execPath, ['test/run.mjs', 'no-such-test'], {
      cwd: REPO_ROOT,
      env: { ...process.env, PATH: bin },
      encoding: 'utf8',
    });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /missing: skopeo \(Debian package skopeo\)/);
    assert.match(r.stderr, /missing: crun \(Debian package crun\)/);
    assert.match(r.stderr, /apt-get install -y .*skopeo/);
    assert.doesNotMatch(r.stdout + r.stderr, /\d+ (passed|failed)|\bpass\b|\bfail\b/);
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
});
