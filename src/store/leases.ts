/**
 * Leases protect what a running dimg process is working with from another process's garbage
 * collection, from the moment a blob, overlay layer dir or build-cache entry is written or chosen
 * until the process's operation ends (by then what it made is named in index.json, or abandoned).
 *
 * Each process that opens a store holds `leases/<pid>`: a header line naming the process (pid, its
 * start time in clock ticks since boot, the boot ID), then one line per protected item (`blob D`,
 * `chain D`, `cache K`). Lines are appended under the store lock, and GC reads every lease under the
 * same lock before it sweeps, so a claim either lands before GC looks (and GC keeps the item) or
 * after GC is done (and the claimer, which checks for the item only after claiming, sees it gone and
 * makes or fetches it again). Nothing claimed can vanish between the claim and its use.
 *
 * A lease whose process is gone, or whose pid now belongs to another process (the start time
 * differs) or to another boot, is dead: GC removes it, so a crashed dimg never blocks GC for long.
 * A lease file holding only a start time in ms was written by an older dimg that claims nothing;
 * while its process lives GC falls back to the old rule for it (keep every blob newer than its start
 * and every layer dir). An older dimg reading a new lease finds no number in it and keeps everything.
 */
import { promises as fs, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Digest } from '../oci/digest.js';
import { processAlive } from './lock.js';

/** What a claim protects: blobs, overlay layer dirs (by chain ID) and build-cache entries (by key). */
export interface LeaseItems {
  blobs?: Iterable<Digest>;
  chains?: Iterable<Digest>;
  cacheKeys?: Iterable<Digest>;
}

/** Everything the live leases protect, as GC sees it under the store lock. */
export interface LeasedContent {
  blobs: Set<Digest>;
  chains: Set<Digest>;
  cacheKeys: Set<Digest>;
  /**
   * Set while a process of an older dimg (a lease without claims) lives: its start time in ms. GC
   * then keeps every blob newer than that and every overlay layer dir, as that dimg expects.
   */
  legacySince?: number;
}

/** The header of a lease file: which process holds it. */
interface LeaseHeader {
  pid: number;
  /** Start time of the process in clock ticks since boot (/proc/PID/stat field 22), when known. */
  start?: string;
  /** /proc/sys/kernel/random/boot_id, when known. */
  boot?: string;
}

const KIND = { blobs: 'blob', chains: 'chain', cacheKeys: 'cache' } as const;

/** Per leases dir, this process's one lease (several Store objects on one store share it). */
const shared = new Map<string, Leases>();

/** This process's lease on one store, and the reader of all leases for GC. */
export class Leases {
  /** The lease of this process for the store whose leases live in `dir`. */
  static of(dir: string, locked: <T>(fn: () => Promise<T>) => Promise<T>, holdsLock: () => boolean): Leases {
    let l = shared.get(dir);
    if (!l) {
      l = new Leases(dir, locked, holdsLock);
      shared.set(dir, l);
    }
    return l;
  }

  private path: string | undefined;
  private header: string | undefined;
  /** Per claimed line, a promise settled once the line is in the lease file. */
  private readonly written = new Map<string, Promise<void>>();
  /** Lines waiting for the next write. */
  private queue: string[] = [];
  /** The write that will take `queue`, if one is scheduled. */
  private next: Promise<void> | undefined;
  /** Writes and resets of the lease file run one after another. */
  private chain: Promise<void> = Promise.resolve();
  private operations = 0;

  private constructor(
    readonly dir: string,
    /** Runs a function under the store lock (re-entrant). */
    private readonly locked: <T>(fn: () => Promise<T>) => Promise<T>,
    /** True when the caller already holds the store lock. */
    private readonly holdsLock: () => boolean,
  ) {}

  /** Takes this process's lease (idempotent); the file is removed when the process exits. */
  async take(): Promise<void> {
    if (this.path) return;
    const path = join(this.dir, String(process.pid));
    const header: LeaseHeader = { pid: process.pid, start: processStart(process.pid), boot: bootId() };
    this.header = `${JSON.stringify(header)}\n`;
    // Written aside and renamed: a GC must never read a half-written header (it would take the
    // lease for an older dimg's and keep everything).
    const tmp = join(this.dir, `.${process.pid}.tmp`);
    await fs.writeFile(tmp, this.header, { mode: 0o600 });
    await fs.rename(tmp, path);
    this.path = path;
    process.once('exit', () => rmSync(path, { force: true }));
  }

  /**
   * Protects `items` from GC until this process's operations end (see `operation`) or it exits.
   * Resolves once the claim is recorded; only then may the caller check that an item exists and use
   * it. Concurrent claims are written together, under one turn of the store lock.
   */
  async protect(items: LeaseItems): Promise<void> {
    if (!this.path) return; // a store opened without a lease (never the case through Store.open)
    const waits: Promise<void>[] = [];
    for (const line of linesOf(items)) {
      let w = this.written.get(line);
      if (!w) {
        w = this.enqueue(line);
        this.written.set(line, w);
      }
      waits.push(w);
    }
    if (waits.length > 0) await Promise.all(waits);
  }

