/**
 * Unprivileged users for the rootless RUN tests (made idempotently; CI runs as root): one with
 * /etc/subuid and /etc/subgid ranges (the full mapping) and one without (the single-ID mapping).
 */
import { readFileSync, existsSync } from 'node:fs';
import { requireRoot, requireTool, run } from './tools.js';

/** A test user: its name and numeric ids. */
export interface TestUser {
  name: string;
  uid: number;
  gid: number;
}

/** The user with 65536 subordinate uids and gids. */
export const ROOTLESS_USER = 'dimg-rootless';
/** The user without any subordinate ids. */
export const SINGLE_ID_USER = 'dimg-single-id';

function ranges(file: string, name: string): string[] {
  const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  return text.split('\n').filter((l) => l.startsWith(`${name}:`)).map((l) => {
    const [, start, count] = l.split(':').map(Number) as [number, number, number];
    return `${start}-${start + count - 1}`;
  });
}

/** The first 65536-id block above every range listed in /etc/subuid and /etc/subgid (and ≥ 100000). */
function freeBlock(): number {
  let top = 100000;
  for (const file of ['/etc/subuid', '/etc/subgid']) {
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    for (const l of text.split('\n')) {
      const [, start, count] = l.split(':').map(Number);
      if (Number.isInteger(start) && Number.isInteger(count)) top = Math.max(top, start! + count!);
    }
  }
  return Math.ceil(top / 65536) * 65536;
}

function ensureUser(name: string): TestUser {
  requireTool('useradd', 'passwd');
  if (run('sh', ['-c', `getent passwd ${name} || true`]).trim() === '') {
    run('useradd', ['--no-create-home', '--shell', '/bin/sh', '--user-group', name]);
  }
  return { name, uid: Number(run('id', ['-u', name]).trim()), gid: Number(run('id', ['-g', name]).trim()) };
}

/**
 * The user with subordinate ranges (created, and given ranges, when missing), after checking the
 * tools rootless RUN needs: newuidmap/newgidmap (uidmap) and runuser (util-linux).
 */
export function ensureRootlessUser(): TestUser {
  requireRoot('creating the rootless test user');
  requireTool('newuidmap', 'uidmap');
  requireTool('newgidmap', 'uidmap');
  requireTool('runuser', 'util-linux');
  const user = ensureUser(ROOTLESS_USER);
  if (ranges('/etc/subuid', user.name).length === 0 || ranges('/etc/subgid', user.name).length === 0) {
    const start = freeBlock();
    const range = `${start}-${start + 65535}`;
    const args = ranges('/etc/subuid', user.name).length === 0 ? ['--add-subuids', range] : [];
    if (ranges('/etc/subgid', user.name).length === 0) args.push('--add-subgids', range);
    run('usermod', [...args, user.name]);
  }
  return user;
}

/** The user without subordinate ranges (any it got from useradd's defaults are removed). */
export function ensureSingleIdUser(): TestUser {
  requireRoot('creating the single-ID test user');
  requireTool('runuser', 'util-linux');
  const user = ensureUser(SINGLE_ID_USER);
  const args = [
    ...ranges('/etc/subuid', user.name).flatMap((r) => ['--del-subuids', r]),
    ...ranges('/etc/subgid', user.name).flatMap((r) => ['--del-subgids', r]),
  ];
  if (args.length > 0) run('usermod', [...args, user.name]);
  return user;
}

/** argv that runs `argv` as `user` with only PATH, HOME=/nonexistent and `env` in its environment. */
export function asUser(user: TestUser, env: Record<string, string>, argv: string[]): string[] {
  const pairs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const path = `PATH=${process.env.PATH ?? '/usr/bin:/bin'}`;
  return ['runuser', '-u', user.name, '--', 'env', '-i', path, 'HOME=/nonexistent', ...pairs, ...argv];
}
