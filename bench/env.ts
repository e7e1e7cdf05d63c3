/**
 * The bench's environment: the machine description, the peer tools (installed with apt-get when
 * missing, or reported as skipped with the reason), and the servers the bench runs (its own registries
 * on free loopback ports, and dockerd through the shared peers scripts). Everything started here is
 * recorded and stopped by `stopAll()`; a dockerd or registry that was already running is left alone.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, totalmem, release } from 'node:os';
import { join } from 'node:path';
import { loadAverage } from './build-workload.js';

/** The shared peers scripts (start-peers.sh, make-base-images.sh, stop-peers.sh). */
export const PEERS_SCRIPTS = process.env.DIMG_PEERS_SCRIPTS ?? '/work/shared/peers';
/** The Docker 20.10 client with BuildKit built in (the `docker` on PATH may lack buildx). */
export const DOCKER = process.env.DIMG_BENCH_DOCKER ?? '/usr/bin/docker';
/** Environment for every docker client call. */
export const DOCKER_ENV: NodeJS.ProcessEnv = { DOCKER_BUILDKIT: '1', DOCKER_CLI_HINTS: 'false' };

const log = (s: string) => process.stderr.write(`${s}\n`);

/** Machine facts recorded with every result. */
export interface Machine {
  nproc: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  node: string;
}

/** Describes this machine (cores, memory, kernel, Node version). */
export function machine(): Machine {
  return {
    nproc: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    node: process.version,
  };
}

/** Runs a shell command, returning its status and combined output (never throws). */
export function sh(cmd: string, env: NodeJS.ProcessEnv = {}): { ok: boolean; out: string } {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 64 << 20 });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

/** Runs a shell command and throws (with its output tail) when it fails. */
export function shOrThrow(cmd: string, env: NodeJS.ProcessEnv = {}): string {
  const r = sh(cmd, env);
  if (!r.ok) throw new Error(`${cmd} failed:\n${r.out.slice(-2000)}`);
  return r.out;
}

function have(cmd: string): boolean {
  return cmd.startsWith('/') ? existsSync(cmd) : sh(`command -v ${cmd}`).ok;
}

/**
 * Makes sure `cmd` exists, installing Debian package `pkg` with apt-get when it does not. Returns
 * null when the tool is usable, else the reason it is not (the caller reports the peer as skipped).
 */
export function ensureTool(cmd: string, pkg: string, allowInstall: boolean): string | null {
  if (have(cmd)) return null;
  if (!allowInstall) return `${cmd} is not installed (apt-get install ${pkg}; the bench installs it unless --no-install)`;
  log(`installing ${pkg} (apt-get) for ${cmd}`);
  let r = sh(`DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${pkg}`);
  if (!r.ok) {
    sh('apt-get update');
    r = sh(`DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${pkg}`);
  }
  if (!r.ok || !have(cmd)) return `apt-get install ${pkg} failed: ${r.out.trim().split('\n').slice(-2).join(' / ')}`;
  return null;
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** A registry the bench runs: the real CNCF distribution registry on a loopback port. */
export interface BenchRegistry {
  name: string;
  /** host:port, e.g. 127.0.0.1:41234 */
  host: string;
  dataDir: string;
  /** Stops the server and wipes its storage, then starts it again on the same port (an empty registry). */
  restartEmpty(): Promise<void>;
  stop(): Promise<void>;
}

const started: Array<{ what: string; stop: () => Promise<void> | void }> = [];

async function waitHttp(url: string, seconds = 20): Promise<void> {
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    try {
      const r = await fetch(url);
      if (r.status === 200 || r.status === 401) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timeout waiting for ${url}`);
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * Starts `/usr/bin/docker-registry` on 127.0.0.1 (on `preferredPort` when it is free, else a free port)
 * with storage in `dataDir` (kept between bench runs unless `wipe`), delete enabled. Stopped by `stopAll()`.
 */
export async function startRegistry(name: string, dataDir: string, wipe: boolean, preferredPort?: number): Promise<BenchRegistry> {
  const port = preferredPort !== undefined && (await portFree(preferredPort)) ? preferredPort : await freePort();
  const host = `127.0.0.1:${port}`;
  const config = `${dataDir}.yml`;
  let child: ChildProcess | null = null;
  const launch = async () => {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(
      config,
      [
        'version: 0.1',
        'log:',
        '  level: error',
        'storage:',
        '  cache:',
        '    blobdescriptor: inmemory',
        '  filesystem:',
        `    rootdirectory: ${dataDir}`,
        '  delete:',
        '    enabled: true',
        'http:',
        `  addr: ${host}`,
        '  secret: dimg-bench-local-only',
        '',
      ].join('\n'),
    );
    const logFd = openSync(`${dataDir}.log`, 'a');
    child = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: ['ignore', logFd, logFd] });
    closeSync(logFd);
    await waitHttp(`http://${host}/v2/`);
  };
  const halt = async () => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGTERM');
    });
  };
  if (wipe) rmSync(dataDir, { recursive: true, force: true });
  await launch();
  const reg: BenchRegistry = {
    name,
    host,
    dataDir,
    async restartEmpty() {
      await halt();
      rmSync(dataDir, { recursive: true, force: true });
      await launch();
    },
    stop: halt,
  };
  started.push({ what: `registry ${name} (${host})`, stop: halt });
  return reg;
}

