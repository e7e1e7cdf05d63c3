/**
 * The state one bench run shares between its workloads: options, paths under the work directory, the
 * dimg command line, which peers are usable (or why not), and the lazily started scratch registry.
 */
import { cpSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
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

/** Replaces store `dst` with a copy of store `src` (untimed preparation: a store in a known state). */
export function copyStore(src: string, dst: string): void {
  rmSync(dst, { recursive: true, force: true });
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
