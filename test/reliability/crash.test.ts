/**
 * Crash safety: SIGKILL the real CLI at random moments during `image load`, `image import`, `build`
 * (COPY and RUN on a busybox rootfs), `apply` (build and push to the real registry) and `image prune`.
 * After every kill `dimg store verify` must find no corruption (exit 0), the registry must hold no
 * manifest whose blobs are missing, and the next run of the same command must converge (exit 0 and
 * the expected result). The kill moment is uniform over a window fitted to the command's recent
 * undisturbed durations (see `campaign`); only kills that hit a running process count.
 * Default: 5 kills per command (25); DIMG_SOAK=1: 20 per command (100).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { dimg, dimgOk, type CliOptions, type CliResult } from '../support/cli.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { between, runAndKill, tally, type CrashTally } from '../support/crash.js';
import { checkRegistry } from '../support/registry-check.js';
import { startRegistry } from '../support/registry.js';
import { tempDir } from '../support/tmp.js';
import { requireRoot } from '../support/tools.js';

const SOAK = process.env.DIMG_SOAK === '1';
const KILLS_PER_COMMAND = Number(process.env.DIMG_CRASH_KILLS ?? (SOAK ? 20 : 5));

function ok(args: string[], opts: CliOptions): Promise<CliResult> {
  return dimgOk(args, { timeoutMs: 300_000, ...opts });
}

interface Campaign {
  command: string;
  /** Puts the state where the command has real work to do (cycle i). */
  prepare(i: number): Promise<void>;
  args(i: number): string[];
  /** Extra checks right after a kill (besides store verify). */
  afterKill?(i: number): Promise<void>;
  /** The converged result of cycle i. */
  check(i: number, rerun: CliResult): Promise<void>;
  /** Names the stage a killed run had reached, from the output it printed before the kill. */
  phase?(stdout: string): string;
}

/** Median of a non-empty list. */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : Math.round((s[m - 1]! + s[m]!) / 2);
}

/** How many of the most recent undisturbed durations set the kill window. */
const WINDOW_SAMPLES = 5;

/**
 * Runs one campaign until `KILLS_PER_COMMAND` SIGKILLs have landed (a kill counts only when it hit a
 * running process; a run that finished first is checked like any run and the cycle repeats).
 *
 * The kill window follows what the command really takes now: cycle 0 runs cold (first build, first
 * push) and can take ten times as long as the warm cycles that follow, so a window drawn from it
 * mostly fired after warm runs had already exited. So cycle 1 also runs undisturbed (warm), and the
 * window ends at 110% of the running median of the last undisturbed durations (every run that
 * finished before its kill adds its duration): most draws land, and the last writes of a run (renames,
 * index update, manifest push) are inside the window too. The window starts at 80% of the time the CLI
 * needs to start and open a store (`store verify` of an empty store, the fastest of 3), since a kill
 * while Node is still loading modules cannot reach the store; never later than mid-window.
 */
