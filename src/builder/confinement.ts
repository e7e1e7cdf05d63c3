/**
 * What a RUN step is allowed to do: its capabilities, its seccomp filter and the parts of /proc it
 * may not write or read. The reference is the default profile of Docker/runc/crun (moby's default
 * capability set and seccomp profile, runc's masked and read-only paths), with one deliberate
 * difference: CAP_MKNOD is dropped too. A daemon's containers get a device cgroup that makes mknod
 * harmless; dimg runs without cgroups, so a node for the host's disk would be a way out.
 *
 * These are data for the OCI runtime configuration (src/builder/runtime-config.ts); the runtime (crun)
 * applies them after pivot_root, as the last thing before it executes the step's command.
 */

/**
 * The capabilities a root RUN step keeps (moby's default set without CAP_MKNOD). Left out on
 * purpose, among others: SYS_ADMIN (mount), SYS_MODULE, SYS_RAWIO, SYS_PTRACE, SYS_BOOT, SYS_TIME,
 * DAC_READ_SEARCH (open_by_handle_at, the "shocker" escape), MKNOD, NET_ADMIN. SYS_CHROOT stays:
 * after pivot_root the step's mount namespace holds nothing but the image, so a chroot inside it
 * cannot climb out, and package scripts use chroot.
 */
export const RUN_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_RAW',
  'CAP_SYS_CHROOT',
  'CAP_AUDIT_WRITE',
  'CAP_SETFCAP',
];

/** /proc entries hidden from the step (bind-mounted over with an empty file or directory). */
export const MASKED_PATHS: readonly string[] = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/proc/sysrq-trigger',
];

/** /proc entries the step may read but not write: sysctls and friends are not namespaced. */
export const READONLY_PATHS: readonly string[] = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys'];

/**
 * System calls refused with EPERM. The kernel already refuses most of them without the dropped
 * capabilities; the filter is the second wall (a kernel bug in one capability check is not enough),
 * and it covers what needs no capability at all: new user namespaces (unshare, clone, setns), the
 * keyring, bpf, userfaultfd and perf events, the usual kernel attack surface of container escapes.
 */
const REFUSED_SYSCALLS: readonly string[] = [
  'acct',
  'add_key',
  'bpf',
  'clock_adjtime',
  'clock_settime',
  'create_module',
  'delete_module',
  'finit_module',
  'fsconfig',
  'fsmount',
  'fsopen',
  'fspick',
  'get_kernel_syms',
  'init_module',
  // io_uring: a long record of kernel privilege escalations, and moby's profile no longer allows it.
  'io_uring_enter',
  'io_uring_register',
  'io_uring_setup',
  'ioperm',
  'iopl',
  'kexec_file_load',
  'kexec_load',
  'keyctl',
  'lookup_dcookie',
  'mount',
  'mount_setattr',
  'move_mount',
  'name_to_handle_at',
  'nfsservctl',
  'open_by_handle_at',
  'open_tree',
  'perf_event_open',
  'pivot_root',
  'query_module',
  'quotactl',
  'quotactl_fd',
  'reboot',
  'request_key',
  'setns',
  'settimeofday',
  'stime',
  'swapoff',
  'swapon',
  'syslog',
  '_sysctl',
  'umount',
  'umount2',
  'unshare',
  'uselib',
  'userfaultfd',
  'ustat',
  'vm86',
  'vm86old',
];

/** clone(2) flags that create namespaces; a clone that asks for one is refused. */
const NAMESPACE_CLONE_FLAGS: readonly number[] = [
  0x00020000, // CLONE_NEWNS
  0x02000000, // CLONE_NEWCGROUP
  0x04000000, // CLONE_NEWUTS
  0x08000000, // CLONE_NEWIPC
  0x10000000, // CLONE_NEWUSER
  0x20000000, // CLONE_NEWPID
  0x40000000, // CLONE_NEWNET
];

const EPERM = 1;
const ENOSYS = 38;

/** The seccomp architectures of a Node `process.arch`: native first, then its compat ABIs. */
function seccompArchitectures(arch: string): string[] {
  switch (arch) {
    case 'x64':
      return ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'];
    case 'arm64':
      return ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'];
    case 'ia32':
      return ['SCMP_ARCH_X86'];
    case 'arm':
      return ['SCMP_ARCH_ARM'];
    case 'ppc64':
      return ['SCMP_ARCH_PPC64LE'];
    case 's390x':
      return ['SCMP_ARCH_S390X', 'SCMP_ARCH_S390'];
    case 'riscv64':
      return ['SCMP_ARCH_RISCV64'];
    default:
      return [];
  }
}

/**
 * The OCI `linux.seccomp` object of a RUN step on a host of Node architecture `arch`: everything is
 * allowed except REFUSED_SYSCALLS and namespace-creating clones (EPERM). clone3 answers ENOSYS, as in
 * moby's profile: its flags live in memory a filter cannot read, and ENOSYS makes libc fall back to
 * clone, whose flags the filter does check. (The clone rule reads argument 0, where x86 and arm keep
 * the flags; s390 swaps the first two arguments, which this profile does not special-case.)
 */
export function seccompProfile(arch: string = process.arch): Record<string, unknown> {
  return {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures: seccompArchitectures(arch),
    syscalls: [
      { names: [...REFUSED_SYSCALLS], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM },
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
      ...NAMESPACE_CLONE_FLAGS.map((flag) => ({
        names: ['clone'],
        action: 'SCMP_ACT_ERRNO',
        errnoRet: EPERM,
        args: [{ index: 0, value: flag, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }],
      })),
    ],
  };
}
