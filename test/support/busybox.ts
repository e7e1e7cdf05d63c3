/**
 * A busybox root filesystem made on the fly from Debian's busybox-static: the offline base image
 * every build test stands on.
 */
import { mkdirSync, copyFileSync, chmodSync, writeFileSync, readdirSync, lstatSync, unlinkSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool, run } from './tools.js';

/** Creates a busybox rootfs in `dir` (bin/ with applet symlinks, etc/, tmp/) and returns `dir`. */
export function makeBusyboxRootfs(dir: string): string {
  const busybox = requireTool('/bin/busybox', 'busybox-static');
  for (const d of ['bin', 'etc', 'tmp', 'root', 'var', 'proc', 'dev', 'sys']) mkdirSync(join(dir, d), { recursive: true });
  chmodSync(join(dir, 'tmp'), 0o1777);
  copyFileSync(busybox, join(dir, 'bin', 'busybox'));
  chmodSync(join(dir, 'bin', 'busybox'), 0o755);
  run(join(dir, 'bin', 'busybox'), ['--install', '-s', join(dir, 'bin')]);
  // `--install -s` links to the host path of busybox; point the applets at `busybox` relatively so
  // the rootfs also works chrooted (RUN steps) and after unpacking elsewhere.
  for (const name of readdirSync(join(dir, 'bin'))) {
    const p = join(dir, 'bin', name);
    if (lstatSync(p).isSymbolicLink()) {
      unlinkSync(p);
      symlinkSync('busybox', p);
    }
  }
  writeFileSync(join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  writeFileSync(join(dir, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  return dir;
}
