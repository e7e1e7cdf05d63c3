/**
 * Leases protect content a running dimg process has written but not yet named (a blob pulled before
 * its manifest is tagged, a layer built before its cache entry is recorded) from another process's
 * garbage collection. Each process that opens a store for writing holds `leases/<pid>` with its start
 * time; GC never removes content newer than the oldest live lease.
 */
import { promises as fs, rmSync } from 'node:fs';
import { join } from 'node:path';
import { processAlive } from './lock.js';

/** Manages the `leases/` dir. */
export class Leases {
  private mine: string | undefined;

  constructor(readonly dir: string) {}

  /** Takes this process's lease (idempotent) and removes it when the process exits. */
  async take(): Promise<void> {
    if (this.mine) return;
    const path = join(this.dir, String(process.pid));
    await fs.writeFile(path, String(Date.now()));
    this.mine = path;
    process.once('exit', () => rmSync(path, { force: true }));
  }

  /**
   * The start time (ms) of the oldest live lease other than this process's, or undefined when no
   * other dimg process is working on the store. Leases of dead processes are removed.
   */
  async oldestOther(): Promise<number | undefined> {
    let oldest: number | undefined;
    for (const name of await fs.readdir(this.dir).catch(() => [] as string[])) {
      const pid = Number(name);
      if (!Number.isInteger(pid) || pid === process.pid) continue;
      if (!processAlive(pid)) {
        await fs.rm(join(this.dir, name), { force: true });
        continue;
      }
      const since = Number(await fs.readFile(join(this.dir, name), 'utf8').catch(() => '0')) || 0;
      oldest = oldest === undefined ? since : Math.min(oldest, since);
    }
    return oldest;
  }
}
