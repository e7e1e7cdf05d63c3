/** Runs the real `bin/dimg` as a child process, as a user would. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join, dirname } from 'node:path';

/** Repository root (the test files run from dist/test/…). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** Path of the dimg launcher. */
export const DIMG_BIN = join(REPO_ROOT, 'bin', 'dimg');

/** The result of one CLI run. */
export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

/** Options for a CLI run: its store root, extra env, stdin, working dir. */
export interface CliOptions {
  root?: string;
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
  cwd?: string;
  timeoutMs?: number;
  /** Run dimg under this umask (e.g. 0 to check that nothing it creates depends on the umask). */
  umask?: number;
}

/** Runs `dimg ARGS` and collects its output; never throws on a non-zero exit. */
export function dimg(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
    if (opts.root) env.DIMG_ROOT = opts.root;
    // Node cannot set another process's umask, so a shell sets it and execs node in its place.
    const [cmd, argv] =
      opts.umask === undefined
        ? [process.execPath, [DIMG_BIN, ...args]]
        : ['/bin/sh', ['-c', `umask ${opts.umask.toString(8)} && exec "$@"`, 'sh', process.execPath, DIMG_BIN, ...args]];
    const child = spawn(cmd, argv, { env, cwd: opts.cwd ?? REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      resolve({ code, signal, stdout: stdoutBytes.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), stdoutBytes });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/**
 * Runs `dimg ARGS` and fails the test unless it exits 0, with the command, exit code, stderr and
 * (the start of) stdout in the message.
 */
export async function dimgOk(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  const r = await dimg(args, opts);
  assert.equal(r.code, 0, `dimg ${args.join(' ')} exited ${r.code ?? r.signal}:\n${r.stderr}\n${r.stdout.slice(0, 2000)}`);
  return r;
}
