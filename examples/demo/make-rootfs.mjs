#!/usr/bin/env node
// Makes examples/demo/rootfs: a tiny root filesystem from Debian's busybox-static (/bin/busybox),
// the offline base of the top-level images.yaml demo (`from: { rootfs: ./examples/demo/rootfs }`).
// Run by `npm ci`/`npm install` (the postprepare script) and safe to run again: it rebuilds the
// directory from scratch. Applets are relative symlinks to `busybox`, so the rootfs works chrooted.
// Without busybox-static it prints how to get it and exits 0, so installing dimg never fails on it.
import { existsSync, mkdirSync, rmSync, copyFileSync, chmodSync, writeFileSync, symlinkSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BUSYBOX = '/bin/busybox';
const root = join(dirname(fileURLToPath(import.meta.url)), 'rootfs');

if (!existsSync(BUSYBOX)) {
  console.error(`dimg demo: ${BUSYBOX} not found; the demo base needs Debian's busybox-static:`);
  console.error('  sudo apt-get install -y busybox-static && node examples/demo/make-rootfs.mjs');
  process.exit(0);
}
const list = spawnSync(BUSYBOX, ['--list'], { encoding: 'utf8' });
if (list.status !== 0) {
  console.error(`dimg demo: ${BUSYBOX} --list failed: ${list.stderr}`);
  process.exit(1);
}
rmSync(root, { recursive: true, force: true });
for (const d of ['bin', 'etc', 'tmp', 'root', 'var', 'proc', 'dev', 'sys', 'srv']) mkdirSync(join(root, d), { recursive: true });
chmodSync(join(root, 'tmp'), 0o1777);
copyFileSync(BUSYBOX, join(root, 'bin', 'busybox'));
chmodSync(join(root, 'bin', 'busybox'), 0o755);
for (const applet of list.stdout.split('\n').map((s) => s.trim()).filter(Boolean)) {
  if (applet !== 'busybox') symlinkSync('busybox', join(root, 'bin', applet));
}
writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nwww:x:1000:1000:www:/srv:/bin/false\nnobody:x:65534:65534:nobody:/:/bin/false\n');
writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\nwww:x:1000:\nnogroup:x:65534:\n');
console.log(`dimg demo: busybox rootfs ready in ${root}`);
