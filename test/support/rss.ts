/**
 * Runs the real CLI while sampling its resident memory (VmRSS from /proc/PID/status) and open file
 * descriptors (/proc/PID/fd) — the figures the reliability report gives for memory and fd bounds.
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { DIMG_BIN, REPO_ROOT, type CliOptions, type CliResult } from './cli.js';

/** VmRSS of `pid` in KiB, or undefined once it has exited. */
export function rssKiB(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Open file descriptors of `pid` (`self` for this process). */
export function fdCount(pid: number | 'self'): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** A sampled run: the CLI result, peak and final RSS in MiB, and how long it ran. */
export interface SampledRun extends CliResult {
  peakRssMiB: number;
  ms: number;
  samples: number;
}

/** Runs `dimg ARGS`, sampling VmRSS every `everyMs`. */
export function runSampled(args: string[], opts: CliOptions = {}, everyMs = 25): Promise<SampledRun> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
    if (opts.root) env.DIMG_ROOT = opts.root;
    const started = Date.now();
    const child = spawn(process.execPath, [DIMG_BIN, ...args], { env, cwd: opts.cwd ?? REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let peak = 0;
    let samples = 0;
    const timer = setInterval(() => {
      const r = child.pid ? rssKiB(child.pid) : undefined;
      if (r !== undefined) {
        peak = Math.max(peak, r);
        samples++;
      }
    }, everyMs);
    const kill = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 600_000);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearInterval(timer);
      clearTimeout(kill);
      const stdoutBytes = Buffer.concat(out);
      resolve({ code, signal, stdout: stdoutBytes.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), stdoutBytes, peakRssMiB: Math.round(peak / 102.4) / 10, ms: Date.now() - started, samples });
    });
  });
}
