/**
 * Two `dimg apply` of the same spec at once, on one store and one registry: both finish with exit 0,
 * `dimg store verify` passes, the registry holds the desired state (plan shows no change) and no
 * manifest with missing blobs. Rounds: from an empty store and registry, after a change of input,
 * and with nothing to do. DIMG_SOAK=1 adds rounds with three applies at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { dimg, type CliOptions } from '../support/cli.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { checkRegistry } from '../support/registry-check.js';
import { startRegistry } from '../support/registry.js';
import { tempDir } from '../support/tmp.js';
import { requireRoot } from '../support/tools.js';

const SOAK = process.env.DIMG_SOAK === '1';

test('concurrent applies of one spec on one store and registry both succeed and leave a valid store and the desired registry state', async (t) => {
  requireRoot('apply with RUN steps');
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const dir = tempDir(t);
  makeBusyboxRootfs(join(dir, 'rootfs'));
  mkdirSync(join(dir, 'ctx'));
  writeFileSync(join(dir, 'ctx', 'payload.bin'), randomBytes(4 << 20));
  writeFileSync(
    join(dir, 'images.yaml'),
    `version: 1
project: conc
registries:
  local: { url: ${reg.host}, insecure: true }
images:
  base:
    from: { rootfs: ./rootfs }
    repository: conc/base
    tags: ["1"]
    push: [local]
  app:
    from: base
    context: ./ctx
    steps:
      - copy: payload.bin
        to: /data/
      - run: sha256sum /data/payload.bin > /sum
    repository: conc/app
    tags: ["1", "latest"]
    push: [local]
  tool:
    from: base
    context: ./ctx
    steps:
      - copy: payload.bin
        to: /opt/
    repository: conc/tool
    tags: ["1"]
    push: [local]
`,
  );
  const opts: CliOptions = { root: join(dir, 'store'), cwd: dir, env: { SOURCE_DATE_EPOCH: '0' }, timeoutMs: 300_000 };
  const rounds: Array<{ label: string; width: number; change: boolean }> = [
    { label: 'empty store and registry', width: 2, change: false },
    { label: 'changed input', width: 2, change: true },
    { label: 'nothing to do', width: 2, change: false },
  ];
  if (SOAK) rounds.push({ label: 'three at once, changed input', width: 3, change: true }, { label: 'three at once, changed again', width: 3, change: true });
  for (const round of rounds) {
    if (round.change) writeFileSync(join(dir, 'ctx', 'payload.bin'), randomBytes(4 << 20));
    const started = Date.now();
    const runs = await Promise.all(Array.from({ length: round.width }, () => dimg(['apply', '--progress', 'plain'], opts)));
    const ms = Date.now() - started;
    runs.forEach((r, i) => assert.equal(r.code, 0, `${round.label}: apply #${i + 1} exited ${r.code}:\n${r.stderr}\n${r.stdout}`));
    const verify = await dimg(['store', 'verify'], opts);
    assert.equal(verify.code, 0, `${round.label}: store verify:\n${verify.stdout}${verify.stderr}`);
    const plan = await dimg(['plan', '--detailed-exitcode'], opts);
    assert.equal(plan.code, 0, `${round.label}: plan after the concurrent applies shows changes:\n${plan.stdout}${plan.stderr}`);
    const state = await checkRegistry(reg.url, { content: true });
    assert.deepEqual(state.problems, [], round.label);
    assert.equal(state.state['conc/app']?.['1'], state.state['conc/app']?.latest);
    assert.ok(state.state['conc/tool']?.['1'] && state.state['conc/base']?.['1'], `${round.label}: ${JSON.stringify(state.state)}`);
    console.log(`# concurrency ${round.label}: ${round.width} applies at once, all exit 0, verify clean, plan clean, ${state.manifests} manifests / ${state.blobs} blobs checked, ${ms} ms`);
  }
});
