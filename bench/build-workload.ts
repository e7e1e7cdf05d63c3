/**
 * The reference build workload (docs/benchmarks.md) and a side-by-side timer for dimg and Docker
 * BuildKit. Reusable pieces: `createReferenceWorkload` writes the workload into a directory,
 * `changeOneFile` makes the "one small file changed" edit, `timeCommand` times one command, and
 * `compare` alternates several tools over a case and reports medians and min–max.
 *
 * Run (after `npx tsc -p .`):
 *   node dist/bench/build-workload.js [--runs 5] [--no-docker] [--cases cold,cached,changed] [--dir /tmp/dimg-bench]
 * With Docker (the default) dockerd must be running (/work/shared/peers/start-peers.sh docker) and
 * the base pushed (make-base-images.sh); dimg gets the very same base through skopeo + `dimg image load`.
 */
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where the reference workload's base lives in the peers' registry. */
export const BASE_REF = '127.0.0.1:5000/base/busybox:1';

/** Small deterministic PRNG (mulberry32): the same workload on every machine. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `size` bytes of incompressible, deterministic data (AES-CTR keystream of a fixed key). */
function randomBytes(size: number, seed: string): Buffer {
  const key = Buffer.alloc(16);
  key.write(seed);
  const c = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return Buffer.concat([c.update(Buffer.alloc(size)), c.final()]);
}

/**
 * Writes the reference workload into `dir`: `ctx/` (2,000 small files of 100–4,000 bytes in 20
 * directories, plus `big.bin`, 50 MiB of random bytes), a `Dockerfile` and an equivalent `images.yaml`
 * (image `app`, tag `bench:x`), both FROM `baseRef`. The Dockerfile is the one baseline.sh builds.
 * Existing context files are kept (so repeated calls are cheap); the two build files are rewritten.
 */
export function createReferenceWorkload(dir: string, baseRef: string = BASE_REF): void {
  const ctx = join(dir, 'ctx');
  if (!existsSync(join(ctx, 'big.bin'))) {
    const rnd = prng(42);
    for (let i = 0; i < 2000; i++) {
      const d = join(ctx, `d${String(Math.floor(i / 100)).padStart(2, '0')}`);
      mkdirSync(d, { recursive: true });
      const size = 100 + Math.floor(rnd() * 3901);
      writeFileSync(join(d, `f${String(i).padStart(4, '0')}.txt`), `file ${i} `.repeat(Math.floor(size / 10)));
    }
    writeFileSync(join(ctx, 'big.bin'), randomBytes(50 << 20, 'dimg-bench'));
  }
  const run1 = 'mkdir -p etc gen && for i in $(seq 1 100); do echo "generated $i" > gen/f$i.txt; done';
  const run2 = 'echo "APP_ENV=$APP_ENV" > etc/app.conf && ln -s /app/etc/app.conf /etc/app.conf';
  const run3 = 'find /app/src -type f | wc -l > /app/src.count && du -s /app/src > /app/src.du';
  writeFileSync(
    join(dir, 'Dockerfile'),
    [
      `FROM ${baseRef}`,
      'ENV APP_HOME=/app APP_ENV=bench',
      'WORKDIR /app',
      `RUN ${run1}`,
      `RUN ${run2}`,
      'COPY ctx/ /app/src/',
      `RUN ${run3}`,
      'CMD ["/bin/sh", "-c", "cat /app/etc/app.conf /app/src.count"]',
      '',
    ].join('\n'),
  );
  const q = (s: string) => JSON.stringify(s);
  writeFileSync(
    join(dir, 'images.yaml'),
    [
      'version: 1',
      'project: bench',
      'images:',
      '  app:',
      `    from: ${q(baseRef)}`,
      '    context: .',
      '    steps:',
      '      - env: { APP_HOME: /app, APP_ENV: bench }',
      '      - workdir: /app',
      `      - run: ${q(run1)}`,
      `      - run: ${q(run2)}`,
      '      - copy: ctx/',
      '        to: /app/src/',
      `      - run: ${q(run3)}`,
      '    cmd: ["/bin/sh", "-c", "cat /app/etc/app.conf /app/src.count"]',
      '    repository: bench',
      '    tags: ["y"]',
      '',
    ].join('\n'),
  );
}

