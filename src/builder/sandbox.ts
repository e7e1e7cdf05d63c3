/**
 * Running one RUN step in a sandbox and handing its filesystem change to the caller.
 *
 * Overlay driver (root with overlayfs): every parent layer is unpacked once into the store's
 * overlay dirs; the step's mount namespace mounts lowerdir = init:newest:…:oldest (short `l/` links,
 * cwd = the store's overlay dir), upperdir = a fresh dir that becomes the layer. Copy driver (no
 * overlay): the parents are flattened into a temp root that is diffed after the run. Rootless driver
 * (not root, /etc/subuid ranges): the copy driver inside a user namespace with subordinate ids
 * (rootless-ids.ts); a non-root caller without them gets the copy driver in a single-ID namespace.
 *
 * Either way the command runs under crun, an OCI runtime, started inside util-linux `unshare`
 * namespaces that hold the overlay mount and the network: crun pivots into the root (the host's root
 * is detached, not merely hidden by a chroot), mounts /proc with the non-namespaced parts read-only
 * or masked and a /dev of its own, drops capabilities, sets no_new_privs and loads a seccomp filter
 * (src/builder/confinement.ts) before it executes the command with the image's env, user and working dir.
 *
 * Nothing outlives the step: mounts exist only inside the step's mount namespace (they vanish with
 * its last process), the PID namespace is killed when dimg dies (`setpriv --pdeathsig` +
 * `unshare --kill-child`) or the AbortSignal fires, and the workspace under the store's overlay dir is
 * removed in a finally block (the store also sweeps workspaces of dead processes on open).
 */