function dockerAlive(): boolean {
  return sh(`${DOCKER} version --format '{{.Server.Version}}'`).ok;
}

function peersDir(): string {
  return process.env.PEERS_DIR ?? '/tmp/peers';
}

function pidAlive(name: string): boolean {
  const f = join(peersDir(), `${name}.pid`);
  if (!existsSync(f)) return false;
  const pid = readFileSync(f, 'utf8').trim();
  return sh(`kill -0 ${pid}`).ok;
}

let dockerStartedByUs = false;
let registry5000StartedByUs = false;

/**
 * Makes sure dockerd answers (starting it with the shared start-peers.sh, which is idempotent, when it
 * does not). Returns null when Docker is usable, else the reason. A dockerd started here is stopped by
 * `stopAll()`; one that was already running is left running.
 */
export function ensureDocker(allowInstall: boolean): string | null {
  const missing = ensureTool('/usr/sbin/dockerd', 'docker.io', allowInstall) ?? ensureTool(DOCKER, 'docker.io', allowInstall);
  if (missing) return missing;
  if (dockerAlive()) return null;
  const wasAlive = pidAlive('dockerd');
  const r = sh(`${PEERS_SCRIPTS}/start-peers.sh docker`);
  if (!r.ok || !dockerAlive()) return `dockerd could not be started: ${r.out.trim().split('\n').slice(-2).join(' / ')}`;
  if (!wasAlive && !dockerStartedByUs) {
    dockerStartedByUs = true;
    started.push({ what: 'dockerd (start-peers.sh)', stop: () => void sh(`${PEERS_SCRIPTS}/stop-peers.sh dockerd`) });
  }
  log('dockerd started by the bench (start-peers.sh docker)');
  return null;
}

/** True when dockerd answers; when it vanished mid-run, restarts it (the caller redoes its measurement). */
export function dockerStillUp(): boolean {
  if (dockerAlive()) return true;
  log('dockerd is gone (stopped by someone else?): restarting it');
  const why = ensureDocker(false);
  if (why) log(why);
  return false;
}

/**
 * Makes sure the shared registry on 127.0.0.1:5000 runs and holds the reference base image (pushing
 * it with the shared make-base-images.sh if absent). Returns null when ready, else the reason.
 */
