/**
 * Hostile RUN steps against the sandbox (issue #20, D4). Each step below is what a trojaned base
 * image or a malicious Dockerfile could run; a canary on the host must come through untouched and the
 * step must run without the privileges the escapes need.
 *
 * The escapes are real ones against a chroot-only sandbox: a double chroot through a directory fd,
 * a second mount of the host's root device through a node made with mknod, and a write to a
 * sysctl that is not namespaced.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, statSync, chmodSync, mkdirSync, symlinkSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Store } from '../../src/store/store.js';
import { sha256 } from '../../src/oci/digest.js';
import { runInSandbox, type ParentLayer, type RunDriver } from '../../src/builder/sandbox.js';
import { isDimgError } from '../../src/errors.js';
import { seccompProfile } from '../../src/builder/confinement.js';
import { makeBusyboxRootfs } from '../support/busybox.js';
import { requireRoot, requireTool, run } from '../support/tools.js';
import { tempDir } from '../support/tmp.js';
import { storeWithTarUnpack } from '../support/tar-store.js';

function busyboxLayer(t: Parameters<typeof tempDir>[0], extra?: (rootfs: string) => void): ParentLayer {
  const dir = makeBusyboxRootfs(join(tempDir(t), 'rootfs'));
  extra?.(dir);
  const tarFile = join(tempDir(t), 'layer.tar');
  run('tar', ['-C', dir, '--numeric-owner', '-cf', tarFile, '.']);
  const data = readFileSync(tarFile);
  const diffId = sha256(data);
  return { chainId: diffId, diffId, open: async () => Readable.from([data]) };
}

/** A host file the hostile steps try to overwrite, with its path relative to its file system's root. */
function canary(t: Parameters<typeof tempDir>[0]): { path: string; fsPath: string; fsType: string; major: number; minor: number } {
  const dir = tempDir(t, 'dimg-canary-');
  chmodSync(dir, 0o755);
  const path = join(dir, 'canary');
  writeFileSync(path, 'untouched\n');
  const fsRoot = run('findmnt', ['-n', '-o', 'TARGET', '-T', path]).trim();
  const rootInFs = run('findmnt', ['-n', '-o', 'FSROOT', '-T', path]).trim();
  const fsType = run('findmnt', ['-n', '-o', 'FSTYPE', '-T', path]).trim();
  const rel = path.slice(fsRoot === '/' ? 0 : fsRoot.length);
  const dev = statSync(path).dev;
  return { path, fsPath: (rootInFs === '/' ? '' : rootInFs) + rel, fsType, major: Math.floor(dev / 256) & 0xfff, minor: (dev & 0xff) | ((dev >> 12) & 0xfff00) };
}

async function hostileRun(store: Store, parent: ParentLayer, driver: RunDriver, script: string): Promise<string> {
  let out = '';
  try {
    await runInSandbox(
      { store, parents: [parent], driver, argv: ['/bin/sh', '-c', script], env: [], label: '[evil 1/1] RUN hostile', onOutput: (b) => (out += b.toString()) },
      async () => undefined,
    );
  } catch (e) {
    // The step may fail (its escapes are refused); only RUN_FAILED is acceptable, not a broken sandbox.
    assert.ok(isDimgError(e, 'RUN_FAILED'), `unexpected error: ${String(e)}\n${out}`);
  }
  return out;
}

