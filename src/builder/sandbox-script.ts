/**
 * The shell program that runs as PID 1 of a RUN step's outer namespaces (a private mount namespace,
 * a PID namespace that dies with dimg, and a network namespace unless `network: host`), on the
 * host's /bin/sh. It prepares what the runtime cannot: the overlay mount of the step's root and the
 * loopback interface; reports "ready" on fd 3; then executes crun, which
 * confines the command (src/builder/runtime-config.ts). Every mount lives only in the step's mount
 * namespaces, so it disappears with the step's last process, even when dimg itself is killed.
 */

/** Everything the script needs; all paths are host paths unless said otherwise. */
export interface ScriptParams {
  /** Overlay driver: the mount to make (cwd, relative lowerdirs newest first, upper, work). */
  overlay?: { cwd: string; lowers: string[]; upper: string; work: string };
  /** The root to run in (the overlay's merged dir, or the copy driver's flattened root). */
  root: string;
  /** Bring the loopback interface up (new network namespace) with this `ip` binary. */
  ipBin?: string;
  /** The runtime invocation: crun's path, its state dir, its log file, the bundle dir and an id. */
  runtime: { bin: string; stateDir: string; logFile: string; bundle: string; id: string };
}

/** Quotes `s` for POSIX sh as one word. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
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
  // crun (1.8) refuses hosts with hybrid cgroups (v1 controllers plus a v2 "unified" tree) even when
  // told to manage no cgroup at all. The step uses none, so it hides the hierarchy from crun in this
  // private mount namespace only.
  L.push('if [ -d /sys/fs/cgroup/unified ]; then mount -t tmpfs -o size=4k,mode=755 dimg-no-cgroups /sys/fs/cgroup || fail "cannot hide the cgroup hierarchy from crun"; fi');
  if (p.ipBin) L.push(`${q(p.ipBin)} link set lo up 2>/dev/null || true`);
  // A missing working directory is created by crun after pivot_root, inside the image root: the
  // host's shell must never create or even test image paths (`..` or an image symlink would take it
  // out of the root).
  L.push(`printf ready >&3; exec 3>&-`);
  const r = p.runtime;
  L.push(
    `exec ${q(r.bin)} --root=${q(r.stateDir)} --log=${q(r.logFile)} --log-format=json --cgroup-manager=disabled run --no-new-keyring --bundle=${q(r.bundle)} ${q(r.id)}`,
  );
  return L.join('\n') + '\n';
}
