/**
 * apply through the fault proxy in front of the real registry, under mixes of 500/502/503, 429 with
 * Retry-After, connections dropped mid-blob (uploads and downloads), stalls and truncated bodies.
 * Every apply must either converge (exit 0, then `plan` shows no change) or fail with a clear
 * one-line error and hint (no stack); in both cases every manifest in the registry has all its blobs
 * with the right content, and a re-run without faults converges. Reported per mix: applies,
 * converged under faults, clear failures, wrong states (must be 0).
 * Default: 1 apply per mix (each mix's first rules fire for sure); DIMG_SOAK=1: 10.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { dimgOk, dimg, type CliOptions } from '../support/cli.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { startFaultProxy, type FaultRule } from '../support/fault-proxy.js';
import { checkRegistry } from '../support/registry-check.js';
import { startRegistry } from '../support/registry.js';
import { tempDir } from '../support/tmp.js';
import { requireRoot } from '../support/tools.js';

const SOAK = process.env.DIMG_SOAK === '1';
const APPLIES_PER_MIX = Number(process.env.DIMG_FAULT_APPLIES ?? (SOAK ? 10 : 1));

const isBlobUpload = (m: string, p: string) => (m === 'PATCH' || m === 'PUT') && p.includes('/blobs/uploads/');
const isGet = (m: string) => m === 'GET';

const isBlobGet = (m: string, p: string) => m === 'GET' && p.includes('/blobs/sha256:');
const isManifestGet = (m: string, p: string) => m === 'GET' && p.includes('/manifests/');
const isHead = (m: string) => m === 'HEAD';
const isManifestPut = (m: string, p: string) => m === 'PUT' && p.includes('/manifests/');

/**
 * The fault mixes. Each starts with rules that fire on the first matching requests (so every apply
 * meets the fault for sure), then keeps injecting at a rate.
 */
const MIXES: Record<string, FaultRule[]> = {
  '5xx': [
    { kind: 'status', status: 500, count: 1, match: isHead },
    { kind: 'status', status: 502, count: 1, match: isBlobUpload },
    { kind: 'status', status: 503, count: 1, match: isManifestPut },
    { kind: 'status', status: 500, rate: 0.06 },
    { kind: 'status', status: 502, rate: 0.06 },
    { kind: 'status', status: 503, rate: 0.06 },
  ],
  '429 Retry-After': [
    { kind: 'ratelimit', retryAfterSeconds: 1, count: 1, match: isBlobUpload },
    { kind: 'ratelimit', retryAfterSeconds: 1, count: 1, match: isManifestGet },
    { kind: 'ratelimit', retryAfterSeconds: 1, rate: 0.08 },
  ],
  'drops mid-blob': [
    { kind: 'drop-request', count: 1, match: isBlobUpload },
    { kind: 'drop-response', count: 1, match: isBlobGet },
    { kind: 'drop-request', rate: 0.3, match: isBlobUpload },
    { kind: 'drop-response', rate: 0.2, match: isGet },
  ],
  stalls: [
    { kind: 'stall', ms: 2000, count: 1, match: isHead },
    { kind: 'stall', ms: 2000, count: 1, match: isBlobUpload },
    { kind: 'stall', ms: 2000, rate: 0.05 },
  ],
  'truncated bodies': [
    { kind: 'truncate', count: 1, match: isBlobGet },
    { kind: 'truncate', count: 1, match: isManifestGet },
    { kind: 'truncate', rate: 0.2, match: isGet },
  ],
  'everything at once': [
    { kind: 'drop-request', count: 1, match: isBlobUpload },
    { kind: 'status', status: 503, rate: 0.05 },
    { kind: 'ratelimit', retryAfterSeconds: 1, rate: 0.04 },
    { kind: 'drop-request', rate: 0.15, match: isBlobUpload },
    { kind: 'drop-response', rate: 0.08, match: isGet },
    { kind: 'truncate', rate: 0.08, match: isGet },
    { kind: 'stall', ms: 1500, rate: 0.04 },
  ],
};

