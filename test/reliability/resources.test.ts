/**
 * Resource bounds, measured on the real CLI:
 *  - memory is flat in layer size: peak RSS of `image import` and `image push` of a 16 MiB and a
 *    256 MiB layer (1 GiB under DIMG_SOAK=1) to the real registry differ by little, far below the layer;
 *  - memory is bounded in image count: `plan` of a spec of 1,000 images (config-only steps, pushed
 *    to the real registry) against 100 images;
 *  - file descriptors do not leak: across many `dimg watch` cycles (the fd count of the watch process
 *    after each cycle), and across 200 plans in this process, each through its own Planner as the
 *    commands make them (/proc/self/fd).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { join } from 'node:path';
import { DIMG_BIN, type CliOptions } from '../support/cli.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { fdCount, rssKiB, runSampled } from '../support/rss.js';
import { startRegistry } from '../support/registry.js';
import { tempDir } from '../support/tmp.js';
import { Store } from '../../src/store/store.js';
import { storeOptions } from '../../src/store/defaults.js';
import { Planner } from '../../src/exec/planner.js';
import { loadSpec } from '../../src/specfile/load.js';
import { nodeSpecPorts } from '../../src/specfile/node-ports.js';

const SOAK = process.env.DIMG_SOAK === '1';
const MiB = 1 << 20;

async function randomFile(path: string, bytes: number): Promise<void> {
  const out = createWriteStream(path);
  for (let left = bytes; left > 0; left -= 4 * MiB) {
    if (!out.write(randomBytes(Math.min(4 * MiB, left)))) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

test('memory stays flat with layer size: import and push of 16 MiB vs 256 MiB (1 GiB soak) layers', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const dir = tempDir(t);
  const opts: CliOptions = { root: join(dir, 'store'), cwd: dir, env: { SOURCE_DATE_EPOCH: '0' }, timeoutMs: 900_000 };
  const sizes = SOAK ? [16, 256, 1024] : [16, 256];
  const rows: Array<{ mib: number; importPeak: number; pushPeak: number; importMs: number; pushMs: number }> = [];
  for (const mib of sizes) {
    const src = join(dir, `layer-${mib}`);
    mkdirSync(src);
    await randomFile(join(src, 'payload.bin'), mib * MiB);
    const imp = await runSampled(['image', 'import', src, `mem/layer:${mib}`], opts);
    assert.equal(imp.code, 0, imp.stderr);
    const push = await runSampled(['image', 'push', `mem/layer:${mib}`, `${reg.host}/mem/layer:${mib}`], opts);
    assert.equal(push.code, 0, push.stderr);
    rows.push({ mib, importPeak: imp.peakRssMiB, pushPeak: push.peakRssMiB, importMs: imp.ms, pushMs: push.ms });
    console.log(`# memory ${mib} MiB layer: import peak RSS ${imp.peakRssMiB} MiB (${imp.ms} ms, ${imp.samples} samples), push peak RSS ${push.peakRssMiB} MiB (${push.ms} ms)`);
  }
  const small = rows[0]!;
  for (const r of rows.slice(1)) {
    // Flat: a 16x (or 64x) larger layer costs at most 64 MiB more, and never a fraction of the layer.
    assert.ok(r.importPeak < small.importPeak + 64, `import of ${r.mib} MiB peaked at ${r.importPeak} MiB vs ${small.importPeak} MiB for ${small.mib} MiB`);
    assert.ok(r.pushPeak < small.pushPeak + 64, `push of ${r.mib} MiB peaked at ${r.pushPeak} MiB vs ${small.pushPeak} MiB for ${small.mib} MiB`);
  }
});

test('memory stays bounded with image count: plan of 1,000 images vs 100', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const dir = tempDir(t);
  makeBusyboxRootfs(join(dir, 'rootfs'));
  const opts: CliOptions = { root: join(dir, 'store'), cwd: dir, env: { SOURCE_DATE_EPOCH: '0' }, timeoutMs: 600_000 };
  const specOf = (n: number) => `version: 1
project: many
registries:
  local: { url: ${reg.host}, insecure: true }
images:
  base:
    from: { rootfs: ./rootfs }
${Array.from({ length: n }, (_, i) => `  i${i}:\n    from: base\n    steps:\n      - env: { N: "${i}" }\n    repository: many/i${i % 50}\n    tags: ["t${i}"]\n    push: [local]\n`).join('')}`;
  const peaks: Record<number, { rss: number; ms: number }> = {};
  for (const n of [100, 1000]) {
    writeFileSync(join(dir, `spec-${n}.yaml`), specOf(n));
    const r = await runSampled(['plan', `spec-${n}.yaml`, '--json'], opts);
    assert.equal(r.code, 0, r.stderr);
    const plan = JSON.parse(r.stdout) as { actions: unknown[] };
    assert.ok(plan.actions.length >= n, `plan of ${n} images has ${plan.actions.length} actions`);
    peaks[n] = { rss: r.peakRssMiB, ms: r.ms };
    console.log(`# memory plan of ${n} images: peak RSS ${r.peakRssMiB} MiB, ${r.ms} ms`);
  }
  assert.ok(peaks[1000]!.rss < 400, `plan of 1,000 images peaked at ${peaks[1000]!.rss} MiB`);
  assert.ok(peaks[1000]!.rss < peaks[100]!.rss * 3, `plan RSS grows too fast with image count: ${JSON.stringify(peaks)}`);
});

test('file descriptors do not leak across dimg watch cycles, nor across 200 plan calls in one process', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'ctx'));
  writeFileSync(join(dir, 'ctx', 'a.txt'), '0');
  writeFileSync(
    join(dir, 'images.yaml'),
    `version: 1
project: fds
images:
  app:
    from: scratch
    context: ./ctx
    steps:
      - copy: a.txt
        to: /
    repository: fds/app
    tags: ["1"]
`,
  );
  // dimg watch: wait for each "ready", then count the process's fds.
  const cycles = SOAK ? 500 : 40;
  const child = spawn(process.execPath, [DIMG_BIN, 'watch', '--progress', 'plain', '--debounce', '20', 'images.yaml'], { cwd: dir, env: { ...process.env, DIMG_ROOT: join(dir, 'store') }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  let text = '';
  let readyCount = 0;
  let waiter: (() => void) | undefined;
  child.stdout.on('data', (b: Buffer) => {
    text += b.toString();
    const n = (text.match(/ready in /g) ?? []).length;
    if (n > readyCount) {
      readyCount = n;
      waiter?.();
    }
  });
  child.stderr.on('data', (b: Buffer) => (text += b.toString()));
  const nextReady = (want: number) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`watch cycle ${want} did not finish:\n${text.slice(-2000)}`)), 60_000);
      const check = () => {
        if (readyCount >= want) {
          clearTimeout(timer);
          waiter = undefined;
          resolve();
        }
      };
      waiter = check;
      check();
    });
  await nextReady(1);
  const fds: number[] = [];
  const rss: number[] = [];
  for (let i = 1; i <= cycles; i++) {
    writeFileSync(join(dir, 'ctx', 'a.txt'), String(i));
    await nextReady(i + 1);
    await new Promise((r) => setTimeout(r, 20));
    fds.push(fdCount(child.pid!));
    rss.push(Math.round((rssKiB(child.pid!) ?? 0) / 1024));
  }
  child.kill('SIGTERM');
  const warm = fds[Math.min(4, fds.length - 1)]!;
  const last = fds.at(-1)!;
  console.log(`# fds dimg watch: ${cycles} cycles, fds after cycle 5 ${warm}, after the last ${last} (min ${Math.min(...fds)}, max ${Math.max(...fds)}); RSS ${rss[4]} → ${rss.at(-1)} MiB`);
  assert.ok(last <= warm + 4, `watch fds grew from ${warm} to ${last} over ${cycles} cycles: ${fds.join(',')}`);
  assert.ok(Math.max(...fds) <= warm + 16, `watch fds peaked at ${Math.max(...fds)}`);

  // The library: 200 plans in this process, each with the planner a command builds and closes.
  const store = await Store.open(join(dir, 'store2'), storeOptions());
  const plans = SOAK ? 1000 : 200;
  const before: number[] = [];
  for (let i = 0; i < plans; i++) {
    if (i % 20 === 0) writeFileSync(join(dir, 'ctx', 'a.txt'), `plan ${i}`);
    const spec = await loadSpec(join(dir, 'images.yaml'), nodeSpecPorts({ env: {} }));
    const planner = await Planner.forSpec(spec, { store, env: {} });
    await planner.plan(spec).finally(() => planner.close());
    if (i === 9 || i === plans - 1) before.push(fdCount('self'));
  }
  console.log(`# fds Planner: ${plans} plans in one process, fds after 10 calls ${before[0]}, after ${plans} ${before[1]}`);
  assert.ok(before[1]! <= before[0]! + 4, `Planner leaks fds: ${before[0]} → ${before[1]}`);
});
