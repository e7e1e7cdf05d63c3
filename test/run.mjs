#!/usr/bin/env node
// Runs the whole suite (unit, integration, e2e) with Node's own test runner on the compiled tests.
// Fails up front, naming the Debian packages to install, when a tool the tests rely on is missing:
// tests never skip because a tool is absent.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const required = [
  ['/usr/bin/docker-registry', 'docker-registry'],
  ['skopeo', 'skopeo'],
  ['umoci', 'umoci'],
  ['/bin/busybox', 'busybox-static'],
  ['htpasswd', 'apache2-utils'],
  ['unshare', 'util-linux'],
  ['crun', 'crun'],
  ['setfattr', 'attr'],
];
const missing = required.filter(([tool]) => {
  if (tool.startsWith('/')) return !existsSync(tool);
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0;
});
if (missing.length > 0) {
  // No test ran: say what is missing and how to get it, and print no pass/fail counts.
  console.error('error: the test suite needs tools that are not installed; no test was run.');
  for (const [tool, pkg] of missing) console.error(`  missing: ${tool} (Debian package ${pkg})`);
  console.error(`hint: apt-get install -y ${[...new Set(missing.map(([, p]) => p))].join(' ')}  (.ci/run installs them all)`);
  process.exit(1);
}

function collect(dir, out) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) collect(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filter = process.argv.slice(2);
let files = collect('dist/test', []);
if (filter.length > 0) files = files.filter((f) => filter.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error('no test files found under dist/test (did the TypeScript build run?)');
  process.exit(1);
}
const concurrency = process.env.DIMG_TEST_CONCURRENCY ?? '2';
const r = spawnSync(process.execPath, ['--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