interface MixReport {
  applies: number;
  converged: number;
  clearFailures: number;
  wrongState: number;
  rerunsConverged: number;
  faultsFired: number;
  seconds: number;
}

test('apply under registry faults converges or fails clearly, never leaves a manifest with missing blobs, and a re-run converges', async (t) => {
  requireRoot('apply with RUN steps');
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const proxy = await startFaultProxy(reg.url);
  t.after(() => proxy.stop());
  const dir = tempDir(t);
  makeBusyboxRootfs(join(dir, 'rootfs'));
  mkdirSync(join(dir, 'ctx'));
  writeFileSync(join(dir, 'ctx', 'payload.bin'), randomBytes(1 << 20));
  // The base lives in the registry (pushed once by a seed spec), so every apply also reads through
  // the proxy: the base manifest and config (GET), besides the pushes (HEAD, POST, PATCH, PUT).
  writeFileSync(
    join(dir, 'seed.yaml'),
    `version: 1
project: faults-seed
registries:
  flaky: { url: ${proxy.host}, insecure: true }
images:
  seed:
    from: { rootfs: ./rootfs }
    repository: faults/seed
    tags: ["1"]
    push: [flaky]
`,
  );
  writeFileSync(
    join(dir, 'images.yaml'),
    `version: 1
project: faults
registries:
  flaky: { url: ${proxy.host}, insecure: true }
images:
  app:
    from: ${proxy.host}/faults/seed:1
    context: ./ctx
    steps:
      - copy: payload.bin
        to: /data/
      - run: wc -c /data/payload.bin > /size
    repository: faults/app
    tags: ["1", "latest"]
    push: [flaky]
`,
  );
  const opts: CliOptions = { root: join(dir, 'store'), cwd: dir, env: { SOURCE_DATE_EPOCH: '0' }, timeoutMs: 240_000 };
  const seed = await dimg(['apply', 'seed.yaml', '--progress', 'plain'], opts);
  assert.equal(seed.code, 0, seed.stderr);
  // A clean first apply, so every round pushes a new 1 MiB layer and manifest over an existing base.
  const first = await dimg(['apply', '--progress', 'plain'], opts);
  assert.equal(first.code, 0, first.stderr);

  const report: Record<string, MixReport> = {};
  for (const [mix, rules] of Object.entries(MIXES)) {
    const r: MixReport = { applies: 0, converged: 0, clearFailures: 0, wrongState: 0, rerunsConverged: 0, faultsFired: 0, seconds: 0 };
    report[mix] = r;
    const started = Date.now();
    for (let i = 0; i < APPLIES_PER_MIX; i++) {
      writeFileSync(join(dir, 'ctx', 'payload.bin'), randomBytes(1 << 20));
      proxy.reset();
      for (const rule of rules) proxy.inject(rule);
      const run = await dimg(['apply', '--progress', 'plain'], opts);
      r.applies++;
      r.faultsFired += Object.values(proxy.fired).reduce((a, b) => a + b, 0);
      if (i === 0) console.log(`# ${mix}: requests ${JSON.stringify(proxy.counts)}, fired ${JSON.stringify(proxy.fired)}`);
      proxy.reset();
      const state = await checkRegistry(reg.url, { content: true });
      if (state.problems.length > 0) {
        r.wrongState++;
        console.log(`# ${mix}: wrong registry state after apply (exit ${run.code}): ${state.problems.join('; ')}`);
      }
      if (run.code === 0) {
        const plan = await dimg(['plan', '--detailed-exitcode'], opts);
        if (plan.code === 0) r.converged++;
        else {
          r.wrongState++;
          console.log(`# ${mix}: apply exited 0 but plan still shows changes:\n${plan.stdout}${plan.stderr}`);
        }
        continue;
      }
      // A failure must be one clear error naming what failed, with a hint, and no stack trace.
      const clear = run.code === 1 && /^error: .*\S/m.test(run.stderr) && /^hint: /m.test(run.stderr) && !/^\s+at .+:\d+:\d+\)?$/m.test(run.stderr) && /faults\/|127\.0\.0\.1|registry|blob|manifest/.test(run.stderr);
      if (clear) {
        r.clearFailures++;
        console.log(`# ${mix}: apply failed clearly: ${run.stderr.trim().split('\n').filter((l) => /^(error|hint):/.test(l)).join(' | ')}`);
      } else console.log(`# ${mix}: unclear failure (exit ${run.code}):\n${run.stderr}`);
      assert.ok(clear, `${mix}: apply failed without a clear error:\n${run.stderr}`);
      const rerun = await dimg(['apply', '--progress', 'plain'], opts);
      assert.equal(rerun.code, 0, `${mix}: the re-run without faults failed:\n${rerun.stderr}`);
      const plan = await dimg(['plan', '--detailed-exitcode'], opts);
      assert.equal(plan.code, 0, `${mix}: plan after the re-run shows changes:\n${plan.stdout}`);
      r.rerunsConverged++;
      const after = await checkRegistry(reg.url, { content: true });
      if (after.problems.length > 0) r.wrongState++;
    }
    r.seconds = Math.round((Date.now() - started) / 100) / 10;
    console.log(`# faults ${mix}: applies ${r.applies}, converged under faults ${r.converged}, clear failures ${r.clearFailures} (re-runs converged ${r.rerunsConverged}), wrong state ${r.wrongState}, faults fired ${r.faultsFired}, ${r.seconds} s`);
  }
  for (const [mix, r] of Object.entries(report)) {
    assert.equal(r.wrongState, 0, `${mix}: wrong states`);
    assert.equal(r.converged + r.clearFailures, r.applies, mix);
    assert.ok(r.faultsFired > 0, `${mix}: no fault fired; the mix tests nothing`);
  }
  const final = await checkRegistry(reg.url, { content: true });
  console.log(`# final registry state: ${JSON.stringify(final.state)}`);
  assert.deepEqual(final.problems, []);
  assert.deepEqual(Object.keys(final.state['faults/app'] ?? {}).sort(), ['1', 'dimg-state-faults', 'latest'], 'the tags and the ownership record');
  assert.deepEqual(Object.keys(final.state['faults/seed'] ?? {}), ['1', 'dimg-state-faults-seed']);
});

