/**
 * Crash injection for the reliability suite: run the real `bin/dimg` and SIGKILL it after a chosen
 * delay (no chance to clean up, as with a power cut of the process), with the output it produced so
 * far kept for the secret scan. Also a tally of kill campaigns for the report.
 */
import { spawn } from 'node:child_process';
import { DIMG_BIN, REPO_ROOT, type CliOptions } from './cli.js';

/** One run that was (maybe) killed. */
export interface KillRun {
  /** True when the SIGKILL landed before the process exited on its own. */
  killed: boolean;
  code: number | null;
  delayMs: number;
  /** How long the process actually ran. */
  ranMs: number;
  stdout: string;
  stderr: string;
}

/** Runs `dimg ARGS` and sends SIGKILL after `delayMs` unless it has exited by then. */
export function runAndKill(args: string[], opts: CliOptions, delayMs: number): Promise<KillRun> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
    if (opts.root) env.DIMG_ROOT = opts.root;
    const started = Date.now();
    const child = spawn(process.execPath, [DIMG_BIN, ...args], { env, cwd: opts.cwd ?? REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    let killed = false;
    const timer = setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) {
        killed = child.kill('SIGKILL');
      }
    }, delayMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ killed: killed && signal === 'SIGKILL', code, delayMs, ranMs: Date.now() - started, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

/** Counts for one command's kill campaign. */
export interface CrashTally {
  command: string;
  runs: number;
  kills: number;
  /** `dimg store verify` runs after a kill that reported corruption (must be 0). */
  verifyFailures: number;
  /** Re-runs after a kill that finished with exit 0 and the expected result. */
  converged: number;
  /** Longest re-run after a kill, in ms. */
  maxRecoveryMs: number;
}

/** A fresh tally. */
export function tally(command: string): CrashTally {
  return { command, runs: 0, kills: 0, verifyFailures: 0, converged: 0, maxRecoveryMs: 0 };
}

/** Uniform random integer in [lo, hi]. */
export function between(lo: number, hi: number): number {
  return Math.floor(lo + Math.random() * (hi - lo + 1));
}
