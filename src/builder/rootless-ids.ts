/**
 * The user namespace of rootless RUN steps: which ids it maps, how to enter it, and how host ids of
 * files made inside map back to the ids the step saw.
 *
 * Full mode: util-linux `unshare --map-root-user --map-auto` maps the caller to 0 and the caller's
 * first /etc/subuid and /etc/subgid ranges to 1… (through the setuid `newuidmap`/`newgidmap` of
 * Debian's `uidmap` package), so `chown 1000` inside works and the file is owned by a subordinate
 * host id. Single mode (no subordinate range or no `newuidmap`): only the caller is mapped, to 0, so
 * every other id is unmapped and a chown to it fails with EINVAL. The mapping is read from the
 * kernel (/proc/self/uid_map inside a probe namespace), not recomputed from the files, so it is
 * exactly what each later `unshare` with the same flags gets.
 */
import { spawn } from 'node:child_process';
import { userInfo } from 'node:os';
import { hostTool } from './tools.js';

/** One line of /proc/PID/uid_map: `count` ids from `inside` map to host ids from `outside`. */
export interface IdRange {
  inside: number;
  outside: number;
  count: number;
}

/** The user namespace rootless steps run in. */
export interface IdMapping {
  /** `full`: subordinate ranges are mapped (chown works); `single`: only the caller, as 0. */
  mode: 'full' | 'single';
  uids: readonly IdRange[];
  gids: readonly IdRange[];
  /** Why the mode is what it is (shown by `dimg info` and in errors of steps that chown). */
  reason: string;
}

/** The kernel's overflow id: what an unmapped id reads as inside a user namespace. */
const OVERFLOW_ID = 65534;

/** The `unshare` flags that create the user namespace of `mapping` (other namespaces are the caller's to add). */
export function userNamespaceFlags(mapping: Pick<IdMapping, 'mode'>): string[] {
  return mapping.mode === 'full' ? ['--map-root-user', '--map-auto'] : ['--user', '--map-root-user'];
}

/** Parses /proc/PID/{uid,gid}_map text. */
export function parseIdMap(text: string): IdRange[] {
  const out: IdRange[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length !== 3 || !f.every((n) => Number.isInteger(n) && n >= 0)) continue;
    out.push({ inside: f[0]!, outside: f[1]!, count: f[2]! });
  }
  return out;
}

/** The id a process inside the namespace sees for host id `host` (the overflow id when unmapped). */
export function insideId(ranges: readonly IdRange[], host: number): number {
  for (const r of ranges) if (host >= r.outside && host < r.outside + r.count) return r.inside + (host - r.outside);
  return OVERFLOW_ID;
}

/**
 * The host-to-inside id translation of `mapping`, in the shape the layer writer takes
 * (PackOptions.hostIds), so a layer records the ids the step saw, not the host's.
 */
export function hostIdTranslation(mapping: IdMapping): { uid(host: number): number; gid(host: number): number } {
  return { uid: (h) => insideId(mapping.uids, h), gid: (h) => insideId(mapping.gids, h) };
}

/**
 * Probes the user namespace a non-root caller can have: full when `unshare --map-auto` works and
 * maps more than one id both ways, else single when a plain user namespace works; else
 * mode `none` and a reason when user namespaces are unavailable altogether.
 */
export async function probeIdMapping(): Promise<IdMapping | { mode: 'none'; reason: string }> {
  const unshare = hostTool('unshare');
  if (!unshare) return { mode: 'none', reason: 'util-linux unshare is not installed (apt-get install util-linux)' };
  const user = safeUserName();
  const read = ['sh', '-c', 'cat /proc/self/uid_map; echo --; cat /proc/self/gid_map'];
  let why: string;
  if (!hostTool('newuidmap') || !hostTool('newgidmap')) {
    why = 'newuidmap/newgidmap are not installed (apt-get install uidmap)';
  } else {
    const r = await run(unshare, [...userNamespaceFlags({ mode: 'full' }), ...read]);
    const [u, g] = r.output.split('--\n');
    const uids = parseIdMap(u ?? '');
    const gids = parseIdMap(g ?? '');
    const many = (rs: IdRange[]) => rs.reduce((n, x) => n + x.count, 0) > 1;
    if (r.code === 0 && many(uids) && many(gids)) {
      const n = uids.reduce((s, x) => s + x.count, 0);
      return { mode: 'full', uids, gids, reason: `${n} ids mapped through /etc/subuid and /etc/subgid (newuidmap)` };
    }
    const said = r.output.trim().split('\n')[0] || `exit ${r.code}`;
    why = `${user} has no subordinate id range usable by newuidmap (${said})`;
  }
  const r = await run(unshare, [...userNamespaceFlags({ mode: 'single' }), ...read]);
  if (r.code !== 0) {
    return { mode: 'none', reason: `user namespaces are unavailable (${r.output.trim() || `exit ${r.code}`})` };
  }
  const [u, g] = r.output.split('--\n');
  const hint = `add ranges: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 ${user}`;
  const reason = `single-ID mapping: ${why}; steps that chown fail (${hint})`;
  return { mode: 'single', uids: parseIdMap(u ?? ''), gids: parseIdMap(g ?? ''), reason };
}

function safeUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.geteuid?.() ?? '?'}`;
  }
}

function run(cmd: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (b: Buffer) => (output += b.toString()));
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    child.on('error', (e) => resolve({ code: -1, output: e.message }));
    child.on('close', (code) => resolve({ code, output }));
  });
}

/**
 * Runs `script` (POSIX sh, with `args` as $1…) as root of a fresh user namespace of `mapping`;
 * rejects with its stderr on a non-zero exit. Used for what the host user cannot do to files owned
 * by subordinate ids: chown them, and remove them.
 */
export function runInUserNamespace(mapping: IdMapping, script: string, args: readonly string[] = []): Promise<void> {
  const unshare = hostTool('unshare') ?? 'unshare';
  return new Promise((resolve, reject) => {
    const sh = hostTool('sh') ?? '/bin/sh';
    const argv = [...userNamespaceFlags(mapping), '--', sh, '-c', script, 'sh', ...args];
    const child = spawn(unshare, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(err.trim() || `exit ${code}`))));
  });
}
