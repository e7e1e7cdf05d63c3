/**
 * Workload 9: peak resident memory of `dimg image push` of an image with one 1 GiB layer (half random,
 * half compressible text, so both the stored-block and the deflate paths of the compressor run) to an
 * empty registry. The peak is read from /proc/PID/status (VmHWM, the kernel's high-water mark of VmRSS)
 * while the push runs; each run starts from a never-pushed copy of the store.
 */
import { spawn } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { stats } from '../build-workload.js';
import { copyStore, dimgArgv, isStore, scratchRegistry, workPath, type Bench } from '../context.js';
import { loadNow, sh } from '../env.js';
import type { CaseResult } from '../runner.js';

const BIG = 'dimgbench/big:1';

function writeBigFile(file: string, mib: number): void {
  const fd = openSync(file, 'w');
  const chunk = 4 << 20;
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, 1), Buffer.alloc(16));
  const zeros = Buffer.alloc(chunk);
  const text = Buffer.alloc(chunk);
  for (let written = 0, n = 0; written < mib << 20; written += chunk, n++) {
    if (written < (mib << 20) / 2) writeSync(fd, cipher.update(zeros));
    else {
      text.fill(`${n} a line of compressible text in the big layer of the rss bench\n`);
      writeSync(fd, text);
    }
  }
  closeSync(fd);
}

/** Reads VmHWM and VmRSS (KiB) of `pid`, or null when it is gone. */
function memOf(pid: number): { hwm: number; rss: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? 0);
    return { hwm: kib('VmHWM'), rss: kib('VmRSS') };
  } catch {
    return null;
  }
}

/** Runs argv, sampling its memory every 20 ms; returns wall seconds and peak RSS in MiB. */
async function runSampled(argv: string[]): Promise<{ seconds: number; peakMiB: number; output: string }> {
  const t0 = process.hrtime.bigint();
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  let peak = 0;
  const timer = setInterval(() => {
    const m = memOf(child.pid!);
    if (m) peak = Math.max(peak, m.hwm, m.rss);
  }, 20);
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  clearInterval(timer);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (code !== 0) throw new Error(`${argv.join(' ')} failed (exit ${code}):\n${output.slice(-2000)}`);
  return { seconds, peakMiB: peak / 1024, output };
}

/** Runs the 1 GiB push, `min(runs, 3)` times, and reports peak RSS (MiB) with the push time as extra. */
export async function rssCases(b: Bench): Promise<CaseResult[]> {
  const mib = b.opts.rssMiB;
  const template = workPath(b, `store-big-${mib}`);
  if (!isStore(template) || !sh(`${dimgArgv(b, template, 'image', 'inspect', BIG).join(' ')} >/dev/null 2>&1`).ok) {
    process.stderr.write(`== rss setup: a ${mib} MiB layer imported into ${template} (once)\n`);
    const dir = workPath(b, 'big-rootfs');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, 'data'), { recursive: true });
    writeBigFile(join(dir, 'data', 'big.bin'), mib);
    rmSync(template, { recursive: true, force: true });
    const r = sh(`${dimgArgv(b, template, 'image', 'import', dir, BIG).join(' ')}`);
    rmSync(dir, { recursive: true, force: true });
    if (!r.ok) throw new Error(`import of the big layer failed: ${r.out.slice(-1000)}`);
  }
  const reg = await scratchRegistry(b);
  const store = workPath(b, 'stores', 'big');
  const runs = Math.min(b.opts.runs, 3);
  const peaks: number[] = [];
  const times: number[] = [];
  const before = loadNow();
  process.stderr.write(`== rss: push of a ${mib} MiB layer to an empty registry (load ${before})\n`);
  for (let i = 0; i < runs; i++) {
    await reg.restartEmpty();
    copyStore(b, template, store);
    const r = await runSampled(dimgArgv(b, store, 'image', 'push', '-q', BIG, `${reg.host}/bench/big:1`));
    peaks.push(r.peakMiB);
    times.push(r.seconds);
    process.stderr.write(`  dimg run ${i + 1}/${runs}: peak RSS ${r.peakMiB.toFixed(0)} MiB, ${r.seconds.toFixed(2)} s (load ${loadNow()})\n`);
  }
  rmSync(store, { recursive: true, force: true });
  const t = stats(times);
  return [
    {
      id: 'rss-push',
      title: `peak RSS pushing a ${mib} MiB layer`,
      unit: 'MiB',
      tools: [{ tool: 'dimg', stats: stats(peaks), extra: { pushSecondsMedian: t.median, pushSecondsMin: t.min, pushSecondsMax: t.max } }],
      load: { before, after: loadNow() },
      notes: [`VmHWM/VmRSS of the dimg process sampled every 20 ms; push took ${t.median.toFixed(2)} s (median)`],
    },
  ];
}