async function campaign(c: Campaign, opts: CliOptions, results: CrashTally[], startupMs: number): Promise<void> {
  const tl = tally(c.command);
  results.push(tl);
  const durations: number[] = [];
  const delays: number[] = [];
  const phaseCounts: Record<string, number> = {};
  // Two undisturbed runs: cold (sets up the state), then warm (the first window sample).
  for (const i of [0, 1]) {
    await c.prepare(i);
    const t0 = Date.now();
    const r = await ok(c.args(i), opts);
    tl.runs++;
    durations.push(Date.now() - t0);
    await c.check(i, r);
  }
  const calibration = `cold ${durations[0]} ms, warm ${durations[1]} ms`;
  durations.shift();
  let i = 2;
  let cycles = 0;
  const maxCycles = KILLS_PER_COMMAND * 4;
  while (tl.kills < KILLS_PER_COMMAND && cycles < maxCycles) {
    cycles++;
    await c.prepare(i);
    const hi = Math.round(1.1 * median(durations.slice(-WINDOW_SAMPLES)));
    const lo = Math.min(Math.round(0.8 * startupMs), Math.round(hi / 2));
    // Early kills (store opening, locks) and late ones (renames, index update, push) alike.
    const run = await runAndKill(c.args(i), opts, between(lo, hi));
    tl.runs++;
    if (!run.killed) {
      assert.equal(run.code, 0, `${c.command} (cycle ${i}, not killed) exited ${run.code}:\n${run.stderr}`);
      durations.push(run.ranMs);
      await c.check(i, { code: 0, signal: null, stdout: run.stdout, stderr: run.stderr, stdoutBytes: Buffer.from(run.stdout) });
      i++;
      continue;
    }
    tl.kills++;
    delays.push(run.delayMs);
    const phase = c.phase?.(run.stdout);
    if (phase) phaseCounts[phase] = (phaseCounts[phase] ?? 0) + 1;
    const verify = await dimg(['store', 'verify'], opts);
    if (verify.code !== 0) {
      tl.verifyFailures++;
      console.log(`# ${c.command}: store verify after a kill at ${run.delayMs} ms failed:\n${verify.stdout}${verify.stderr}`);
    }
    await c.afterKill?.(i);
    const r0 = Date.now();
    const rerun = await dimg(c.args(i), { timeoutMs: 300_000, ...opts });
    tl.runs++;
    tl.maxRecoveryMs = Math.max(tl.maxRecoveryMs, Date.now() - r0);
    assert.equal(rerun.code, 0, `${c.command}: the run after a kill at ${run.delayMs} ms exited ${rerun.code}:\n${rerun.stderr}\n${rerun.stdout}`);
    await c.check(i, rerun);
    tl.converged++;
    i++;
  }
  const phases = Object.entries(phaseCounts).map(([k, v]) => `${k} ${v}`).join(', ');
  console.log(
    `# crash ${c.command}: runs ${tl.runs}, kills ${tl.kills} in ${cycles} cycles, verify failures ${tl.verifyFailures}, converged ${tl.converged}; ` +
      `calibration ${calibration}, undisturbed median ${median(durations)} ms; kills at ${delays.length ? `${Math.min(...delays)}–${Math.max(...delays)} ms (median ${median(delays)})` : 'none'}` +
      `${phases ? `; killed during: ${phases}` : ''}; slowest recovery ${tl.maxRecoveryMs} ms`,
  );
  assert.equal(tl.verifyFailures, 0, `${c.command}: store verify found corruption after a kill`);
  assert.equal(tl.kills, KILLS_PER_COMMAND, `${c.command}: only ${tl.kills} of ${KILLS_PER_COMMAND} kills landed in ${maxCycles} cycles`);
  assert.equal(tl.converged, tl.kills);
}

