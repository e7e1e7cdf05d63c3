/**
 * `npm run bench`: dimg side by side with its peers (Docker BuildKit, buildah, docker push, skopeo,
 * docker save/load) on the workloads of issue 8, in one run, tools alternating, medians with min–max.
 *
 *   npm run bench -- [--only build,watch,push,copy,plan,save,rss] [--runs 5] [--no-peers] [--no-install]
 *                    [--plan-sizes 50,100,200] [--rss-mib 1024] [--work DIR] [--out FILE] [--tiny] [--docs|--no-docs]
 *                    [--wait-load 3 [--wait-max 600]]
 *
 * Prints the table on stdout (progress on stderr), writes the run to bench/results/latest.json, and on
 * a full run (no --only) rewrites the generated section of docs/benchmarks.md. Every server it starts
 * (its registries, dockerd when it had to start it) is stopped at the end, also on Ctrl-C.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BASE_REF } from './build-workload.js';
import { emptyTrash, type Bench, type BenchOptions } from './context.js';
import { concurrentBenches, ensureDocker, ensureSharedBase, ensureTool, loadNow, machine, sh, snapshotDimg, stopAll } from './env.js';
import { judge, planGrowth, table, updateDocs, writeJson, type RunRecord } from './report.js';
import type { CaseResult } from './runner.js';
import { archiveCases } from './workloads/archive.js';
import { buildCases, prepareWorkload } from './workloads/build.js';
import { planCases } from './workloads/plan.js';
import { registryCases } from './workloads/registry.js';
import { rssCases } from './workloads/rss.js';
import { watchCases } from './workloads/watch.js';

/** The workload groups, in the order they run (later ones reuse what earlier ones built). */
export const WORKLOADS = ['build', 'watch', 'push', 'copy', 'plan', 'save', 'rss'] as const;

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function parseArgs(argv: string[]): BenchOptions & { docsSet: boolean } {
  const o: BenchOptions & { docsSet: boolean } = {
    only: [...WORKLOADS],
    runs: 5,
    peers: true,
    install: true,
    tiny: false,
    work: join(REPO, 'bench', 'work'),
    out: join(REPO, 'bench', 'results', 'latest.json'),
    planSizes: [50, 100, 200],
    rssMiB: 1024,
    docs: false,
    docsSet: false,
    waitMax: 600,
  };
  let onlyGiven = false;
  const alias: Record<string, string> = { load: 'save', saveload: 'save', 'save-load': 'save', noop: 'plan', apply: 'plan', memory: 'rss' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--only') {
      onlyGiven = true;
      o.only = val().split(',').map((w) => alias[w.trim()] ?? w.trim());
      const bad = o.only.filter((w) => !(WORKLOADS as readonly string[]).includes(w));
      if (bad.length) throw new Error(`unknown workload ${bad.join(', ')} (known: ${WORKLOADS.join(', ')})`);
    } else if (a === '--runs') {
      o.runs = Number(val());
      if (!Number.isInteger(o.runs) || o.runs < 1) throw new Error('--runs must be a positive integer');
    } else if (a === '--no-peers') o.peers = false;
    else if (a === '--no-install') o.install = false;
    else if (a === '--tiny') o.tiny = true;
    else if (a === '--work') o.work = resolve(val());
    else if (a === '--out') o.out = resolve(val());
    else if (a === '--plan-sizes') o.planSizes = val().split(',').map(Number);
    else if (a === '--rss-mib') o.rssMiB = Number(val());
    else if (a === '--wait-load') o.waitLoad = Number(val());
    else if (a === '--wait-max') o.waitMax = Number(val());
    else if (a === '--docs') (o.docs = true), (o.docsSet = true);
    else if (a === '--no-docs') (o.docs = false), (o.docsSet = true);
    else throw new Error(`unknown argument ${a}`);
  }
  if (!o.docsSet) o.docs = !onlyGiven && !o.tiny && o.peers;
  return o;
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const opts = parseArgs(args);
  const log = (s: string) => process.stderr.write(`${s}\n`);
  mkdirSync(opts.work, { recursive: true });
  writeFileSync(join(opts.work, '.gitignore'), '*\n');
  if (opts.waitLoad !== undefined) {
    const end = Date.now() + opts.waitMax * 1000;
    while (Number(loadNow().split(' ')[0]) >= opts.waitLoad && Date.now() < end) {
      log(`waiting for the load average (${loadNow()}) to fall below ${opts.waitLoad}…`);
      await new Promise((r) => setTimeout(r, 15_000));
    }
  }
  const startLoad = loadNow();
  const m = machine();
  log(`dimg bench: ${opts.only.join(', ')}; ${opts.runs} runs; ${m.nproc} cores, ${m.memoryGiB} GiB, Linux ${m.kernel}; load ${startLoad}`);
  if (Number(startLoad.split(' ')[0]) > 3) log('note: load average above 3: other work shares this machine; figures will be noisy');
  const want = (w: string) => opts.only.includes(w);
  const b: Bench = {
    opts,
    repo: REPO,
    dimg: await snapshotDimg(REPO, join(opts.work, 'dimg')),
    baseRef: BASE_REF,
    baseFromRegistry: false,
    workload: join(opts.work, opts.tiny ? 'workload-tiny' : 'workload'),
    peers: { docker: 'not used (--no-peers)', buildah: 'not used (--no-peers)', skopeo: 'not used (--no-peers)' },
    appName: 'dimgbench/app:1',
    built: { dimg: false, docker: false, buildah: false },
  };
  const cases: CaseResult[] = [];
  const samples: string[] = [startLoad];
  const concurrent = new Set<string>(concurrentBenches());
  const sample = () => {
    samples.push(loadNow());
    for (const c of concurrentBenches()) concurrent.add(c);
  };
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    log(`${sig}: stopping what the bench started`);
    void stopAll().then(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    if (opts.peers) {
      const needDocker = want('build') || want('watch') || want('push') || want('save');
      b.peers.docker = needDocker ? ensureDocker(opts.install) : 'not needed by the selected workloads';
      b.peers.buildah = want('build') ? ensureTool('buildah', 'buildah', opts.install) : 'not needed by the selected workloads';
      b.peers.skopeo = ensureTool('skopeo', 'skopeo', opts.install);
      if (!opts.tiny) {
        const why = b.peers.skopeo ?? ensureSharedBase(BASE_REF);
        if (why) {
          for (const p of ['docker', 'buildah'] as const) b.peers[p] ??= `the reference base ${BASE_REF} is unavailable: ${why}`;
        } else b.baseFromRegistry = true;
      }
      for (const [p, why] of Object.entries(b.peers)) log(`peer ${p}: ${why ?? 'ready'}`);
    }
    prepareWorkload(b);
    if (want('build')) cases.push(...(await buildCases(b)));
    sample();
    if (want('watch')) cases.push(...(await watchCases(b)));
    sample();
    if (want('push') || want('copy')) cases.push(...(await registryCases(b, { push: want('push'), copy: want('copy') })));
    sample();
    if (want('plan')) cases.push(...(await planCases(b)));
    sample();
    if (want('save')) cases.push(...(await archiveCases(b)));
    sample();
    if (want('rss')) cases.push(...(await rssCases(b)));
    sample();
  } finally {
    await stopAll();
    emptyTrash(b);
  }
  const judged = judge(cases);
  const record: RunRecord = {
    date: new Date().toISOString(),
    machine: m,
    load: { start: startLoad, end: loadNow(), samples: [...new Set([...samples, loadNow()])] },
    options: { ...opts },
    source: { commit: sh(`git -C ${REPO} rev-parse --short HEAD`).out.trim(), dirtyFiles: Number(sh(`git -C ${REPO} status --porcelain -uno | wc -l`).out.trim()) },
    concurrentBenches: [...concurrent],
    command: `npm run bench${args.length ? ` -- ${args.join(' ')}` : ''}`,
    cases: judged,
  };
  writeJson(opts.out, record);
  if (opts.docs) updateDocs(join(REPO, 'docs', 'benchmarks.md'), record);
  console.log(`\n${table(judged)}\n`);
  const g = planGrowth(judged);
  if (g) console.log(`${g}\n`);
  if (concurrent.size) console.log(`WARNING: other benchmarks ran at the same time: ${[...concurrent].join('; ')}`);
  console.log(`machine: ${m.nproc} cores, ${m.memoryGiB} GiB, Linux ${m.kernel}; load ${record.load.start} → ${record.load.end}`);
  console.log(`results: ${opts.out}${opts.docs ? '; docs/benchmarks.md updated' : ''}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  async (e: unknown) => {
    await stopAll();
    console.error(`bench failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