  /**
   * Runs `fn` as one operation of this process (an apply, a watch round). When the last running
   * operation ends, every claim is released: what the operation made is named by then (or was
   * abandoned), and a long-lived process must not keep old content from GC forever.
   */
  async operation<T>(fn: () => Promise<T>): Promise<T> {
    this.operations++;
    try {
      return await fn();
    } finally {
      if (--this.operations === 0) await this.release().catch(() => undefined);
    }
  }

  /**
   * Everything the live leases of other processes protect. Call under the store lock. Leases of
   * dead processes are removed. This process's own claims do not count: a dimg command either
   * builds or collects garbage, and one that collects after building (a library user, a test) means
   * to collect what it left unnamed.
   */
  async live(): Promise<LeasedContent> {
    const out: LeasedContent = { blobs: new Set(), chains: new Set(), cacheKeys: new Set() };
    for (const name of await fs.readdir(this.dir).catch(() => [] as string[])) {
      const half = /^\.(\d+)\.tmp$/.exec(name);
      if (half && !processAlive(Number(half[1]))) await fs.rm(join(this.dir, name), { force: true });
      if (!/^\d+$/.test(name)) continue;
      const path = join(this.dir, name);
      const text = await fs.readFile(path, 'utf8').catch(() => undefined);
      if (text === undefined) continue;
      const lines = text.split('\n');
      const header = parseHeader(lines[0]!);
      if (!header) {
        // An older dimg's lease: just its start time in ms.
        const since = Number(text.trim());
        if (Number(name) === process.pid) continue;
        if (!processAlive(Number(name)) || !Number.isFinite(since)) {
          await fs.rm(path, { force: true });
          continue;
        }
        out.legacySince = out.legacySince === undefined ? since : Math.min(out.legacySince, since);
        continue;
      }
      if (header.pid === process.pid) continue;
      if (!leaseHolderAlive(header)) {
        await fs.rm(path, { force: true });
        continue;
      }
      for (const line of lines.slice(1)) {
        const sp = line.indexOf(' ');
        const kind = line.slice(0, sp);
        const digest = line.slice(sp + 1) as Digest;
        if (kind === KIND.blobs) out.blobs.add(digest);
        else if (kind === KIND.chains) out.chains.add(digest);
        else if (kind === KIND.cacheKeys) out.cacheKeys.add(digest);
      }
    }
    return out;
  }

  private enqueue(line: string): Promise<void> {
    if (this.holdsLock()) {
      // Under the store lock already (a GC or an index update claiming): waiting for a turn of the
      // lock would wait for ourselves, so write this line now. Lines other tasks queued stay in the
      // queue for their own flush: a failure here must not drop claims that are not ours.
      return this.append([line]);
    }
    this.queue.push(line);
    if (!this.next) {
      const write = this.chain.then(() => this.flush());
      this.next = write;
      this.chain = write.catch(() => undefined);
    }
    return this.next;
  }

  /** Appends the queued lines to the lease file under the store lock. */
  private async flush(): Promise<void> {
    this.next = undefined;
    const lines = this.queue;
    this.queue = [];
    if (lines.length === 0) return;
    await this.locked(() => this.append(lines));
  }

  /** Appends `lines` to the lease file; on failure they count as not written, so a later claim retries. */
  private async append(lines: string[]): Promise<void> {
    try {
      await fs.appendFile(this.path!, `${lines.join('\n')}\n`);
    } catch (e) {
      // Not recorded: a later claim of the same items must try again.
      for (const l of lines) this.written.delete(l);
      throw e;
    }
  }

  /** Drops every claim: the lease file goes back to its header. */
  private release(): Promise<void> {
    const reset = this.chain.then(() =>
      this.locked(async () => {
        if (this.operations > 0 || !this.path) return; // a new operation started meanwhile
        this.written.clear();
        await fs.writeFile(this.path, this.header!, { mode: 0o600 });
      }),
    );
    this.chain = reset.catch(() => undefined);
    return reset;
  }
}

function linesOf(items: LeaseItems): string[] {
  const out: string[] = [];
  for (const key of Object.keys(KIND) as Array<keyof typeof KIND>) {
    for (const d of items[key] ?? []) out.push(`${KIND[key]} ${d}`);
  }
  return out;
}

function parseHeader(line: string): LeaseHeader | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const h = JSON.parse(line) as LeaseHeader;
    return typeof h.pid === 'number' ? h : undefined;
  } catch {
    return undefined;
  }
}

/** True when the lease's process still runs: same pid, same start time, same boot. */
function leaseHolderAlive(h: LeaseHeader): boolean {
  if (!processAlive(h.pid)) return false;
  const boot = bootId();
  if (h.boot && boot && h.boot !== boot) return false;
  const start = processStart(h.pid);
  // Unknown on either side (no /proc): the pid is all there is to go by.
  return !h.start || !start || h.start === start;
}

/** The start time of process `pid` in clock ticks since boot, or undefined without /proc. */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (the command name) may hold spaces and parentheses: count fields after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}

let boot: string | undefined | null = null;

function bootId(): string | undefined {
  if (boot === null) {
    try {
      boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      boot = undefined;
    }
  }
  return boot;
}
