/**
 * The OCI runtime configuration (config.json of a runtime bundle) of one RUN step, for crun.
 *
 * The runtime gives the step its own mount, PID, IPC and UTS namespaces, mounts /proc, /dev and the
 * step's files, makes the image root the root of the mount namespace with pivot_root (and detaches
 * the host's root, so no `..`, chroot or /proc link leads back to it), then drops capabilities, sets
 * no_new_privs, loads the seccomp filter and executes the command as the step's user. The network
 * namespace is not the runtime's: dimg makes it (or keeps the host's for `network: host`) before the
 * runtime starts, so the step joins whatever namespace the runtime is started in.
 */
import { MASKED_PATHS, READONLY_PATHS, RUN_CAPABILITIES, seccompProfile } from './confinement.js';

/** A host file bind-mounted at an absolute path of the step's root. */
export interface StepFileMount {
  /** Host path of the source file. */
  source: string;
  /** Absolute path inside the root; the mount point already exists there. */
  destination: string;
  readOnly: boolean;
}

/** What varies from step to step. */
export interface StepProcess {
  /** Host path of the root (overlay merged dir or the copy driver's flattened root). */
  root: string;
  argv: string[];
  env: string[];
  /** Absolute working directory inside the root (it exists by the time the runtime starts). */
  cwd: string;
  uid: number;
  gid: number;
  hostname: string;
  /** Mount /proc and /dev (false when the image has no plain directory for them). */
  proc: boolean;
  dev: boolean;
  files: StepFileMount[];
}

/**
 * The config.json object of a step. A root step keeps RUN_CAPABILITIES; a step as another user gets
 * them only in its bounding set (as Docker does), so setuid programs of the image still work and the
 * user itself holds none.
 */
export function runtimeConfig(p: StepProcess): Record<string, unknown> {
  const caps = [...RUN_CAPABILITIES];
  const held = p.uid === 0 ? caps : [];
  const mounts: Record<string, unknown>[] = [];
  if (p.proc) mounts.push({ destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] });
  if (p.dev) {
    // The runtime creates the standard devices (null, zero, full, random, urandom, tty) and the
    // fd/stdin/stdout/stderr links in this tmpfs; nothing of the host's /dev is shared.
    mounts.push({ destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] });
    mounts.push({ destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'] });
    mounts.push({ destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] });
  }
  for (const f of p.files) {
    mounts.push({ destination: f.destination, type: 'bind', source: f.source, options: ['bind', 'nosuid', 'nodev', f.readOnly ? 'ro' : 'rw'] });
  }
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: p.uid, gid: p.gid },
      args: p.argv,
      env: p.env,
      cwd: p.cwd,
      capabilities: { bounding: caps, effective: held, permitted: held, inheritable: [], ambient: [] },
      noNewPrivileges: true,
    },
    root: { path: p.root, readonly: false },
    hostname: p.hostname,
    mounts,
    linux: {
      namespaces: [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
      maskedPaths: p.proc ? [...MASKED_PATHS] : [],
      readonlyPaths: p.proc ? [...READONLY_PATHS] : [],
      seccomp: seccompProfile(),
    },
  };
}
