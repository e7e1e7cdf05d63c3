/**
 * Starts the real CNCF distribution registry (`/usr/bin/docker-registry`, Debian package
 * `docker-registry`) on a free loopback port with its own config and temp storage.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { requireTool, run } from './tools.js';
import { tempDir } from './tmp.js';

/** A running registry. `host` is `127.0.0.1:PORT`, usable as a reference domain. */
export interface TestRegistry {
  host: string;
  url: string;
  dir: string;
  /** Lines the registry logged (its access log included), for counting requests. */
  log: string[];
  stop(): Promise<void>;
}

/** Options: Basic auth through htpasswd with one user. */
export interface RegistryOptions {
  auth?: { username: string; password: string };
}

/** Returns a free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** Starts a registry and waits until `/v2/` answers. Stop it with `stop()` (or via `t.after`). */
export async function startRegistry(opts: RegistryOptions = {}): Promise<TestRegistry> {
  const dir = tempDir(undefined, 'dimg-registry-');
  const storage = join(dir, 'storage');
  mkdirSync(storage);
  const port = await freePort();
  let authBlock = '';
  if (opts.auth) {
    requireTool('htpasswd', 'apache2-utils');
    const line = run('htpasswd', ['-Bbn', opts.auth.username, opts.auth.password]);
    writeFileSync(join(dir, 'htpasswd'), line);
    authBlock = `auth:\n  htpasswd:\n    realm: dimg-test\n    path: ${join(dir, 'htpasswd')}\n`;
  }
  const config = `version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: ${storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:${port}
  secret: dimg-test-secret
${authBlock}`;
  const host = `127.0.0.1:${port}`;
  const url = `http://${host}`;
  const running = await launchRegistry(dir, config, `docker-registry on ${url}`, async () => {
    const r = await fetch(`${url}/v2/`);
    return r.status === 200 || r.status === 401;
  });
  return { host, url, dir, log: running.log, stop: running.stop };
}

/** A registry process started by launchRegistry. */
export interface LaunchedRegistry {
  /** Its stdout/stderr lines so far. */
  log: string[];
  /** Stops it (SIGTERM, then SIGKILL after 3 s) and removes `dir`. */
  stop(): Promise<void>;
}

/**
 * Writes `config` to `dir/config.yml`, starts docker-registry on it and waits (15 s at most) until
 * `ready()` resolves true; `ready` may throw while the port is not open yet. `what` names the
 * registry in errors, which carry its log.
 */
export async function launchRegistry(dir: string, config: string, what: string, ready: () => Promise<boolean>): Promise<LaunchedRegistry> {
  const bin = requireTool('/usr/bin/docker-registry', 'docker-registry');
  writeFileSync(join(dir, 'config.yml'), config);
  const child: ChildProcess = spawn(bin, ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } });
  const log: string[] = [];
  const onData = (b: Buffer) => log.push(...b.toString('utf8').split('\n').filter(Boolean));
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const stop = async (): Promise<void> => {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${what} exited at start:\n${log.join('\n')}`);
    if (await ready().catch(() => false)) return { log, stop };
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${what} did not answer within 15 s:\n${log.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
