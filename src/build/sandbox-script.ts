/**
 * The shell program that runs as PID 1 of a RUN step's fresh namespaces (on the host's /bin/sh,
 * before the chroot): it mounts the overlay (overlay driver), /proc, a minimal /dev, the
 * resolv.conf/hosts/hostname files and the secrets, sets the hostname, creates the working dir,
 * reports "ready" on fd 3 and then execs the command chrooted into the root with the step's
 * environment and identity (util-linux `unshare --root --wd --setuid --setgid`, creating no further
 * namespaces). Every mount lives only in the step's mount namespace, so it disappears with the last
 * process of the step, even when dimg itself is killed.
 */

/** A file bind-mounted into the root for the step. */
export interface FileBind {
  /** Host path of the source file. */
  src: string;
  /** Root-relative target path (already present as a mount point). */
  rel: string;
  readOnly: boolean;
}

/** Everything the script needs; all paths are host paths unless said otherwise. */
export interface ScriptParams {
  /** Overlay driver: the mount to make (cwd, relative lowerdirs newest first, upper, work, merged). */
  overlay?: { cwd: string; lowers: string[]; upper: string; work: string };
  /** The root to run in (the overlay's merged dir, or the copy driver's flattened root). */
  root: string;
  proc: boolean;
  dev: boolean;
  files: FileBind[];
  hostname: string;
  /** Absolute working dir inside the root. */
  workdir: string;
  uid: number;
  gid: number;
  env: string[];
  argv: string[];
  /** Absolute host paths of env(1) and unshare(1). */
  envBin: string;
  unshareBin: string;
  /** Bring the loopback interface up (new network namespace) with this `ip` binary. */
  ipBin?: string;
  /**
   * Host dir the caller filled with `early.tab` and `late.tab` (mountTables) and, when `dev`, the
   * template `dev/` (devTemplate): the script mounts each table with ONE `mount -a -T` and copies the
   * template with one `cp -a`, instead of one process per mount, device and link.
   */
  setup: string;
  /** Host devices (names under /dev) to provide in the minimal /dev. */
  devices: string[];
}

/** Quotes `s` for POSIX sh as one word. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The devices a step's minimal /dev offers (those the host has). */
export const DEVICES = ['null', 'zero', 'random', 'urandom', 'tty', 'full'];

/** Escapes a path for an fstab field (util-linux decodes \040, \011, \012 and \134). */
function fstabField(s: string): string {
  return s.replace(/[\\ \t\n]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

/**
 * The two mount tables of a step, in fstab format: `early` (/proc, the /dev tmpfs) before the /dev
 * template is copied in, `late` (device and file bind mounts, /dev/shm, secrets read-only) after.
 */
export function mountTables(p: ScriptParams): { early: string; late: string } {
  const line = (src: string, target: string, type: string, opts: string) => `${fstabField(src)} ${fstabField(target)} ${type} ${opts} 0 0\n`;
  const at = (rel: string) => `${p.root}/${rel}`;
  let early = '';
  let late = '';
  if (p.proc) early += line('proc', at('proc'), 'proc', 'nosuid,nodev,noexec');
  if (p.dev) {
    early += line('tmpfs', at('dev'), 'tmpfs', 'nosuid,noexec,mode=755,size=65536k');
    for (const d of p.devices) late += line(`/dev/${d}`, at(`dev/${d}`), 'none', 'bind');
    late += line('shm', at('dev/shm'), 'tmpfs', 'nosuid,nodev,mode=1777');
  }
  for (const f of p.files) late += line(f.src, at(f.rel), 'none', f.readOnly ? 'bind,ro' : 'bind');
  return { early, late };
}

/** The script text. Setup failures print `dimg-sandbox: …` on stderr and exit 125 before "ready". */
export function sandboxScript(p: ScriptParams): string {
  const q = shQuote;
  const L: string[] = [];
  L.push('set -f');
  L.push('fail() { echo "dimg-sandbox: $*" >&2; exit 125; }');
  L.push(`R=${q(p.root)}`);
  if (p.overlay) {
    const o = p.overlay;
    const base = `lowerdir=${o.lowers.join(':')},upperdir=${o.upper},workdir=${o.work},index=off`;
    L.push(`cd ${q(o.cwd)} || fail "cannot enter the overlay directory"`);
    // redirect_dir/metacopy would make the upperdir an incomplete picture of the change; ask for them
    // off, and accept kernels that do not know the options (they are off there anyway).
    L.push(`mount -t overlay overlay -o ${q(`${base},redirect_dir=off,metacopy=off`)} "$R" 2>/dev/null || mount -t overlay overlay -o ${q(base)} "$R" || fail "cannot mount the overlay file system"`);
  }
  const tables = mountTables(p);
  L.push(`S=${q(p.setup)}`);
  if (tables.early) L.push(`mount -a -T "$S/early.tab" || fail "cannot mount /proc and /dev"`);
  if (p.dev) L.push(`cp -a "$S/dev/." "$R/dev/" || fail "cannot populate /dev"`);
  if (tables.late) L.push(`mount -a -T "$S/late.tab" || fail "cannot mount the step's devices and files"`);
  L.push(`printf %s ${q(p.hostname)} > /proc/sys/kernel/hostname || fail "cannot set the hostname"`);
  if (p.ipBin) L.push(`${q(p.ipBin)} link set lo up 2>/dev/null || true`);
  // Create a missing working dir one component at a time, refusing to go through symlinks: the
  // host's mkdir must never follow an image's symlink out of the root.
  L.push(`W=${q(p.workdir)}`);
  L.push(`if [ ! -d "$R$W" ]; then P=; IFS=/; for c in $W; do [ -n "$c" ] || continue; P="$P/$c"; if [ -L "$R$P" ]; then fail "working directory $W: $P is a symlink to a missing directory"; fi; [ -d "$R$P" ] || mkdir -m 755 "$R$P" || fail "cannot create working directory $W"; done; unset IFS; fi`);
  L.push(`printf ready >&3; exec 3>&-`);
  const envArgs = p.env.map(q).join(' ');
  L.push(`exec ${q(p.envBin)} -i ${envArgs} ${q(p.unshareBin)} --root="$R" --wd=${q(p.workdir)} --setgid ${p.gid} --setuid ${p.uid} -- ${p.argv.map(q).join(' ')}`);
  return L.join('\n') + '\n';
}