export function ensureSharedBase(baseRef: string): string | null {
  if (!sh('curl -s -o /dev/null --noproxy "*" http://127.0.0.1:5000/v2/').ok) {
    const r = sh(`${PEERS_SCRIPTS}/start-peers.sh`);
    if (!r.ok) return `registry 127.0.0.1:5000 could not be started: ${r.out.trim()}`;
    if (!registry5000StartedByUs) {
      registry5000StartedByUs = true;
      started.push({ what: 'registry 127.0.0.1:5000 (start-peers.sh)', stop: () => void sh(`${PEERS_SCRIPTS}/stop-peers.sh registry`) });
    }
  }
  if (sh(`skopeo inspect --tls-verify=false --raw docker://${baseRef}`).ok) return null;
  const r = sh(`${PEERS_SCRIPTS}/make-base-images.sh`);
  if (!r.ok) return `make-base-images.sh failed: ${r.out.trim().split('\n').slice(-2).join(' / ')}`;
  return null;
}

/** Stops everything the bench started, newest first. */
export async function stopAll(): Promise<void> {
  while (started.length > 0) {
    const s = started.pop()!;
    try {
      await s.stop();
      log(`stopped ${s.what}`);
    } catch (e) {
      log(`could not stop ${s.what}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}

/**
 * Copies the compiled CLI (dist/src, dist/cli, bin/dimg, schemas/, package.json) to `dest` and checks that every module of the copy
 * links (imports resolve, named exports exist). Other helpers rebuild dist/ in the shared tree while a
 * bench runs; a snapshot keeps one run on one build. Retries while a concurrent build leaves dist/
 * half-written. Returns the argv prefix that runs the snapshot.
 */
export async function snapshotDimg(repo: string, dest: string): Promise<string[]> {
  let last = '';
  let same = 0;
  for (let attempt = 0; attempt < 8 && same < 3; attempt++) {
    rmSync(dest, { recursive: true, force: true });
    mkdirSync(join(dest, 'bin'), { recursive: true });
    cpSync(join(repo, 'dist', 'src'), join(dest, 'dist', 'src'), { recursive: true });
    // bin/dimg runs the bundle in dist/cli (made from the same sources by scripts/bundle.mjs)
    cpSync(join(repo, 'dist', 'cli'), join(dest, 'dist', 'cli'), { recursive: true });
    cpSync(join(repo, 'bin', 'dimg'), join(dest, 'bin', 'dimg'));
    // the package's assets and its package.json (module type, version) go along
    cpSync(join(repo, 'schemas'), join(dest, 'schemas'), { recursive: true });
    cpSync(join(repo, 'package.json'), join(dest, 'package.json'));
    // dependencies resolve from the repository's node_modules wherever the work directory is
    symlinkSync(join(repo, 'node_modules'), join(dest, 'node_modules'));
    const check = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { readdirSync } from 'node:fs'; import { join } from 'node:path';
         const walk = (d) => readdirSync(d, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? walk(join(d, e.name)) : e.name.endsWith('.js') ? [join(d, e.name)] : []);
         for (const f of walk(${JSON.stringify(join(dest, 'dist', 'src'))})) { if (!f.endsWith('main.js')) await import(f); }`,
      ],
      { encoding: 'utf8' },
    );
    if (check.status === 0) return [process.execPath, join(dest, 'bin', 'dimg')];
    const err = `${check.stderr}`.split('\n').find((l) => /Error/.test(l)) ?? check.stderr.slice(0, 300);
    same = err === last ? same + 1 : 1;
    last = err;
    log(`dist/ does not link yet (a build in progress?): ${last}; retrying in 5 s`);
    await new Promise((r) => setTimeout(r, 5_000));
  }
  throw new Error(`the compiled CLI in ${repo}/dist does not link: ${last}`);
}

/**
 * Other benchmarks that use dockerd running right now (their `docker builder prune` and builds skew the
 * peers' figures): command lines of processes other than this one.
 */
export function concurrentBenches(): string[] {
  const r = sh(`pgrep -af 'build-workload\\.js|baseline\\.sh|dist/bench/run\\.js' || true`);
  return r.out
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith(`${process.pid} `) && !/pgrep|sh -c/.test(l))
    .map((l) => l.replace(/^\d+\s+/, '').slice(0, 120));
}

/** The load average now, with a timestamp (recorded with every case). */
export function loadNow(): string {
  return loadAverage();
}
