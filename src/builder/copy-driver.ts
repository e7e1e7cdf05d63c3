/**
 * The copy-based RUN driver, for hosts where overlay mounts are impossible (not root, no kernel
 * support): the parent layers are flattened into a temp root, the root is snapshotted (lstat of every
 * path), the step runs, and the difference is written as an overlay-style upper dir (changed entries
 * hard-linked or recreated, deleted paths as 0/0 character-device whiteouts), so the same overlay-mode
 * packer turns it into the layer. Contents are never compared: inode, ctime, mtime, size, mode and
 * owner tell what the step touched, which is what an upperdir records too.
 */
import { promises as fs, type Stats } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { compareBytes } from '../layer/paths.js';
import { hostTool } from './tools.js';

/** The lstat facts kept per path. */
interface Fact {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
}

/** Path (root-relative, '/'-separated) → facts. */
export type Snapshot = Map<string, Fact>;

function factOf(st: Stats): Fact {
  return { ino: st.ino, mode: st.mode, uid: st.uid, gid: st.gid, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs };
}

/** Walks `root` (not following symlinks) and records every path's facts. */
export async function snapshot(root: string): Promise<Snapshot> {
  const out: Snapshot = new Map();
  const walk = async (rel: string): Promise<void> => {
    const names = await fs.readdir(rel ? join(root, rel) : root);
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const st = await fs.lstat(join(root, r));
      out.set(r, factOf(st));
      if (st.isDirectory()) await walk(r);
    }
  };
  await walk('');
  return out;
}

function same(a: Fact, b: Fact): boolean {
  return a.ino === b.ino && a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;

/**
 * What a rootless caller does instead of writeDiff's own chown and link calls, which the host user
 * may not make for files of subordinate ids (fs.protected_hardlinks refuses links to others' files).
 */
export interface DiffDeferral {
  /** Set later: [path in the diff dir, uid, gid] (host ids); called instead of lchown. */
  own(dest: string, st: Stats): Promise<void>;
  /** Hard-links `src` at `dest`, now or in `beforeTimes`. */
  link(src: string, dest: string, st: Stats): Promise<void>;
  /** Called once every entry exists and before directory times are restored. */
  beforeTimes(): Promise<void>;
}

/**
 * Writes into `diffDir` (empty, same file system as `root`) what changed in `root` since `before`,
 * in overlay upperdir form. Returns the number of entries written. With `deferred`, owners and hard
 * links go through it (a rootless caller makes them inside its user namespace).
 */
export async function writeDiff(
  root: string,
  before: Snapshot,
  diffDir: string,
  deferred?: DiffDeferral,
): Promise<number> {
  const own = async (dest: string, st: Stats) => {
    if (deferred) await deferred.own(dest, st);
    else await fs.lchown(dest, st.uid, st.gid).catch(() => undefined);
  };
  const after = await snapshot(root);
  const made = new Set<string>();
  const dirTimes: [string, Date, Date][] = [];
  let count = 0;
  const ensureParents = async (rel: string): Promise<void> => {
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) {
      const p = parts.slice(0, i).join('/');
      if (made.has(p)) continue;
      await copyDir(root, diffDir, p, dirTimes, own);
      made.add(p);
    }
  };
  for (const rel of [...after.keys()].sort(compareBytes)) {
    const now = after.get(rel)!;
    const old = before.get(rel);
    if (old && same(old, now)) continue;
    await ensureParents(rel);
    const src = join(root, rel);
    const dest = join(diffDir, rel);
    const st = await fs.lstat(src);
    if (st.isDirectory()) {
      if (!made.has(rel)) {
        await copyDir(root, diffDir, rel, dirTimes, own);
        made.add(rel);
      }
    } else if (st.isSymbolicLink()) {
      await fs.symlink(await fs.readlink(src), dest);
      await own(dest, st);
      await fs.lutimes(dest, st.atime, st.mtime);
    } else if (st.isFile()) {
      if (deferred) await deferred.link(src, dest, st);
      else await fs.link(src, dest);
    } else {
      if (await mknod([[dest, st]])) await own(dest, st);
    }
    count++;
  }
  const whiteouts: string[] = [];
  for (const rel of before.keys()) {
    if (after.has(rel)) continue;
    const slash = rel.lastIndexOf('/');
    const parent = slash < 0 ? '' : rel.slice(0, slash);
    // Only the topmost deleted path needs a whiteout, and only under a directory that still exists.
    if (parent !== '') {
      const p = after.get(parent);
      if (!p || (p.mode & S_IFMT) !== S_IFDIR) continue;
    }
    await ensureParents(rel);
    whiteouts.push(join(diffDir, rel));
  }
  await whiteoutDevices(whiteouts);
  count += whiteouts.length;
  await deferred?.beforeTimes();
  for (const [dest, atime, mtime] of dirTimes.reverse()) await fs.utimes(dest, atime, mtime);
  return count;
}

async function copyDir(
  root: string,
  diffDir: string,
  rel: string,
  times: [string, Date, Date][],
  own: (dest: string, st: Stats) => Promise<void>,
): Promise<void> {
  const st = await fs.lstat(join(root, rel));
  const dest = join(diffDir, rel);
  await fs.mkdir(dest);
  await fs.chmod(dest, st.mode & 0o7777);
  await own(dest, st);
  times.push([dest, st.atime, st.mtime]);
}

/** Creates 0/0 character devices (overlay whiteouts); unprivileged users may create exactly these. */
async function whiteoutDevices(paths: string[]): Promise<void> {
  for (let i = 0; i < paths.length; i += 500) {
    await runSh('for p; do mknod "$p" c 0 0 || exit 1; done', paths.slice(i, i + 500));
  }
}

/** Recreates device nodes and FIFOs a step made (root only for devices); false for a socket. */
async function mknod(items: [string, Stats][]): Promise<boolean> {
  let made = false;
  for (const [dest, st] of items) {
    const type = st.isFIFO() ? 'p' : st.isCharacterDevice() ? 'c' : st.isBlockDevice() ? 'b' : undefined;
    if (!type) continue; // sockets are not carried in layers
    made = true;
    const args = type === 'p' ? [dest, 'p'] : [dest, type, String(Math.floor(st.rdev / 256) & 0xfff), String((st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00))];
    await runSh('mknod -m "$MODE" "$@"', args, { MODE: (st.mode & 0o7777).toString(8) });
  }
  return made;
}

function runSh(script: string, args: string[], env: Record<string, string> = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const sh = hostTool('sh') ?? '/bin/sh';
    const child = spawn(sh, ['-c', script, 'sh', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`mknod failed: ${err.trim()}`))));
  });
}
