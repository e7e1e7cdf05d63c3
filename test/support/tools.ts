/**
 * Test helpers that find external tools, and fail (never skip) with the package to install.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Returns the path of `tool`, or throws naming the Debian package that provides it. */
export function requireTool(tool: string, debianPackage: string): string {
  if (tool.startsWith('/')) {
    if (existsSync(tool)) return tool;
  } else {
    const r = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
    if (r.status === 0) return r.stdout.trim();
  }
  throw new Error(`${tool} is required by this test: apt-get install -y ${debianPackage}`);
}

/** Throws unless the tests run as root (overlay mounts and namespaces need it; CI runs as root). */
export function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) {
    throw new Error(`${what} needs root (overlay mounts, namespaces); run the suite as root as CI does`);
  }
}

/** Runs a command synchronously and returns stdout, throwing with stderr on a non-zero exit. */
export function run(cmd: string, args: string[], opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: opts.input, env: opts.env ?? process.env, cwd: opts.cwd, maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}${r.signal ? ` (${r.signal})` : ''}:\n${r.stderr}${r.stdout}`);
  }
  return r.stdout;
}
