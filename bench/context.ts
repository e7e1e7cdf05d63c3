/**
 * The state one bench run shares between its workloads: options, paths under the work directory, the
 * dimg command line, which peers are usable (or why not), and the lazily started scratch registry.
 */
import { cpSync, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { startRegistry, type BenchRegistry } from './env.js';

/** Options of a bench run (see run.ts for the flags). */
export interface BenchOptions {
  only: string[];
  runs: number;
  peers: boolean;
  install: boolean;
  /** Tiny workload (a few small files) instead of the reference one: for the smoke test. */
  tiny: boolean;
  work: string;
  out: string;
  planSizes: number[];
  rssMiB: number;
  docs: boolean;
  /** Before starting, wait (at most `waitMax` seconds) until the 1-minute load average is below this. */
  waitLoad?: number;
  waitMax: number;
}

/** Peer name → null when usable, else the reason it is skipped. */
export type PeerStatus = Record<'docker' | 'buildah' | 'skopeo', string | null>;

/** Shared state of a bench run. */
export interface Bench {
  opts: BenchOptions;
  repo: string;
  /** argv prefix running the compiled dimg CLI. */
  dimg: string[];
  baseRef: string;
  /** The base comes from the peers' registry (skopeo + load) rather than an imported busybox rootfs. */
  baseFromRegistry: boolean;
  /** The build context (Dockerfile + ctx/). */
  workload: string;
  peers: PeerStatus;
  /** Name the built images get in every tool. */
  appName: string;
  /** Untimed builds done so far in this run (push/copy/save need a built image). */
  built: { dimg: boolean; docker: boolean; buildah: boolean };
  scratch?: BenchRegistry;
}

/** A path under the work directory (created parent). */
export function workPath(b: Bench, ...parts: string[]): string {
  const p = join(b.opts.work, ...parts);
  mkdirSync(join(p, '..'), { recursive: true });
  return p;
}

/** Where setAside puts what a preparation replaces, until emptyTrash. */
let trashDir: string | undefined;
let trashed = 0;

/**
 * Moves `path` (a store, a saved tar) out of the way instead of deleting it. The root file system here
 * is mounted with `discard`: blocks freed by a deletion are trimmed at a later journal commit, and a
 * timed command's fsyncs then wait for them. Deleting the previous run's store in each preparation made
 * five cold builds grow 1.9 → 3.3 s and five loads 0.8 → 1.1 s; moving it aside keeps runs independent.
 * Everything set aside is deleted by emptyTrash when the bench ends.
 */
export function setAside(b: Bench, path: string): void {
  if (!existsSync(path)) return;
  trashDir ??= workPath(b, 'trash');
  mkdirSync(trashDir, { recursive: true });
  renameSync(path, join(trashDir, `${trashed++}-${basename(path)}`));
}

/** Deletes what setAside moved (and any trash an interrupted bench left), untimed, at the end of a run. */
export function emptyTrash(b: Bench): void {
  rmSync(workPath(b, 'trash'), { recursive: true, force: true });
}

/** Replaces store `dst` with a copy of store `src` (untimed preparation: a store in a known state). */
export function copyStore(b: Bench, src: string, dst: string): void {
  setAside(b, dst);
  cpSync(src, dst, { recursive: true, verbatimSymlinks: true });
}

/** The dimg argv for store `root` and the given arguments. */
export function dimgArgv(b: Bench, root: string, ...args: string[]): string[] {
  return [...b.dimg, '--root', root, ...args];
}

/** The scratch registry (empty at start; `restartEmpty()` empties it again), started on first use. */
export async function scratchRegistry(b: Bench): Promise<BenchRegistry> {
  if (!b.scratch) b.scratch = await startRegistry('scratch', workPath(b, 'registries', 'scratch'), true);
  return b.scratch;
}

/** True when `dir` holds a dimg store with an OCI index. */
export function isStore(dir: string): boolean {
  return existsSync(join(dir, 'oci', 'index.json'));
}
