/**
 * `dimg info`: where the store is, which storage driver works here (probed, not assumed), what the
 * store holds, and which kernel features (overlay mounts, namespaces) the builder can count on.
 */
import type { Command } from 'commander';
import { spawnSync } from 'node:child_process';
import { promises as fs, readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { openStoreFor } from '../context.js';
import { humanSize } from '../format.js';
import type { Store } from '../../store/store.js';
import { loadImage } from '../../image/local-image.js';
import { hostTool } from '../../builder/tools.js';
import { detectRunDriver } from '../../builder/sandbox.js';
import type { IdRange } from '../../builder/rootless-ids.js';

/** What `dimg info` reports (also its `--format json` shape). */
export interface InfoReport {
  root: string;
  ociLayout: string;
  skopeoExample: string;
  storageDriver: string;
  overlay: { available: boolean; reason?: string };
  backingFilesystem: string;
  images: number;
  tags: number;
  layers: number;
  blobs: number;
  totalSize: number;
  namespaces: Record<'mount' | 'pid' | 'user', { available: boolean; reason?: string }>;
  /** The OCI runtime that confines RUN steps: its version line, or why there is none. */
  runRuntime: { available: boolean; version?: string; reason?: string };
  /**
   * How RUN steps get their root here (overlay, copy, rootless or none) and why; not root, the
   * user namespace they run in: `full` (subordinate ids, chown works) or `single` (only 0 mapped).
   */
  runDriver: {
    driver: string;
    reason: string;
    rootless?: { mapping: 'full' | 'single'; uids: IdRange[]; gids: IdRange[] };
  };
}

/** Registers `dimg info`. */
export function register(program: Command): void {
  program
    .command('info')
    .description('show the store location, storage driver, contents and host capabilities')
    .option('--format <format>', "'json' for the report as one JSON object")
    .action(async (opts: { format?: string }, c: Command) => {
      const store = await openStoreFor(c);
      const r = await collectInfo(store);
      if (opts.format === 'json') {
        process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
        return;
      }
      const yes = (x: { available: boolean; reason?: string }) => (x.available ? 'yes' : `no (${x.reason})`);
      process.stdout.write(
        [
          `Store Root: ${r.root}`,
          `OCI Layout: ${r.ociLayout}`,
          ` Read it with: ${r.skopeoExample}`,
          `Storage Driver: ${r.storageDriver}`,
          ` Backing Filesystem: ${r.backingFilesystem}`,
          `Images: ${r.images}`,
          ` Tags: ${r.tags}`,
          `Layers: ${r.layers}`,
          `Blobs: ${r.blobs}`,
          `Total Size: ${humanSize(r.totalSize)}`,
          'Overlay Mounts: ' + yes(r.overlay),
          'Namespaces:',
          ` mount: ${yes(r.namespaces.mount)}`,
          ` pid: ${yes(r.namespaces.pid)}`,
          ` user: ${yes(r.namespaces.user)}`,
          `RUN Runtime: ${r.runRuntime.available ? `${r.runRuntime.version} (pivot_root, dropped capabilities, no_new_privs, seccomp)` : `none (${r.runRuntime.reason})`}`,
          `RUN Driver: ${r.runDriver.driver} (${r.runDriver.reason})`,
          ...rootlessLines(r.runDriver.rootless),
          '',
        ].join('\n'),
      );
    });
}

/** The ` Rootless Mapping: …` line, when there is a rootless mapping. */
function rootlessLines(m: InfoReport['runDriver']['rootless']): string[] {
  return m ? [` Rootless Mapping: ${m.mapping} (uids ${ranges(m.uids)}; gids ${ranges(m.gids)})`] : [];
}

/** `0→1001 (1), 1→100000 (65535)`: inside → host (count) per range. */
function ranges(rs: readonly IdRange[]): string {
  return rs.map((r) => `${r.inside}→${r.outside} (${r.count})`).join(', ');
}

/** Gathers the report, probing overlay and namespaces for real. */
export async function collectInfo(store: Store): Promise<InfoReport> {
  const entries = await store.entries();
  const ids = new Set<string>();
  for (const e of entries) {
    const img = await loadImage(store, e.descriptor).catch(() => undefined);
    ids.add(img?.id ?? e.descriptor.digest);
  }
  const blobs = await store.blobs.list();
  const overlay = await probeOverlay(store.tmpDir);
  const example = entries.find((e) => e.name)?.name ?? 'docker.io/library/busybox:latest';
  return {
    root: store.root,
    ociLayout: store.layoutDir,
    skopeoExample: `skopeo inspect oci:${store.layoutDir}:${example}`,
    storageDriver: overlay.available ? 'overlay' : `vfs (copy-based; overlay unavailable: ${overlay.reason})`,
    overlay,
    backingFilesystem: backingFilesystem(store.root),
    images: ids.size,
    tags: entries.filter((e) => e.name).length,
    layers: (await store.layers.all()).length,
    blobs: blobs.length,
    totalSize: blobs.reduce((n, b) => n + b.size, 0),
    namespaces: {
      mount: probe('unshare', ['--mount', 'true']),
      pid: probe('unshare', ['--mount', '--pid', '--fork', 'true']),
      user: probe('unshare', ['--user', 'true']),
    },
    runRuntime: probeRuntime(),
    runDriver: await runDriverInfo(store),
  };
}

/**
 * Mounts a tiny overlay in a temp dir on the store's own file system (overlay support depends on the
 * upper dir's file system) and checks a lower file shows through. Needs root.
 */
async function probeOverlay(tmpDir: string): Promise<{ available: boolean; reason?: string }> {
  if (process.getuid?.() !== 0) return { available: false, reason: 'not running as root' };
  const dir = await fs.mkdtemp(join(tmpDir, `probe-${process.pid}-`));
  const [lower, upper, work, merged] = ['lower', 'upper', 'work', 'merged'].map((n) => join(dir, n)) as [string, string, string, string];
  try {
    for (const d of [lower, upper, work, merged]) await fs.mkdir(d, { mode: 0o700 });
    await fs.writeFile(join(lower, 'probe'), 'ok');
    const m = spawnSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, merged], { encoding: 'utf8' });
    if (m.error) return { available: false, reason: `cannot run mount: ${m.error.message}` };
    if (m.status !== 0) return { available: false, reason: (m.stderr || `mount exited ${m.status}`).trim() };
    try {
      const seen = await fs.readFile(join(merged, 'probe'), 'utf8').catch(() => '');
      return seen === 'ok' ? { available: true } : { available: false, reason: 'the overlay mount did not show the lower layer' };
    } finally {
      spawnSync('umount', [merged]);
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** The file system type under `path`, from /proc/self/mountinfo (longest matching mount point). */
export function backingFilesystem(path: string): string {
  let real = path;
  try {
    real = realpathSync(path);
  } catch {
    /* keep the given path */
  }
  let best: { mount: string; type: string } | undefined;
  try {
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const [pre, post] = line.split(' - ');
      if (!pre || !post) continue;
      const mount = unescapeMount(pre.split(' ')[4] ?? '');
      const type = post.split(' ')[0] ?? '';
      const inside = real === mount || real.startsWith(mount.endsWith('/') ? mount : `${mount}/`);
      if (inside && (!best || mount.length >= best.mount.length)) best = { mount, type };
    }
  } catch {
    const r = spawnSync('stat', ['-f', '-c', '%T', real], { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : 'unknown';
  }
  if (!best) return 'unknown';
  // Docker calls the ext family "extfs".
  return /^ext[234]$/.test(best.type) ? `extfs (${best.type})` : best.type;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The RUN driver the builder would pick for `store`, with the rootless mapping when not root. */
async function runDriverInfo(store: Store): Promise<InfoReport['runDriver']> {
  const d = await detectRunDriver(store);
  const m = d.mapping;
  if (!m) return { driver: d.driver, reason: d.reason };
  return { driver: d.driver, reason: d.reason, rootless: { mapping: m.mode, uids: [...m.uids], gids: [...m.gids] } };
}

/** crun's first version line, or the install hint when it is missing. */
function probeRuntime(): { available: boolean; version?: string; reason?: string } {
  const crun = hostTool('crun');
  if (!crun) return { available: false, reason: 'crun is not installed: apt-get install crun; RUN steps need it' };
  const r = spawnSync(crun, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) return { available: false, reason: `${crun} --version failed: ${(r.stderr || r.error?.message || '').trim()}` };
  return { available: true, version: r.stdout.split('\n')[0]!.trim() };
}

function probe(cmd: string, args: string[]): { available: boolean; reason?: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  if (r.error) return { available: false, reason: `cannot run ${cmd}: ${r.error.message}` };
  if (r.status !== 0) return { available: false, reason: (r.stderr || `${cmd} exited ${r.status}`).trim().split('\n')[0]! };
  return { available: true };
}
