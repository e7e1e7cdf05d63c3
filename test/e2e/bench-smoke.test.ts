/**
 * Keeps the bench harness (bench/run.ts, `npm run bench`) from rotting: its smallest case, a tiny build
 * and push with one run, dimg only (no peers), against the real registry the bench starts itself. The
 * results JSON must hold a real timing for every case, and the registry the bench started must be gone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../support/tmp.js';
import { requireTool } from '../support/tools.js';

const REPO = resolve(fileURLToPath(import.meta.url), '..', '..', '..', '..');

test('bench smoke: tiny build + push, 1 run, dimg only; results JSON and nothing left running', (t) => {
  requireTool('/usr/bin/docker-registry', 'docker-registry');
  requireTool('busybox', 'busybox-static');
  const work = tempDir(t, 'dimg-bench-smoke-');
  const out = join(work, 'latest.json');
  const r = spawnSync(
    process.execPath,
    [join(REPO, 'dist', 'bench', 'run.js'), '--only', 'build,push', '--runs', '1', '--no-peers', '--tiny', '--work', join(work, 'w'), '--out', out],
    { encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(r.status, 0, `bench failed:\n${r.stdout}\n${r.stderr}`);
  const rec = JSON.parse(readFileSync(out, 'utf8'));
  const ids = rec.cases.map((c: { id: string }) => c.id);
  assert.deepEqual(ids, ['build-cold', 'build-cached', 'build-changed', 'push-cold', 'push-warm']);
  for (const c of rec.cases) {
    const dimg = c.tools.find((x: { tool: string }) => x.tool === 'dimg');
    assert.ok(dimg?.stats, `${c.id}: dimg has no timing`);
    assert.equal(dimg.stats.runs.length, 1);
    assert.ok(dimg.stats.median > 0 && dimg.stats.median < 60, `${c.id}: implausible time ${dimg.stats.median}`);
    assert.equal(c.tools.length, 1, `${c.id}: peers must not run with --no-peers`);
  }
  assert.match(r.stdout, /\| cold build \(s\) \| [\d.]+ \(/);
  assert.match(rec.machine.kernel, /\S/);
  // the scratch registry it started is stopped (its port no longer answers)
  const m = /stopped registry scratch \((127\.0\.0\.1:\d+)\)/.exec(r.stderr);
  assert.ok(m, `no registry stop reported:\n${r.stderr}`);
  const probe = spawnSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${m[1]}/v2/`], { encoding: 'utf8' });
  assert.equal(probe.stdout, '000', 'the bench registry still answers after the run');
});

test('bench smoke: the watch workload (tiny, 1 run, dimg only): both edit-to-ready cases timed, the watch process gone', (t) => {
  requireTool('busybox', 'busybox-static');
  const work = tempDir(t, 'dimg-bench-smoke-');
  const out = join(work, 'latest.json');
  const r = spawnSync(process.execPath, [join(REPO, 'dist', 'bench', 'run.js'), '--only', 'watch', '--runs', '1', '--no-peers', '--tiny', '--work', join(work, 'w'), '--out', out], {
    encoding: 'utf8',
    timeout: 90_000,
  });
  assert.equal(r.status, 0, `bench failed:\n${r.stdout}\n${r.stderr}`);
  const rec = JSON.parse(readFileSync(out, 'utf8'));
  assert.deepEqual(
    rec.cases.map((c: { id: string }) => c.id),
    ['watch-ref', 'watch-copy'],
  );
  for (const c of rec.cases) {
    assert.equal(c.tools.length, 2, `${c.id}: the write→ready and the printed figures, no peer`);
    for (const tool of c.tools) {
      assert.ok(tool.stats, `${c.id}: ${tool.tool} has no timing (${tool.skipped})`);
      assert.equal(tool.stats.runs.length, 1);
      assert.ok(tool.stats.median > 0 && tool.stats.median < 60, `${c.id}: implausible time ${tool.stats.median}`);
    }
  }
  assert.match(r.stdout, /\| watch: edit-to-ready, COPY-only image \(s\) \| watch COPY-only \(write → ready\) [\d.]+ \(/);
  // the dimg watch the bench started has exited (no process still watches the bench's spec)
  const spec = join(work, 'w', 'watch', 'images.yaml');
  const left = readdirSync('/proc').filter((pid) => {
    if (!/^\d+$/.test(pid)) return false;
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return argv.includes('watch') && argv.includes(spec);
    } catch {
      return false; // exited meanwhile
    }
  });
  assert.deepEqual(left, [], 'the dimg watch process is still running');
});
