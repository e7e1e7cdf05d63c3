/**
 * The store's exclusive lock: a lock file created with O_EXCL that names its holder (pid, host,
 * command, time). A lock whose holder process is gone (same host) is stale and is taken over.
 * Held only around short metadata updates (index.json, leases, GC), never across a whole build, so
 * two dimg processes on one store interleave safely.
 *
 * Inside one process the lock is a queue too: concurrent tasks (parallel builds tagging their images)
 * take turns, or one task's read-modify-write of index.json would overwrite the other's. Only code
 * running inside the holder's own call (its async context) re-enters without waiting.
 */
import { promises as fs } from 'node:fs';
import { AsyncLocalStorage } from 'node:async_hooks';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { DimgError } from '../errors.js';

interface LockOwner {
  pid: number;
  host: string;
  command: string;
  since: string;
}

/** Options for acquiring: how long to wait for another holder before failing. */
export interface LockOptions {
  timeoutMs?: number;
}

/** True when a process with `pid` exists on this host. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Runs `fn` while holding the lock at `path`: exclusive between processes (the lock file) and
 * between async tasks of this process (a queue per path, so tasks take turns in arrival order and
 * only one of them at a time polls the file). Waits up to `timeoutMs` (default 60 s) for a live
 * holder in another process, then fails with STORE_LOCKED naming it.
 *
 * Re-entrant only within one async task: a call made (directly or through awaited calls) from
 * inside `fn` runs at once, since it would otherwise wait for itself. Another task never gets in,
 * however the two interleave; that is what re-entrancy "by path" got wrong.
 */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const key = resolve(path);
  const holding = heldByTask.getStore();
  if (holding?.has(key)) return fn();
  const previous = queues.get(key) ?? Promise.resolve();
  let done!: () => void;
  const mine = new Promise<void>((r) => (done = r));
  const tail = previous.then(() => mine);
  queues.set(key, tail);
  try {
    await previous;
    await acquire(key, opts.timeoutMs ?? 60_000);
    try {
      return await heldByTask.run(new Set([...(holding ?? []), key]), fn);
    } finally {
      await fs.rm(key, { force: true });
    }
  } finally {
    done();
    if (queues.get(key) === tail) queues.delete(key);
  }
}

/** The lock paths the current async task holds. */
const heldByTask = new AsyncLocalStorage<ReadonlySet<string>>();

/** Per lock path, the promise that settles when the last task queued for it is done. */
const queues = new Map<string, Promise<void>>();

/** True when the calling code runs inside `withFileLock(path, …)` (so it may write what the lock guards). */
export function holdsFileLock(path: string): boolean {
  return heldByTask.getStore()?.has(resolve(path)) ?? false;
}

async function acquire(path: string, timeoutMs: number): Promise<void> {
  const me: LockOwner = { pid: process.pid, host: hostname(), command: process.argv.slice(2, 4).join(' '), since: new Date().toISOString() };
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  for (;;) {
    try {
      await fs.writeFile(path, JSON.stringify(me), { flag: 'wx', mode: 0o644 });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const owner = await readOwner(path);
    if (owner === 'unreadable' || (owner && owner.host === me.host && !processAlive(owner.pid))) {
      // Stale: the holder died without cleaning up (or was killed mid-write). Remove it only if it is
      // still the same file we judged, so two recovering processes do not remove each other's lock.
      await removeIfUnchanged(path, owner);
      continue;
    }
    if (Date.now() >= deadline) {
      const who = owner ? `process ${owner.pid} (${owner.command || 'dimg'}) since ${owner.since}` : 'another process';
      throw new DimgError(
        'STORE_LOCKED',
        `the dimg store is locked by ${who}: ${path}`,
        `wait for that command to finish; if no dimg process is running, remove ${path}`,
      );
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 100);
  }
}

async function readOwner(path: string): Promise<LockOwner | undefined | 'unreadable'> {
  let text: string;
  try {
    text = await fs.readFile(path, 'utf8');
  } catch {
    return undefined; // vanished: the holder just released it
  }
  try {
    const o = JSON.parse(text) as LockOwner;
    if (typeof o.pid === 'number') return o;
  } catch {
    /* fall through */
  }
  // A lock file that is empty or half-written for more than a moment belongs to a crashed writer.
  const st = await fs.stat(path).catch(() => undefined);
  return st && Date.now() - st.mtimeMs > 2000 ? 'unreadable' : undefined;
}

async function removeIfUnchanged(path: string, judged: LockOwner | 'unreadable'): Promise<void> {
  const now = await readOwner(path);
  const same = judged === 'unreadable' ? now === 'unreadable' : now !== 'unreadable' && now?.pid === judged.pid && now.since === judged.since;
  if (same) await fs.rm(path, { force: true });
}