import { existsSync, promises as fs, constants as FS } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { basename, join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import { DimgError } from '../errors.js';
import type { Digest } from '../oci/digest.js';
import type { Store } from '../store/store.js';
import type { MountPoint } from './mount-points.js';
import { rootfsDriver } from './rootfs-driver.js';
import { resolveUser } from './users.js';
import { sandboxScript } from './sandbox-script.js';
import { runtimeConfig, type StepFileMount } from './runtime-config.js';
import { OutputTail } from './output-tail.js';
import { hostTool } from './tools.js';
import { probeIdMapping, userNamespaceFlags, type IdMapping } from './rootless-ids.js';

/** How RUN steps execute on this host (`rootless`: the copy driver in a user namespace with subordinate ids). */
export type RunDriver = 'overlay' | 'copy' | 'rootless';

/** A parent layer of the step: its chain ID, diff_id and how to read its uncompressed tar. */
export interface ParentLayer {
  chainId: Digest;
  diffId: Digest;
  open: () => Promise<Readable>;
}

/** A build secret: a host file shown read-only at `target` (default /run/secrets/ID) for one step. */
export interface SecretMount {
  id: string;
  src: string;
  target?: string;
}

/** One RUN step to execute. */
export interface RunRequest {
  store: Store;
  /** The parent chain, base layer first. */
  parents: ParentLayer[];
  /** The full argv (shell form already wrapped in the image's Shell). */
  argv: string[];
  /** `K=V` environment (the image's Env plus step env); PATH and HOME get Docker's defaults when absent. */
  env: string[];
  user?: string;
  workdir?: string;
  network?: 'none' | 'host';
  secrets?: SecretMount[];
  hostname?: string;
  /** Force a driver instead of detecting one. */
  driver?: RunDriver;
  /** Receives the step's stdout and stderr as they come. */
  onOutput?: (chunk: Buffer) => void;
  signal?: AbortSignal;
  /** Names the step in errors, e.g. `[web 3/7] RUN make`. */
  label: string;
}

/** What the caller's consumer gets: the overlay-style diff dir and the driver that made it. */
export interface RunOutcome {
  diffDir: string;
  driver: RunDriver;
  /** Host id → the id the step saw; the layer writer must apply it (PackOptions.hostIds) when set. */
  hostIds?: { uid(host: number): number; gid(host: number): number };
}

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const TAIL_LINES = 15;

/** The detected driver per overlay dir, or why RUN is impossible here. */
export interface DriverInfo {
  driver: RunDriver | 'none';
  reason: string;
  /** Not root: the user namespace steps run in (full for `rootless`, single-ID for `copy`). */
  mapping?: IdMapping;
}

const detected = new Map<string, Promise<DriverInfo>>();

/**
 * Which RUN driver works here, probed once per store: a throwaway overlay mount inside a private
 * mount namespace (root), else a user-namespace `unshare` (copy driver), else none. `dimg info` shows it.
 * A positive overlay probe is remembered for the rest of the boot (same boot id, user and file
 * system), so each build does not pay for spawning a probe mount; anything else is probed anew.
 */
export function detectRunDriver(store: Store): Promise<DriverInfo> {
  let p = detected.get(store.overlay.dir);
  if (!p) {
    p = probeRemembered(store.overlay.dir);
    detected.set(store.overlay.dir, p);
  }
  return p;
}

async function probeRemembered(overlayDir: string): Promise<DriverInfo> {
  // As root the verdict is kept in /run (cleared at boot) per file system, so a fresh store on the
  // same file system does not probe again; otherwise in the store's overlay dir.
  const dev = await fs.stat(overlayDir).then((st) => st.dev, () => -1);
  const root = process.geteuid?.() === 0 && existsSync('/run');
  const dir = root ? '/run/dimg' : overlayDir;
  const file = join(dir, root ? `run-driver-${dev}.json` : '.run-driver.json');
  const stamp = `${await fs.readFile('/proc/sys/kernel/random/boot_id', 'utf8').then((b) => b.trim(), () => 'unknown')} uid=${process.geteuid?.() ?? -1} dev=${dev} unshare=${hostTool('unshare') ?? ''} crun=${hostTool('crun') ?? ''}`;
  try {
    const st = await fs.stat(file);
    // Trust only a file this user owns and nobody else can write.
    if (st.uid === (process.geteuid?.() ?? -1) && (st.mode & 0o022) === 0) {
      const saved = JSON.parse(await fs.readFile(file, 'utf8')) as { stamp?: string; info?: DriverInfo };
      if (saved.stamp === stamp && saved.info?.driver === 'overlay') return saved.info;
    }
  } catch {
    /* nothing remembered yet */
  }
  const info = await probe(overlayDir);
  if (info.driver === 'overlay') {
    const tmp = join(dir, `.tmp-${process.pid}-driver-${randomBytes(4).toString('hex')}`);
    await fs
      .mkdir(dir, { recursive: true, mode: 0o700 })
      .then(() => fs.writeFile(tmp, JSON.stringify({ stamp, info }), { mode: 0o600 }))
      .then(() => fs.rename(tmp, file))
      .catch(() => fs.rm(tmp, { force: true }).catch(() => undefined));
  }
  return info;
}

async function probe(overlayDir: string): Promise<DriverInfo> {
  const unshare = hostTool('unshare');
  if (!unshare) return { driver: 'none', reason: 'util-linux unshare is not installed (apt-get install util-linux)' };
  if (!hostTool('crun')) return { driver: 'none', reason: 'crun, the runtime that confines RUN steps, is not installed (apt-get install crun)' };
  if (process.geteuid?.() === 0) {
    const dir = join(overlayDir, `.tmp-${process.pid}-probe-${randomBytes(4).toString('hex')}`);
    try {
      for (const d of ['l', 'u', 'w', 'm']) await fs.mkdir(join(dir, d), { recursive: true });
      const r = await exec(unshare, ['--mount', '--', 'sh', '-c', 'mount -t overlay overlay -o lowerdir=l,upperdir=u,workdir=w,index=off m'], dir);
      if (r.code === 0) return { driver: 'overlay', reason: 'overlayfs mounts in private mount namespaces' };
      const why = r.output.trim() || `exit ${r.code}`;
      const copy = await exec(unshare, ['--mount', '--pid', '--fork', '--', 'true'], dir);
      if (copy.code === 0) return { driver: 'copy', reason: `overlay mounts fail here (${why}); RUN uses a copy of the root and a snapshot diff` };
      return { driver: 'none', reason: `neither overlay mounts nor namespaces work here (${why})` };
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }
  const mapping = await probeIdMapping();
  if (mapping.mode === 'none') return { driver: 'none', reason: `not root and ${mapping.reason}` };
  const nsArgs = [...userNamespaceFlags(mapping), '--mount', '--pid', '--fork', '--', 'true'];
  const r = await exec(unshare, nsArgs, overlayDir);
  const said = r.output.trim() || `exit ${r.code}`;
  if (r.code !== 0) return { driver: 'none', reason: `not root and user namespaces are unavailable (${said})` };
  const copy = 'not root: RUN uses a copy of the root in a user namespace';
  if (mapping.mode === 'full') {
    return { driver: 'rootless', mapping, reason: `${copy} (${mapping.reason}) and a snapshot diff` };
  }
  return { driver: 'copy', mapping, reason: `${copy} and a snapshot diff; ${mapping.reason}` };
}

function exec(cmd: string, args: string[], cwd: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    child.on('error', (e) => resolve({ code: -1, output: e.message }));
    child.on('close', (code) => resolve({ code, output }));
  });
}