/** The "one small context file changed" edit: rewrites ctx/d00/f0000.txt with new content. */
export function changeOneFile(dir: string): void {
  writeFileSync(join(dir, 'ctx', 'd00', 'f0000.txt'), `${process.hrtime.bigint()}\n`);
}

/** One timed command. */
export interface Timed {
  seconds: number;
  output: string;
}

/** Runs `argv` to completion and returns its wall time; fails (with its output) on a non-zero exit. */
export function timeCommand(argv: string[], opts: SpawnSyncOptions = {}): Timed {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (exit ${r.status ?? r.signal}):\n${output.slice(-3000)}`);
  return { seconds, output };
}

/** A tool under test for one case: an untimed preparation and the timed command. */
export interface Contender {
  name: string;
  prepare?: () => void;
  argv: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Median, min and max of a sample. */
export interface Stats {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

/** Summary statistics of `xs` (non-empty). */
export function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  return { median: m, min: s[0]!, max: s[s.length - 1]!, runs: xs };
}

/** Runs every contender `runs` times, alternating them round by round; returns stats per name. */
export function compare(contenders: Contender[], runs: number, log: (s: string) => void = () => undefined): Map<string, Stats> {
  const times = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  for (let i = 0; i < runs; i++) {
    for (const c of contenders) {
      c.prepare?.();
      // Flush what the preparation wrote (a removed store, a builder prune) so its writeback does not
      // land in the next timed run, whichever tool that is.
      sh('sync');
      const t = timeCommand(c.argv, { env: { ...process.env, ...c.env }, cwd: c.cwd });
      times.get(c.name)!.push(t.seconds);
      log(`  ${c.name} run ${i + 1}: ${t.seconds.toFixed(3)} s`);
    }
  }
  return new Map([...times].map(([k, v]) => [k, stats(v)]));
}

/** The 1-minute/5-minute/15-minute load averages. */
export function loadAverage(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

function sh(cmd: string): void {
  spawnSync('sh', ['-c', cmd], { stdio: 'ignore' });
}

interface Args {
  runs: number;
  docker: boolean;
  cases: string[];
  dir: string;
  yaml: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { runs: 5, docker: true, cases: ['cold', 'cached', 'changed'], dir: '/tmp/dimg-bench', yaml: true };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--runs') a.runs = Number(argv[++i]);
    else if (k === '--no-docker') a.docker = false;
    else if (k === '--no-yaml') a.yaml = false;
    else if (k === '--cases') a.cases = argv[++i]!.split(',');
    else if (k === '--dir') a.dir = resolve(argv[++i]!);
    else throw new Error(`unknown argument ${k}`);
  }
  return a;
}

/** Prepares a dimg store holding only the base image, at `template` (skopeo from the registry, else an imported busybox rootfs). */
export function makeBaseStore(dimg: string[], template: string, work: string, docker: boolean): void {
  if (existsSync(join(template, 'oci', 'index.json'))) return;
  rmSync(template, { recursive: true, force: true });
  const archive = join(work, 'base.tar');
  if (docker) {
    rmSync(archive, { force: true });
    timeCommand(['skopeo', 'copy', '-q', '--src-tls-verify=false', `docker://${BASE_REF}`, `docker-archive:${archive}:${BASE_REF}`]);
    timeCommand([...dimg, '--root', template, 'image', 'load', '-i', archive]);
  } else {
    const rootfs = join(work, 'busybox-rootfs');
    rmSync(rootfs, { recursive: true, force: true });
    for (const d of ['bin', 'etc', 'tmp', 'root', 'proc', 'dev', 'sys']) mkdirSync(join(rootfs, d), { recursive: true });
    sh(`cp /bin/busybox ${rootfs}/bin/busybox && cd ${rootfs}/bin && for a in $(./busybox --list); do [ "$a" = busybox ] || ln -s busybox "$a"; done`);
    writeFileSync(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    writeFileSync(join(rootfs, 'etc', 'group'), 'root:x:0:\n');
    timeCommand([...dimg, '--root', template, 'image', 'import', '-c', 'CMD ["/bin/sh"]', rootfs, BASE_REF]);
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const repo = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
  const dimg = [process.execPath, join(repo, 'bin', 'dimg')];
  const docker = '/usr/bin/docker';
  const work = args.dir;
  const bench = join(work, 'workload');
  mkdirSync(bench, { recursive: true });
  createReferenceWorkload(bench);
  const template = join(work, 'store-base');
  makeBaseStore(dimg, template, work, args.docker);
  const stores = { image: join(work, 'store-image'), yaml: join(work, 'store-yaml') };
  // A cold dimg build gets a fresh copy of the base-only store. The previous store is renamed away,
  // not deleted: deleting ~100 MiB trees right before a timed run slows the file system for the next
  // seconds on this host (ext4 mounted with online discard), which measures the preparation instead
  // of the build. The renamed stores are deleted once every case is done.
  const graveyard = join(work, 'graveyard');
  const freshStore = (s: string) => () => {
    if (existsSync(s)) {
      mkdirSync(graveyard, { recursive: true });
      renameSync(s, join(graveyard, `${Date.now()}-${Math.random().toString(36).slice(2)}`));
    }
    cpSync(template, s, { recursive: true, verbatimSymlinks: true });
  };
  const dimgImage = (prepare?: () => void): Contender => ({ name: 'dimg image build', prepare, argv: [...dimg, '--root', stores.image, 'image', 'build', '-f', 'Dockerfile', '-t', 'bench:x', '.'], cwd: bench });
  const dimgYaml = (prepare?: () => void): Contender => ({ name: 'dimg build (yaml)', prepare, argv: [...dimg, '--root', stores.yaml, 'build', 'images.yaml'], cwd: bench });
  const bk = (prepare?: () => void): Contender => ({
    name: 'docker BuildKit',
    prepare,
    argv: [docker, 'build', '-q', '--network=none', '-t', 'bench/app:bk', '.'],
    env: { DOCKER_BUILDKIT: '1', DOCKER_CLI_HINTS: 'false' },
    cwd: bench,
  });
  const dockerCold = () =>
    sh(`${docker} image inspect -f '{{.Id}}' bench/app:bk 2>/dev/null | xargs -r ${docker} rmi -f; ${docker} image prune -f; ${docker} rmi -f ${BASE_REF}; ${docker} builder prune -af`);
  const change = () => changeOneFile(bench);
  const log = (s: string) => process.stderr.write(`${s}\n`);
  const results: Array<{ case: string; tool: string; s: Stats }> = [];
  const loads: string[] = [loadAverage()];
  for (const c of args.cases) {
    log(`== ${c} (load ${loadAverage()})`);
    const contenders: Contender[] = [];
    if (c === 'cold') {
      if (args.docker) contenders.push(bk(dockerCold));
      contenders.push(dimgImage(freshStore(stores.image)));
      if (args.yaml) contenders.push(dimgYaml(freshStore(stores.yaml)));
    } else {
      const prep = c === 'changed' ? change : undefined;
      if (args.docker) contenders.push(bk(prep));
      contenders.push(dimgImage(prep));
      if (args.yaml) contenders.push(dimgYaml(prep));
      // Make sure each tool has a complete build of the current files before timing.
      for (const k of contenders) {
        if (!existsSync(join(stores.image, 'oci')) && k.name === 'dimg image build') freshStore(stores.image)();
        if (!existsSync(join(stores.yaml, 'oci')) && k.name === 'dimg build (yaml)') freshStore(stores.yaml)();
        timeCommand(k.argv, { env: { ...process.env, ...k.env }, cwd: k.cwd });
      }
    }
    for (const [tool, s] of compare(contenders, args.runs, log)) results.push({ case: c, tool, s });
    loads.push(loadAverage());
  }
  rmSync(graveyard, { recursive: true, force: true });
  const f = (x: number) => x.toFixed(2);
  console.log(`\n| case | tool | median s | min–max s | ratio to BuildKit |`);
  console.log('|---|---|---|---|---|');
  for (const r of results) {
    const ref = results.find((x) => x.case === r.case && x.tool === 'docker BuildKit');
    const ratio = ref && r.tool !== ref.tool ? `${(r.s.median / ref.s.median).toFixed(2)}×` : '';
    console.log(`| ${r.case} | ${r.tool} | ${f(r.s.median)} | ${f(r.s.min)}–${f(r.s.max)} | ${ratio} |`);
  }
  console.log(`\nload average during the cases: ${loads.join(' → ')}; ${args.runs} runs per tool and case, alternating.`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