test('a body cut short with a clean end (no Content-Length) is fetched again: pull succeeds and stores verified blobs', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const proxy = await startFaultProxy(reg.url);
  t.after(() => proxy.stop());
  const dir = tempDir(t);
  makeBusyboxRootfs(join(dir, 'rootfs'));
  writeFileSync(join(dir, 'rootfs', 'payload.bin'), randomBytes(1 << 20));
  const src: CliOptions = { root: join(dir, 'src-store'), cwd: dir };
  const ref = `${reg.host}/short/body:1`;
  for (const args of [['image', 'import', join(dir, 'rootfs'), ref], ['image', 'push', ref]]) {
    await dimgOk(args, src);
  }
  // Every manifest GET and the first two blob GETs (config and layer) end cleanly after half their body.
  proxy.inject({ kind: 'truncate', count: 1, match: isManifestGet });
  proxy.inject({ kind: 'truncate', count: 2, match: isBlobGet });
  const dst: CliOptions = { root: join(dir, 'dst-store'), cwd: dir };
  const pull = await dimg(['image', 'pull', `${proxy.host}/short/body:1`], dst);
  console.log(`# short bodies: requests ${JSON.stringify(proxy.counts)}, fired ${JSON.stringify(proxy.fired)}`);
  assert.equal(pull.code, 0, `pull through truncating proxy failed:\n${pull.stderr}`);
  assert.equal(proxy.fired.truncate, 3, 'the three truncations fired');
  const verify = await dimg(['store', 'verify'], dst);
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  const local = JSON.parse((await dimg(['image', 'inspect', `${proxy.host}/short/body:1`], dst)).stdout) as { Id: string }[];
  const orig = JSON.parse((await dimg(['image', 'inspect', ref], src)).stdout) as { Id: string }[];
  assert.equal(local[0]?.Id, orig[0]?.Id);
});
