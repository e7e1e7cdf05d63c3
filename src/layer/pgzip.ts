/**
 * Parallel gzip for big layers: the input is cut into fixed-size blocks, each compressed as an
 * independent gzip member by a pool of worker threads, and the members are written in order.
 * Concatenated members are one valid gzip stream (RFC 1952 §2.2) that every OCI client reads.
 * Compression is what decides cold build and push times here (docs/benchmarks.md), and this uses
 * every core while the tar is still being produced.
 */
import { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { gzipSync } from 'node:zlib';

/** Options of gzipParallel. */
export interface ParallelGzipOptions {
  /** zlib level (default 6). */
  level?: number;
  /** Input bytes per gzip member (default 4 MiB). Part of the output's identity: keep it fixed. */
  blockSize?: number;
  /** Worker threads (default: available cores, at most 4). Does not change the output bytes. */
  workers?: number;
}

// Runs inside each worker (CommonJS, eval'd): compress one block per message.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { gzipSync } = require('node:zlib');
parentPort.on('message', (m) => {
  try {
    parentPort.postMessage({ id: m.id, out: gzipSync(m.block, { level: m.level }) });
  } catch (err) {
    parentPort.postMessage({ id: m.id, error: String(err && err.message || err) });
  }
});
`;

interface Job {
  resolve: (b: Buffer) => void;
  reject: (e: Error) => void;
}

class Pool {
  private readonly workers: Worker[] = [];
  private readonly jobs = new Map<number, Job>();
  private next = 0;
  private rr = 0;

  constructor(size: number) {
    for (let i = 0; i < size; i++) {
      const w = new Worker(WORKER_SOURCE, { eval: true });
      w.on('message', (m: { id: number; out?: Uint8Array; error?: string }) => {
        const job = this.jobs.get(m.id);
        if (!job) return;
        this.jobs.delete(m.id);
        if (m.error !== undefined || !m.out) job.reject(new Error(`gzip worker: ${m.error ?? 'no output'}`));
        else job.resolve(Buffer.from(m.out.buffer, m.out.byteOffset, m.out.byteLength));
      });
      w.on('error', (err) => this.failAll(err));
      this.workers.push(w);
    }
  }

  compress(block: Buffer, level: number): Promise<Buffer> {
    const id = this.next++;
    const w = this.workers[this.rr++ % this.workers.length]!;
    return new Promise((resolve, reject) => {
      this.jobs.set(id, { resolve, reject });
      w.postMessage({ id, block, level });
    });
  }

  private failAll(err: Error): void {
    for (const job of this.jobs.values()) job.reject(err);
    this.jobs.clear();
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/**
 * gzip-compresses `source` as a sequence of independent members, one per `blockSize` input bytes.
 * Guarantees: the output is a pure function of the input, `level` and `blockSize` (never of the worker
 * count or of how the input was chunked); input of at most one block gives exactly the bytes of
 * `gzip(source, level)`; memory stays bounded (about 2 × workers blocks in flight); errors of the
 * source or a worker fail the returned stream.
 */
export function gzipParallel(source: Readable, opts: ParallelGzipOptions = {}): Readable {
  const level = opts.level ?? 6;
  const blockSize = opts.blockSize ?? 4 << 20;
  const workers = Math.max(1, opts.workers ?? Math.min(4, availableParallelism()));
  return Readable.from(members(source, level, blockSize, workers), { objectMode: false });
}

async function* members(source: Readable, level: number, blockSize: number, workers: number): AsyncGenerator<Buffer> {
  let pool: Pool | undefined;
  const inFlight: Array<Promise<Buffer>> = [];
  let parts: Buffer[] = [];
  let have = 0;
  let first: Buffer | undefined; // held back: if it is the only block, compress it here without a pool
  const submit = (block: Buffer): void => {
    if (!pool) pool = new Pool(workers);
    const p = pool.compress(block, level);
    p.catch(() => {}); // observed in order below; avoid an unhandled rejection meanwhile
    inFlight.push(p);
  };
  try {
    for await (const chunk of source) {
      let buf = chunk as Buffer;
      while (buf.length > 0) {
        const take = Math.min(buf.length, blockSize - have);
        parts.push(buf.subarray(0, take));
        have += take;
        buf = buf.subarray(take);
        if (have === blockSize) {
          const block = Buffer.concat(parts);
          parts = [];
          have = 0;
          if (first === undefined && inFlight.length === 0 && !pool) {
            first = block;
            continue;
          }
          if (first) {
            submit(first);
            first = undefined;
          }
          submit(block);
          while (inFlight.length >= workers * 2) yield await inFlight.shift()!;
        }
      }
    }
    const tail = have > 0 ? Buffer.concat(parts) : undefined;
    if (!pool) {
      // Zero or one block (plus maybe a tail): no threads needed.
      if (first) yield gzipSync(first, { level });
      if (tail || !first) yield gzipSync(tail ?? Buffer.alloc(0), { level });
      return;
    }
    if (tail) submit(tail);
    while (inFlight.length > 0) yield await inFlight.shift()!;
  } finally {
    await pool?.close();
  }
}