test('SIGKILL during load, import, build, apply and prune: the store verifies clean and the next run converges', async (t) => {
  requireRoot('build with RUN steps');
  const dir = tempDir(t);
  const root = join(dir, 'store');
  const opts: CliOptions = { root, cwd: dir, env: { SOURCE_DATE_EPOCH: '0' } };
  makeBusyboxRootfs(join(dir, 'rootfs'));
  mkdirSync(join(dir, 'ctx'));
  writeFileSync(join(dir, 'ctx', 'big.bin'), randomBytes(8 << 20));
  writeFileSync(join(dir, 'ctx', 'stamp'), '0');
  const reg = await startRegistry();
  t.after(() => reg.stop());
  writeFileSync(
    join(dir, 'images.yaml'),
    `version: 1
project: crash
registries:
  local: { url: ${reg.host}, insecure: true }
images:
  base:
    from: { rootfs: ./rootfs }
  app:
    from: base
    context: ./ctx
    steps:
      - copy: big.bin
        to: /data/
      - copy: stamp
        to: /
      - run: cat /stamp > /out && sha256sum /data/big.bin > /sum
    repository: crash/app
    tags: ["1"]
    push: [local]
`,
  );
  const results: CrashTally[] = [];
  // Start-up plus opening a store: before that moment a kill cannot have touched the store.
  const startups: number[] = [];
  for (let k = 0; k < 3; k++) {
    const t0 = Date.now();
    await ok(['store', 'verify'], { ...opts, root: join(dir, 'empty-store') });
    startups.push(Date.now() - t0);
  }
  const startupMs = Math.min(...startups);
  console.log(`# crash: CLI start-up with an empty store ${startupMs} ms (fastest of 3 \`dimg store verify\`)`);

  // image import: a rootfs with an 8 MiB file and a per-cycle stamp.
  const impRoot = join(dir, 'imp');
  makeBusyboxRootfs(impRoot);
  writeFileSync(join(impRoot, 'big.bin'), randomBytes(8 << 20));
  await campaign(
    {
      command: 'image import',
      prepare: async (i) => writeFileSync(join(impRoot, 'stamp'), `import ${i}`),
      args: (i) => ['image', 'import', impRoot, `crash/imp:${i}`],
      check: async (i) => void (await ok(['image', 'inspect', `crash/imp:${i}`], opts)),
    },
    opts,
    results,
    startupMs,
  );

  // image load: an archive of two images, names removed and space reclaimed before each cycle.
  const archive = join(dir, 'load.tar');
  await ok(['image', 'save', '-o', archive, 'crash/imp:0', 'crash/imp:1'], opts);
  await campaign(
    {
      command: 'image load',
      prepare: async () => {
        await ok(['image', 'rm', '-f', 'crash/imp:0', 'crash/imp:1'], opts).catch(() => undefined);
        await ok(['image', 'prune', '-f'], opts);
      },
      args: () => ['image', 'load', '-i', archive],
      check: async (_i, r) => {
        assert.match(r.stdout, /Loaded image: .*crash\/imp:0/);
        await ok(['image', 'inspect', 'crash/imp:0', 'crash/imp:1'], opts);
      },
    },
    opts,
    results,
    startupMs,
  );

  // build: COPY of 8 MiB and a RUN, with a stamp that changes every cycle.
  await campaign(
    {
      command: 'build',
      prepare: async (i) => writeFileSync(join(dir, 'ctx', 'stamp'), `build ${i}`),
      args: () => ['build', 'images.yaml'],
      // A step's line is printed when it finishes, so the last one names the step that was done.
      phase: (out) => {
        if (/^naming to crash\/app/m.test(out)) return 'naming';
        const steps = [...out.matchAll(/^\[(\w+ \d+\/\d+)\]/gm)];
        return steps.length ? `after ${steps[steps.length - 1]![1]}` : 'planning';
      },
      check: async (i) => {
        const inspect = JSON.parse((await ok(['image', 'inspect', 'crash/app:1'], opts)).stdout) as { Id: string }[];
        assert.equal(inspect.length, 1);
        // A second build of the same input is fully cached: the crash left nothing half-done.
        const again = await ok(['build', 'images.yaml'], opts);
        assert.doesNotMatch(again.stdout, /\bRUN\b.*\d+\.\ds$/m, `cycle ${i}: the RUN step ran again`);
      },
    },
    opts,
    results,
    startupMs,
  );

  // apply: build and push to the real registry.
  await campaign(
    {
      command: 'apply',
      prepare: async (i) => writeFileSync(join(dir, 'ctx', 'stamp'), `apply ${i}`),
      args: () => ['apply', '--progress', 'plain'],
      phase: (out) => (/Apply complete/.test(out) ? 'summary' : /^\S+ push /m.test(out) ? 'push' : /^\S+ build /m.test(out) ? 'build' : /^Plan:/m.test(out) ? 'plan printed' : 'planning'),
      afterKill: async () => {
        const reg1 = await checkRegistry(reg.url);
        assert.deepEqual(reg1.problems, [], 'a killed apply left a manifest whose blobs are missing');
      },
      check: async () => {
        const plan = await dimg(['plan', '--detailed-exitcode'], opts);
        assert.equal(plan.code, 0, `plan after apply shows changes:\n${plan.stdout}${plan.stderr}`);
        const state = await checkRegistry(reg.url);
        assert.deepEqual(state.problems, []);
        assert.ok(state.state['crash/app']?.['1'], 'crash/app:1 is in the registry');
      },
    },
    opts,
    results,
    startupMs,
  );

  // image prune: two imports under one name leave a dangling image with their own layers.
  await campaign(
    {
      command: 'image prune',
      prepare: async (i) => {
        for (let k = 0; k < 2; k++) {
          writeFileSync(join(impRoot, 'stamp'), `prune ${i}.${k} ${randomBytes(8).toString('hex')}`);
          writeFileSync(join(impRoot, 'unique.bin'), randomBytes(2 << 20));
          await ok(['image', 'import', impRoot, 'crash/prune:1'], opts);
        }
      },
      args: () => ['image', 'prune', '-f'],
      check: async () => {
        // One JSON object per line, as `docker images --format json` prints.
        const ls = (await ok(['image', 'ls', '--format', 'json'], opts)).stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, string>);
        assert.ok(ls.some((r) => r.Repository === 'crash/prune'), 'the named image survives prune');
        const dangling = ls.filter((r) => (r.Repository ?? r.repository) === '<none>');
        assert.deepEqual(dangling, [], 'prune converged: no dangling image left');
      },
    },
    opts,
    results,
    startupMs,
  );

  const total = results.reduce((a, r) => ({ runs: a.runs + r.runs, kills: a.kills + r.kills, verifyFailures: a.verifyFailures + r.verifyFailures, converged: a.converged + r.converged }), { runs: 0, kills: 0, verifyFailures: 0, converged: 0 });
  console.log(`# crash total: runs ${total.runs}, kills ${total.kills}, verify failures ${total.verifyFailures}, converged ${total.converged}`);
  const final = await dimg(['store', 'verify'], opts);
  assert.equal(final.code, 0, final.stdout + final.stderr);
});