for (const driver of ['overlay', 'copy'] as const) {
  test(`a hostile RUN cannot touch a host canary (${driver} driver): double chroot, mknod + mount, /proc/sys`, async (t) => {
    requireRoot('the RUN sandbox security test');
    requireTool('findmnt', 'util-linux');
    const store = await storeWithTarUnpack(join(tempDir(t), 'store'));
    const parent = busyboxLayer(t);
    const c = canary(t);

    // 1. Double chroot: keep a directory fd to the current root, chroot deeper, then walk `..` from
    //    the fd. Under a plain chroot this reaches the host's root.
    const chrootEscape = [
      'mkdir -p /jail/proc /jail/bin && cp /bin/busybox /jail/bin/busybox',
      'mount -t proc proc /jail/proc 2>&1 || echo "no mount"',
      'exec 3</',
      // `cd -P`: the shell must walk the real `..` entries, not shorten the path as text.
      `chroot /jail /bin/busybox sh -c 'cd -P /proc/self/fd/3 && cd -P ../../../../../../../../../.. && echo escaped-chroot > .${c.path}' 2>&1 || echo "chroot escape failed"`,
    ].join('; ');
    // 2. A node for the host's root device, then a second mount of it.
    const mountEscape = [
      `mknod /hostdisk b ${c.major} ${c.minor} 2>&1 || echo "no mknod"`,
      'mkdir -p /hostfs',
      `mount -t ${c.fsType} /hostdisk /hostfs 2>&1 || echo "no mount"`,
      `[ -f /hostfs${c.fsPath} ] && echo escaped-mount > /hostfs${c.fsPath}`,
      'true',
    ].join('; ');
    // 3. A sysctl that no namespace covers.
    const sysctl = '/proc/sys/vm/overcommit_ratio';
    const before = readFileSync(sysctl, 'utf8');
    const procSys = `echo ${Number(before) + 1} > ${sysctl} 2>&1 || echo "no sysctl write"`;
    // 4. The privileges the step runs with.
    const status = 'grep -E "^(CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status';

    let out = '';
    const escaped: string[] = [];
    try {
      for (const [name, script] of [['double chroot', chrootEscape], ['mknod + mount', mountEscape], ['/proc/sys write', procSys], ['status', status]] as const) {
        const said = await hostileRun(store, parent, driver, script);
        out += `--- ${name}:\n${said}`;
        if (readFileSync(c.path, 'utf8') !== 'untouched\n') escaped.push(name);
        writeFileSync(c.path, 'untouched\n');
        if (readFileSync(sysctl, 'utf8') !== before) {
          escaped.push(name);
          writeFileSync(sysctl, before);
        }
      }
    } finally {
      if (readFileSync(sysctl, 'utf8') !== before) writeFileSync(sysctl, before);
    }
    assert.deepEqual(escaped, [], `RUN steps reached the host:\n${out}`);

    const field = (name: string) => out.match(new RegExp(`^${name}:\\s*(\\S+)`, 'm'))?.[1];
    const capEff = BigInt(`0x${field('CapEff') ?? 'ffffffffff'}`);
    const capBnd = BigInt(`0x${field('CapBnd') ?? 'ffffffffff'}`);
    const CAP = { DAC_READ_SEARCH: 2, SYS_MODULE: 16, SYS_RAWIO: 17, SYS_PTRACE: 19, SYS_ADMIN: 21, SYS_BOOT: 22, SYS_TIME: 25, MKNOD: 27 };
    for (const [name, bit] of Object.entries(CAP)) {
      assert.equal((capBnd >> BigInt(bit)) & 1n, 0n, `CAP_${name} is in the RUN step's bounding set:\n${out}`);
      assert.equal((capEff >> BigInt(bit)) & 1n, 0n, `CAP_${name} is effective in the RUN step:\n${out}`);
    }
    assert.equal(field('NoNewPrivs'), '1', `no_new_privs is not set:\n${out}`);
    assert.equal(field('Seccomp'), '2', `no seccomp filter:\n${out}`);
  });
}

test('an image working directory cannot make the host create a directory, and one behind an image symlink works', async (t) => {
  requireRoot('the RUN sandbox security test');
  const store = await storeWithTarUnpack(join(tempDir(t), 'store'));
  // Debian-style base: /var/run -> ../run (merged-/usr images have more such links).
  const parent = busyboxLayer(t, (rootfs) => {
    mkdirSync(join(rootfs, 'run'));
    mkdirSync(join(rootfs, 'var'), { recursive: true });
    symlinkSync('../run', join(rootfs, 'var', 'run'));
  });
  // A base config's WorkingDir is the image's word, not the user's: `..` must not climb out.
  const hostDir = join(tempDir(t, 'dimg-wd-'), 'made-by-workdir');
  let out = '';
  await runInSandbox(
    { store, parents: [parent], argv: ['/bin/sh', '-c', 'pwd'], env: [], workdir: `/../../../../../../../../..${hostDir}`, label: '[evil 1/1] RUN pwd', onOutput: (b) => (out += b.toString()) },
    async () => undefined,
  );
  assert.equal(existsSync(hostDir), false, `the host got ${hostDir}`);
  assert.equal(out.trim(), hostDir, 'the step runs in the cleaned path inside its root');

  out = '';
  const made = await runInSandbox(
    { store, parents: [parent], argv: ['/bin/sh', '-c', 'pwd'], env: [], workdir: '/var/run/myapp', label: '[app 1/1] RUN pwd', onOutput: (b) => (out += b.toString()) },
    async ({ diffDir }) => existsSync(join(diffDir, 'run', 'myapp')),
  );
  assert.match(out.trim(), /^(\/var)?\/run\/myapp$/);
  assert.ok(made, 'the working directory is created through the image symlink, inside the root');
});

test('the seccomp profile refuses io_uring and namespace creation', () => {
  const profile = seccompProfile('x64') as { syscalls: { names: string[]; action: string; args?: unknown[] }[] };
  const refused = new Set(profile.syscalls.filter((r) => r.action === 'SCMP_ACT_ERRNO' && !r.args).flatMap((r) => r.names));
  for (const name of ['io_uring_setup', 'io_uring_enter', 'io_uring_register', 'unshare', 'setns', 'mount', 'open_by_handle_at', 'bpf', 'keyctl']) assert.ok(refused.has(name), `${name} is allowed`);
});