/**
 * Runs the step and calls `consume` with its diff while the workspace still exists; returns what
 * `consume` returns. Fails with RUN_FAILED (exit code and last output lines), RUN_SANDBOX_FAILED,
 * RUN_UNSUPPORTED or BUILD_CANCELLED, each naming the step. The workspace is always removed.
 */
export async function runInSandbox<T>(req: RunRequest, consume: (outcome: RunOutcome) => Promise<T>): Promise<T> {
  const chosen = req.driver && req.driver !== 'rootless' ? forced(req.driver) : undefined;
  const info: DriverInfo = chosen ?? (await detectRunDriver(req.store));
  if (req.driver === 'rootless' && info.driver !== 'rootless') {
    const hint = 'run dimg as a user with /etc/subuid and /etc/subgid ranges (apt-get install uidmap)';
    const message = `${req.label}: the rootless RUN driver is unavailable: ${info.reason}`;
    throw new DimgError('RUN_UNSUPPORTED', message, hint);
  }
  if (info.driver === 'none') {
    throw new DimgError('RUN_UNSUPPORTED', `${req.label}: RUN steps cannot run on this host: ${info.reason}`, 'run dimg as root, or enable user namespaces (and /etc/subuid ranges); images without RUN steps build anywhere');
  }
  const driver = info.driver;
  cancelledCheck(req);
  const overlayDir = req.store.overlay.dir;
  const ws = join(overlayDir, `.tmp-${process.pid}-run-${randomBytes(6).toString('hex')}`);
  await fs.mkdir(join(ws, 'files'), { recursive: true, mode: 0o700 });
  let cleanup: (() => Promise<void>) | undefined;
  try {
    const hostname = req.hostname ?? 'dimg-build';
    const secrets = await checkSecrets(req);
    const points: MountPoint[] = [
      { rel: 'proc', kind: 'dir' },
      { rel: 'dev', kind: 'dir' },
      { rel: 'etc/resolv.conf', kind: 'file' },
      { rel: 'etc/hosts', kind: 'file' },
      { rel: 'etc/hostname', kind: 'file' },
      ...secrets.map((s) => ({ rel: s.rel, kind: 'file' as const })),
    ];
    const prepared = await rootfsDriver(driver, req.store, info.mapping).prepare(ws, req.parents, points);
    cleanup = prepared.cleanup;
    const { root, view, usable } = prepared;
    const has = (rel: string) => usable.some((u) => u.rel === rel);
    for (const s of secrets) {
      if (!has(s.rel)) throw new DimgError('SECRET_TARGET_INVALID', `${req.label}: secret "${s.id}" cannot be mounted at /${s.rel}`, 'choose a target whose parent directories are plain directories in the image');
    }
    const ident = resolveUser(req.user, await view.readFile('etc/passwd'), await view.readFile('etc/group'), req.label);
    const files: StepFileMount[] = [];
    const hostFile = async (name: string, content: string) => {
      const p = join(ws, 'files', name);
      await fs.writeFile(p, content, { mode: 0o644 });
      return p;
    };
    const resolvConf = await fs.readFile('/etc/resolv.conf', 'utf8').catch(() => '');
    const hostsText = `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${hostname}\n`;
    if (has('etc/resolv.conf')) files.push({ source: await hostFile('resolv.conf', resolvConf), destination: '/etc/resolv.conf', readOnly: false });
    if (has('etc/hosts')) files.push({ source: await hostFile('hosts', hostsText), destination: '/etc/hosts', readOnly: false });
    if (has('etc/hostname')) files.push({ source: await hostFile('hostname', `${hostname}\n`), destination: '/etc/hostname', readOnly: false });
    for (const s of secrets) files.push({ source: s.src, destination: `/${s.rel}`, readOnly: true });
    const env = [...req.env];
    if (!env.some((e) => e.startsWith('PATH='))) env.unshift(DEFAULT_PATH);
    if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${ident.home}`);
    const newNet = (req.network ?? 'none') !== 'host';
    const workdir = absWorkdir(req.workdir);
    const bundle = join(ws, 'bundle');
    await fs.mkdir(bundle, { mode: 0o700 });
    const config = runtimeConfig({ root, argv: req.argv, env, cwd: workdir, uid: ident.uid, gid: ident.gid, hostname, proc: has('proc'), dev: has('dev'), files });
    await fs.writeFile(join(bundle, 'config.json'), JSON.stringify(config), { mode: 0o600 });
    const logFile = join(ws, 'runtime.log');
    const script = sandboxScript({
      overlay: prepared.mount,
      root,
      ipBin: newNet ? hostTool('ip') : undefined,
      runtime: { bin: hostTool('crun')!, stateDir: join(ws, 'runtime'), logFile, bundle, id: `dimg-${basename(ws)}` },
    });
    const result = await execute(req, script, newNet, info.mapping);
    const runtimeErrors = await readRuntimeLog(logFile);
    if (!result.ready || (runtimeErrors.length > 0 && !runtimeErrors.some(isExecFailure))) {
      const said = [...result.tail, ...runtimeErrors].join(' | ') || 'no output';
      throw new DimgError('RUN_SANDBOX_FAILED', `${req.label}: the sandbox could not be set up (${driver} driver): ${said}`, 'check that the store is on a local file system and that dimg runs as root or with /etc/subuid ranges; `dimg info` shows the RUN driver');
    }
    if (runtimeErrors.some(isExecFailure)) result.code = 127; // as a shell says of a missing command
    if (result.code !== 0) {
      const how = result.signal ? `was killed by ${result.signal}` : `exited with code ${result.code}`;
      const lines = result.tail.length > 0 ? result.tail : runtimeErrors;
      const last = lines.length ? `; last output:\n  ${lines.join('\n  ')}` : ' (no output)';
      // Single-ID mapping: every id but 0 is unmapped, so a chown fails with EINVAL. Say why.
      const single = info.mapping?.mode === 'single' && lines.some((l) => /chown|Invalid argument/i.test(l));
      const why = single ? `\n  (this host maps only one user id for rootless RUN: ${info.mapping!.reason})` : '';
      const hint = single
        ? 'give the user /etc/subuid and /etc/subgid ranges (usermod --add-subuids/--add-subgids), or build as root'
        : 'fix the command; steps before it are cached and will not run again';
      throw Object.assign(new DimgError('RUN_FAILED', `${req.label} ${how}${last}${why}`, hint), {
        exitCode: result.code,
        lastLines: lines,
      });
    }
    const diffDir = await prepared.diff();
    return await consume({ diffDir, driver, hostIds: prepared.hostIds });
  } finally {
    await cleanup?.().catch(() => undefined);
    await removeWorkspace(ws);
  }
}

/** A driver the caller chose; not root, the copy driver runs in a single-ID user namespace. */
function forced(driver: RunDriver): DriverInfo {
  const uid = process.geteuid?.() ?? 0;
  if (uid === 0 || driver !== 'copy') return { driver, reason: 'forced' };
  const gid = process.getegid?.() ?? 0;
  const mapping: IdMapping = {
    mode: 'single',
    uids: [{ inside: 0, outside: uid, count: 1 }],
    gids: [{ inside: 0, outside: gid, count: 1 }],
    reason: 'single-ID mapping: the copy driver was forced',
  };
  return { driver, reason: 'forced', mapping };
}

/**
 * The working directory as an absolute, clean path inside the root. An image's config WorkingDir is
 * not to be trusted: `..` components are resolved here, against `/`, so they cannot climb out.
 */
function absWorkdir(w: string | undefined): string {
  return posix.resolve('/', w || '/');
}

function cancelledCheck(req: RunRequest): void {
  if (req.signal?.aborted) throw new DimgError('BUILD_CANCELLED', `${req.label}: cancelled`, '');
}

async function checkSecrets(req: RunRequest): Promise<{ id: string; src: string; rel: string }[]> {
  const out: { id: string; src: string; rel: string }[] = [];
  for (const s of req.secrets ?? []) {
    const st = await fs.stat(s.src).catch(() => undefined);
    if (!st?.isFile()) {
      throw new DimgError('SECRET_NOT_FOUND', `${req.label}: secret "${s.id}": source file ${s.src} does not exist or is not a file`, 'pass --secret id=ID,src=PATH with an existing file');
    }
    await fs.access(s.src, FS.R_OK);
    const target = s.target ?? `/run/secrets/${s.id}`;
    const rel = target.split('/').filter((p) => p && p !== '.').join('/');
    if (rel === '' || rel.split('/').includes('..')) {
      throw new DimgError('SECRET_TARGET_INVALID', `${req.label}: secret "${s.id}" has an invalid target ${target}`, 'use an absolute path such as /run/secrets/ID');
    }
    out.push({ id: s.id, src: s.src, rel });
  }
  return out;
}

/** The error messages crun wrote to its JSON log (one object per line), oldest first. */
async function readRuntimeLog(file: string): Promise<string[]> {
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  const out: string[] = [];
  // crun 1.8 writes the JSON objects back to back, without newlines between them.
  for (const m of text.matchAll(/\{[^{}]*\}/g)) {
    try {
      const entry = JSON.parse(m[0]) as { msg?: string; level?: string };
      if (entry.msg && (entry.level === undefined || entry.level === 'error')) out.push(entry.msg);
    } catch {
      /* a torn line of a killed runtime */
    }
  }
  return out;
}

/** crun's words for a command it could not execute: the step's failure, not the sandbox's. */
function isExecFailure(message: string): boolean {
  return /^executable file .* not found|^exec(ve)? .*(No such file|Permission denied|Exec format error)|^open executable/.test(message);
}

interface ExecResult {
  ready: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
  tail: string[];
}

function execute(req: RunRequest, script: string, newNet: boolean, mapping?: IdMapping): Promise<ExecResult> {
  const unshare = hostTool('unshare')!;
  // The outer namespaces hold the overlay mount and the network; crun adds the step's own mount,
  // PID, IPC and UTS namespaces inside them.
  const ns = ['--mount', '--pid', '--fork', '--kill-child'];
  if (newNet) ns.push('--net');
  // Not root: a user namespace first (single-ID or with subordinate ids), owning the others.
  if (mapping && process.geteuid?.() !== 0) ns.unshift(...userNamespaceFlags(mapping));
  const inner = [unshare, ...ns, '--', hostTool('sh') ?? '/bin/sh', '-c', script];
  const setpriv = hostTool('setpriv');
  // pdeathsig: if dimg dies (even SIGKILL), unshare dies, and --kill-child takes the step's PID 1
  // (and so its whole PID and mount namespace) with it.
  const argv = setpriv ? [setpriv, '--pdeathsig', 'KILL', '--', ...inner] : inner;
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe', 'pipe'], detached: true });
    const tail = new OutputTail();
    let ready = false;
    let cancelled = false;
    const onChunk = (b: Buffer) => {
      tail.push(b);
      req.onOutput?.(b);
    };
    child.stdout!.on('data', onChunk);
    child.stderr!.on('data', onChunk);
    (child.stdio[3] as Readable).on('data', (b: Buffer) => {
      if (b.toString().includes('ready')) ready = true;
    });
    (child.stdio[3] as Readable).on('error', () => undefined);
    const onAbort = () => {
      cancelled = true;
      child.kill('SIGKILL');
    };
    req.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (e) => {
      req.signal?.removeEventListener('abort', onAbort);
      reject(new DimgError('RUN_SANDBOX_FAILED', `${req.label}: cannot start ${argv[0]}: ${e.message}`, 'install util-linux'));
    });
    child.on('close', (code, signal) => {
      req.signal?.removeEventListener('abort', onAbort);
      if (cancelled) {
        reject(new DimgError('BUILD_CANCELLED', `${req.label}: cancelled`, ''));
        return;
      }
      resolve({ ready, code, signal, tail: tail.lines(TAIL_LINES) });
    });
  });
}

async function removeWorkspace(ws: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await fs.rm(ws, { recursive: true, force: true });
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // EBUSY: the mount namespace is still being torn down; EACCES: a step left read-only dirs
      // (copy driver without root). Both resolve on a retry.
      if (attempt >= 20 || (code !== 'EBUSY' && code !== 'EACCES' && code !== 'EPERM' && code !== 'ENOTEMPTY')) throw e;
      if (code === 'EACCES' || code === 'EPERM') await makeWritable(ws);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

async function makeWritable(dir: string): Promise<void> {
  const st = await fs.lstat(dir).catch(() => undefined);
  if (!st?.isDirectory()) return;
  await fs.chmod(dir, 0o700).catch(() => undefined);
  for (const name of await fs.readdir(dir).catch(() => [] as string[])) await makeWritable(join(dir, name));
}
